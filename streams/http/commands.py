"""An incident command from HTTP (the incident routes, action links, Slack buttons): checked
against the incident with the same pure transition the agent applies, then sent to
``incidents.commands.v1`` and acknowledged by the broker before the API answers."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from responders.correlation import Group, on_command_in_group
from schemas import Command, CommandKind, Incident, format_errors
from schemas.common import received
from streams.codec import encode
from streams.http.auth import Principal
from streams.http.common import ApiError
from streams.http.writes import acknowledged

if TYPE_CHECKING:
    from streams.pipeline import Pipeline


def stored_incident(p: Pipeline, incident_id: str) -> Incident | None:
    """The incident as the worker's ``incidents`` table holds it, or None."""
    data = p.tables.incidents.get(incident_id)
    return Incident.model_validate(data) if data is not None else None


async def submit(
    p: Pipeline,
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
    incident = stored_incident(p, incident_id)
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
            context=received(now, p.settings.max_future_s),
        )  # fmt: skip
    except ValidationError as exc:
        raise ApiError(400, format_errors(exc)) from None
    group = Group.from_dict(incident.routing_key, p.tables.open_incidents.get(incident.routing_key))
    outcome = on_command_in_group(group, incident, cmd, now, p.catalog).outcome
    if outcome.rejection and cmd.id not in group.seen:  # else: a retry of an applied write
        raise ApiError(409, outcome.rejection)
    await acknowledged(
        await p.topics.commands.send(key=incident.routing_key.encode(), value=encode(cmd))
    )
    return {"accepted": True, "command_id": cmd.id, "incident_id": incident.id,
            "actor": who.actor}  # fmt: skip
