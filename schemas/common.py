"""Shared wire types: timestamps (epoch seconds or RFC 3339), the frozen model base, error text.

>>> from pydantic import TypeAdapter
>>> ta = TypeAdapter(Timestamp)
>>> ta.validate_python(0).isoformat()
'1970-01-01T00:00:00+00:00'
>>> ta.validate_python("2026-01-02T03:04:05+02:00").isoformat()
'2026-01-02T01:04:05+00:00'
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    PlainSerializer,
    StringConstraints,
    ValidationError,
)

# Accept timestamps from 1970 up to the year 2200: anything outside is a unit mistake
# (milliseconds sent as seconds) and is rejected with the reason.
MAX_EPOCH_S = 7_258_118_400.0


def _to_utc(value: Any) -> datetime:
    if isinstance(value, bool):
        raise ValueError("timestamp must be epoch seconds or an RFC 3339 string, not a boolean")
    if isinstance(value, int | float):
        seconds = float(value)
        if not math.isfinite(seconds):
            raise ValueError("timestamp must be a finite number of epoch seconds")
        if seconds < 0 or seconds > MAX_EPOCH_S:
            raise ValueError(
                f"timestamp {value!r} is out of range for epoch seconds "
                "(milliseconds or nanoseconds sent as seconds?)"
            )
        return datetime.fromtimestamp(seconds, tz=UTC)
    if isinstance(value, str):
        text = value.strip()
        if text.endswith(("Z", "z")):
            text = text[:-1] + "+00:00"
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            raise ValueError(f"timestamp {value!r} is not RFC 3339") from None
        if parsed.tzinfo is None:
            raise ValueError(f"timestamp {value!r} has no UTC offset (RFC 3339 requires one)")
        return parsed.astimezone(UTC)
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("timestamp must be timezone-aware")
        return value.astimezone(UTC)
    raise ValueError("timestamp must be epoch seconds or an RFC 3339 string")


def _rfc3339(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


Timestamp = Annotated[
    datetime,
    BeforeValidator(_to_utc),
    PlainSerializer(_rfc3339, return_type=str, when_used="json"),
]
"""A tz-aware UTC instant; in: epoch seconds or RFC 3339, out (JSON): RFC 3339 with ``Z``."""

Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
"""A service, metric, team or person name: non-empty, at most 200 characters."""


class WireModel(BaseModel):
    """Base for every message: frozen, unknown fields ignored (newer producers may add some)."""

    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True)


class Severity(StrEnum):
    """Incident severity, SEV1 the worst."""

    SEV1 = "SEV1"
    SEV2 = "SEV2"
    SEV3 = "SEV3"
    SEV4 = "SEV4"


def format_errors(error: ValidationError, prefix: str = "") -> str:
    """One line naming each failing field and its problem.

    >>> from pydantic import BaseModel
    >>> class M(BaseModel):
    ...     x: int
    >>> try:
    ...     M.model_validate({"x": "a"})
    ... except ValidationError as e:
    ...     print(format_errors(e))
    x: Input should be a valid integer, unable to parse string as an integer
    """
    parts = []
    for err in error.errors(include_url=False):
        loc = ".".join(str(p) for p in err["loc"]) or "(message)"
        if prefix:
            loc = f"{prefix}.{loc}" if loc != "(message)" else prefix
        msg = str(err["msg"])
        if msg.startswith("Value error, "):
            msg = msg[len("Value error, ") :]
        parts.append(f"{loc}: {msg}")
    return "; ".join(parts)
