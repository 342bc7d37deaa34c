"""``/act/{id}/{action}``: signed, expiring, single-purpose links in pages (acknowledge, resolve)
that act as the paged person without a login.

``GET`` only shows a page with one button: mail scanners fetch every link of a message, and a
fetch must not acknowledge. The button ``POST``s to the same URL, which checks the signature
(HMAC-SHA256 over incident, action, person and expiry with ``action_link_key``) and the person's
role again, and sends the command as that person. The command's id comes from the signature, so
a second use changes nothing and says so. A tampered link answers 403, an expired one 410.
"""

from __future__ import annotations

import hashlib
import html
import time
from typing import TYPE_CHECKING
from urllib.parse import urlencode

from aiohttp import web

from responders.access import allows, link_problem
from responders.correlation import Group
from schemas import CommandKind, IncidentStatus
from streams.http.auth import Principal
from streams.http.commands import stored_incident, submit
from streams.http.common import ApiError

if TYPE_CHECKING:
    from streams.http.server import Api
    from streams.settings import Settings

_KINDS = {"acknowledge": CommandKind.ACKNOWLEDGE, "resolve": CommandKind.RESOLVE}
_DONE = {
    "acknowledge": "acknowledged",
    "resolve": "resolved",
}


def _page(title: str, text: str, form_action: str | None = None, button: str = "") -> str:
    form = (
        f'<form method="post" action="{html.escape(form_action)}">'
        f'<button type="submit" autofocus>{html.escape(button)}</button></form>'
        if form_action is not None
        else ""
    )
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<meta name="robots" content="noindex">'
        f"<title>{html.escape(title)}</title></head>"
        f'<body style="font: 16px system-ui, sans-serif; margin: 2rem; max-width: 40rem">'
        f"<h1>{html.escape(title)}</h1><p>{html.escape(text)}</p>{form}</body></html>"
    )


def _html(text: str, status: int = 200) -> web.Response:
    return web.Response(
        text=text, status=status, content_type="text/html",
        headers={"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"},
    )  # fmt: skip


def routes(api: Api) -> list[web.RouteDef]:
    p = api.p

    def checked(request: web.Request) -> tuple[str, str, str, str]:
        """(incident id, action, person, signature) of a link that may act now; else 404 when
        links are off, 400 when a part is missing, 403 when tampered, 410 when expired."""
        key = p.settings.action_link_key
        if key is None:
            raise ApiError(404, "action links are off: set WARROOM_ACTION_LINK_KEY")
        incident_id, action = request.match_info["id"], request.match_info["action"]
        q = request.query
        person, sig, expires_text = q.get("person", ""), q.get("sig", ""), q.get("expires", "")
        if not person or not sig or not expires_text.isdigit() or len(expires_text) > 12:
            raise ApiError(400, "the link is incomplete: it needs person, expires and sig")
        expires = int(expires_text)
        problem = link_problem(
            key.get_secret_value().encode(), incident_id, action, person, expires, sig,
            now_s=time.time(), ttl_s=lifetime_s(p.settings),
        )  # fmt: skip
        if problem is not None:
            raise ApiError(410 if "expired" in problem else 403, problem)
        held = p.catalog.people.get(person)
        if held is None:
            raise ApiError(403, f"{person!r} is no longer in the catalog")
        if not allows(held.role, "responder"):
            raise ApiError(403, f"{person} is a {held.role}; this needs the responder role")
        return incident_id, action, person, sig

    async def confirm(request: web.Request) -> web.Response:
        incident_id, action, person, _ = checked(request)
        incident = stored_incident(api.p, incident_id)
        if incident is None:
            raise ApiError(404, f"incident {incident_id!r} not found")
        # Relative to the page (its own path), so it works behind a proxy serving a path.
        here = f"?{urlencode(sorted(request.query.items()))}"
        text = (
            f"{incident.title} ({incident.service}, {incident.severity.value}) is "
            f"{incident.status.value}. {action.capitalize()} it as {person}?"
        )
        return _html(_page(f"{action.capitalize()} {incident.id}", text, here, action.capitalize()))

    async def act(request: web.Request) -> web.Response:
        incident_id, action, person, sig = checked(request)
        cmd_id = "lnk-" + hashlib.sha256(sig.encode()).hexdigest()[:20]
        if done_already(api, incident_id, action):
            return _nothing_to_do(api, incident_id)
        if used_already(api, incident_id, cmd_id):
            return _used(api, incident_id)
        try:
            who = Principal(person, "responder", person)
            await submit(api.p, incident_id, _KINDS[action], who, {}, cmd_id)
        except ApiError as exc:
            if exc.status != 409 or not done_already(api, incident_id, action):
                raise
            return _nothing_to_do(api, incident_id)
        done = f"Incident {incident_id} {_DONE[action]} by {person}."
        return _html(_page(_DONE[action].capitalize(), done))

    return [web.get("/act/{id}/{action}", confirm), web.post("/act/{id}/{action}", act)]


def lifetime_s(settings: Settings) -> float:
    """How far ahead of now a link of this deployment may expire: its time to live after the
    page, which may be made at an input's time up to ``max_future_s`` ahead of this clock."""
    return settings.action_link_ttl_s + settings.max_future_s


def used_already(api: Api, incident_id: str, cmd_id: str) -> bool:
    """True when the command a link sends was applied before (say, before a reopen): sending it
    again changes nothing, since the incident's group remembers the ids it applied."""
    incident = stored_incident(api.p, incident_id)
    if incident is None:
        return False
    held = api.p.tables.open_incidents.get(incident.routing_key)
    return cmd_id in Group.from_dict(incident.routing_key, held).seen


def done_already(api: Api, incident_id: str, action: str) -> bool:
    """True when the link's action has been done already (by this link or anyone)."""
    incident = stored_incident(api.p, incident_id)
    if incident is None:
        return False
    if action == "resolve":
        return incident.status is IncidentStatus.RESOLVED
    return incident.status is not IncidentStatus.TRIGGERED


def _nothing_to_do(api: Api, incident_id: str) -> web.Response:
    incident = stored_incident(api.p, incident_id)
    status = incident.status.value if incident is not None else "changed"
    said = f"Incident {incident_id} is already {status}; nothing changed."
    return _html(_page("Nothing to do", said))


def _used(api: Api, incident_id: str) -> web.Response:
    incident = stored_incident(api.p, incident_id)
    status = incident.status.value if incident is not None else "changed"
    said = (
        f"This link was used already; incident {incident_id} is {status} now, and nothing "
        "changed. A new page brings a new link."
    )
    return _html(_page("Link used already", said))
