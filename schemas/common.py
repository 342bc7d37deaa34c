"""Shared wire types: timestamps (epoch seconds or RFC 3339), the frozen model base, error text.

>>> from pydantic import TypeAdapter
>>> ta = TypeAdapter(Timestamp)
>>> ta.validate_python(0).isoformat()
'1970-01-01T00:00:00+00:00'
>>> ta.validate_python("2026-01-02T03:04:05+02:00").isoformat()
'2026-01-02T01:04:05+00:00'

A time is refused when it is further ahead of the time its message was received than the clock
skew allowed; the shell says when that was through the validation context (:func:`received`):

>>> at = datetime(2026, 1, 1, tzinfo=UTC)
>>> ta.validate_python("2026-01-01T00:04:00Z", context=received(at, 300)).isoformat()
'2026-01-01T00:04:00+00:00'
>>> try:
...     ta.validate_python("2026-01-01T00:06:00Z", context=received(at, 300))
... except ValidationError as e:
...     print(format_errors(e).split(" (")[0])
(message): timestamp 2026-01-01T00:06:00Z is 360 s after the message was received
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    PlainSerializer,
    StringConstraints,
    ValidationError,
    ValidationInfo,
)

# Accept timestamps from 1970 up to the year 2200: anything outside is a unit mistake
# (milliseconds sent as seconds) and is rejected with the reason.
MAX_EPOCH_S = 7_258_118_400.0


def _to_utc(value: Any) -> datetime:
    if isinstance(value, bool):
        raise ValueError("timestamp must be epoch seconds or an RFC 3339 string, not a boolean")
    if isinstance(value, int | float):
        try:
            seconds = float(value)
        except OverflowError:  # an integer no float holds
            raise ValueError(
                f"timestamp of {'-' if value < 0 else ''}about 10^{_digits(int(value)) - 1} "
                "is out of range for epoch seconds"
            ) from None
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
        return _in_range(parsed, value)
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("timestamp must be timezone-aware")
        return _in_range(value, value)
    raise ValueError("timestamp must be epoch seconds or an RFC 3339 string")


def _digits(value: int) -> int:
    """How many decimal digits ``abs(value)`` has, roughly (no conversion to text, which is
    refused past 4300 digits)."""
    return max(1, int(abs(value).bit_length() * math.log10(2)) + 1)


def _in_range(parsed: datetime, given: Any) -> datetime:
    """``parsed`` in UTC, if it falls between 1970 and 2200 as epoch seconds do."""
    try:
        utc = parsed.astimezone(UTC)
        seconds = utc.timestamp()
    except (OverflowError, OSError, ValueError):
        seconds = math.inf
    if not 0 <= seconds <= MAX_EPOCH_S:
        raise ValueError(f"timestamp {str(given)[:40]!r} is out of range (1970 to 2200)")
    return utc


def _rfc3339(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


#: Validation context keys (see :func:`received`).
RECEIVED_AT = "received_at"
MAX_FUTURE_S = "max_future_s"


def received(at: datetime, max_future_s: float) -> dict[str, Any]:
    """The validation context of a message received ``at``: its times may be at most
    ``max_future_s`` after that (the producer's clock may run a little ahead, not years)."""
    return {RECEIVED_AT: at, MAX_FUTURE_S: max_future_s}


def _not_ahead(value: datetime, info: ValidationInfo) -> datetime:
    context = info.context
    if not isinstance(context, dict) or RECEIVED_AT not in context:
        return value
    at, skew_s = context[RECEIVED_AT], float(context[MAX_FUTURE_S])
    ahead_s = (value - at).total_seconds()
    if ahead_s > skew_s:
        raise ValueError(
            f"timestamp {_rfc3339(value)} is {ahead_s:.0f} s after the message was received "
            f"({_rfc3339(at)}); at most {skew_s:.0f} s of clock skew is allowed"
        )
    return value


Timestamp = Annotated[
    datetime,
    BeforeValidator(_to_utc),
    AfterValidator(_not_ahead),
    PlainSerializer(_rfc3339, return_type=str, when_used="json"),
]
"""A tz-aware UTC instant; in: epoch seconds or RFC 3339, out (JSON): RFC 3339 with ``Z``."""

#: Characters no name or label may hold: C0 controls (NUL, CR, LF, TAB, ...), DEL, C1 controls
#: and the Unicode line and paragraph separators. A name flows into log lines, email headers,
#: chat messages and series ids, where any of them splits or forges a line.
CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
MAX_LABELS = 32
MAX_LABEL_KEY = 128
MAX_LABEL_VALUE = 1024


def control_problem(text: str) -> str | None:
    """What is wrong with ``text`` if it holds a control character, else None.

    >>> control_problem("api"), control_problem("api\\r\\nBcc: x")
    (None, "holds the control character U+000D at 3: 'api\\\\r\\\\nBcc: x'")
    """
    found = CONTROL.search(text)
    if found is None:
        return None
    shown = text if len(text) <= 60 else text[:57] + "..."
    return f"holds the control character U+{ord(found.group()):04X} at {found.start()}: {shown!r}"


#: How deep free-form JSON (a change's custom details, a detection's context) may nest.
MAX_JSON_DEPTH = 32


def json_problem(value: Any, max_depth: int = MAX_JSON_DEPTH) -> str | None:
    """Why free-form JSON cannot be written back as JSON (nested deeper than ``max_depth``, a
    string that is not valid UTF-8, a number that is not finite), or None.

    >>> json_problem({"a": [1, "x", None]}), json_problem({"a": float("nan")})
    (None, 'a: not a finite number')
    >>> json_problem([[[]]], max_depth=2)
    'nested deeper than 2 levels'
    """
    stack: list[tuple[Any, str, int]] = [(value, "", 1)]
    while stack:
        item, at, depth = stack.pop()
        if isinstance(item, dict | list) and depth > max_depth:
            return f"nested deeper than {max_depth} levels"
        where = f"{at}: " if at else ""
        if isinstance(item, float) and not math.isfinite(item):
            return f"{where}not a finite number"
        if isinstance(item, str) and not _utf8(item):
            return f"{where}not valid UTF-8 (a lone surrogate)"
        if isinstance(item, dict):
            for key, inner in item.items():
                if isinstance(key, str) and not _utf8(key):
                    return f"{where}a key is not valid UTF-8 (a lone surrogate)"
                stack.append((inner, f"{at}.{key}" if at else str(key), depth + 1))
        elif isinstance(item, list):
            stack.extend((inner, f"{at}[{i}]", depth + 1) for i, inner in enumerate(item))
    return None


def _utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def no_control(value: str) -> str:
    """``value`` itself, or a ``ValueError`` if it holds a control character."""
    problem = control_problem(value)
    if problem is not None:
        raise ValueError(problem)
    return value


Name = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=200),
    AfterValidator(no_control),
]
"""A service, metric, team or person name: non-empty, at most 200 characters, no control
characters."""


def labels_problem(labels: dict[str, str]) -> str | None:
    """What is wrong with a set of labels, else None: more than ``MAX_LABELS``, a key empty or
    longer than ``MAX_LABEL_KEY``, a value longer than ``MAX_LABEL_VALUE``, or a control
    character in either.

    >>> labels_problem({"region": "eu"}) is None
    True
    >>> labels_problem({"region": "eu\\n"})
    "value of 'region' holds the control character U+000A at 2: 'eu\\\\n'"
    """
    if len(labels) > MAX_LABELS:
        return f"{len(labels)} labels; at most {MAX_LABELS} are allowed"
    for key, value in labels.items():
        if not 0 < len(key) <= MAX_LABEL_KEY:
            return f"key {key[:40]!r}: a label key has 1 to {MAX_LABEL_KEY} characters"
        if len(value) > MAX_LABEL_VALUE:
            return f"value of {key!r} has {len(value)} characters; at most {MAX_LABEL_VALUE}"
        problem = control_problem(key)
        if problem is not None:
            return f"key {problem}"
        problem = control_problem(value)
        if problem is not None:
            return f"value of {key!r} {problem}"
    return None


def _valid_labels(value: dict[str, str]) -> dict[str, str]:
    problem = labels_problem(value)
    if problem is not None:
        raise ValueError(problem)
    return value


Labels = Annotated[dict[str, str], AfterValidator(_valid_labels)]
"""Labels of a series or an alert: at most ``MAX_LABELS``, bounded keys and values, no control
characters."""


class WireModel(BaseModel):
    """Base for every message: frozen, unknown fields ignored (newer producers may add some)."""

    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True)


class Severity(StrEnum):
    """Incident severity, SEV1 the worst."""

    SEV1 = "SEV1"
    SEV2 = "SEV2"
    SEV3 = "SEV3"
    SEV4 = "SEV4"


#: How many failing fields ``format_errors`` names; the rest it counts.
MAX_ERRORS_SAID = 10


def format_errors(error: ValidationError, prefix: str = "") -> str:
    """One line naming each failing field and its problem (the first ``MAX_ERRORS_SAID``, then
    how many more).

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
    errors = error.errors(include_url=False)
    for err in errors[:MAX_ERRORS_SAID]:
        loc = ".".join(str(p) for p in err["loc"]) or "(message)"
        if prefix:
            loc = f"{prefix}.{loc}" if loc != "(message)" else prefix
        msg = str(err["msg"])
        if msg.startswith("Value error, "):
            msg = msg[len("Value error, ") :]
        parts.append(f"{loc}: {msg}")
    if len(errors) > MAX_ERRORS_SAID:
        parts.append(f"and {len(errors) - MAX_ERRORS_SAID} more")
    return "; ".join(parts)
