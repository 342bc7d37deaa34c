"""Incidents and ``incidents.events.v1``, the append-only timeline they are projected from."""

from __future__ import annotations

from enum import StrEnum

from pydantic import Field, ValidationInfo, field_validator

from schemas.common import Name, Severity, Timestamp, WireModel
from schemas.timeline import EventData, Payload, payload_for


class IncidentStatus(StrEnum):
    """Lifecycle: triggered, acknowledged, mitigated (service restored), resolved (fixed)."""

    TRIGGERED = "triggered"
    ACKNOWLEDGED = "acknowledged"
    MITIGATED = "mitigated"
    RESOLVED = "resolved"


class IncidentEventKind(StrEnum):
    """Past-tense names of everything that can happen to an incident."""

    OPENED = "opened"
    DETECTION_ATTACHED = "detection_attached"
    PAGED = "paged"
    ACKNOWLEDGED = "acknowledged"
    ESCALATED = "escalated"
    STATUS_CHANGED = "status_changed"
    NOTE = "note"
    RUNBOOK_ATTACHED = "runbook_attached"
    TASK_DONE = "task_done"
    MITIGATED = "mitigated"
    RESOLVED = "resolved"
    REOPENED = "reopened"
    SIGNALS_RECOVERED = "signals_recovered"
    SEVERITY_CHANGED = "severity_changed"
    INHIBITED = "inhibited"
    INHIBITION_RELEASED = "inhibition_released"
    ROLE_ASSIGNED = "role_assigned"
    #: Every attempt to deliver one page failed; the next step is paged at once if it was the
    #: current one.
    DELIVERY_FAILED = "delivery_failed"
    #: The incident's own escalation policy paged nobody (``reason``); ``fallback`` names the
    #: catalog's fallback policy when it paged instead.
    UNROUTED = "unrouted"
    #: The catalog in force for the incident: its ``version`` (the offset of the revision on
    #: ``catalog.v1``) and ``digest``, and the ``previous`` version; recorded when the incident
    #: opens under a catalog from the topic, and again whenever another one is applied.
    CATALOG_APPLIED = "catalog_applied"
    #: Someone (the actor) paged a person, team or schedule (``target``) into the incident;
    #: ``recipients``: who that reached.
    RESPONDER_ADDED = "responder_added"
    #: A change (``changes.v1``) to the incident's service arrived while it was open.
    CHANGE_RECORDED = "change_recorded"


class Incident(WireModel):
    """The current state of one incident: a projection of its events."""

    id: Name
    routing_key: Name
    service: Name
    title: str
    status: IncidentStatus
    severity: Severity
    team: str | None = None
    detector: str | None = None
    impact_started_at: Timestamp
    detected_at: Timestamp
    opened_at: Timestamp
    first_paged_at: Timestamp | None = None
    acknowledged_at: Timestamp | None = None
    mitigated_at: Timestamp | None = None
    resolved_at: Timestamp | None = None
    detection_count: int = 0
    detection_ids: tuple[str, ...] = ()
    signals: tuple[str, ...] = ()
    roles: dict[str, str] = Field(default_factory=dict)
    inhibited_by: str | None = None
    #: The attached runbook's tasks, ``<phase>/<task id>`` -> pending, done or failed.
    tasks: dict[str, str] = Field(default_factory=dict)
    #: Why its own escalation policy paged nobody, the last time it did (None: it paged).
    unrouted: str | None = None
    #: The version of the live catalog last recorded on its timeline (None: the catalog file).
    catalog_version: int | None = None
    last_seq: int = 0

    @property
    def commander(self) -> str | None:
        """The incident commander, if one has been assigned."""
        return self.roles.get("commander")


class IncidentEvent(WireModel):
    """One entry of an incident's timeline; ``id`` is ``<incident_id>:<seq>``, so replays dedup."""

    id: Name
    incident_id: Name
    routing_key: Name
    seq: int = Field(ge=1)
    kind: IncidentEventKind
    at: Timestamp
    actor: Name
    cause: str | None = None
    #: The payload of the event's kind (``schemas.timeline``); on the wire, a JSON object.
    data: EventData = Field(default_factory=Payload)

    @field_validator("data", mode="before")
    @classmethod
    def _payload_of_kind(cls, value: object, info: ValidationInfo) -> Payload:
        return payload_for(info.data.get("kind"), value)
