"""The HTTP API on loopback: health, incidents, timelines, lifecycle commands and MTTR.

Reads come from the worker's tables; writes become commands on ``incidents.commands.v1`` after a
pre-check against the same pure transition the agent applies (404, 409 with the reason). Every
error is JSON with a message, never a traceback. Writes need ``Authorization: Bearer <token>``:
a person's own token (``streams.http.auth``; the actor is that person) or the shared one.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiohttp import web
from mode import Service
from prometheus_client import CONTENT_TYPE_LATEST
from pydantic import TypeAdapter, ValidationError

from responders.changes import before_impact, related
from responders.correlation import Group, on_command_in_group
from responders.lifecycle import DECLARED, incident_id_for, routing_key
from responders.review import build_review
from responders.runbooks import task_board
from schemas import (
    Command,
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
from schemas.catalog import Role
from schemas.changes import Change
from schemas.commands import Declaration
from schemas.common import received
from schemas.timeline import Opened
from streams import timeline_store
from streams.codec import encode
from streams.http.alerts import routes as alert_routes
from streams.http.auth import ACTOR_HEADER, Principal, bearer, identify, require
from streams.http.common import ApiError, error, json_object, one_header
from streams.http.links import routes as link_routes
from streams.http.oncall import routes as oncall_routes
from streams.http.openapi import openapi_document
from streams.http.page import routes as page_routes
from streams.http.signals import routes as signal_routes
from streams.http.silences import routes as silence_routes
from streams.http.slack import routes as slack_routes
from streams.http.tokens import routes as token_routes
from streams.http.writes import acknowledged, write_id
from streams.liveness import Liveness, consumer_offsets
from streams.metrics import render_metrics

if TYPE_CHECKING:
    from streams.pipeline import Pipeline

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

_DASHBOARD = Path(__file__).with_name("static") / "dashboard.html"
_CLOSE = "\x00close"

_ACTIONS = {
    "acknowledge": CommandKind.ACKNOWLEDGE,
    "mitigate": CommandKind.MITIGATE,
    "resolve": CommandKind.RESOLVE,
    "reopen": CommandKind.REOPEN,
    "notes": CommandKind.NOTE,
    "severity": CommandKind.SET_SEVERITY,
    "roles": CommandKind.ASSIGN_ROLE,
}


def _instant_key(at: str) -> str:
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
        bounds.append(_instant_key(_TIME.dump_python(when, mode="json")))
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


@web.middleware
async def _errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as exc:
        return error(exc.status, exc.message)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return error(exc.status, exc.reason or "error")
    except Exception:
        log.exception("unhandled error serving %s %s", request.method, request.path)
        return error(500, "internal error; see the worker log")


#: What stays open when reads are private: probes, and signed links (their signature is the
#: credential).
_OPEN_PATHS = ("/healthz", "/readyz")
#: The incident page and its script and style hold no data (the page reads it with the token it
#: keeps), so a browser can load them before it has one.
_OPEN_PREFIXES = ("/act/", "/incidents/", "/static/")


class Api:
    """Route handlers over a pipeline."""

    def __init__(self, pipeline: Pipeline) -> None:
        self.p = pipeline
        self.closing = False
        s = pipeline.settings
        self.liveness = Liveness(s.stall_after_s, s.recovery_timeout_s, time.monotonic())

    def app(self) -> web.Application:
        app = web.Application(
            middlewares=[_errors, self._reads], client_max_size=self.p.settings.web_max_body_bytes
        )
        app.router.add_get("/healthz", self.healthz)
        app.router.add_get("/readyz", self.readyz)
        app.router.add_get("/api/incidents", self.list_incidents)
        app.router.add_post("/api/incidents", self.declare)
        app.router.add_get("/api/incidents/{id}", self.get_incident)
        app.router.add_get("/api/incidents/{id}/timeline", self.timeline)
        app.router.add_get("/api/incidents/{id}/tasks", self.tasks)
        app.router.add_get("/api/incidents/{id}/review", self.review)
        app.router.add_get("/api/incidents/{id}/review.svg", self.review)
        app.router.add_post("/api/incidents/{id}/responders", self.add_responder)
        app.router.add_post("/api/incidents/{id}/{action}", self.command)
        app.router.add_post("/api/incidents/{id}/tasks/{task}", self.complete_task)
        app.router.add_get("/api/mttr", self.mttr)
        app.router.add_get("/api/events", self.recent_events)
        app.router.add_get("/api/stream", self.stream)
        app.router.add_get("/metrics", self.metrics)
        app.router.add_get("/", self.dashboard)
        app.add_routes(alert_routes(self))
        app.add_routes(silence_routes(self))
        app.add_routes(page_routes())
        app.add_routes(oncall_routes(self))
        app.add_routes(token_routes(self))
        app.add_routes(link_routes(self))
        app.add_routes(slack_routes(self))
        app.router.add_get("/api/openapi.json", self.openapi)
        app.add_routes(signal_routes(self))
        return app

    @web.middleware
    async def _reads(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """With ``private_reads``, every read needs a token of any role, but the probes and
        signed links."""
        path = request.path
        if (
            self.p.settings.private_reads
            and request.method in ("GET", "HEAD")
            and path not in _OPEN_PATHS
            and not path.startswith(_OPEN_PREFIXES)
        ):
            self.authorized(request, "viewer")
        return await handler(request)

    async def openapi(self, request: web.Request) -> web.Response:
        """This API as an OpenAPI 3.1 document."""
        return web.json_response(openapi_document())

    async def healthz(self, request: web.Request) -> web.Response:
        """503 with the reason when recovery hangs or a lagging partition stops moving."""
        try:
            offsets = consumer_offsets(self.p.app) if self.p.ready else {}
        except Exception:  # the consumer is not there yet, or is being rebuilt
            offsets = {}
        detect, now = self.p.detect, time.monotonic()
        if detect is not None:
            offsets.update(detect.offsets())
            since = detect.restoring_since
            if since is not None and now - since > self.p.settings.recovery_timeout_s:
                stuck = (
                    f"detector state recovery has not finished after {now - since:.0f}s "
                    f"(recovery_timeout_s={self.p.settings.recovery_timeout_s:g})"
                )
                return web.json_response({"status": "unhealthy", "reason": stuck}, status=503)
        reason = self.liveness.check(now, self.p.ready, offsets)
        if reason is not None:
            return web.json_response({"status": "unhealthy", "reason": reason}, status=503)
        return web.json_response({"status": "ok"})

    async def readyz(self, request: web.Request) -> web.Response:
        app = self.p.app
        restoring = self.p.detect is not None and self.p.detect.restoring_since is not None
        directory = getattr(self.p, "directory", None)
        loading = directory is not None and not directory.caught_up.is_set()
        starting = not self.p.ready or app.rebalancing or getattr(app, "in_recovery", False)
        if starting or restoring or loading:
            return web.json_response({"status": "starting"}, status=503)
        return web.json_response({"status": "ready"})

    def incident(self, incident_id: str) -> Incident | None:
        data = self.p.tables.incidents.get(incident_id)
        return Incident.model_validate(data) if data is not None else None

    async def list_incidents(self, request: web.Request) -> web.Response:
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
            opened = _instant_key(str(row.get("opened_at", "")))
            if not query.since <= opened < query.until:
                return None
            return opened, str(row.get("id", ""))

        incidents = self.p.tables.incidents
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

    async def get_incident(self, request: web.Request) -> web.Response:
        incident = self.incident(request.match_info["id"])
        if incident is None:
            return error(404, f"incident {request.match_info['id']!r} not found")
        return web.json_response(incident.model_dump(mode="json"))

    async def timeline(self, request: web.Request) -> web.Response:
        incident_id = request.match_info["id"]
        events = timeline_store.read(self.p.tables.timelines, incident_id)
        if events is None:
            if self.incident(incident_id) is None:
                return error(404, f"incident {incident_id!r} not found")
            events = []
        return web.json_response({"incident_id": incident_id, "events": events})

    async def tasks(self, request: web.Request) -> web.Response:
        """The attached runbook phase by phase, each task with its state and latest result."""
        incident = self.incident(request.match_info["id"])
        if incident is None:
            return error(404, f"incident {request.match_info['id']!r} not found")
        saved = timeline_store.read(self.p.tables.timelines, incident.id) or []
        timeline = [IncidentEvent.model_validate(e) for e in saved]
        return web.json_response(task_board(incident, timeline))

    async def review(self, request: web.Request) -> web.Response:
        """The post-incident review as Markdown, or its chart at ``review.svg``.

        ``?chart=NAME`` makes the Markdown show the chart as an image at that relative path.
        """
        incident_id = request.match_info["id"]
        saved = timeline_store.read(self.p.tables.timelines, incident_id) or []
        if not saved:
            return error(404, f"incident {incident_id!r} not found")
        events = [IncidentEvent.model_validate(e) for e in saved]
        review = build_review(
            events,
            request.query.get("chart"),
            self._changes_before(events),
            self.p.settings.change_lookback_s,
        )
        if not request.path.endswith(".svg"):
            return web.Response(text=review.markdown, content_type="text/markdown")
        if review.chart_svg is None:
            return error(404, f"incident {incident_id!r} has no signal points to chart")
        return web.Response(text=review.chart_svg, content_type="image/svg+xml")

    def _changes_before(self, events: list[IncidentEvent]) -> list[Change] | None:
        """The changes in the lookback before the incident's impact, to its service and what
        it depends on."""
        opened = next((e for e in events if e.kind is IncidentEventKind.OPENED), None)
        if opened is None or self.p.changes is None:
            return None
        if not isinstance(opened.data, Opened):
            return None
        incident = Incident.model_validate(opened.data.incident)
        catalog = self.p.catalog
        found = self.p.changes.of(related(incident.service, catalog))
        lookback_s = self.p.settings.change_lookback_s
        return before_impact(found, incident.service, catalog, incident.impact_started_at,
                             lookback_s)  # fmt: skip

    async def mttr(self, request: web.Request) -> web.Response:
        """Latest aggregates; filters: ``dimension``, ``value`` (or ``service``), ``window``."""
        q = request.query
        dimension = q.get("dimension") or ("service" if "service" in q else None)
        value = q.get("value") or q.get("service")
        window = q.get("window")
        rows = [
            a
            for a in list(self.p.tables.mttr_latest.values())
            if (dimension is None or a["dimension"] == dimension)
            and (value is None or a["value"] == value)
            and (window is None or a["window"] == window)
        ]
        rows.sort(key=lambda a: (a["dimension"], a["value"], a["window"], a["window_start"]))
        return web.json_response({"aggregates": rows})

    async def recent_events(self, request: web.Request) -> web.Response:
        """The newest timeline events across the recent incidents (open, or resolved less than
        ``resolved_in_memory_s`` ago; ``limit``, default 50, at most 500)."""
        try:
            limit = min(500, max(1, int(request.query.get("limit", "50"))))
        except ValueError:
            return error(400, "limit must be an integer")
        timelines = self.p.tables.timelines
        # The current segment of a timeline holds its latest events.
        every = (e for i in list(self.p.tables.incidents.recent) for e in timelines.get(i) or ())
        newest = heapq.nlargest(limit, every, key=lambda e: (_instant_key(e["at"]), e["seq"]))
        return web.json_response({"events": newest})

    async def metrics(self, request: web.Request) -> web.Response:
        body = render_metrics(self.p)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def dashboard(self, request: web.Request) -> web.Response:
        return web.Response(
            text=_DASHBOARD.read_text(),
            content_type="text/html",
            headers={"Cache-Control": "no-cache"},
        )

    async def stream(self, request: web.Request) -> web.StreamResponse:
        """Server-sent events: ``incident``, ``event``, ``aggregate`` and ``silence`` messages as
        they happen."""
        response = web.StreamResponse(
            headers={
                "Content-Type": "text/event-stream",
                "Cache-Control": "no-cache",
                "X-Accel-Buffering": "no",
            }
        )
        await response.prepare(request)
        queue = self.p.live.subscribe()
        try:
            await response.write(b"event: hello\ndata: {}\n\n")
            while not self.closing:
                try:
                    message = await asyncio.wait_for(queue.get(), timeout=15.0)
                except TimeoutError:
                    await response.write(b": keep-alive\n\n")
                    continue
                if message == _CLOSE:
                    break
                await response.write(f"data: {message}\n\n".encode())
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            self.p.live.unsubscribe(queue)
        return response

    def authorized(self, request: web.Request, needed: Role = "responder") -> Principal:
        """The caller, if their token allows ``needed``: 401 without a valid token, 403 when
        their role is too weak or no token is configured at all."""
        shared = self.p.settings.api_token
        tokens = self.p.directory.tokens if self.p.directory is not None else {}
        if shared is None and not tokens:
            what = "reads are private" if needed == "viewer" else "writes are disabled"
            raise ApiError(
                403, f"{what}: set WARROOM_API_TOKEN on the worker, or create a personal token "
                "with it (warroom token create PERSON)",
            )  # fmt: skip
        given = bearer(one_header(request, "Authorization") or "")
        secret = shared.get_secret_value() if shared is not None else None
        actor = one_header(request, ACTOR_HEADER)
        return require(identify(given, secret, tokens, self.p.catalog, actor), needed)

    async def declare(self, request: web.Request) -> web.Response:
        """Open an incident by hand (``Declaration``): a detection of the ``declared`` detector,
        which opens at once and pages as any incident of the service would. 202 with the
        incident's id (the open incident of the service's group, if there is one)."""
        who = self.authorized(request)
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
        key = routing_key(detection, self.p.settings.group_by)
        group = Group.from_dict(key, self.p.tables.open_incidents.get(key))
        incident_id = group.incident_id or incident_id_for(key, detection.id)
        await acknowledged(
            await self.p.topics.detections.send(key=key.encode(), value=encode(detection))
        )
        answer = {"accepted": True, "incident_id": incident_id, "detection_id": detection.id,
                  "joined_open_incident": group.incident_id is not None,
                  "actor": who.actor}  # fmt: skip
        return web.json_response(answer, status=202)

    async def command(self, request: web.Request) -> web.Response:
        who = self.authorized(request)
        action = request.match_info["action"]
        kind = _ACTIONS.get(action)
        if kind is None:
            return error(404, f"unknown action {action!r}; one of {', '.join(_ACTIONS)}")
        return await self._submit(request, who, kind)

    async def complete_task(self, request: web.Request) -> web.Response:
        """Mark a runbook task done; body (optional) ``{"text"}``."""
        who = self.authorized(request)
        return await self._submit(
            request, who, CommandKind.COMPLETE_TASK, request.match_info["task"]
        )

    async def add_responder(self, request: web.Request) -> web.Response:
        """Page a person, a team or a schedule's on-call into the incident now
        (``ResponderRequest``); the timeline records who added whom."""
        who = self.authorized(request)
        body = await json_object(request)
        try:
            wanted = ResponderRequest.model_validate(body)
        except ValidationError as exc:
            return error(400, format_errors(exc))
        return await self._submit(
            request, who, CommandKind.ADD_RESPONDER, body=wanted.model_dump(exclude_none=True)
        )

    async def _submit(
        self,
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
        answer = await self.submit(incident_id, kind, who, body, cmd_id, task)
        return web.json_response(answer, status=202)

    async def submit(
        self,
        incident_id: str,
        kind: CommandKind,
        who: Principal,
        body: Mapping[str, Any],
        cmd_id: str,
        task: str | None = None,
    ) -> dict[str, Any]:
        """Check a command against the incident as the agent will, send it, and wait for the
        broker: the answer's ``actor`` is ``who`` (never a body's ``actor``). ``ApiError`` 404
        or 409 with the reason; a retry of an applied command (same id) is accepted again."""
        incident = self.incident(incident_id)
        if incident is None:
            raise ApiError(404, f"incident {incident_id!r} not found")
        now = datetime.now(tz=UTC)
        fields = ("at", "text", "severity", "role", "person", "team", "schedule")
        try:
            cmd = Command.model_validate(
                {
                    "id": cmd_id, "kind": kind, "incident_id": incident.id,
                    "routing_key": incident.routing_key, "actor": who.actor, "issued_at": now,
                    "task": task, **{name: body.get(name) for name in fields},
                },
                context=received(now, self.p.settings.max_future_s),
            )  # fmt: skip
        except ValidationError as exc:
            raise ApiError(400, format_errors(exc)) from None
        group = Group.from_dict(
            incident.routing_key, self.p.tables.open_incidents.get(incident.routing_key)
        )
        outcome = on_command_in_group(group, incident, cmd, now, self.p.catalog).outcome
        if outcome.rejection and cmd.id not in group.seen:  # else: a retry of an applied write
            raise ApiError(409, outcome.rejection)
        await acknowledged(
            await self.p.topics.commands.send(key=incident.routing_key.encode(), value=encode(cmd))
        )
        return {"accepted": True, "command_id": cmd.id, "incident_id": incident.id,
                "actor": who.actor}  # fmt: skip


class WebServer(Service):
    """Runs the API inside the worker; bound to loopback unless configured otherwise."""

    def __init__(self, pipeline: Pipeline, **kwargs: Any) -> None:
        self.pipeline = pipeline
        self._runner: web.AppRunner | None = None
        self._api = Api(pipeline)
        super().__init__(**kwargs)

    async def on_start(self) -> None:
        s = self.pipeline.settings
        self._runner = web.AppRunner(self._api.app(), access_log=None, shutdown_timeout=2.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, s.web_bind, s.web_port)
        await site.start()
        log.info("HTTP API on http://%s:%s", s.web_bind, s.web_port)

    async def on_stop(self) -> None:
        self._api.closing = True
        self.pipeline.live.close_all(_CLOSE)
        if self._runner is not None:
            await self._runner.cleanup()
