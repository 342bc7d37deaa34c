"""Shared by the ingest decoders: splitting entries, field lookup, time parsing, validation."""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from schemas import format_errors
from streams.codec import Decoded, Rejected

M = TypeVar("M", bound=BaseModel)


def dump(entry: Any) -> bytes:
    """An entry as compact JSON bytes (what a rejected entry is dead-lettered with)."""
    return json.dumps(entry, separators=(",", ":"), ensure_ascii=False, default=str).encode()


def load_entries(raw: bytes | None) -> tuple[list[tuple[str, Any]], list[Rejected]]:
    """The JSON entries of a message: one object, an array of objects, or one object per line.

    Returns ``(location, entry)`` pairs (location ``""`` for a single object) and the parts
    that are not JSON, each rejected alone.

    >>> load_entries(b'{"a": 1}')
    ([('', {'a': 1})], [])
    >>> load_entries(b'[{"a": 1}, {"a": 2}]')[0]
    [('0', {'a': 1}), ('1', {'a': 2})]
    >>> entries, bad = load_entries(b'{"a": 1}\\n{oops\\n')
    >>> entries, [r.reason.split(":")[:2] for r in bad]
    ([('line 1', {'a': 1})], [['line 2', ' not JSON']])
    """
    if raw is None or not raw.strip():
        return [], [Rejected(raw or b"", "empty message (no value)")]
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return [], [Rejected(raw, f"not UTF-8: {exc.reason} at byte {exc.start}")]
    try:
        data = json.loads(text)
    except ValueError as whole:  # json.JSONDecodeError, or an integer of too many digits
        lines = [line for line in text.splitlines() if line.strip()]
        if len(lines) < 2:
            return [], [Rejected(raw, _not_json(whole))]
        entries: list[tuple[str, Any]] = []
        rejected: list[Rejected] = []
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                entries.append((f"line {number}", json.loads(line)))
            except json.JSONDecodeError as exc:
                rejected.append(Rejected(line.encode(), f"line {number}: not JSON: {exc.msg}"))
            except ValueError as exc:
                rejected.append(Rejected(line.encode(), f"line {number}: {_not_json(exc)}"))
            except RecursionError:
                rejected.append(Rejected(line.encode(), f"line {number}: nested too deeply"))
        return entries, rejected
    except RecursionError:
        return [], [Rejected(raw, "not JSON: nested too deeply")]
    if isinstance(data, list):
        if not data:
            return [], [Rejected(raw, "expected a non-empty array")]
        return [(str(i), entry) for i, entry in enumerate(data)], []
    return [("", data)], []


def lookup(record: Mapping[str, Any], path: str) -> Any:
    """The value at ``path``: a flat key first, else a nested path split at dots.

    >>> lookup({"log.level": "warn"}, "log.level")
    'warn'
    >>> lookup({"log": {"level": "warn"}}, "log.level")
    'warn'
    >>> lookup({"kubernetes": {"labels": {"app.kubernetes.io/name": "web"}}},
    ...        "kubernetes.labels.app.kubernetes.io/name")
    'web'
    >>> lookup({"log": "text"}, "log.level") is None
    True
    """
    if path in record:
        return record[path]
    parts = path.split(".")
    for cut in range(len(parts) - 1, 0, -1):
        head = ".".join(parts[:cut])
        inner = record.get(head)
        if isinstance(inner, Mapping):
            found = lookup(inner, ".".join(parts[cut:]))
            if found is not None:
                return found
    return None


def first(record: Mapping[str, Any], paths: tuple[str, ...]) -> tuple[str, Any] | None:
    """The first of ``paths`` that holds a non-empty scalar, with its value."""
    for path in paths:
        value = lookup(record, path)
        if value is None or isinstance(value, Mapping | list) or value == "":
            continue
        return path, value
    return None


def _not_json(exc: ValueError) -> str:
    if isinstance(exc, json.JSONDecodeError):
        return f"not JSON: {exc.msg} at column {exc.colno}"
    return "not JSON: a number with too many digits"


# Magnitudes past which a number is taken to be milliseconds, microseconds or nanoseconds.
_MS, _US, _NS = 1e11, 1e14, 1e17


def epoch_seconds(value: Any) -> float | str:
    """Epoch seconds from a number (s, ms, us or ns, by magnitude) or a numeric string.

    Anything else (an RFC 3339 string) is returned as it is, for the schema to validate.

    >>> epoch_seconds(1713453853.25), epoch_seconds(1713453853250), epoch_seconds("1713453853")
    (1713453853.25, 1713453853.25, 1713453853.0)
    >>> epoch_seconds("2020-11-01T21:15:47+00:00")
    '2020-11-01T21:15:47+00:00'
    """
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            return value
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    try:
        seconds = float(value)
    except OverflowError:  # an integer no float holds: infinite, which the schema rejects
        return math.inf if value > 0 else -math.inf
    if not math.isfinite(seconds):
        return seconds
    magnitude = abs(seconds)
    if magnitude >= _NS:
        return seconds / 1e9
    if magnitude >= _US:
        return seconds / 1e6
    if magnitude >= _MS:
        return seconds / 1e3
    return seconds


def unix_nano(value: Any) -> float | None:
    """Epoch seconds from an OTLP ``*UnixNano`` field (a number or a decimal string); None if 0.
    A time no float holds is infinite, which the schema rejects naming the field.

    >>> unix_nano("1700000000000000000"), unix_nano(0), unix_nano(10**400)
    (1700000000.0, None, inf)
    """
    if isinstance(value, bool) or value is None:
        return None
    try:
        nanos = int(value)
    except OverflowError:  # an infinite float
        return math.inf if value > 0 else None
    except (TypeError, ValueError):
        return None
    if nanos <= 0:
        return None
    try:
        return nanos / 1e9
    except OverflowError:
        return math.inf


def validate(
    out: Decoded[M],
    model: type[M],
    data: dict[str, Any],
    where: str,
    payload: Callable[[], bytes],
) -> None:
    """Validate ``data`` as ``model`` into ``out``: an item, or a rejection named by ``where``."""
    try:
        out.items.append(model.model_validate(data))
    except ValidationError as exc:
        out.rejected.append(
            Rejected(payload(), format_errors(exc, where) if where else format_errors(exc))
        )


def reject(out: Decoded[M], where: str, reason: str, payload: bytes) -> None:
    out.rejected.append(Rejected(payload, f"{where}: {reason}" if where else reason))


def scalar_text(value: Any) -> str:
    """A label value as text: strings as they are, anything else as compact JSON."""
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)
