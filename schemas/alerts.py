"""Inbound alert formats: Alertmanager's webhook payload and PagerDuty's Events API v2."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from schemas.common import Labels, Timestamp, json_problem, no_control

#: Text that becomes a name (service, signal, group key): no control characters.
NameText = Annotated[str, AfterValidator(no_control)]


class _Inbound(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True)


class AlertmanagerAlert(_Inbound):
    """One alert of a webhook notification."""

    status: str = Field(pattern="^(firing|resolved)$")
    labels: Labels = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    starts_at: Timestamp = Field(alias="startsAt")
    ends_at: str | None = Field(default=None, alias="endsAt")
    generator_url: str | None = Field(default=None, alias="generatorURL")
    fingerprint: str | None = None


class AlertmanagerWebhook(_Inbound):
    """Alertmanager's webhook payload (version 4)."""

    version: str = "4"
    group_key: str | None = Field(default=None, alias="groupKey")
    status: str = Field(pattern="^(firing|resolved)$")
    receiver: str | None = None
    external_url: str | None = Field(default=None, alias="externalURL")
    alerts: list[AlertmanagerAlert] = Field(min_length=1, max_length=10_000)


class PagerDutyAction(StrEnum):
    TRIGGER = "trigger"
    ACKNOWLEDGE = "acknowledge"
    RESOLVE = "resolve"


def _writable(value: dict[str, Any] | None) -> dict[str, Any] | None:
    """Custom details that can be written back as JSON (they become a detection's context)."""
    problem = None if value is None else json_problem(value)
    if problem is not None:
        raise ValueError(problem)
    return value


class PagerDutyPayload(_Inbound):
    summary: str = Field(min_length=1, max_length=1024)
    source: NameText = Field(min_length=1, max_length=255)
    severity: str = Field(pattern="^(critical|error|warning|info)$")
    timestamp: Timestamp | None = None
    component: NameText | None = Field(default=None, max_length=255)
    group: str | None = None
    class_: str | None = Field(default=None, alias="class")
    custom_details: Annotated[dict[str, Any] | None, AfterValidator(_writable)] = None


class PagerDutyEvent(_Inbound):
    """An Events API v2 event."""

    routing_key: str | None = None
    event_action: PagerDutyAction
    dedup_key: NameText | None = Field(default=None, max_length=255)
    payload: PagerDutyPayload | None = None
    client: str | None = None
    client_url: str | None = None
