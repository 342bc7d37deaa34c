"""``POST /api/slack/interactivity``: the acknowledge and resolve buttons of Slack pages.

Slack signs each request (``X-Slack-Signature``: ``v0=`` HMAC-SHA256 of
``v0:{X-Slack-Request-Timestamp}:{body}`` with the app's signing secret); a request signed
otherwise, or more than five minutes away from now, answers 401. The Slack user who pressed the
button must be a person of the catalog (``slack_user_id``) with the responder role: the command
is theirs. The command's id comes from the body, so Slack's retry of a request writes nothing new.
"""

from __future__ import annotations

import hashlib
import json
import time
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

from aiohttp import web

from responders.access import slack_problem
from schemas import CommandKind
from streams.http.auth import Principal, require
from streams.http.commands import stored_incident, submit
from streams.http.common import ApiError, one_header
from streams.http.links import done_already, used_already

if TYPE_CHECKING:
    from streams.http.server import Api

_KINDS = {"acknowledge": CommandKind.ACKNOWLEDGE, "resolve": CommandKind.RESOLVE}


def pressed(body: bytes) -> tuple[str, str, str]:
    """(Slack user id, action, incident id) of a ``block_actions`` payload; 400 otherwise."""
    try:
        form = parse_qs(body.decode("utf-8"), strict_parsing=True)
        payload = json.loads(form["payload"][0])
        user = str(payload["user"]["id"])
        first = payload["actions"][0]
        action, incident_id = str(first["action_id"]), str(first["value"])
    except (ValueError, KeyError, IndexError, TypeError, RecursionError):
        raise ApiError(400, "not a Slack block_actions payload (payload=<JSON>)") from None
    if action not in _KINDS:
        raise ApiError(400, f"unknown action {action!r}; one of {', '.join(_KINDS)}")
    return user, action, incident_id


def _reply(text: str) -> web.Response:
    """What happened, in Slack's message shape (ephemeral: for the person who pressed)."""
    answer: dict[str, Any] = {"response_type": "ephemeral", "replace_original": False,
                              "text": text}  # fmt: skip
    return web.json_response(answer)


def routes(api: Api) -> list[web.RouteDef]:
    p = api.p

    async def interactivity(request: web.Request) -> web.Response:
        secret = p.settings.slack_signing_secret
        if secret is None:
            raise ApiError(404, "Slack interactivity is off: set WARROOM_SLACK_SIGNING_SECRET")
        body = await request.read()
        problem = slack_problem(
            secret.get_secret_value().encode(), one_header(request, "X-Slack-Request-Timestamp"),
            one_header(request, "X-Slack-Signature"), body, now_s=time.time(),
        )  # fmt: skip
        if problem is not None:
            raise ApiError(401, problem)
        user, action, incident_id = pressed(body)
        person = next(
            (name for name, held in p.catalog.people.items() if held.slack_user_id == user), None
        )
        if person is None:
            raise ApiError(403, f"Slack user {user} is no person of the catalog (slack_user_id)")
        who = require(Principal(person, p.catalog.people[person].role, person), "responder")
        incident = stored_incident(api.p, incident_id)
        if incident is not None and done_already(api, incident_id, action):
            return _reply(f"Nothing changed: {incident_id} is already {incident.status.value}.")
        cmd_id = "slk-" + hashlib.sha256(body).hexdigest()[:20]
        if incident is not None and used_already(api, incident_id, cmd_id):
            return _reply(f"Nothing changed: this press was recorded already ({incident_id} is "
                          f"{incident.status.value} now).")  # fmt: skip
        try:
            await submit(api.p, incident_id, _KINDS[action], who, {}, cmd_id)
        except ApiError as exc:
            if exc.status != 409:
                raise
            return _reply(f"Nothing changed: {exc.message}.")
        return _reply(f"Incident {incident_id}: {action} recorded as {person}.")

    return [web.post("/api/slack/interactivity", interactivity)]
