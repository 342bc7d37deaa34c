"""``incidents.commands.v1``: what people and automation ask of an incident."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import Field

from schemas.common import Name, Severity, Timestamp, WireModel


class CommandKind(StrEnum):
    """Imperative names; each maps to a lifecycle transition or a timeline entry."""

    ACKNOWLEDGE = "acknowledge"
    MITIGATE = "mitigate"
    RESOLVE = "resolve"
    REOPEN = "reopen"
    NOTE = "note"
    SET_SEVERITY = "set_severity"
    ASSIGN_ROLE = "assign_role"
    #: Mark a task of the incident's runbook done (``task``; ``text`` a note or the result).
    COMPLETE_TASK = "complete_task"
    #: Page ``person``, ``team`` or ``schedule`` into the incident now (``text``: why).
    ADD_RESPONDER = "add_responder"
    #: Internal: the worker's timer asking a correlation group to act on its due deadlines.
    TICK = "tick"
    #: Internal: every attempt to deliver a page failed (``page``: its dedup key; ``step``: its
    #: escalation step; ``person``: its recipient; ``text``: the last error).
    DELIVERY_FAILED = "delivery_failed"
    #: Internal: a change to the incident's service arrived while it was open (``change``).
    RECORD_CHANGE = "record_change"


class Command(WireModel):
    """A command for one incident, keyed by the incident's routing key on the topic."""

    id: Name
    kind: CommandKind
    incident_id: Name
    routing_key: Name
    actor: Name = "unknown"
    issued_at: Timestamp | None = Field(
        default=None,
        description="When it was accepted (the API and the CLI stamp it; a tick: its due time). "
        "The incident stream decides the command at this time, never at its own clock; a "
        "command without it is decided at its record's timestamp.",
    )
    at: Timestamp | None = Field(
        default=None, description="When it happened, if earlier than issued_at (backfill)."
    )
    text: str | None = Field(default=None, max_length=10_000)
    severity: Severity | None = None
    role: str | None = Field(default=None, pattern=r"^[a-z][a-z_]{0,39}$")
    person: Name | None = None
    team: Name | None = Field(default=None, description="For add_responder: a team to page.")
    schedule: Name | None = Field(
        default=None, description="For add_responder: a schedule whose on-call to page."
    )
    task: str | None = Field(default=None, max_length=63, description="A runbook task's id.")
    page: str | None = Field(
        default=None, max_length=255, description="Internal: the dedup key of a failed page."
    )
    step: int | None = Field(default=None, ge=0, description="Internal: a failed page's step.")
    change: dict[str, Any] | None = Field(
        default=None, description="Internal: the change a record_change command records."
    )


class Declaration(WireModel):
    """``POST /api/incidents``: a person declares an incident by hand. It opens at once (no
    group wait) with this title and severity, and pages as a detection's incident would."""

    service: Name
    title: str = Field(min_length=1, max_length=200)
    severity: Severity = Severity.SEV2
    actor: Name = Field(
        default="api", description="Ignored: who declares is the authenticated caller."
    )
    text: str | None = Field(default=None, max_length=10_000, description="What is known so far.")
