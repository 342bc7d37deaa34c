"""Raw bytes in, validated models out; whatever does not validate comes back with its reason.

A batch keeps its good entries: each bad entry is returned separately with its own reason and
bytes, so it can be dead-lettered on its own.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import pairwise
from operator import attrgetter
from typing import Any, Generic, Protocol, TypeVar

import msgspec
import numpy as np
from numpy.typing import NDArray
from pydantic import BaseModel, ValidationError

from detectors.routing import NumberedSeries
from schemas import MetricPoint, format_errors
from schemas.common import CONTROL, MAX_EPOCH_S, labels_problem, received
from schemas.metrics import series_id
from streams.points_scan import Scanned, SeriesNames, long_number, scan, warm_up

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
    except ValueError:  # an integer of more digits than Python converts
        return None, "not JSON: a number with too many digits"


def arrival(received_s: float | None, max_future_s: float) -> dict[str, Any] | None:
    """The validation context of a message received at ``received_s`` (epoch seconds): its
    times may be at most ``max_future_s`` ahead of that (``schemas.common.received``). None
    when the time is unknown (a record without a timestamp has -1, a producer may set one past
    any calendar): nothing to compare with."""
    if received_s is None or not 0 < received_s <= MAX_EPOCH_S:  # NaN fails too
        return None
    return received(datetime.fromtimestamp(received_s, tz=UTC), max_future_s)


def decode_one(
    raw: bytes | None, model: type[M], context: dict[str, Any] | None = None
) -> Decoded[M]:
    """Decode a message that holds exactly one ``model`` (validated with ``context``)."""
    data, problem = _load(raw)
    if problem is not None:
        return Decoded(rejected=[Rejected(raw or b"", problem)])
    if not isinstance(data, dict):
        return Decoded(rejected=[Rejected(raw or b"", "expected a JSON object")])
    try:
        return Decoded(items=[model.model_validate(data, context=context)])
    except ValidationError as exc:
        return Decoded(rejected=[Rejected(raw or b"", format_errors(exc))])


def decode_batchable(
    raw: bytes | None, model: type[M], batch_field: str, context: dict[str, Any] | None = None
) -> Decoded[M]:
    """Decode one ``model`` or a batch ``{batch_field: [...]}``; bad entries are split out."""
    data, problem = _load(raw)
    if problem is not None:
        return Decoded(rejected=[Rejected(raw or b"", problem)])
    if not isinstance(data, dict):
        return Decoded(rejected=[Rejected(raw or b"", "expected a JSON object")])
    if batch_field not in data:
        try:
            return Decoded(items=[model.model_validate(data, context=context)])
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
            out.items.append(model.model_validate(entry, context=context))
        except TypeError:
            out.rejected.append(Rejected(_dump(entry), f"{batch_field}.{i}: expected an object"))
        except ValidationError as exc:
            out.rejected.append(Rejected(_dump(entry), format_errors(exc, f"{batch_field}.{i}")))
    return out


def _dump(entry: Any) -> bytes:
    # ASCII escapes: an entry may hold a lone surrogate (valid JSON, not encodable as UTF-8).
    return json.dumps(entry, separators=(",", ":")).encode()


def encode(model: BaseModel) -> bytes:
    """A model as compact JSON bytes."""
    return model.model_dump_json().encode()


# Metric points, the hot path: decoded straight into columns. msgspec decodes and type-checks a
# whole message in one pass; a message it cannot take as is (anything invalid, a name with
# surrounding space, a timestamp without offset, a control character, a time too far ahead of the
# message's arrival, ...) goes the ``MetricPoint`` way instead, which gives the same points and
# every bad entry with its reason.


class PointLike(Protocol):
    @property
    def service(self) -> str: ...
    @property
    def metric(self) -> str: ...
    @property
    def value(self) -> float: ...
    @property
    def labels(self) -> dict[str, str] | msgspec.UnsetType: ...


class _WirePoint(msgspec.Struct, gc=False):
    ts: float | datetime
    service: str
    metric: str
    value: float
    # Not ``{}``: that default is a new dict per point. UNSET (falsy) when absent; null is
    # refused, as the model refuses it.
    labels: dict[str, str] | msgspec.UnsetType = msgspec.UNSET


class _WireMessage(msgspec.Struct, gc=False):
    # UNSET when absent: a ``"points": null`` beside a point's fields is no point (the model
    # refuses the message, ``points`` not being a list).
    points: list[_WirePoint] | msgspec.UnsetType | None = msgspec.UNSET
    ts: float | datetime | None = None
    service: str | None = None
    metric: str | None = None
    value: float | None = None
    labels: dict[str, str] = {}


_POINTS = msgspec.json.Decoder(_WireMessage)
# msgspec reads a number of some thousands of characters whose exponent and fraction nearly
# cancel (``0.<10,000 zeros>1e100001``) as another number: such a message goes the model way.
_LONG_NUMBER_CHARS = 1000
# Series ids (``service|metric``) whose names were found valid: most points belong to a series
# seen before, and checking its names again costs as much as decoding the point.
_SEEN_SERIES: set[str] = set()
_SEEN_MAX = 200_000
_NAME_MAX = 200
# ``bytes.translate`` deletes these, leaving only a message's C0 controls, DEL and backslashes.
_KEEP_UNSAFE = bytes(b for b in range(128) if b >= 0x20 and b not in b"\x7f\\")
# A series id this short holds at most 32 labels, each key and value far within its limit,
# whatever its labels: ``service|metric|`` takes 4 characters or more, each ``k=v`` 2 and more
# plus a comma (an empty key shows as ``|=`` or ``,=`` and is checked).
_SHORT_ID = 99


@dataclass
class PointColumns:
    """The valid points of a message as columns (series id, value, epoch seconds), and rejects."""

    points: Sequence[PointLike]
    series: list[str]
    values: NDArray[np.float64]
    ts: NDArray[np.float64]
    rejected: list[Rejected] = field(default_factory=list)


def decode_points(
    raw: bytes | None, received_s: float | None = None, max_future_s: float = math.inf
) -> PointColumns:
    """A ``metrics.points.v1`` message: one point or ``{"points": [...]}``. With ``received_s``
    (when the message was received, epoch seconds), a point more than ``max_future_s`` after
    that is rejected."""
    context = arrival(received_s, max_future_s)
    not_after = math.inf if context is None or received_s is None else received_s + max_future_s
    fast = _fast_points(raw, not_after)
    if fast is not None:
        return fast
    return _model_points(raw, context)


def _model_points(raw: bytes | None, context: dict[str, Any] | None = None) -> PointColumns:
    decoded = decode_batchable(raw, MetricPoint, "points", context)
    items = decoded.items
    return PointColumns(
        points=items,
        series=[p.series_id for p in items],
        values=np.array([p.value for p in items], dtype=np.float64),
        ts=np.array([p.ts.timestamp() for p in items], dtype=np.float64),
        rejected=decoded.rejected,
    )


def _wire_points(raw: bytes | None) -> list[_WirePoint] | None:
    """The message's points as msgspec decodes them, if it has the expected shape."""
    if raw is None or long_number(raw, _LONG_NUMBER_CHARS):
        return None
    try:
        message = _POINTS.decode(raw)
    except (ValueError, RecursionError):  # msgspec.DecodeError, UnicodeDecodeError
        return None
    points = message.points
    if points is None:
        return None
    if points is msgspec.UNSET:
        if message.ts is None or message.service is None or message.metric is None:
            return None
        if message.value is None:
            return None
        return [
            _WirePoint(message.ts, message.service, message.metric, message.value, message.labels)
        ]
    return points or None


def _fast_points(raw: bytes | None, not_after: float = math.inf) -> PointColumns | None:
    points = _wire_points(raw)
    if points is None:
        return None
    ids = _series_ids(points)
    if not _valid_names(points, raw, ids):
        return None
    ts = _epochs(points)
    values = np.fromiter(map(_VALUE, points), dtype=np.float64, count=len(points))
    if not _valid_numbers(ts, values).all() or not (ts <= not_after).all():
        return None
    return PointColumns(points, ids, values, ts)


@dataclass
class PointBatch:
    """The valid points of several messages as one set of columns; message ``m``'s points are
    ``spans[m]`` (start, stop), its rejected entries ``rejected[m]``."""

    series: list[str]
    values: NDArray[np.float64]
    ts: NDArray[np.float64]
    spans: list[tuple[int, int]]
    rejected: list[list[Rejected]]


#: A message's rejected entries when it has none (shared: read, never changed).
_NONE_REJECTED: list[Rejected] = []
#: What ``decode_points_many`` numbers series ids with, unless it is given a table.
SERIES_NAMES = SeriesNames()


def warm_up_points() -> None:
    """Load the points path's compiled kernels (a worker's first batch would pay for it)."""
    warm_up()
    decode_points_many([b'{"ts":1,"service":"warm-up","metric":"kernels","value":1}'],
                       names=SeriesNames())  # fmt: skip


def decode_points_many(
    raws: Sequence[bytes | None],
    received_s: Sequence[float] | None = None,
    max_future_s: float = math.inf,
    names: SeriesNames | None = None,
) -> PointBatch:
    """``decode_points`` for many messages, with the same results: the columns are built and
    checked once for all of them (a message's points are most of a worker's work, and numpy's
    fixed cost per call is large against a hundred points). ``received_s[m]``: when message
    ``m`` was received, as in ``decode_points``.

    Messages of the plain shape are read from their bytes by ``streams.points_scan``, and
    their series found by their bytes in ``names``; the others the msgspec way, or the model
    way. The batch's ``series`` are ``NumberedSeries``: each id with its number in ``names``.
    """
    table = SERIES_NAMES if names is None else names
    table.prune()
    scanned = scan(raws)
    numbers = _numbered(table, scanned, raws)
    ok = scanned.ok.copy()
    message = np.repeat(np.arange(len(raws)), scanned.counts)
    valid = _valid_numbers(scanned.ts, scanned.values)
    if received_s is not None and len(valid):
        arrived = np.asarray(received_s, dtype=np.float64)
        limit = np.where(arrived > 0, arrived + max_future_s, np.inf)  # -1: unknown
        valid &= scanned.ts <= limit[message]
    ok[message[~valid]] = False  # those messages go the model way
    keep = ok[message]
    ts, x, numbers = scanned.ts[keep], scanned.values[keep], numbers[keep]
    counts = scanned.counts[ok]
    if ok.all():
        stops = np.cumsum(counts).tolist()
        spans = list(zip([0, *stops][: len(stops)], stops, strict=True))
        series = NumberedSeries(table.names_of(numbers), numbers, table.numbering)
        return PointBatch(series, x, ts, spans, [_NONE_REJECTED] * len(raws))
    rest = np.flatnonzero(~ok).tolist()
    other = _wire_many(
        [raws[m] for m in rest],
        None if received_s is None else [received_s[m] for m in rest],
        max_future_s,
    )
    return _merged(table, ok, (numbers, x, ts, counts), other)


def _numbered(table: SeriesNames, scanned: Scanned, raws: Sequence[bytes | None]) -> Any:
    """The number of each scanned point's series id (-1 where unknown); a message with a
    series not known yet is decoded the msgspec way, and its series learned if its names
    are valid; if they are not, it is no longer ``ok`` (it goes that way)."""
    numbers = table.find(scanned, np.arange(len(scanned.ts)))
    owner = np.repeat(np.arange(len(raws)), scanned.counts)
    unknown = np.zeros(len(raws), dtype=np.bool_)
    unknown[owner[numbers < 0]] = True
    learned: list[NDArray[np.intp]] = []
    ids: list[str] = []
    for m in np.flatnonzero(unknown).tolist():
        a = int(scanned.firsts[m])
        b = a + int(scanned.counts[m])
        points = _wire_points(raws[m])
        mine = [] if points is None else _series_ids(points)
        if points is None or len(points) != b - a or not _valid_names(points, raws[m], mine):
            scanned.ok[m] = False
            continue
        learned.append(np.arange(a, b))
        ids += mine
    if learned:  # learned in one call: a fleet's first points come a series a message
        at = np.concatenate(learned)
        table.learn(scanned, at, ids)
        numbers[at] = table.find(scanned, at)
    return numbers


def _merged(
    table: SeriesNames,
    ok: NDArray[np.bool_],
    scanned: tuple[NDArray[np.intp], NDArray[np.float64], NDArray[np.float64], NDArray[np.intp]],
    other: PointBatch,
) -> PointBatch:
    """The scanned messages' columns (those ``ok``) and the others' (``other``, in order)
    pieced together in message order."""
    numbers, x, ts, counts = scanned
    stops = np.cumsum(counts).tolist()
    starts = [0, *stops[:-1]]
    other_numbers = np.array([table.number(sid) for sid in other.series], dtype=np.intp)
    pieces: list[tuple[Any, Any, Any]] = []
    spans: list[tuple[int, int]] = []
    rejected: list[list[Rejected]] = []
    at, mine, theirs = 0, 0, 0
    for taken in ok.tolist():
        if taken:
            a, b = starts[mine], stops[mine]
            mine += 1
            pieces.append((numbers[a:b], x[a:b], ts[a:b]))
            rejected.append([])
        else:
            a, b = other.spans[theirs]
            pieces.append((other_numbers[a:b], other.values[a:b], other.ts[a:b]))
            rejected.append(other.rejected[theirs])
            theirs += 1
        spans.append((at, at + b - a))
        at += b - a
    all_numbers = np.concatenate([p[0] for p in pieces]) if pieces else np.zeros(0, np.intp)
    series = NumberedSeries(table.names_of(all_numbers), all_numbers, table.numbering)
    return PointBatch(
        series,
        np.concatenate([p[1] for p in pieces]) if pieces else np.zeros(0),
        np.concatenate([p[2] for p in pieces]) if pieces else np.zeros(0),
        spans,
        rejected,
    )


def _wire_many(
    raws: Sequence[bytes | None],
    received_s: Sequence[float] | None = None,
    max_future_s: float = math.inf,
) -> PointBatch:
    """``decode_points_many`` the msgspec way (or the model way), for the messages the
    scanner does not take."""
    every: list[_WirePoint] = []
    starts: list[int] = []
    taken: list[list[_WirePoint] | None] = []
    for raw in raws:
        starts.append(len(every))
        points = _wire_points(raw)
        taken.append(points)
        if points is not None:
            every += points
    starts.append(len(every))
    # Each column in one pass over all the points (no list per message in between).
    series = _series_ids(every)
    ts = _epochs(every)
    x = np.fromiter(map(_VALUE, every), dtype=np.float64, count=len(every))
    slow = [m for m, points in enumerate(taken) if points is None]
    valid = _valid_numbers(ts, x)
    if received_s is not None and len(ts):
        arrived = np.asarray(received_s, dtype=np.float64)
        limit = np.where(arrived > 0, arrived + max_future_s, np.inf)  # -1: unknown
        valid &= ts <= np.repeat(limit, np.diff(starts))
    bad = np.flatnonzero(~valid)
    slow += np.unique(np.searchsorted(starts, bad, side="right") - 1).tolist()
    # Mostly every id was seen before: that is checked without a set of the chunk's ids.
    if not _SEEN_SERIES.issuperset(series):
        unseen = set(series).difference(_SEEN_SERIES)
        for m, points in enumerate(taken):
            mine = unseen.intersection(series[starts[m] : starts[m + 1]])
            if not mine or points is None:
                continue
            if not _valid_names(points, raws[m], series[starts[m] : starts[m + 1]]):
                slow.append(m)
                continue
            _remember_valid(mine)
    if not slow:
        spans = list(pairwise(starts))
        return PointBatch(series, x, ts, spans, [[] for _ in raws])
    # Some messages go the model way: the columns are pieced together again, in order.
    redo = set(slow)
    out = PointBatch([], np.zeros(0), np.zeros(0), [], [])
    pieces_x, pieces_ts = [], []
    for m, raw in enumerate(raws):
        at = len(out.series)
        if m in redo:
            context = None if received_s is None else arrival(received_s[m], max_future_s)
            model = _model_points(raw, context)
            out.series += model.series
            pieces_x.append(model.values)
            pieces_ts.append(model.ts)
            out.rejected.append(model.rejected)
        else:
            a, b = starts[m], starts[m + 1]
            out.series += series[a:b]
            pieces_x.append(x[a:b])
            pieces_ts.append(ts[a:b])
            out.rejected.append([])
        out.spans.append((at, len(out.series)))
    out.values, out.ts = np.concatenate(pieces_x), np.concatenate(pieces_ts)
    return out


def _valid_numbers(ts: NDArray[np.float64], values: NDArray[np.float64]) -> NDArray[np.bool_]:
    return (ts >= 0.0) & (ts <= MAX_EPOCH_S) & np.isfinite(values)  # NaN times fail too


def _remember_valid(series: set[str]) -> None:
    if len(_SEEN_SERIES) > _SEEN_MAX:
        _SEEN_SERIES.clear()
    # Only ids that split one way: "a |b|c" could be ("a ", "b|c") as well as ("a |b", "c").
    _SEEN_SERIES.update(s for s in series if s.count("|") == 1)


_TS = attrgetter("ts")
_VALUE = attrgetter("value")


def _series_ids(points: Sequence[_WirePoint]) -> list[str]:
    return [
        series_id(p.service, p.metric, p.labels) if p.labels else f"{p.service}|{p.metric}"
        for p in points
    ]


def _epochs(points: Sequence[_WirePoint]) -> NDArray[np.float64]:
    """The points' times in epoch seconds; RFC 3339 times without an offset become NaN
    (rejected with the reason)."""
    try:
        return np.fromiter(map(_TS, points), dtype=np.float64, count=len(points))
    except TypeError:  # some are RFC 3339 times
        return np.array([_epoch(p.ts) for p in points], dtype=np.float64)


def _epoch(ts: float | datetime) -> float:
    if isinstance(ts, datetime):
        # Without an offset the model way rejects it with the reason: NaN sends it there.
        return math.nan if ts.tzinfo is None else ts.timestamp()
    return ts


def _valid_names(points: Sequence[_WirePoint], raw: bytes | None, ids: Sequence[str]) -> bool:
    """True when every name and label of ``points`` (whose series ids are ``ids``) passes the
    model's checks. A series id holds the point's service, metric and every label key and value,
    so it is checked once for all the points of its series: for a control character, unless the
    message's bytes show there is none (:func:`_plain`); and for the label limits, which a short
    id without an empty key meets whatever its labels (``_SHORT_ID``)."""
    names = {p.service for p in points}
    names.update(p.metric for p in points)
    if not all(map(_is_name, names)):
        return False
    unique = set(ids)
    if not _plain(raw) and any(CONTROL.search(i) for i in unique):
        return False
    longer = {i for i in unique if len(i) > _SHORT_ID or "|=" in i or ",=" in i}
    if not longer:
        return True
    return all(
        labels_problem(p.labels) is None for p, i in zip(points, ids, strict=True)
        if p.labels and i in longer
    )  # fmt: skip


def _plain(raw: bytes | None) -> bool:
    """True when no string of the JSON message ``raw`` can hold a control character: it is
    ASCII (no C1 control, no U+2028/U+2029) with no escape and no raw C0 control or DEL (a JSON
    string cannot hold a raw C0 control; whitespace between tokens only costs the full check)."""
    return raw is not None and raw.isascii() and not raw.translate(None, _KEEP_UNSAFE)


def _is_name(text: str) -> bool:
    return 0 < len(text) <= _NAME_MAX and not text[0].isspace() and not text[-1].isspace()
