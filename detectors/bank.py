"""Many metric series under watch, one row each: detector, policy, last time, recent points.

``observe`` scores, learns and decides a batch of points (any number per series, in order) in a
few vectorized steps over the rows the batch touches. Only points whose score or policy state
needs a decision go through the policy one at a time, so a quiet fleet costs array work only.

Rows are checkpointed in blocks of ``block_rows`` consecutive rows; a block is one compact
JSON-able value holding its series ids and their rows, written when any of its rows changed.
Restoring puts every block back at its rows, so a block key always names the same series.

Points at or before a series' last event time are ignored (stale), so a replayed point is neither
learned nor detected twice; the detection id is derived from the series and the point's time.

A series idle since an event time (``evict_idle``) gives its row back: the row is reset to fresh
state, marked for the next checkpoint (its block is rewritten with an empty id there, so a
restore does not bring the series back) and handed to the next new series.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numba
import numpy as np
from numpy.typing import NDArray

from detectors.policy import Decision, ThresholdPolicy
from detectors.registry import DETECTORS, LoopBatch, checked_params, make_batch
from detectors.vector import Floats, pack, unpack
from schemas import Detection

_NAMESPACE = uuid.UUID("0b6c8f7e-2d1a-4c3b-9e8f-7a6b5c4d3e2f")

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
}


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

    state_version = 1
    #: Recent points kept per series for the detection's context (the chart in the review).
    recent_points = 16
    #: Rows per checkpoint block for vectorized detectors (a block stays well under 1 MB).
    block_rows_vector = 256

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
        for name, (_, fresh) in _OWN.items():
            self.own[name][rows] = fresh
        self.recent_ts[rows] = 0.0
        self.recent_x[rows] = 0.0
        self.detector.reset_rows(rows)
        self.live[rows] = False
        self.dirty[rows] = True

    def recent(self, row: int) -> list[list[float]]:
        """The row's recent ``[ts, value]`` points, oldest first."""
        seen = int(self.own["seen"][row])
        k = min(seen, self.recent_points)
        slots = [(seen - k + i) % self.recent_points for i in range(k)]
        return [[float(self.recent_ts[row, s]), float(self.recent_x[row, s])] for s in slots]

    # -- observing ---------------------------------------------------------------------------

    def observe(
        self, series: Sequence[str], values: Floats, ts: Floats
    ) -> tuple[Floats, list[Fired]]:
        """Score, learn and decide the points (``series[i]``, ``values[i]`` at ``ts[i]``).

        Points of one series are taken in the order given. Returns every point's score (0 for
        stale points) and what the policy fired on, in point order.
        """
        return self.observe_rows(self.rows_for(series), values, ts)

    def rows_for(self, series: Sequence[str]) -> Rows:
        """The row of each of ``series``; new series get fresh rows."""
        get = self.index.get
        rows = np.array([get(s, -1) for s in series], dtype=np.intp)
        for i in np.flatnonzero(rows < 0):
            rows[i] = self.row(series[int(i)])
        return rows

    def observe_rows(self, rows: Rows, values: Floats, ts: Floats) -> tuple[Floats, list[Fired]]:
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
            self._observe_sequence(sequence, rows, values, ts, scores, fired)
            return scores, fired
        for idx in _rounds(rows):
            self._observe_round(idx, rows[idx], values[idx], ts[idx], scores, fired)
        fired.sort(key=lambda f: f.index)
        return scores, fired

    def _observe_sequence(
        self, sequence: Any, rows: Rows, x: Floats, t: Floats, scores: Floats, fired: list[Fired]
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
        if _any_hot(frows, score, threshold, own["active"], own["run"]):
            playing = own["active"][frows] | (own["run"][frows] > 0)
            candidates = playing | (score >= threshold)
            # Each such row's points in order; a quiet point on an idle policy leaves it idle.
            self.deciding = True
            decide = np.isin(frows, np.unique(frows[candidates]))
            for j in np.flatnonzero(decide).tolist():
                row, s = int(frows[j]), float(score[j])
                if s < threshold and not own["active"][row] and own["run"][row] == 0:
                    continue
                decision = self._decide(row, s, float(t[idx[j]]))
                if decision is not None:
                    recent = self._recent_at(row, frows[: j + 1], idx[: j + 1], x, t)
                    why = None
                    if explain is not None and reasons is not None:
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

    def _observe_round(
        self, idx: Rows, rows: Rows, x: Floats, t: Floats, scores: Floats, fired: list[Fired]
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
        hot = (score >= self.policy.threshold) | own["active"][rows] | (own["run"][rows] > 0)
        decide = np.flatnonzero(hot)
        self.deciding |= len(decide) > 0
        for j in decide:
            decision = self._decide(int(rows[j]), float(score[j]), float(t[j]))
            if decision is not None:
                fired.append(Fired(int(idx[j]), float(score[j]), decision, self.recent(rows[j])))

    def _decide(self, row: int, score: float, ts: float) -> Decision | None:
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

    def take_dirty_blocks(self) -> dict[int, dict[str, Any]]:
        """The blocks with rows changed since the last call, as ``block -> value``."""
        used = len(self.ids)
        blocks = np.unique(np.flatnonzero(self.dirty[:used]) // self.block_rows)
        self.dirty[:used] = False
        self.deciding = False
        return {int(b): self.block_state(int(b)) for b in blocks}

    def block_state(self, block: int) -> dict[str, Any]:
        start = block * self.block_rows
        stop = min(start + self.block_rows, len(self.ids))
        return {
            "version": self.state_version,
            "config": self.config,
            "ids": self.ids[start:stop],
            "detector": self.detector.block_state(start, stop),
            "own": {k: pack(v[start:stop]) for k, v in self.own.items()},
            "recent": [pack(self.recent_ts[start:stop]), pack(self.recent_x[start:stop])],
        }

    def load_blocks(self, blocks: Mapping[int, Mapping[str, Any]]) -> int:
        """Put checkpointed blocks back at their rows; returns how many were for another config.

        A block written under another detector configuration, or another state version of the
        bank or of the detector, keeps its series at their rows with fresh state, and is
        rewritten at the next checkpoint.
        """
        stale = 0
        holes: list[int] = []  # rows checkpointed empty (evicted): free for new series
        for block in sorted(blocks):
            state = blocks[block]
            start = block * self.block_rows
            ids: list[str] = list(state["ids"])
            self._reserve(start + len(ids))
            while len(self.ids) < start + len(ids):
                self.ids.append("")  # a hole: a block that was never written
            for i, sid in enumerate(ids):
                if sid and sid not in self.index:
                    self.ids[start + i], self.index[sid] = sid, start + i
                    self.live[start + i] = True
                elif not sid:
                    holes.append(start + i)
            usable = (
                state.get("version") == self.state_version and state.get("config") == self.config
            )
            if usable:
                try:
                    # Same configuration, but the detector's state may be from an older version
                    # of it (an upgrade): refused before anything is written, so it starts afresh.
                    self.detector.load_block(start, state["detector"])
                except ValueError:
                    usable = False
            if not usable:
                stale += 1
                self.dirty[start : start + len(ids)] = True
                continue
            for name, data in state["own"].items():
                self.own[name][start : start + len(ids)] = unpack(data)
            self.recent_ts[start : start + len(ids)] = unpack(state["recent"][0])
            self.recent_x[start : start + len(ids)] = unpack(state["recent"][1])
        # Holes of blocks never written stay unused: only a block's own writer may fill it.
        self.free = sorted(set(self.free) | set(holes), reverse=True)
        return stale

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
    """The detection for a fired point; its id depends only on the series and the point's time."""
    at = datetime.fromtimestamp(ts, tz=UTC)
    decision = fired.decision
    return Detection(
        id="det-" + uuid.uuid5(_NAMESPACE, f"{series}\x00{at.timestamp()!r}").hex[:20],
        ts=at,
        service=service,
        signal=metric,
        detector=detector,
        score=fired.score,
        severity=decision.severity,
        impact_started_at=datetime.fromtimestamp(decision.impact_started_at, tz=UTC),
        labels=labels,
        context={
            "series": series,
            "value": value,
            "repeat": decision.repeat,
            "recent": fired.recent,
            **({"why": fired.why} if fired.why else {}),
        },
    )
