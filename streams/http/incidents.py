"""``/api/incidents``: the incident list, one incident, its timeline, task board and review, and
the writes on it (declare, lifecycle commands, responders, runbook tasks).

Reads come from the worker's tables; writes become commands on ``incidents.commands.v1`` after
a pre-check against the same pure transition the agent applies (404, 409 with the reason), or a
detection of the ``declared`` detector for an incident opened by hand.
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from aiohttp import web
from pydantic import TypeAdapter, ValidationError

from responders.changes import before_impact, related
from responders.correlation import Group
from responders.lifecycle import DECLARED, incident_id_for, routing_key
from responders.review import build_review
from responders.runbooks import task_board
from schemas import (
    CommandKind,
    Detection,
    DetectionSeverity,
    Incident,
    IncidentEvent,
    IncidentEventKind,
    IncidentStatus,
    Timestamp,
    format_errors,
)
from schemas.auth import ResponderRequest
from schemas.changes import Change
from schemas.commands import Declaration
from schemas.timeline import Opened
from streams import timeline_store
from streams.codec import encode
from streams.http.auth import Principal
from streams.http.commands import stored_incident, submit
from streams.http.common import error, json_object
from streams.http.writes import acknowledged, write_id

if TYPE_CHECKING:
    from streams.http.server import Api
    from streams.pipeline import Pipeline

#: ``POST /api/incidents/{id}/{action}``: the command each action sends.
ACTIONS = {
    "acknowledge": CommandKind.ACKNOWLEDGE,
    "mitigate": CommandKind.MITIGATE,
    "resolve": CommandKind.RESOLVE,
    "reopen": CommandKind.REOPEN,
    "notes": CommandKind.NOTE,
    "severity": CommandKind.SET_SEVERITY,
    "roles": CommandKind.ASSIGN_ROLE,
}


def instant_key(at: str) -> str:
    """A stored UTC time (``...:05Z`` or ``...:05.250000Z``) as a string that sorts in time
    order: without the padding, a whole second would sort after the fractions within it."""
    return at if len(at) != 20 else at[:19] + ".000000Z"


_TIME: TypeAdapter[datetime] = TypeAdapter(Timestamp)


def _number_or_text(text: str) -> float | str:
    try:
        return float(text)
    except ValueError:
        return text


#: Listing pages: PagerDuty's default page is 25 and its largest 100; incidents are smaller.
PAGE_DEFAULT, PAGE_MAX = 100, 1000
_STATUSES = ("open", *(s.value for s in IncidentStatus))


@dataclass(frozen=True)
class _Listing:
    status: str | None
    service: str | None
    since: str
    until: str
    limit: int
    offset: int


def _listing_query(query: Mapping[str, str]) -> _Listing:
    """The listing's parameters, checked; ``ValueError`` names the parameter and the problem."""
    status = query.get("status") or None
    if status is not None and status not in _STATUSES:
        raise ValueError(f"status must be one of {', '.join(_STATUSES)}, not {status!r}")
    bounds = []
    for name, missing in (("since", ""), ("until", "~")):
        text = query.get(name)
        if not text:
            bounds.append(missing)
            continue
        try:
            when = _TIME.validate_python(_number_or_text(text))
        except ValidationError as exc:
            reason = exc.errors()[0]["msg"].removeprefix("Value error, ")
            raise ValueError(f"{name}: {reason}") from None
        bounds.append(instant_key(_TIME.dump_python(when, mode="json")))
    numbers = []
    for name, default, most in (("limit", PAGE_DEFAULT, PAGE_MAX), ("offset", 0, None)):
        try:
            number = int(query.get(name, default))
        except ValueError:
            raise ValueError(f"{name} must be an integer") from None
        if number < (1 if name == "limit" else 0) or (most is not None and number > most):
            allowed = f"between 1 and {most}" if most else "0 or more"
            raise ValueError(f"{name} must be {allowed}, not {number}")
        numbers.append(number)
    since, until = bounds
    limit, offset = numbers
    return _Listing(status, query.get("service") or None, since, until, limit, offset)


def _changes_before(p: Pipeline, events: list[IncidentEvent]) -> list[Change] | None:
    """The changes in the lookback before the incident's impact, to its service and what it
    depends on."""
    opened = next((e for e in events if e.kind is IncidentEventKind.OPENED), None)
    if opened is None or p.changes is None:
        return None
    if not isinstance(opened.data, Opened):
        return None
    incident = Incident.model_validate(opened.data.incident)
    catalog = p.catalog
    found = p.changes.of(related(incident.service, catalog))
    lookback_s = p.settings.change_lookback_s
    return before_impact(found, incident.service, catalog, incident.impact_started_at,
                         lookback_s)  # fmt: skip


def routes(api: Api) -> list[web.RouteDef]:
    p = api.p

    async def list_incidents(request: web.Request) -> web.Response:
        """Incidents newest first, a page at a time (PagerDuty's ``limit``/``offset``/``more``):
        ``status`` (``open`` or a status), ``service``, ``since``/``until`` (opened at or after,
        before; RFC 3339 or epoch seconds), ``limit`` (default 100, at most 1,000), ``offset``."""
        try:
            query = _listing_query(request.query)
        except ValueError as exc:
            return error(400, str(exc))
        status, service = query.status, query.service

        def sort_key(row: dict[str, Any]) -> tuple[str, str] | None:
            """Newest first by (time opened, id), or None for a row not asked for. On the stored
            rows (JSON), so that only the incidents listed are validated: the table holds every
            incident ever, and the dashboard asks for the open ones."""
            current = row.get("status")
            if status == "open" and current == "resolved":
                return None
            if status and status != "open" and current != status:
                return None
            if service and row.get("service") != service:
                return None
            opened = instant_key(str(row.get("opened_at", "")))
            if not query.since <= opened < query.until:
                return None
            return opened, str(row.get("id", ""))

        incidents = p.tables.incidents
        # Every open incident is among the recent ones, held in memory whatever the store.
        rows = incidents.recent.values() if status == "open" else incidents.values()
        matching = [(key, v) for v in list(rows) if (key := sort_key(v))]
        page = [
            v for _, v in heapq.nlargest(query.offset + query.limit, matching, key=lambda kv: kv[0])
        ][query.offset :]
        return web.json_response(
            {
                "incidents": [Incident.model_validate(v).model_dump(mode="json") for v in page],
                "total": len(matching),
                "limit": query.limit,
                "offset": query.offset,
                "more": query.offset + len(page) < len(matching),
            }
        )

    async def get_incident(request: web.Request) -> web.Response:
        incident = stored_incident(p, request.match_info["id"])
        if incident is None:
            return error(404, f"incident {request.match_info['id']!r} not found")
        return web.json_response(incident.model_dump(mode="json"))

    async def timeline(request: web.Request) -> web.Response:
        incident_id = request.match_info["id"]
        events = timeline_store.read(p.tables.timelines, incident_id)
        if events is None:
            if stored_incident(p, incident_id) is None:
                return error(404, f"incident {incident_id!r} not found")
            events = []
        return web.json_response({"incident_id": incident_id, "events": events})

    async def tasks(request: web.Request) -> web.Response:
        """The attached runbook phase by phase, each task with its state and latest result."""
        incident = stored_incident(p, request.match_info["id"])
        if incident is None:
            return error(404, f"incident {request.match_info['id']!r} not found")
        saved = timeline_store.read(p.tables.timelines, incident.id) or []
        timeline = [IncidentEvent.model_validate(e) for e in saved]
        return web.json_response(task_board(incident, timeline))

    async def review(request: web.Request) -> web.Response:
        """The post-incident review as Markdown, or its chart at ``review.svg``.

        ``?chart=NAME`` makes the Markdown show the chart as an image at that relative path.
        """
        incident_id = request.match_info["id"]
        saved = timeline_store.read(p.tables.timelines, incident_id) or []
        if not saved:
            return error(404, f"incident {incident_id!r} not found")
        events = [IncidentEvent.model_validate(e) for e in saved]
        review = build_review(
            events,
            request.query.get("chart"),
            _changes_before(p, events),
            p.settings.change_lookback_s,
        )
        if not request.path.endswith(".svg"):
            return web.Response(text=review.markdown, content_type="text/markdown")
        if review.chart_svg is None:
            return error(404, f"incident {incident_id!r} has no signal points to chart")
        return web.Response(text=review.chart_svg, content_type="image/svg+xml")

    async def declare(request: web.Request) -> web.Response:
        """Open an incident by hand (``Declaration``): a detection of the ``declared`` detector,
        which opens at once and pages as any incident of the service would. 202 with the
        incident's id (the open incident of the service's group, if there is one)."""
        who = api.authorized(request)
        loaded = await json_object(request)
        try:
            declared = Declaration.model_validate(loaded)
        except ValidationError as exc:
            return error(400, format_errors(exc))
        now = datetime.now(tz=UTC)
        context: dict[str, Any] = {"title": declared.title, "severity": declared.severity.value,
                                   "declared_by": who.actor}  # fmt: skip
        if declared.text:
            context["text"] = declared.text
        detection_id = write_id("dcl", request, body=await request.read())
        detection = Detection(
            id=detection_id, ts=now, service=declared.service, signal="declared",
            detector=DECLARED, score=1.0, severity=DetectionSeverity.CRITICAL,
            impact_started_at=now, context=context,
        )  # fmt: skip
        key = routing_key(detection, p.settings.group_by)
        group = Group.from_dict(key, p.tables.open_incidents.get(key))
        incident_id = group.incident_id or incident_id_for(key, detection.id)
        await acknowledged(
            await p.topics.detections.send(key=key.encode(), value=encode(detection))
        )
        answer = {"accepted": True, "incident_id": incident_id, "detection_id": detection.id,
                  "joined_open_incident": group.incident_id is not None,
                  "actor": who.actor}  # fmt: skip
        return web.json_response(answer, status=202)

    async def send(
        request: web.Request,
        who: Principal,
        kind: CommandKind,
        task: str | None = None,
        body: dict[str, Any] | None = None,
    ) -> web.Response:
        if body is None:
            body = await json_object(request, empty={}) if request.can_read_body else {}
        incident_id = request.match_info["id"]
        cmd_id = write_id("cmd", request, incident_id, body=await request.read())
        answer = await submit(p, incident_id, kind, who, body, cmd_id, task)
        return web.json_response(answer, status=202)

    async def command(request: web.Request) -> web.Response:
        who = api.authorized(request)
        action = request.match_info["action"]
        kind = ACTIONS.get(action)
        if kind is None:
            return error(404, f"unknown action {action!r}; one of {', '.join(ACTIONS)}")
        return await send(request, who, kind)

    async def complete_task(request: web.Request) -> web.Response:
        """Mark a runbook task done; body (optional) ``{"text"}``."""
        who = api.authorized(request)
        return await send(request, who, CommandKind.COMPLETE_TASK, request.match_info["task"])

    async def add_responder(request: web.Request) -> web.Response:
        """Page a person, a team or a schedule's on-call into the incident now
        (``ResponderRequest``); the timeline records who added whom."""
        who = api.authorized(request)
        body = await json_object(request)
        try:
            wanted = ResponderRequest.model_validate(body)
        except ValidationError as exc:
            return error(400, format_errors(exc))
        return await send(
            request, who, CommandKind.ADD_RESPONDER, body=wanted.model_dump(exclude_none=True)
        )

    # In this order: ``responders`` before the ``{action}`` it would otherwise match.
    return [
        web.get("/api/incidents", list_incidents),
        web.post("/api/incidents", declare),
        web.get("/api/incidents/{id}", get_incident),
        web.get("/api/incidents/{id}/timeline", timeline),
        web.get("/api/incidents/{id}/tasks", tasks),
        web.get("/api/incidents/{id}/review", review),
        web.get("/api/incidents/{id}/review.svg", review),
        web.post("/api/incidents/{id}/responders", add_responder),
        web.post("/api/incidents/{id}/{action}", command),
        web.post("/api/incidents/{id}/tasks/{task}", complete_task),
    ]
