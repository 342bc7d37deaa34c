"""``POST /api/changes``, ``GET /api/changes`` and ``POST /api/heartbeats/{name}``.

A change event (PagerDuty Change Events API v2, as sent, plus an optional ``service``) becomes a
``Change`` on ``changes.v1``, keyed by its service; a heartbeat of a cron-style job named in the
catalog (``heartbeats``) becomes a point of its service's ``heartbeat`` series on
``metrics.points.v1``, which the detect service watches for silence. Both answer 202 once the
broker has the record. A change's id derives from the ``Idempotency-Key`` when there is one, so
a retry is the same change; a heartbeat's retry is one more beat, which changes nothing.
Authorization as for PagerDuty events: a bearer token, or (changes) the token as routing key.
"""

from __future__ import annotations

import hmac
import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from aiohttp import web
from pydantic import TypeAdapter, ValidationError

from detectors.silence import HEARTBEAT_LABEL, HEARTBEAT_METRIC
from responders.changes import Unmapped, change_of
from schemas import Timestamp, format_errors
from schemas.changes import ChangeEventV2
from schemas.common import received
from streams.http.common import ApiError, error, json_object
from streams.http.writes import acknowledged, write_id

if TYPE_CHECKING:
    from streams.http.server import Api

_TIME: TypeAdapter[datetime] = TypeAdapter(Timestamp)
#: Changes ``GET /api/changes`` lists at most.
LIST_MAX = 1000


async def _object(request: web.Request) -> dict[str, Any] | web.Response:
    try:
        return await json_object(request)
    except ApiError as exc:
        return error(exc.status, exc.message)


def routes(api: Api) -> list[web.RouteDef]:
    p = api.p

    def denial(request: web.Request) -> web.Response | None:
        """The answer to a caller without a responder's token, or None."""
        try:
            api.authorized(request)
        except ApiError as exc:
            return error(exc.status, exc.message)
        return None

    def keyed(routing_key: str | None) -> bool:
        token = p.settings.api_token
        return (
            token is not None
            and routing_key is not None
            and hmac.compare_digest(
                routing_key.encode("utf-8", "surrogatepass"), token.get_secret_value().encode()
            )
        )

    async def post_change(request: web.Request) -> web.Response:
        now = datetime.now(tz=UTC)
        # Without the bearer token, only a valid event whose routing_key is the token gets in:
        # anything else is 401, so a caller without credentials learns nothing of the format.
        denied = denial(request)
        data = await _object(request)
        if isinstance(data, web.Response):
            return denied or data
        try:
            event = ChangeEventV2.model_validate(
                data, context=received(now, p.settings.max_future_s)
            )
        except ValidationError as exc:
            return denied or error(400, format_errors(exc))
        if denied is not None and not keyed(event.routing_key):
            return denied
        change_id = write_id("chg", request, body=await request.read())
        try:
            change = change_of(event, p.catalog, now, change_id)
        except Unmapped as exc:
            return error(400, str(exc))
        except ValidationError as exc:
            return error(400, format_errors(exc, "change"))
        value = change.model_dump_json().encode()
        sending = await p.topics.changes.send(key=change.service.encode(), value=value)
        await acknowledged(sending)
        p.count("changes_received")
        if p.changes is not None:
            p.changes.add(change)
        answer = {"status": "success", "message": "Change event processed", "id": change.id,
                  "service": change.service}  # fmt: skip
        return web.json_response(answer, status=202)

    async def list_changes(request: web.Request) -> web.Response:
        """Changes newest first: ``service`` (repeatable), ``since`` (RFC 3339 or epoch s)."""
        services = {s for s in request.query.getall("service", []) if s}
        since = request.query.get("since")
        floor = None
        if since:
            try:
                floor = _TIME.validate_python(float(since) if _number(since) else since)
            except ValidationError:
                return error(400, "since: an RFC 3339 time or epoch seconds")
        found = p.changes.of(services) if services else p.changes.all()
        rows = sorted(
            (c for c in found if floor is None or c.at >= floor),
            key=lambda c: (c.at, c.id),
            reverse=True,
        )[:LIST_MAX]
        return web.json_response({"changes": [c.model_dump(mode="json") for c in rows]})

    async def heartbeat(request: web.Request) -> web.Response:
        api.authorized(request)
        await json_object(request, empty={})  # a body is optional, but one that is sent is JSON
        name = request.match_info["name"]
        beat = p.catalog.heartbeats.get(name)
        if beat is None:
            shown = repr(name if len(name) <= 60 else name[:57] + "...")
            return error(404, f"no heartbeat {shown} in the catalog (heartbeats.<name>)")
        now = datetime.now(tz=UTC)
        point = {"ts": now.timestamp(), "service": beat.service, "metric": HEARTBEAT_METRIC,
                 "value": 1.0, "labels": {HEARTBEAT_LABEL: name}}  # fmt: skip
        value = json.dumps(point, separators=(",", ":")).encode()
        await acknowledged(await p.topics.metrics.send(key=beat.service.encode(), value=value))
        p.count("heartbeats_received")
        answer = {"accepted": True, "heartbeat": name, "service": beat.service,
                  "at": now.isoformat(), "within_s": beat.within_s}  # fmt: skip
        return web.json_response(answer, status=202)

    return [
        web.post("/api/changes", post_change),
        web.get("/api/changes", list_changes),
        web.post("/api/heartbeats/{name}", heartbeat),
    ]


def _number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
