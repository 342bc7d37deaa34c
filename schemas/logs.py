"""``logs.records.v1``: one log record, or a batch of them under ``records``."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from schemas.common import Name, Timestamp, WireModel


class LogRecord(WireModel):
    """One log line as a collector delivers it."""

    ts: Timestamp
    service: Name
    message: str = Field(max_length=65_536)
    level: str | None = None
    attributes: dict[str, Any] = Field(default_factory=dict)


class LogBatch(WireModel):
    """Several records in one message."""

    records: list[LogRecord] = Field(min_length=1)
