"""``changes.v1``: what changed (a deploy, a config change, a feature flag), keyed by service.

In: PagerDuty's Change Events API v2 payload as it is sent (``routing_key``, ``payload`` with
``summary``, ``timestamp``, ``source``, ``custom_details``, and ``links``), plus an optional
``service``. Out: a ``Change`` on the topic, with its service resolved and no routing key (a
routing key is a credential of the sender, not part of the record).

>>> event = ChangeEventV2.model_validate({"routing_key": "k", "payload": {"summary":
...     "Deploy 1.2.3", "source": "ci", "custom_details": {"build": 42}},
...     "links": [{"href": "https://ci.example.com/42", "text": "build"}]})
>>> event.payload.summary, event.links[0].text
('Deploy 1.2.3', 'build')
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from schemas.common import Name, Timestamp, WireModel, json_problem, no_control

#: Bytes of JSON a change's custom details may hold (it is shown in reviews and timelines).
MAX_DETAILS_BYTES = 16 * 1024
MAX_LINKS = 20

Text = Annotated[str, AfterValidator(no_control)]


def _bounded(value: dict[str, Any] | None) -> dict[str, Any] | None:
    if value is None:
        return None
    problem = json_problem(value)
    if problem is not None:
        raise ValueError(problem)
    size = len(json.dumps(value, separators=(",", ":"), default=str).encode("utf-8", "replace"))
    if size > MAX_DETAILS_BYTES:
        raise ValueError(f"{size:,} bytes of JSON; at most {MAX_DETAILS_BYTES:,}")
    return value


Details = Annotated[dict[str, Any] | None, AfterValidator(_bounded)]


class _Inbound(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")


class ChangeLink(_Inbound):
    href: Text = Field(min_length=1, max_length=2048)
    text: Text | None = Field(default=None, max_length=1024)


class ChangePayload(_Inbound):
    summary: Text = Field(min_length=1, max_length=1024)
    timestamp: Timestamp | None = None
    source: Text | None = Field(default=None, max_length=255)
    custom_details: Details = None


class ChangeEventV2(_Inbound):
    """A PagerDuty Change Events API v2 event, with warroom's optional ``service``."""

    routing_key: str | None = Field(default=None, max_length=255)
    payload: ChangePayload
    links: list[ChangeLink] = Field(default_factory=list, max_length=MAX_LINKS)
    service: Name | None = None


class Change(WireModel):
    """One change on ``changes.v1``: ``at`` is when it happened (the payload's timestamp, else
    when it was received)."""

    id: Name
    at: Timestamp
    service: Name
    summary: str
    source: str | None = None
    custom_details: dict[str, Any] = Field(default_factory=dict)
    links: list[dict[str, str]] = Field(default_factory=list)
    received_at: Timestamp | None = None
