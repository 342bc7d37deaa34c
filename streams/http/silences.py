"""``/api/silences``: create, list and expire silences and maintenance windows.

A new silence goes to ``silences.v1`` (compacted, keyed by id), which every worker follows.
Body of ``POST``: ``matchers`` (``[{"name", "value", "regex"}]`` or a ``{"label": "value"}``
object), ``comment``, and either ``ends_at``, ``duration_s`` or ``until_resolved`` (an incident
id); ``starts_at`` defaults to now; ``created_by`` is the authenticated caller.
``maintenance: true`` marks a planned window. ``GET`` lists them with their current ``state``
(``pending``, ``active``, ``expired``; ``?state=`` repeated selects several); like every read, it
needs no token (unless reads are private).
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from aiohttp import web
from pydantic import TypeAdapter, ValidationError

from responders.silences import state
from schemas import Timestamp, format_errors
from schemas.silences import Silence
from streams.http.common import error, json_object
from streams.http.writes import acknowledged, write_id

if TYPE_CHECKING:
    from streams.http.server import Api


_TIME: TypeAdapter[datetime] = TypeAdapter(Timestamp)


def _positive(value: object) -> bool:
    """A finite number of seconds above zero (Python's JSON reads NaN, Infinity and 1e400)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    try:
        seconds = float(value)
    except OverflowError:  # an integer past any float
        return False
    return math.isfinite(seconds) and seconds > 0


def routes(api: Api) -> list[web.RouteDef]:
    p = api.p

    def view(silence: Silence, now: datetime) -> dict[str, Any]:
        current = state(silence, now, p.directory.resolved)
        return {**silence.model_dump(mode="json"), "state": current.value}

    async def publish(silence: Silence) -> None:
        sending = await p.app.send(
            p.settings.topics.silences,
            key=silence.id.encode(),
            value=silence.model_dump_json().encode(),
            key_serializer="raw",
            value_serializer="raw",
        )
        await acknowledged(sending)
        # Seen at once by this worker's API; the directory confirms it from the topic.
        p.directory.silences[silence.id] = silence

    async def create(request: web.Request) -> web.Response:
        who = api.authorized(request)
        body = await json_object(request)
        now = datetime.now(tz=UTC)
        matchers = body.get("matchers")
        if isinstance(matchers, dict):
            matchers = [{"name": k, "value": v} for k, v in matchers.items()]
        data = {
            "id": write_id("sil", request, body=await request.read(), length=16),
            "matchers": matchers,
            "starts_at": body.get("starts_at") or now,
            "ends_at": body.get("ends_at"),
            "until_resolved": body.get("until_resolved"),
            "created_by": who.actor,
            "comment": body.get("comment"),
            "created_at": now,
            "maintenance": body.get("maintenance", False),
        }
        if not isinstance(data["maintenance"], bool):  # bool("false") would be True
            return error(400, "maintenance: must be true or false")
        duration = body.get("duration_s")
        if duration is not None:
            if not _positive(duration):
                return error(400, "duration_s: must be a positive number of seconds")
            if data["ends_at"] is not None:
                return error(400, "give ends_at or duration_s, not both")
            starts = data["starts_at"]
            start_at = starts if isinstance(starts, datetime) else None
            try:
                start_at = (
                    start_at
                    or Silence.model_validate(
                        {**data, "ends_at": None, "until_resolved": "x"}
                    ).starts_at
                )
            except ValidationError as exc:
                return error(400, format_errors(exc))
            try:
                data["ends_at"] = start_at + timedelta(seconds=float(duration))
            except OverflowError:
                return error(400, "duration_s: ends after the year 9999")
        try:
            silence = Silence.model_validate(data)
        except ValidationError as exc:
            return error(400, format_errors(exc))
        await publish(silence)
        return web.json_response(view(silence, now), status=201)

    async def listing(request: web.Request) -> web.Response:
        now = datetime.now(tz=UTC)
        rows = [view(s, now) for s in p.directory.active_silences()]
        # Repeatable: ``?state=active&state=pending`` lists both (the dashboard's query).
        wanted = {w for w in request.query.getall("state", []) if w}
        if wanted:
            rows = [r for r in rows if r["state"] in wanted]
        rows.sort(key=lambda r: r["starts_at"])
        return web.json_response({"silences": rows})

    async def expire(request: web.Request) -> web.Response:
        api.authorized(request)
        silence = p.directory.silences.get(request.match_info["id"])
        if silence is None:
            return error(404, f"silence {request.match_info['id']!r} not found")
        now = datetime.now(tz=UTC)
        if silence.expired_at is not None:
            return error(409, "the silence has already been expired")
        expired = silence.model_copy(update={"expired_at": now})
        await publish(expired)
        return web.json_response(view(expired, now))

    return [
        web.post("/api/silences", create),
        web.get("/api/silences", listing),
        web.delete("/api/silences/{id}", expire),
    ]
