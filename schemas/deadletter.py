"""``<topic>.dlq``: a message that could not be processed, with the reason, and nothing lost."""

from __future__ import annotations

from pydantic import Field

from schemas.common import Timestamp, WireModel


class DeadLetter(WireModel):
    """The original key and bytes (base64), where they came from, which stage failed and why."""

    source_topic: str
    partition: int | None = None
    offset: int | None = None
    key_b64: str | None = None
    value_b64: str
    value_preview: str = Field(default="", description="The start of the value as text.")
    stage: str
    error: str
    at: Timestamp
