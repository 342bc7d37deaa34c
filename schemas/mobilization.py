"""``mobilization.pages.v1`` and ``mobilization.receipts.v1``: pages and their outcomes."""

from __future__ import annotations

from enum import StrEnum

from pydantic import Field

from schemas.common import Name, Severity, Timestamp, WireModel


class Channel(StrEnum):
    """How a person is reached: a log line, a JSON POST, a Slack incoming webhook, or email."""

    CONSOLE = "console"
    WEBHOOK = "webhook"
    SLACK = "slack"
    EMAIL = "email"


class Page(WireModel):
    """One message per (incident, escalation step, recipient, channel); ``dedup_key`` says which."""

    dedup_key: Name
    incident_id: Name
    routing_key: Name
    step: int = Field(ge=0)
    recipient: Name
    channel: Channel
    address: str
    severity: Severity
    subject: str
    body: str
    created_at: Timestamp


class ReceiptOutcome(StrEnum):
    """What happened to one delivery attempt."""

    DELIVERED = "delivered"
    DUPLICATE = "duplicate"
    FAILED = "failed"
    DEAD_LETTERED = "dead_lettered"


class Receipt(WireModel):
    """The outcome of one delivery attempt of a page."""

    dedup_key: Name
    incident_id: Name
    recipient: Name
    channel: Channel
    outcome: ReceiptOutcome
    attempt: int = Field(ge=1)
    at: Timestamp
    detail: str | None = None
