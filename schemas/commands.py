"""``incidents.commands.v1``: what people and automation ask of an incident."""

from __future__ import annotations

from enum import StrEnum

from pydantic import Field

from schemas.common import Name, Timestamp, WireModel


class CommandKind(StrEnum):
    """Imperative names; each maps to a lifecycle transition or a timeline entry."""

    ACKNOWLEDGE = "acknowledge"
    MITIGATE = "mitigate"
    RESOLVE = "resolve"
    REOPEN = "reopen"
    NOTE = "note"


class Command(WireModel):
    """A command for one incident, keyed by the incident's routing key on the topic."""

    id: Name
    kind: CommandKind
    incident_id: Name
    routing_key: Name
    actor: Name = "unknown"
    issued_at: Timestamp
    at: Timestamp | None = Field(
        default=None, description="When it happened, if earlier than issued_at (backfill)."
    )
    text: str | None = Field(default=None, max_length=10_000)
