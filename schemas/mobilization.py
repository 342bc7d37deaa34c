"""``mobilization.pages.v1`` and ``mobilization.receipts.v1``: pages and their outcomes."""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from pydantic import Field

from schemas.common import Name, Severity, Timestamp, WireModel


class Channel(StrEnum):
    """How a person is reached: a log line, a JSON POST, a Slack incoming webhook, or email."""

    CONSOLE = "console"
    WEBHOOK = "webhook"
    SLACK = "slack"
    EMAIL = "email"


PageKind = Literal["page", "notice", "digest"]
"""``page``: someone must act; ``notice``: a status message for a stakeholder (nothing to do);
``digest``: pages held back by a recipient's rate limit, folded into one message."""


class Page(WireModel):
    """One message per (incident, escalation step, recipient, channel); ``dedup_key`` says which.

    Stakeholder notices and digests travel the same way, marked by ``kind`` (messages without
    it are pages)."""

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
    kind: PageKind = "page"
    #: A digest's incidents, in the order it lists them (its ``incident_id`` is ``digest``).
    incidents: list[Name] = Field(default_factory=list)
    #: The incident's runbook, from the catalog (notifiers link it; alert text never is).
    runbook_url: str | None = None


class FlushDigest(WireModel):
    """Internal: ask the delivery stage to send the digest held for ``key`` if the recipient's
    rate limit allows it now (sent by a timer, keyed by ``key`` like the pages it folds)."""

    kind: Literal["flush"] = "flush"
    key: Name
    at: Timestamp


class DeliveryOutcome(WireModel):
    """Internal: a delivery that ran off the stream (in its destination's lane) has finished;
    the stream writes ``entries`` (dedup key -> notification-log entry) to the log. Keyed by the
    destination like the pages, so it reaches the partition that holds their entries."""

    kind: Literal["outcome"] = "outcome"
    destination: Name
    entries: dict[str, dict[str, str | int | None]] = Field(min_length=1)


class ReceiptOutcome(StrEnum):
    """What happened to one delivery attempt."""

    DELIVERED = "delivered"
    DUPLICATE = "duplicate"
    FAILED = "failed"
    DEAD_LETTERED = "dead_lettered"
    #: Held by the recipient's rate limit and delivered inside a digest (``detail`` names it).
    DIGESTED = "digested"


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
