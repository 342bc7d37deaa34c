"""Raw bytes in, validated models out; whatever does not validate comes back with its reason.

A batch keeps its good entries: each bad entry is returned separately with its own reason and
bytes, so it can be dead-lettered on its own.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, Protocol, TypeVar

import msgspec
import numpy as np
from numpy.typing import NDArray
from pydantic import BaseModel, ValidationError

from schemas import MetricPoint, format_errors
from schemas.common import MAX_EPOCH_S
from schemas.metrics import series_id

M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True)
class Rejected:
    """An input (or one batch entry) that failed, with its bytes and the reason."""

    payload: bytes
    reason: str


@dataclass
class Decoded(Generic[M]):
    """The valid items of a message and the rejected ones."""

    items: list[M] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)


def _load(raw: bytes | None) -> tuple[Any, str | None]:
    if raw is None:
        return None, "empty message (no value)"
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return None, f"not UTF-8: {exc.reason} at byte {exc.start}"
    try:
        return json.loads(text), None
    except json.JSONDecodeError as exc:
        return None, f"not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
    except RecursionError:
        return None, "not JSON: nested too deeply"


def decode_one(raw: bytes | None, model: type[M]) -> Decoded[M]:
    """Decode a message that holds exactly one ``model``."""
    data, problem = _load(raw)
    if problem is not None:
        return Decoded(rejected=[Rejected(raw or b"", problem)])
    if not isinstance(data, dict):
        return Decoded(rejected=[Rejected(raw or b"", "expected a JSON object")])
    try:
        return Decoded(items=[model.model_validate(data)])
    except ValidationError as exc:
        return Decoded(rejected=[Rejected(raw or b"", format_errors(exc))])


def decode_batchable(raw: bytes | None, model: type[M], batch_field: str) -> Decoded[M]:
    """Decode one ``model`` or a batch ``{batch_field: [...]}``; bad entries are split out."""
    data, problem = _load(raw)
    if problem is not None:
        return Decoded(rejected=[Rejected(raw or b"", problem)])
    if not isinstance(data, dict):
        return Decoded(rejected=[Rejected(raw or b"", "expected a JSON object")])
    if batch_field not in data:
        try:
            return Decoded(items=[model.model_validate(data)])
        except ValidationError as exc:
            return Decoded(rejected=[Rejected(raw or b"", format_errors(exc))])
    entries = data[batch_field]
    if not isinstance(entries, list) or not entries:
        return Decoded(rejected=[Rejected(raw or b"", f"{batch_field}: expected a non-empty list")])
    out: Decoded[M] = Decoded()
    for i, entry in enumerate(entries):
        try:
            if not isinstance(entry, dict):
                raise TypeError
            out.items.append(model.model_validate(entry))
        except TypeError:
            out.rejected.append(Rejected(_dump(entry), f"{batch_field}.{i}: expected an object"))
        except ValidationError as exc:
            out.rejected.append(Rejected(_dump(entry), format_errors(exc, f"{batch_field}.{i}")))
    return out


def _dump(entry: Any) -> bytes:
    return json.dumps(entry, separators=(",", ":"), ensure_ascii=False).encode()


def encode(model: BaseModel) -> bytes:
    """A model as compact JSON bytes."""
    return model.model_dump_json().encode()


# Metric points, the hot path: decoded straight into columns. msgspec decodes and type-checks a
# whole message in one pass; a message it cannot take as is (anything invalid, a name with
# surrounding space, a timestamp without offset, ...) goes the ``MetricPoint`` way instead, which
# gives the same points and every bad entry with its reason.


class PointLike(Protocol):
    @property
    def service(self) -> str: ...
    @property
    def metric(self) -> str: ...
    @property
    def value(self) -> float: ...
    @property
    def labels(self) -> dict[str, str]: ...


class _WirePoint(msgspec.Struct, gc=False):
    ts: float | datetime
    service: str
    metric: str
    value: float
    labels: dict[str, str] = {}


class _WireMessage(msgspec.Struct, gc=False):
    points: list[_WirePoint] | None = None
    ts: float | datetime | None = None
    service: str | None = None
    metric: str | None = None
    value: float | None = None
    labels: dict[str, str] = {}


_POINTS = msgspec.json.Decoder(_WireMessage)
_NAME_MAX = 200


@dataclass
class PointColumns:
    """The valid points of a message as columns (series id, value, epoch seconds), and rejects."""

    points: Sequence[PointLike]
    series: list[str]
    values: NDArray[np.float64]
    ts: NDArray[np.float64]
    rejected: list[Rejected] = field(default_factory=list)


def decode_points(raw: bytes | None) -> PointColumns:
    """A ``metrics.points.v1`` message: one point or ``{"points": [...]}``."""
    fast = _fast_points(raw)
    if fast is not None:
        return fast
    decoded = decode_batchable(raw, MetricPoint, "points")
    items = decoded.items
    return PointColumns(
        points=items,
        series=[p.series_id for p in items],
        values=np.array([p.value for p in items], dtype=np.float64),
        ts=np.array([p.ts.timestamp() for p in items], dtype=np.float64),
        rejected=decoded.rejected,
    )


def _fast_points(raw: bytes | None) -> PointColumns | None:
    if raw is None:
        return None
    try:
        message = _POINTS.decode(raw)
    except (ValueError, RecursionError):  # msgspec.DecodeError, UnicodeDecodeError
        return None
    points = message.points
    if points is None:
        if message.ts is None or message.service is None or message.metric is None:
            return None
        if message.value is None:
            return None
        points = [
            _WirePoint(message.ts, message.service, message.metric, message.value, message.labels)
        ]
    elif not points:
        return None
    try:
        ts = np.array([p.ts for p in points], dtype=np.float64)
    except TypeError:  # some are RFC 3339 times
        ts = np.array([_epoch(p.ts) for p in points], dtype=np.float64)
    if not ((ts >= 0.0) & (ts <= MAX_EPOCH_S)).all():  # NaN fails too
        return None
    names = {p.service for p in points}
    names.update(p.metric for p in points)
    if not all(map(_is_name, names)):
        return None
    values = np.array([p.value for p in points], dtype=np.float64)
    if not np.isfinite(values).all():
        return None
    series = [
        series_id(p.service, p.metric, p.labels) if p.labels else f"{p.service}|{p.metric}"
        for p in points
    ]
    return PointColumns(points, series, values, ts)


def _epoch(ts: float | datetime) -> float:
    if isinstance(ts, datetime):
        # Without an offset the model way rejects it with the reason: NaN sends it there.
        return math.nan if ts.tzinfo is None else ts.timestamp()
    return ts


def _is_name(text: str) -> bool:
    return 0 < len(text) <= _NAME_MAX and not text[0].isspace() and not text[-1].isspace()
