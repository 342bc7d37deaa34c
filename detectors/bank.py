"""Many metric series under watch, one row each: detector, policy, last time, recent points.

``observe`` scores, learns and decides a batch of points (any number per series, in order) in a
few vectorized steps over the rows the batch touches. Only points whose score or policy state
needs a decision go through the policy one at a time, so a quiet fleet costs array work only.

Rows are checkpointed in blocks of ``block_rows`` consecutive rows; a block is one compact
value holding its series ids and their rows (``detectors.blocks`` encodes it: a JSON header and
the arrays' raw bytes), written when any of its rows changed.
A block whose encoded size could pass ``block_bytes`` (long series ids) is written in parts:
key ``"7"`` is the first part of block 7, ``"7.1"`` the next, and so on; each part names its
first row (``start``). Parts are cut greedily from the block's first row, so where a part starts
depends only on the rows before it: a block that grows only extends its last part or adds one,
and a part key always names the same first row. Restoring puts every part back at its rows.

Points at or before a series' last event time are ignored (stale), so a replayed point is neither
learned nor detected twice; the detection id is derived from the series and the point's time.

A series idle since an event time (``evict_idle``) gives its row back: the row is reset to fresh
state, marked for the next checkpoint (its block is rewritten with an empty id there, so a
restore does not bring the series back) and handed to the next new series.

Asked to (``ends``), the bank also reports where a series' episode ends: the policy's
``clear_points`` normal points in a row, and the value back within the range the series had
before the episode began (its recent points then, widened by ``BACK_SPREAD`` of that range and
``BACK_LEVEL`` of its level). A detector that has learned a lasting shift stops scoring it high,
but the episode does not end until the values come back: that point becomes a ``resolved``
detection.

A detection is bounded whatever its series' labels: at most ``DETECTION_LABELS`` labels of at
most ``DETECTION_LABEL_CHARS`` characters each (name and value), the series id and the
detector's words at most ``DETECTION_TEXT_CHARS``; ``context.truncated`` says something was cut.
"""

from __future__ import annotations

import json
import math
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cached_property, partial
from typing import Any

import numba
import numpy as np
from numpy.typing import NDArray

from detectors import blocks
from detectors.policy import Decision, ThresholdPolicy
from detectors.registry import DETECTORS, LoopBatch, checked_params, make_batch
from detectors.vector import Floats, pack, unpack
from schemas import Detection, DetectionSeverity, DetectionStatus
from schemas.common import CONTROL, MAX_LABEL_KEY, MAX_LABELS

_NAMESPACE = uuid.UUID("0b6c8f7e-2d1a-4c3b-9e8f-7a6b5c4d3e2f")
#: Labels a detection keeps (the first ones of its point), and characters of each name and value.
DETECTION_LABELS = MAX_LABELS
DETECTION_LABEL_CHARS = 256
#: Characters of the series id and of the detector's explanation a detection keeps.
DETECTION_TEXT_CHARS = 1024

Rows = NDArray[np.intp]


@dataclass(frozen=True)
class Fired:
    """The policy fired on the point at ``index`` of the observed batch."""

    index: int
    score: float
    decision: Decision
    recent: list[list[float]]
    #: What the detector found new, in words, where it says.
    why: str | None = None


# Per-row arrays the bank keeps besides the detector's, with the value of a fresh row.
_OWN: dict[str, tuple[type[Any], float]] = {
    "last_ts": (np.float64, -math.inf),
    "seen": (np.int64, 0),
    "run": (np.int64, 0),
    "run_started_at": (np.float64, math.nan),
    "calm": (np.int64, 0),
    "active": (np.bool_, False),
    "last_fired_at": (np.float64, math.nan),
    # The range of the series before its episode began, and whether the policy has ended the
    # episode while the values are still outside it (its resolved detection waits for them).
    "base_lo": (np.float64, math.nan),
    "base_hi": (np.float64, math.nan),
    "ending": (np.bool_, False),
}
#: How far outside the pre-fault range a value may be and still count as back: a quarter of the
#: range, plus 1% of the level (so a flat series has some room).
BACK_SPREAD = 0.25
BACK_LEVEL = 0.01


def recommended_policy(
    detector: str, overrides: Mapping[str, Any] | None = None
) -> ThresholdPolicy:
    """The decision policy the worker gives ``detector``'s series: the detector's recommended
    threshold and for-duration, then ``overrides`` (a detector rule's ``policy``)."""
    cls = DETECTORS[detector]
    recommended = {
        "threshold": getattr(cls, "threshold", 0.9999),
        "for_points": getattr(cls, "for_points", 2),
    }
    return ThresholdPolicy(
        **{**recommended, **checked_params(ThresholdPolicy, overrides or {}, "policy")}
    )


class SeriesBank:
    """The series of one partition: ids to rows, and every row's state in arrays."""

    #: Version 2 writes blocks in parts (``start``); version 1 blocks (one part) still restore.
    state_version = 2
    reads_versions = (1, 2)
    #: Recent points kept per series for the detection's context (the chart in the review).
    recent_points = 16
    #: Rows per checkpoint block for vectorized detectors.
    block_rows_vector = 256
    #: Encoded bytes a checkpoint part stays under, whatever the series ids (Kafka's default
    #: record limit is about 1 MB). Only a single row larger than this is written alone above it.
    block_bytes = 512 * 1024

    def __init__(
        self,
        detector: str,
        detector_params: Mapping[str, Any] | None = None,
        policy_params: Mapping[str, Any] | None = None,
        capacity: int = 64,
    ) -> None:
        detector_params, policy_params = dict(detector_params or {}), dict(policy_params or {})
        self.detector = make_batch(detector, capacity, **detector_params)
        self.policy = recommended_policy(detector, policy_params)
        self.config = {
            "detector": detector,
            "detector_params": detector_params,
            "policy_params": policy_params,
        }
        # Per-instance detectors (no vectorized kernel) can hold large state: a row per block.
        self.block_rows = 1 if isinstance(self.detector, LoopBatch) else self.block_rows_vector
        self.capacity = capacity
        self.ids: list[str] = []
        self.index: dict[str, int] = {}
        self.own = {name: np.full(capacity, fresh, dtype=t) for name, (t, fresh) in _OWN.items()}
        self.recent_ts = np.zeros((capacity, self.recent_points))
        self.recent_x = np.zeros((capacity, self.recent_points))
        self.dirty = np.zeros(capacity, dtype=np.bool_)
        #: Rows whose policy state changed since their block was last written (``deciding``).
        self.urgent = np.zeros(capacity, dtype=np.bool_)
        #: Rows that hold a series (the others are holes: evicted, or never written).
        self.live = np.zeros(capacity, dtype=np.bool_)
        #: Holes below ``len(ids)``, reused before the bank grows (lowest last).
        self.free: list[int] = []
        #: Some policy state changed since the last checkpoint (a run started, an episode is
        #: active): worth writing at once, so a handover cannot drop a run in progress.
        self.deciding = False

    def __len__(self) -> int:
        return len(self.index)

    # -- rows --------------------------------------------------------------------------------

    def _reserve(self, rows: int) -> None:
        if rows <= self.capacity:
            return
        extra = max(rows, self.capacity * 3 // 2) - self.capacity
        self.detector.grow(extra)
        for name, (t, fresh) in _OWN.items():
            self.own[name] = np.concatenate([self.own[name], np.full(extra, fresh, dtype=t)])
        pad = np.zeros((extra, self.recent_points))
        self.recent_ts = np.concatenate([self.recent_ts, pad])
        self.recent_x = np.concatenate([self.recent_x, pad])
        self.dirty = np.concatenate([self.dirty, np.zeros(extra, dtype=np.bool_)])
        self.urgent = np.concatenate([self.urgent, np.zeros(extra, dtype=np.bool_)])
        self.live = np.concatenate([self.live, np.zeros(extra, dtype=np.bool_)])
        self.capacity += extra

    def row(self, series: str) -> int:
        """The row of ``series``; a new series takes a free row (fresh), else one appended."""
        found = self.index.get(series)
        if found is not None:
            return found
        if self.free:
            row = self.free.pop()
            self.ids[row] = series
        else:
            row = len(self.ids)
            self._reserve(row + 1)
            self.ids.append(series)
        self.index[series] = row
        self.live[row] = True
        return row

    def add_rows(self, series: Sequence[str]) -> list[int]:
        """The rows of new series (each given once), the rows ``row`` would give them one
        after another, taken at once.

        >>> bank = SeriesBank("ewma")
        >>> bank.add_rows(["a", "b", "c"]), bank.row("b")
        ([0, 1, 2], 1)
        """
        index = self.index
        if any(s in index for s in series):
            return [self.row(s) for s in series]
        reused = min(len(self.free), len(series))
        rows = [self.free.pop() for _ in range(reused)]
        for row, sid in zip(rows, series, strict=False):
            self.ids[row] = sid
        first = len(self.ids)
        # Grown at once to the capacity one row at a time would reach (a copy, not many).
        capacity, needed = self.capacity, first + len(series) - reused
        while capacity < needed:
            capacity = max(capacity + 1, capacity * 3 // 2)
        self._reserve(capacity)
        rows += range(first, first + len(series) - reused)
        self.ids += series[reused:]
        index.update(zip(series, rows, strict=True))
        self.live[rows] = True
        return rows

    def evict_idle(self, before: float) -> list[str]:
        """Free the rows of the series whose last point is earlier than ``before`` (event
        time); returns those series. Their rows are reset and will be checkpointed empty.

        >>> bank = SeriesBank("ewma")
        >>> _ = bank.observe(["a", "b"], np.zeros(2), np.array([10.0, 50.0]))
        >>> bank.evict_idle(before=20.0), bank.row("c"), len(bank)
        (['a'], 0, 2)
        """
        used = len(self.ids)
        rows = np.flatnonzero(self.live[:used] & (self.own["last_ts"][:used] < before))
        if len(rows) == 0:
            return []
        gone = [self.ids[r] for r in rows.tolist()]
        for sid in gone:
            del self.index[sid]
        for r in rows.tolist():
            self.ids[r] = ""
        self._reset(rows)
        self.free = sorted(set(self.free) | set(rows.tolist()), reverse=True)
        return gone

    def _reset(self, rows: Rows) -> None:
        """Rows back to a fresh series' state, as holes, marked for the next checkpoint."""
        self._fresh_rows(rows)
        self.live[rows] = False
        self.dirty[rows] = True

    def _fresh_rows(self, rows: Rows) -> None:
        """The state of ``rows`` (detector, policy, recent points) back to a fresh series'."""
        for name, (_, fresh) in _OWN.items():
            self.own[name][rows] = fresh
        self.recent_ts[rows] = 0.0
        self.recent_x[rows] = 0.0
        self.detector.reset_rows(rows)

    def recent(self, row: int) -> list[list[float]]:
        """The row's recent ``[ts, value]`` points, oldest first."""
        seen = int(self.own["seen"][row])
        k = min(seen, self.recent_points)
        slots = [(seen - k + i) % self.recent_points for i in range(k)]
        return [[float(self.recent_ts[row, s]), float(self.recent_x[row, s])] for s in slots]

    # -- observing ---------------------------------------------------------------------------

    def observe(
        self, series: Sequence[str], values: Floats, ts: Floats, *, ends: bool = False
    ) -> tuple[Floats, list[Fired]]:
        """Score, learn and decide the points (``series[i]``, ``values[i]`` at ``ts[i]``).

        Points of one series are taken in the order given. Returns every point's score (0 for
        stale points) and what the policy fired on, in point order; with ``ends``, also the
        points where an episode ended (their decision is ``resolved``).
        """
        return self.observe_rows(self.rows_for(series), values, ts, ends=ends)

    def rows_for(self, series: Sequence[str]) -> Rows:
        """The row of each of ``series``; new series get fresh rows."""
        get = self.index.get
        rows = np.array([get(s, -1) for s in series], dtype=np.intp)
        for i in np.flatnonzero(rows < 0):
            rows[i] = self.row(series[int(i)])
        return rows

    def observe_rows(
        self, rows: Rows, values: Floats, ts: Floats, *, ends: bool = False
    ) -> tuple[Floats, list[Fired]]:
        """``observe`` for series given by their rows (``rows_for``)."""
        n = len(rows)
        scores = np.zeros(n)
        fired: list[Fired] = []
        if n == 0:
            return scores, fired
        values = np.asarray(values, dtype=np.float64)
        ts = np.asarray(ts, dtype=np.float64)
        rows = np.asarray(rows, dtype=np.intp)
        sequence = getattr(self.detector, "score_learn_sequence", None)
        if sequence is not None:
            self._observe_sequence(sequence, rows, values, ts, scores, fired, ends)
            return scores, fired
        for idx in _rounds(rows):
            self._observe_round(idx, rows[idx], values[idx], ts[idx], scores, fired, ends)
        fired.sort(key=lambda f: f.index)
        return scores, fired

    def _observe_sequence(
        self,
        sequence: Any,
        rows: Rows,
        x: Floats,
        t: Floats,
        scores: Floats,
        fired: list[Fired],
        ends: bool,
    ) -> None:
        """The points in order, for a detector with a compiled per-point kernel: same results
        as the rounds, without their per-round array overhead."""
        own = self.own
        fresh = _fresh(rows, t, own["last_ts"])
        idx = np.flatnonzero(fresh)
        if len(idx) == 0:
            return
        if len(idx) == len(rows):  # the usual case: no stale points, no copies
            frows, fx, ft = rows, x, t
        else:
            frows, fx, ft = rows[idx], x[idx], t[idx]
        score = sequence(frows, fx, ft)
        scores[idx] = score
        reasons = getattr(self.detector, "last_why", None)
        explain = getattr(self.detector, "explain", None)
        if reasons is None or explain is None or len(reasons) != len(frows):
            explain = None
        threshold = self.policy.threshold
        busy = self._busy(ends)
        if _any_hot(frows, score, threshold, busy, own["run"]):
            playing = busy[frows] | (own["run"][frows] > 0)
            candidates = playing | (score >= threshold)
            # Each such row's points in order; a quiet point on an idle policy leaves it idle.
            self.deciding = True
            decide = np.isin(frows, np.unique(frows[candidates]))
            self.urgent[frows[decide]] = True
            for j in np.flatnonzero(decide).tolist():
                row, s = int(frows[j]), float(score[j])
                # The row's state now (an episode may have begun or ended earlier in the batch).
                waiting = own["active"][row] or (ends and own["ending"][row])
                if s < threshold and not waiting and own["run"][row] == 0:
                    continue
                earlier = partial(self._recent_at, row, frows[:j], idx[:j], x, t)
                decision = self._decide(row, s, float(t[idx[j]]), ends, float(fx[j]), earlier)
                if decision is not None:
                    recent = self._recent_at(row, frows[: j + 1], idx[: j + 1], x, t)
                    why = None
                    if explain is not None and reasons is not None and not decision.resolved:
                        why = explain(int(reasons[j]), float(ft[j]))
                    fired.append(Fired(int(idx[j]), s, decision, recent, why))
        # The recent points move on only now: a detection's context ends at its own point.
        _remember(frows, fx, ft, own["seen"], self.recent_ts, self.recent_x, self.dirty)

    def _recent_at(
        self, row: int, rows: Rows, idx: Rows, x: Floats, t: Floats
    ) -> list[list[float]]:
        """The row's recent points as of the batch point ``idx[-1]`` (before the ring moves)."""
        mine = idx[rows == row]
        points = self.recent(row) + [[float(t[i]), float(x[i])] for i in mine.tolist()]
        return points[-self.recent_points :]

    def _ring_before_last(self, row: int) -> list[list[float]]:
        """The row's recent points but the last (in a round, the ring already holds it)."""
        return self.recent(row)[:-1]

    def _observe_round(
        self,
        idx: Rows,
        rows: Rows,
        x: Floats,
        t: Floats,
        scores: Floats,
        fired: list[Fired],
        ends: bool,
    ) -> None:
        """Points of distinct rows."""
        own = self.own
        fresh = t > own["last_ts"][rows]
        if not fresh.all():
            idx, rows, x, t = idx[fresh], rows[fresh], x[fresh], t[fresh]
            if len(rows) == 0:
                return
        score = self.detector.score_learn_rows(rows, x, t)
        own["last_ts"][rows] = t
        slot = own["seen"][rows] % self.recent_points
        self.recent_ts[rows, slot] = t
        self.recent_x[rows, slot] = x
        own["seen"][rows] += 1
        self.dirty[rows] = True
        scores[idx] = score
        # A quiet point on an idle policy leaves it idle: only the others need deciding.
        busy = self._busy(ends)
        hot = (score >= self.policy.threshold) | busy[rows] | (own["run"][rows] > 0)
        decide = np.flatnonzero(hot)
        self.deciding |= len(decide) > 0
        self.urgent[rows[decide]] = True
        for j in decide:
            row = int(rows[j])
            earlier = partial(self._ring_before_last, row)
            decision = self._decide(row, float(score[j]), float(t[j]), ends, float(x[j]), earlier)
            if decision is not None:
                fired.append(Fired(int(idx[j]), float(score[j]), decision, self.recent(rows[j])))

    def _busy(self, ends: bool) -> Any:
        """Rows whose policy needs every point: active, or (with ``ends``) an ended episode
        waiting for its values to come back."""
        active = self.own["active"]
        return active | self.own["ending"] if ends and self.own["ending"].any() else active

    def _decide(
        self,
        row: int,
        score: float,
        ts: float,
        ends: bool,
        value: float = math.nan,
        before: Callable[[], list[list[float]]] | None = None,
    ) -> Decision | None:
        """The policy's decision on the row's point; with ``ends``, also where an episode
        ended (a ``resolved`` decision), once ``value`` is back within the range the series had
        before it. ``before``: the row's recent points before this one (asked only when an
        episode begins)."""
        own = self.own
        was_active = bool(own["active"][row])
        decision = self._policy_decision(row, score, ts)
        if not ends:
            return decision
        if decision is not None and not decision.repeat and not was_active:
            if not own["ending"][row] and before is not None:  # a new episode: its range
                self._remember_base(row, before())
            own["ending"][row] = False
            return decision
        if was_active and not own["active"][row]:
            own["ending"][row] = True  # the policy is calm: wait for the values to come back
        if own["ending"][row] and not own["active"][row] and self._back(row, value):
            own["ending"][row] = False
            self.dirty[row] = True
            return Decision(score, DetectionSeverity.INFO, ts, repeat=False, resolved=True)
        return decision

    def _remember_base(self, row: int, points: list[list[float]]) -> None:
        """The range of ``points`` (the row's recent ones before this point) that came before
        the run that started the episode."""
        run = self.policy.for_points - 1  # the run's earlier points are the last of them
        finite = [x for _, x in points[: max(0, len(points) - run)] if math.isfinite(x)]
        lo, hi = (min(finite), max(finite)) if len(finite) >= 3 else (math.nan, math.nan)
        self.own["base_lo"][row], self.own["base_hi"][row] = lo, hi

    def _back(self, row: int, value: float) -> bool:
        """Whether ``value`` is within the row's pre-episode range (any value, without one)."""
        lo, hi = float(self.own["base_lo"][row]), float(self.own["base_hi"][row])
        if math.isnan(lo) or math.isnan(hi):
            return True
        room = BACK_SPREAD * (hi - lo) + BACK_LEVEL * max(abs(lo), abs(hi)) + 1e-12
        return lo - room <= value <= hi + room

    def _policy_decision(self, row: int, score: float, ts: float) -> Decision | None:
        own, policy = self.own, self.policy
        policy.run = int(own["run"][row])
        policy.run_started_at = _opt(own["run_started_at"][row])
        policy.calm = int(own["calm"][row])
        policy.active = bool(own["active"][row])
        policy.last_fired_at = _opt(own["last_fired_at"][row])
        decision = policy.decide(score, ts)
        own["run"][row] = policy.run
        own["run_started_at"][row] = _nan(policy.run_started_at)
        own["calm"][row] = policy.calm
        own["active"][row] = policy.active
        own["last_fired_at"][row] = _nan(policy.last_fired_at)
        return decision

    # -- checkpoints -------------------------------------------------------------------------

    def take_dirty_blocks(self) -> dict[str, dict[str, Any]]:
        """The block parts with rows changed since the last call, as ``key -> value``."""
        used = len(self.ids)
        dirty = np.flatnonzero(self.dirty[:used])
        self.dirty[:used] = False
        self.urgent[:used] = False
        self.deciding = False
        return self._parts_of(dirty)

    def take_deciding_blocks(self) -> dict[str, dict[str, Any]]:
        """The block parts that hold a row whose policy state changed since it was last
        written (the rows ``deciding`` is about), as ``key -> value``; their rows are no
        longer dirty. The other changed rows wait for ``take_dirty_blocks``: written this way,
        a run in progress survives a handover without the whole partition's state."""
        used = len(self.ids)
        urgent = np.flatnonzero(self.urgent[:used])
        self.urgent[:used] = False
        self.deciding = False
        out = self._parts_of(urgent)
        for key in out:
            start = out[key]["start"]
            self.dirty[start : start + len(out[key]["ids"])] = False
        return out

    def _parts_of(self, rows: Rows) -> dict[str, dict[str, Any]]:
        """The parts that hold any of ``rows`` (sorted)."""
        out: dict[str, dict[str, Any]] = {}
        for block in np.unique(rows // self.block_rows).tolist():
            for part, (start, stop) in enumerate(self.parts(block)):
                lo, hi = np.searchsorted(rows, [start, stop])
                if hi > lo:
                    out[_part_key(block, part)] = self.part_state(start, stop)
        return out

    def parts(self, block: int) -> list[tuple[int, int]]:
        """The row ranges ``[start, stop)`` block ``block`` is written in, each of which encodes
        to at most ``block_bytes`` (unless it is one row that alone is larger)."""
        start = block * self.block_rows
        stop = min(start + self.block_rows, len(self.ids))
        if stop - start <= 1 or isinstance(self.detector, LoopBatch):
            return [(start, stop)]  # a per-instance detector's state has no size per row
        per_row, overhead = self._part_cost
        budget = self.block_bytes - overhead
        ids = self.ids[start:stop]
        # JSON escapes a character to at most 12 bytes: most blocks need no closer look.
        if (stop - start) * (per_row + 3) + 12 * sum(map(len, ids)) <= budget:
            return [(start, stop)]
        out, first, used = [], start, 0
        for row, sid in enumerate(ids, start):
            cost = per_row + len(json.dumps(sid)) + 1
            if row > first and used + cost > budget:
                out.append((first, row))
                first, used = row, 0
            used += cost
        out.append((first, stop))
        return out

    @cached_property
    def _part_cost(self) -> tuple[int, int]:
        """Upper bounds of a part's encoded bytes per row (ids aside) and of its fixed part."""
        arrays = [*self.own.values(), self.recent_ts, self.recent_x]
        arrays += list(self.detector.arrays().values())
        per_row = sum(a[:1].nbytes for a in arrays)
        empty = len(blocks.encode(self.part_state(0, 0), compress=False))
        # The row count in each array's shape and its offset and length (at most 7 digits).
        return per_row, empty + 24 * len(arrays)

    def block_state(self, block: int) -> dict[str, Any]:
        """The whole of block ``block`` as one value (see ``parts`` for how it is written)."""
        start = block * self.block_rows
        return self.part_state(start, min(start + self.block_rows, len(self.ids)))

    def part_state(self, start: int, stop: int) -> dict[str, Any]:
        """Rows ``start:stop`` (within one block) as one compact JSON-able value."""
        return {
            "version": self.state_version,
            "config": self.config,
            "start": start,
            "ids": self.ids[start:stop],
            "detector": self.detector.block_state(start, stop),
            "own": {k: pack(v[start:stop]) for k, v in self.own.items()},
            "recent": [pack(self.recent_ts[start:stop]), pack(self.recent_x[start:stop])],
        }

    def load_blocks(
        self, blocks: Mapping[str, Mapping[str, Any]], max_rows: int | None = None
    ) -> int:
        """Put checkpointed block parts back at their rows; returns how many were for another
        config, or could not be read, or lie past ``max_rows`` (rows this bank may ever hold:
        a crafted block number must not make it reserve gigabytes).

        A part written under another detector configuration, or another state version of the
        bank or of the detector, keeps its series at their rows with fresh state, and is
        rewritten at the next checkpoint; so is an unreadable one, as far as it can be placed.
        Rows checkpointed empty (evicted series) are free for new series.
        """
        stale = 0
        holes: list[int] = []  # rows checkpointed empty (evicted): free for new series
        for key in sorted(blocks, key=_part_order):
            state = blocks[key]
            start, ids = self._placed(key, state)
            if start is None or (max_rows is not None and start + len(ids) > max_rows):
                stale += 1  # nowhere to put it: its series start afresh where they come
                continue
            self._reserve(start + len(ids))
            while len(self.ids) < start + len(ids):
                self.ids.append("")  # a hole: a block that was never written
            for i, sid in enumerate(ids):
                if sid and sid not in self.index:
                    self.ids[start + i], self.index[sid] = sid, start + i
                    self.live[start + i] = True
                elif not sid:
                    holes.append(start + i)
            if not self._load_rows(start, len(ids), state):
                stale += 1
                self.dirty[start : start + len(ids)] = True
        # Holes of blocks never written stay unused: only a block's own writer may fill it.
        self.free = sorted(set(self.free) | set(holes), reverse=True)
        return stale

    def _placed(self, key: str, state: Mapping[str, Any]) -> tuple[int | None, list[str]]:
        """Where a stored part goes (its first row; None: nowhere) and its series ids."""
        block, _, _ = key.partition(".")
        ids = state.get("ids") if isinstance(state, Mapping) else None
        if not block.isdigit() or not isinstance(ids, list):
            return None, []
        first = int(block) * self.block_rows
        start = state.get("start", first)
        if (
            not isinstance(start, int)
            or not first <= start <= first + self.block_rows - len(ids)
            or not all(isinstance(sid, str) for sid in ids)
        ):
            return None, []
        return start, ids

    def _load_rows(self, start: int, n: int, state: Mapping[str, Any]) -> bool:
        """The rows' state from a stored part; False (nothing loaded) when it is for another
        configuration or version, or unreadable."""
        if state.get("version") not in self.reads_versions or state.get("config") != self.config:
            return False
        try:
            # Same configuration, but the detector's state may be from an older version of it
            # (an upgrade): refused before anything is written, so it starts afresh.
            self.detector.load_block(start, state["detector"])
            for name, data in state["own"].items():
                if name in self.own:
                    self.own[name][start : start + n] = unpack(data)
            self.recent_ts[start : start + n] = unpack(state["recent"][0])
            self.recent_x[start : start + n] = unpack(state["recent"][1])
        except (ValueError, KeyError, TypeError, IndexError, AttributeError):
            self._fresh_rows(np.arange(start, start + n))  # nothing of a part half-restored
            return False
        return True

    def bytes_per_series(self) -> float:
        """Array bytes held per series (detector, policy, recent points), at current capacity."""
        held = sum(a.nbytes for a in self.own.values()) + self.dirty.nbytes
        held += self.recent_ts.nbytes + self.recent_x.nbytes
        held += sum(a.nbytes for a in self.detector.arrays().values())
        return held / max(1, len(self.index))


@numba.njit(cache=True, nogil=True)
def _fresh(rows: Any, ts: Any, last_ts: Any) -> Any:
    """Which points are later than their series' last time, taken in order (``last_ts`` moves)."""
    out = np.zeros(rows.shape[0], dtype=np.bool_)
    for i in range(rows.shape[0]):
        r = rows[i]
        if ts[i] > last_ts[r]:
            last_ts[r] = ts[i]
            out[i] = True
    return out


@numba.njit(cache=True, nogil=True)
def _any_hot(rows: Any, score: Any, threshold: float, active: Any, run: Any) -> bool:
    """Whether any point needs the policy: a high score, or its series' policy is busy."""
    for i in range(rows.shape[0]):
        r = rows[i]
        if score[i] >= threshold or active[r] or run[r] > 0:
            return True
    return False


@numba.njit(cache=True, nogil=True)
def _remember(
    rows: Any, xs: Any, ts: Any, seen: Any, recent_ts: Any, recent_x: Any, dirty: Any
) -> None:
    """Append each (fresh) point to its row's ring of recent points."""
    k = recent_ts.shape[1]
    for i in range(rows.shape[0]):
        r = rows[i]
        slot = seen[r] % k
        recent_ts[r, slot] = ts[i]
        recent_x[r, slot] = xs[i]
        seen[r] += 1
        dirty[r] = True


def _part_key(block: int, part: int) -> str:
    """A block part's key: the block number, then ``.part`` after the first part.

    >>> _part_key(7, 0), _part_key(7, 2)
    ('7', '7.2')
    """
    return str(block) if part == 0 else f"{block}.{part}"


def _part_order(key: str) -> tuple[int, int]:
    block, _, part = key.partition(".")
    return (
        int(block) if block.isdigit() else -1,
        int(part) if part.isdigit() else 0,
    )


def _rounds(rows: Rows) -> list[Rows]:
    """Split point positions into rounds of distinct rows, keeping each row's points in order."""
    n = len(rows)
    order = np.argsort(rows, kind="stable")
    ordered = rows[order]
    first = np.ones(n, dtype=np.bool_)
    first[1:] = ordered[1:] != ordered[:-1]
    if first.all():
        return [np.arange(n)]
    group_start = np.maximum.accumulate(np.where(first, np.arange(n), 0))
    occurrence = np.empty(n, dtype=np.intp)
    occurrence[order] = np.arange(n) - group_start
    by_round = np.argsort(occurrence, kind="stable")  # positions stay ascending in a round
    return np.split(by_round, np.cumsum(np.bincount(occurrence))[:-1])


def _opt(value: float) -> float | None:
    return None if math.isnan(value) else float(value)


def _nan(value: float | None) -> float:
    return math.nan if value is None else value


def detection(
    fired: Fired,
    *,
    detector: str,
    series: str,
    service: str,
    metric: str,
    labels: dict[str, str],
    ts: float,
    value: float,
) -> Detection:
    """The detection for a fired point (``resolved`` where its episode ended), bounded as the
    module docstring says; its id depends only on the series, the point's time and whether it
    fired or resolved, so a replayed detection is the same one."""
    at = datetime.fromtimestamp(ts, tz=UTC)
    decision = fired.decision
    ended = "\x00resolved" if decision.resolved else ""
    kept_labels = _capped_labels(labels)
    kept_series = series[:DETECTION_TEXT_CHARS]
    why = fired.why[:DETECTION_TEXT_CHARS] if fired.why else None
    truncated = kept_labels != labels or kept_series != series or why != (fired.why or None)
    return Detection(
        id="det-" + uuid.uuid5(_NAMESPACE, f"{series}\x00{at.timestamp()!r}{ended}").hex[:20],
        ts=at,
        service=service,
        signal=metric,
        detector=detector,
        score=fired.score,
        severity=decision.severity,
        impact_started_at=(
            None if decision.resolved else datetime.fromtimestamp(decision.impact_started_at, UTC)
        ),
        labels=kept_labels,
        context={
            "series": kept_series,
            "value": value,
            "repeat": decision.repeat,
            "recent": fired.recent[-SeriesBank.recent_points :],
            **({"why": why} if why else {}),
            **({"truncated": True} if truncated else {}),
        },
        status=DetectionStatus.RESOLVED if decision.resolved else DetectionStatus.FIRING,
    )


def _capped_labels(labels: dict[str, str]) -> dict[str, str]:
    """The first ``DETECTION_LABELS`` labels, names cut to ``MAX_LABEL_KEY`` and values to
    ``DETECTION_LABEL_CHARS``, control characters shown as U+FFFD: always a valid detection's.

    >>> _capped_labels({"pod": "x" * 300})["pod"] == "x" * DETECTION_LABEL_CHARS
    True
    >>> _capped_labels({"a\x01": "b"})
    {'a\ufffd': 'b'}
    """
    n = DETECTION_LABEL_CHARS
    out: dict[str, str] = {}
    for k, v in list(labels.items())[:DETECTION_LABELS]:
        key = CONTROL.sub("\ufffd", k[:MAX_LABEL_KEY]) or "_"
        out.setdefault(key, CONTROL.sub("\ufffd", v[:n]))
    return out
