"""``GET /api/openapi.json``: the HTTP API as an OpenAPI 3.1 document, its schemas generated from
the pydantic models the API validates with. ``OPERATIONS`` lists every route; a test fails when
the app serves one it does not list."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from schemas import Incident, IncidentEvent, MttrAggregate
from schemas.alerts import AlertmanagerWebhook, PagerDutyEvent
from schemas.auth import (
    Accepted,
    ApiError,
    CommandBody,
    ResponderRequest,
    TokenCreated,
    TokenRequest,
)
from schemas.changes import ChangeEventV2
from schemas.commands import Declaration
from schemas.live_catalog import ShiftOverride
from schemas.silences import Silence

_REF = "#/components/schemas/{model}"


@dataclass(frozen=True)
class Operation:
    method: str
    path: str
    summary: str
    #: Who may call it: None (open; a read, private with ``private_reads``), or a role.
    role: str | None = None
    body: type[BaseModel] | None = None
    answer: type[BaseModel] | None = None
    status: int = 200
    media: str = "application/json"


_R = "responder"
OPERATIONS: tuple[Operation, ...] = (
    Operation("get", "/healthz", "Liveness: 503 with the reason when a stream is stuck."),
    Operation("get", "/readyz", "Readiness: 503 while tables recover."),
    Operation("get", "/api/incidents", "Incidents, newest first, a page at a time."),
    Operation("post", "/api/incidents", "Declare an incident by hand.", _R, Declaration,
              Accepted, 202),
    Operation("get", "/api/incidents/{id}", "One incident.", answer=Incident),
    Operation("get", "/api/incidents/{id}/timeline", "An incident's timeline.",
              answer=IncidentEvent),
    Operation("get", "/api/incidents/{id}/tasks", "The runbook's tasks and their state."),
    Operation("get", "/api/incidents/{id}/review", "The post-incident review.",
              media="text/markdown"),
    Operation("get", "/api/incidents/{id}/review.svg", "The review's chart.",
              media="image/svg+xml"),
    Operation("post", "/api/incidents/{id}/responders",
              "Page a person, team or schedule into the incident now.", _R, ResponderRequest,
              Accepted, 202),
    Operation("post", "/api/incidents/{id}/{action}",
              "acknowledge, mitigate, resolve, reopen, notes, severity or roles.", _R,
              CommandBody, Accepted, 202),
    Operation("post", "/api/incidents/{id}/tasks/{task}", "Mark a runbook task done.", _R,
              CommandBody, Accepted, 202),
    Operation("get", "/api/mttr", "MTTA, MTTM and MTTR aggregates.", answer=MttrAggregate),
    Operation("get", "/api/events", "The newest timeline events across recent incidents."),
    Operation("get", "/api/stream", "Server-sent events: incidents, events, aggregates.",
              media="text/event-stream"),
    Operation("get", "/metrics", "Prometheus metrics.", media="text/plain"),
    Operation("get", "/", "The live dashboard.", media="text/html"),
    Operation("post", "/api/alerts/alertmanager", "Alertmanager's webhook.", _R,
              AlertmanagerWebhook, status=202),
    Operation("post", "/api/alerts/pagerduty", "PagerDuty Events API v2.", _R, PagerDutyEvent,
              status=202),
    Operation("post", "/api/silences", "Create a silence or maintenance window.", _R,
              answer=Silence, status=201),
    Operation("get", "/api/silences", "Silences and their state.", answer=Silence),
    Operation("delete", "/api/silences/{id}", "Expire a silence.", _R, answer=Silence),
    Operation("post", "/api/tokens", "Create a person's token (answered once).", "admin",
              TokenRequest, TokenCreated, 201),
    Operation("get", "/api/tokens", "Tokens: ids and people, never the tokens.", "admin"),
    Operation("delete", "/api/tokens/{person}", "Revoke every token of a person.", "admin"),
    Operation("get", "/api/whoami", "Who the token is, and its role.", "viewer"),
    Operation("get", "/act/{id}/{action}", "A signed link's confirmation page.",
              media="text/html"),
    Operation("post", "/act/{id}/{action}", "Act through a signed link.", media="text/html"),
    Operation("post", "/api/slack/interactivity", "Slack's button presses (signed by Slack)."),
    Operation("get", "/api/openapi.json", "This document."),
    Operation("get", "/incidents/{id}", "An incident's page for people.", media="text/html"),
    Operation("get", "/static/{name}", "The incident page's script and style sheet.",
              media="text/plain"),
    Operation("post", "/api/overrides", "Take a shift: a person on call for a schedule.", _R,
              answer=ShiftOverride, status=201),
    Operation("get", "/api/overrides", "On-call overrides not ended yet.",
              answer=ShiftOverride),
    Operation("delete", "/api/overrides/{id}", "Remove an override.", _R),
    Operation("get", "/api/oncall", "Who each escalation step pages (or a schedule's person)."),
    Operation("get", "/api/schedules/{name}.ics", "A schedule's shifts as iCalendar.",
              media="text/calendar"),
    Operation("get", "/api/people/{id}.ics", "A person's shifts as iCalendar.",
              media="text/calendar"),
    Operation("post", "/api/changes", "A change event (PagerDuty Change Events v2).", _R,
              ChangeEventV2, status=202),
    Operation("get", "/api/changes", "Change events, newest first."),
    Operation("post", "/api/heartbeats/{name}", "A beat of a heartbeat named in the catalog.",
              _R, status=202),
)  # fmt: skip


def _parameters(path: str) -> list[dict[str, Any]]:
    names = re.findall(r"\{(\w+)\}", path)
    return [
        {"name": n, "in": "path", "required": True, "schema": {"type": "string"}} for n in names
    ]


def _operation(op: Operation) -> dict[str, Any]:
    content: dict[str, Any] = {op.media: {}}
    if op.answer is not None and op.media == "application/json":
        content = {op.media: {"schema": {"$ref": _REF.format(model=op.answer.__name__)}}}
    error = {"application/json": {"schema": {"$ref": _REF.format(model="ApiError")}}}
    found: dict[str, Any] = {
        "summary": op.summary,
        "parameters": _parameters(op.path),
        "responses": {
            str(op.status): {"description": "OK", "content": content},
            "4XX": {"description": "The reason, as JSON", "content": error},
        },
    }
    if op.body is not None:
        schema = {"$ref": _REF.format(model=op.body.__name__)}
        found["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": schema}},
        }
    if op.role is not None:
        found["security"] = [{"bearer": []}]
        found["description"] = f"Needs a token with the {op.role} role (or the shared token)."
    return found


def openapi_document() -> dict[str, Any]:
    """The OpenAPI 3.1 document of ``OPERATIONS``."""
    models = {m for op in OPERATIONS for m in (op.body, op.answer) if m is not None} | {ApiError}
    _, top = models_json_schema(
        [(m, "validation") for m in sorted(models, key=lambda m: m.__name__)], ref_template=_REF
    )
    paths: dict[str, dict[str, Any]] = {}
    for op in OPERATIONS:
        paths.setdefault(op.path, {})[op.method] = _operation(op)
    return {
        "openapi": "3.1.0",
        "info": {"title": "warroom", "version": "1"},
        "paths": paths,
        "components": {
            "schemas": top.get("$defs", {}),
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }


def routes() -> list[web.RouteDef]:
    """``GET /api/openapi.json``; a read, like every read it needs no token (unless reads are
    private)."""

    async def openapi(request: web.Request) -> web.Response:
        """This API as an OpenAPI 3.1 document."""
        return web.json_response(openapi_document())

    return [web.get("/api/openapi.json", openapi)]
