"""``POST /api/alerts/alertmanager`` and ``POST /api/alerts/pagerduty``: other tools' alerts in.

Alertmanager's webhook payload and PagerDuty Events API v2 events become detections on
``detections.v1`` (keyed by correlation group); a PagerDuty ``acknowledge`` becomes a command for
the open incident of its ``dedup_key``, and is dropped when there is none, as PagerDuty does.

The request's arrival is the reference time: a payload or a detection made of it with a time more
than ``max_future_s`` after it, a name with a control character or labels past their limits is
refused with 400 and the reason.
"""

from __future__ import annotations

import hmac
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from aiohttp import web
from pydantic import BaseModel, ValidationError

from responders.correlation import Group
from responders.inbound import from_alertmanager, from_pagerduty, pagerduty_dedup_key
from responders.lifecycle import routing_key
from schemas import Command, CommandKind, Detection, format_errors
from schemas.alerts import AlertmanagerWebhook, PagerDutyAction, PagerDutyEvent
from schemas.common import received
from streams.codec import encode
from streams.http.common import ApiError, json_object
from streams.http.writes import acknowledged, idempotency_key, write_id

if TYPE_CHECKING:
    from streams.http.server import Api


async def _body(request: web.Request, model: type[BaseModel], context: dict[str, Any]) -> Any:
    try:
        return model.model_validate(await json_object(request), context=context)
    except ValidationError as exc:
        raise ApiError(400, format_errors(exc)) from None


def _checked(make: Any, context: dict[str, Any]) -> list[Detection]:
    """The detections ``make()`` builds, each valid in ``context`` (none of its times too far
    ahead of the request); ``ApiError`` 400 names what is wrong."""
    try:
        return [
            Detection.model_validate(d.model_dump(), context=context)
            for d in make()  # a service or signal taken from the payload may be invalid too
        ]
    except ValidationError as exc:
        raise ApiError(400, format_errors(exc, "detection")) from None


def routes(api: Api) -> list[web.RouteDef]:
    p = api.p

    async def send_detections(detections: list[Any]) -> None:
        sent = []
        for d in detections:
            key = routing_key(d, p.settings.group_by)
            sent.append(await p.topics.detections.send(key=key.encode(), value=encode(d)))
        for sending in sent:
            await acknowledged(sending)

    async def alertmanager(request: web.Request) -> web.Response:
        api.authorized(request)
        now = datetime.now(tz=UTC)
        context = received(now, p.settings.max_future_s)
        payload = await _body(request, AlertmanagerWebhook, context)
        detections = _checked(lambda: from_alertmanager(payload, now), context)
        await send_detections(detections)
        return web.json_response({"accepted": len(detections)}, status=202)

    async def pagerduty(request: web.Request) -> web.Response:
        now = datetime.now(tz=UTC)
        context = received(now, p.settings.max_future_s)
        event = await _body(request, PagerDutyEvent, context)
        token = p.settings.api_token
        keyed = (
            token is not None
            and event.routing_key is not None
            and hmac.compare_digest(
                event.routing_key.encode("utf-8", "surrogatepass"),
                token.get_secret_value().encode(),
            )
        )
        actor = "pagerduty" if keyed else api.authorized(request).actor
        action = event.event_action
        if action is PagerDutyAction.TRIGGER and event.payload is None:
            raise ApiError(400, "payload: a trigger needs a payload")
        if action is not PagerDutyAction.TRIGGER and not event.dedup_key:
            raise ApiError(400, f"dedup_key: {action.value} needs the dedup_key")
        dedup_key = pagerduty_dedup_key(event)
        answer = {"status": "success", "message": "Event processed", "dedup_key": dedup_key}
        if action is PagerDutyAction.ACKNOWLEDGE:
            key = f"dedup:{dedup_key}"
            group = Group.from_dict(key, p.tables.open_incidents.get(key))
            if group.incident_id is None:
                answer["message"] = "No open incident for this dedup_key; dropped"
                return web.json_response(answer, status=202)
            cmd_id = write_id("cmd", request, group.incident_id, body=await request.read())
            cmd = Command(
                id=cmd_id, kind=CommandKind.ACKNOWLEDGE,
                incident_id=group.incident_id, routing_key=key, actor=actor, issued_at=now,
            )  # fmt: skip
            await acknowledged(await p.topics.commands.send(key=key.encode(), value=encode(cmd)))
            return web.json_response(answer, status=202)
        retry = (
            write_id("pd", request, body=await request.read()) if idempotency_key(request) else None
        )
        detections = _checked(lambda: [from_pagerduty(event, now, retry)], context)
        await send_detections(detections)
        return web.json_response(answer, status=202)

    return [
        web.post("/api/alerts/alertmanager", alertmanager),
        web.post("/api/alerts/pagerduty", pagerduty),
    ]
