"""The ``data`` of each kind of timeline event (``incidents.events.v1``), as typed models.

An event's ``kind`` chooses its payload model (:data:`PAYLOADS`); a kind without one gets the
generic :class:`Payload`. The wire form is unchanged: a payload serializes with exactly the keys
it was given, in the order of its fields, followed by any unknown keys it was read with, so an
event written before a field existed (or by a newer writer) reads and writes back the same JSON.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SerializerFunctionWrapHandler, model_serializer


class Payload(BaseModel):
    """The generic payload: whatever keys the event carries."""

    model_config = ConfigDict(
        frozen=True, extra="allow", populate_by_name=True, serialize_by_alias=True
    )

    @model_serializer(mode="wrap")
    def _as_given(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        out: dict[str, Any] = handler(self)
        fields = type(self).model_fields
        given = {fields[name].alias or name for name in self.model_fields_set if name in fields}
        given |= set(self.model_extra or {})
        return {key: value for key, value in out.items() if key in given}

    def wire(self) -> dict[str, Any]:
        """The payload as it is on the wire (a plain JSON object)."""
        return self.model_dump(mode="json")


class Opened(Payload):
    """``opened``: the incident as it opened and the detection that opened it (wire forms)."""

    incident: dict[str, Any] = Field(default_factory=dict)
    detection: dict[str, Any] = Field(default_factory=dict)


class DetectionAttached(Payload):
    detection_id: str | None = None
    signal: str = ""
    detector: str | None = None
    score: float | None = None
    detected_at: str | None = None
    context: dict[str, Any] = Field(default_factory=dict)


class Paged(Payload):
    """``paged``: the first page of a step (``step``), an update about new signals
    (``update``, ``signals``) or a repeat (``repeat``), and who was paged."""

    step: int | None = None
    update: int | None = None
    signals: list[str] = Field(default_factory=list)
    repeat: int | None = None
    recipients: list[str] = Field(default_factory=list)


class Escalated(Payload):
    step: int | None = None
    recipients: list[str] = Field(default_factory=list)
    #: Why it escalated before the step's delay ("delivery failed"), if it did.
    reason: str | None = None


class Text(Payload):
    """``acknowledged``, ``mitigated``, ``resolved``, ``reopened`` and ``note``: what was said."""

    text: str | None = None


class StatusChanged(Payload):
    from_: str | None = Field(default=None, alias="from")
    to: str
    reason: str | None = None


class SeverityChanged(Payload):
    from_: str | None = Field(default=None, alias="from")
    to: str
    text: str | None = None


class RunbookAttached(Payload):
    runbook: str | None = None
    title: str | None = None
    #: Every task: ``id``, ``title``, ``phase``, ``owner_role``, ``kind`` (and ``webhook``).
    tasks: list[dict[str, Any]] = Field(default_factory=list)


class TaskDone(Payload):
    task_id: str | None = None
    task: str | None = None
    phase: str | None = None
    outcome: str | None = None
    duration_s: float | None = None
    text: str | None = None
    #: What the automation's webhook answered.
    result: str | None = None


class SignalsRecovered(Payload):
    suggestion: str | None = None
    signal: str | None = None


class Inhibited(Payload):
    by: str
    recipients_not_paged: list[str] = Field(default_factory=list)


class InhibitionReleased(Payload):
    by: str | None = None
    recipients: list[str] = Field(default_factory=list)


class RoleAssigned(Payload):
    role: str
    person: str
    previous: str | None = None


class DeliveryFailed(Payload):
    page: str | None = None
    step: int | None = None
    recipient: str | None = None
    detail: str | None = None


class Unrouted(Payload):
    reason: str = "unrouted"
    fallback: str | None = None
    step: int | None = None


class CatalogApplied(Payload):
    """``catalog_applied``: the live catalog in force (its ``version`` on ``catalog.v1``)."""

    version: int
    digest: str | None = None
    previous: int | None = None


class ResponderAdded(Payload):
    """``responder_added``: whom the actor paged in (``target``: a person, team or schedule),
    who that reached, and why."""

    target: dict[str, Any] = Field(default_factory=dict)
    recipients: list[str] = Field(default_factory=list)
    text: str | None = None


class ChangeRecorded(Payload):
    """``change_recorded``: a change event (``changes.v1``) to the service while it was open."""

    service: str | None = None
    summary: str | None = None
    source: str | None = None
    links: list[dict[str, Any]] = Field(default_factory=list)


#: The payload model of each kind of event (``IncidentEventKind`` values).
PAYLOADS: dict[str, type[Payload]] = {
    "opened": Opened,
    "detection_attached": DetectionAttached,
    "paged": Paged,
    "acknowledged": Text,
    "escalated": Escalated,
    "status_changed": StatusChanged,
    "note": Text,
    "runbook_attached": RunbookAttached,
    "task_done": TaskDone,
    "mitigated": Text,
    "resolved": Text,
    "reopened": Text,
    "signals_recovered": SignalsRecovered,
    "severity_changed": SeverityChanged,
    "inhibited": Inhibited,
    "inhibition_released": InhibitionReleased,
    "role_assigned": RoleAssigned,
    "delivery_failed": DeliveryFailed,
    "unrouted": Unrouted,
    "catalog_applied": CatalogApplied,
    "responder_added": ResponderAdded,
    "change_recorded": ChangeRecorded,
}

EventData = (
    Opened | DetectionAttached | Paged | Escalated | Text | StatusChanged | SeverityChanged
    | RunbookAttached | TaskDone | SignalsRecovered | Inhibited | InhibitionReleased
    | RoleAssigned | DeliveryFailed | Unrouted | CatalogApplied | ResponderAdded
    | ChangeRecorded | Payload
)  # fmt: skip
"""An event's ``data``: the payload of its kind."""


def payload_for(kind: object, value: object) -> Payload:
    """``value`` (a JSON object, or a payload already) as the payload of ``kind``."""
    if isinstance(value, Payload):
        return value
    model = PAYLOADS.get(kind, Payload) if isinstance(kind, str) else Payload
    return model.model_validate(value if value is not None else {})
