"""``silences.v1`` (compacted, keyed by id): silences and maintenance windows, as Alertmanager has.

A silence mutes the detections it matches from ``starts_at`` to ``ends_at``; with
``until_resolved`` it lasts until that incident is resolved instead. A maintenance window is a
silence planned ahead with both ends set.
"""

from __future__ import annotations

import re
from typing import Self

from pydantic import Field, model_validator

from schemas.common import Name, Timestamp, WireModel


class Matcher(WireModel):
    """``name`` is a label (``service``, ``signal``, ``detector``, ``severity`` or any detection
    label); ``value`` is matched exactly, or as a full-match regular expression with ``regex``."""

    name: Name
    value: str = Field(max_length=1000)
    regex: bool = False

    @model_validator(mode="after")
    def _regex_compiles(self) -> Self:
        if self.regex:
            try:
                re.compile(self.value)
            except re.error as exc:
                raise ValueError(f"value is not a regular expression: {exc}") from None
        return self


class Silence(WireModel):
    """One silence; ``expired_at`` is set when someone ends it early."""

    id: Name
    matchers: tuple[Matcher, ...] = Field(min_length=1, max_length=50)
    starts_at: Timestamp
    ends_at: Timestamp | None = None
    until_resolved: Name | None = None
    created_by: Name
    comment: str = Field(min_length=1, max_length=2000)
    created_at: Timestamp
    expired_at: Timestamp | None = None
    maintenance: bool = False

    @model_validator(mode="after")
    def _has_an_end(self) -> Self:
        if self.ends_at is None and self.until_resolved is None:
            raise ValueError("a silence needs ends_at or until_resolved")
        if self.ends_at is not None and self.ends_at <= self.starts_at:
            raise ValueError("ends_at must be after starts_at")
        return self
