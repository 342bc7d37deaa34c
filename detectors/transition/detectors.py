"""The transition detectors: ``TransitionNoveltyBatch`` and ``TolerantNoveltyBatch`` (see the
package's docstring), each allocating the arrays it uses and scoring through ``kernel``."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
from numpy.typing import NDArray

from detectors.transition.daily import HOUR_S, MAX_DAY_PARTS, day_slot
from detectors.transition.kernel import WHY_DEVIATION, WHY_HOUR, observe
from detectors.transition.levels import MEMORY
from detectors.transition.state import Config, State, spread
from detectors.vector import BatchDetector, Floats, Mask, OneSeries

#: Coarser time scales ``TolerantNoveltyBatch`` may watch, and their longest block.
MAX_SCALES, MAX_BLOCK = 4, 1024


def _zone(offset_h: float) -> str:
    """``UTC``, or ``UTC+05:30`` for an offset of 5.5 hours."""
    if offset_h == 0.0:
        return "UTC"
    minutes = round(abs(offset_h) * 60.0)
    return f"UTC{'+' if offset_h > 0 else '-'}{minutes // 60:02d}:{minutes % 60:02d}"


def _clock(hours: float) -> str:
    """``hours`` after midnight as ``HH:MM``."""
    minutes = round(hours * 60.0)
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


class TransitionNoveltyBatch(BatchDetector):
    """Share of never-seen coarse-level sequences ending at each point, one alert per episode."""

    name: ClassVar[str] = "transition_novelty"
    state_version: ClassVar[int] = 3
    #: A known level reached by a new step in every grid scores ``(order - 1) / order``.
    threshold: ClassVar[float] = 0.5
    #: It silences the points after an alert itself: decide on a single point.
    for_points: ClassVar[int] = 1
    #: Block lengths of the coarser time scales watched besides the points themselves (none
    #: here; ``TolerantNoveltyBatch`` takes them as a parameter).
    scales: tuple[int, ...] = ()
    #: Parts of the day with a memory of their own values (none here; see
    #: ``TolerantNoveltyBatch``), the days to see before asking it, and whether weekends have
    #: parts of their own.
    day_parts: int = 0
    day_after: int = 7
    weekends: bool = False
    utc_offset_h: float = 0.0
    #: The deviation arm's least distance to fire, in typical deviations (0: no arm here; see
    #: ``TolerantNoveltyBatch``), and how many times the largest recent one it must be.
    deviation: float = 0.0
    deviation_margin: float = 5.0
    #: Exact novelty: no tolerance (then the step noise and records are not read).
    tolerance: float = 0.0
    step_alpha: float = 1.0
    step_clip: float = 1.0
    records: bool = False

    def __init__(
        self,
        n: int = 1,
        grids: int = 4,
        order: int = 3,
        warmup: int = 30,
        base_threshold: float = 0.5,
        rest_period: int = 120,
        rel_floor: float = 0.001,
        abs_floor: float = 1e-9,
        novelty_alpha: float = 0.01,
    ) -> None:
        super().__init__(n)
        if not 1 <= grids <= 16 or not 1 <= order <= 3:
            raise ValueError("grids must be between 1 and 16 and order between 1 and 3")
        if not 0.0 < novelty_alpha <= 1.0:
            raise ValueError("novelty_alpha must be in (0, 1]")
        if warmup < order or rest_period < 0:
            raise ValueError("warmup must be at least order and rest_period not negative")
        if rel_floor < 0.0 or abs_floor <= 0.0:
            raise ValueError("rel_floor must be >= 0 and abs_floor > 0")
        self.grids, self.order, self.warmup = grids, order, warmup
        self.base_threshold, self.rest_period = base_threshold, rest_period
        self.rel_floor, self.abs_floor = rel_floor, abs_floor
        self.novelty_alpha = novelty_alpha
        # One memory per series and time scale: row ``series * stride + k`` is scale ``k``
        # (0: the points themselves).
        self._stride = stride = 1 + len(self.scales)
        rows = n * stride
        self._seen = np.zeros((rows, grids, MEMORY), dtype=np.uint8)
        self._recent = np.zeros((rows, grids, 2), dtype=np.int8)  # last two levels, oldest first
        self._lo = np.zeros(rows)
        self._span = np.zeros(rows)
        self._shift = np.zeros(rows if grids > 1 else 0)  # one grid is not shifted
        self._count = np.zeros(rows, dtype=np.int32)
        self._quiet = np.zeros(rows, dtype=np.int32)
        self._rate = np.ones(rows)  # recent novelty: a young memory finds everything new
        #: Which memory gave each score of the last call (see ``explain``); not state.
        self.last_why: NDArray[np.int8] = np.zeros(0, dtype=np.int8)

    def _point_memories(self) -> dict[str, NDArray[Any]]:
        """The memories' arrays by name, one row per series and time scale, in ``State``'s
        order (the grids' shift included: empty with one grid)."""
        return {
            "seen": self._seen,
            "recent": self._recent,
            "lo": self._lo,
            "span": self._span,
            "shift": self._shift,
            "count": self._count,
            "quiet": self._quiet,
            "rate": self._rate,
        }

    def _memories(self) -> dict[str, NDArray[Any]]:
        """The kernel's arrays, one row per series and time scale, as checkpointed (without
        the shift of a single grid)."""
        memories = self._point_memories()
        if self.grids == 1:
            del memories["shift"]
        return memories

    def arrays(self) -> dict[str, NDArray[Any]]:
        return self._memories()

    def warmed_up_many(self) -> Mask:
        return self._count[:: self._stride] >= self.warmup

    def _state(self) -> State:
        """The arrays the kernel works on (those of the parts this detector lacks: empty)."""
        return State(*self._memory_arrays())

    def _memory_arrays(self) -> tuple[NDArray[Any], ...]:
        """The memories' arrays, in ``State``'s order."""
        return tuple(self._point_memories().values())

    def _config(self) -> Config:
        """The hyperparameters the kernel reads (here: exact novelty, no scales, hours or arm;
        ``TolerantNoveltyBatch`` sets them)."""
        return Config(
            self.order,
            self.warmup,
            self.base_threshold,
            self.rest_period,
            self.rel_floor,
            self.abs_floor,
            self.novelty_alpha,
            self.tolerance,
            self.step_alpha,
            self.step_clip,
            self.records,
            self.day_parts,
            self.day_after,
            self.utc_offset_h * HOUR_S,
            self.deviation,
            self.deviation_margin,
        )

    def _run(self, rows: NDArray[np.intp], values: Floats, ts: Floats, learn: bool) -> Floats:
        out = np.empty(len(rows))
        self.last_why = why = np.empty(len(rows), dtype=np.int8)
        observe(
            np.ascontiguousarray(rows, dtype=np.intp),
            np.ascontiguousarray(values, dtype=np.float64),
            np.ascontiguousarray(ts, dtype=np.float64),
            learn,
            out,
            why,
            *spread(self._state(), self._config()),
        )
        return out

    def score_learn_sequence(self, rows: NDArray[np.intp], values: Floats, ts: Floats) -> Floats:
        """Score then learn each point in turn, ``values[i]`` of series ``rows[i]`` at
        ``ts[i]``: points of one series may repeat and are taken in the order given. Which
        memory gave each score is left in ``last_why`` (see ``explain``)."""
        return self._run(rows, values, ts, True)

    def explain(self, why: int, ts: float) -> str | None:
        """In words, what found a point at time ``ts`` new, from its ``last_why``."""
        if why == 1:
            return "the value or its steps from the last ones: never seen in this series"
        if 2 <= why <= 1 + len(self.scales):
            k = self.scales[why - 2]
            return f"the mean of the last {k} points: never seen in this series"
        if why == WHY_DEVIATION:
            return (
                "the value: many times further from the series' level than its own "
                "deviations lately"
            )
        if why == WHY_HOUR and self.day_parts:
            # The word the kernel used: the part of the day, counted on from day_parts at
            # weekends.
            word = day_slot(ts + self.utc_offset_h * HOUR_S, self.day_parts, self.weekends)
            part, weekend = word % self.day_parts, word >= self.day_parts
            hours = 24.0 / self.day_parts
            start, end = part * hours, (part + 1) * hours
            days = ("weekends" if weekend else "weekdays") if self.weekends else "any day"
            zone = _zone(self.utc_offset_h)
            return (
                f"the value: never seen at this time of day ({days}, "
                f"{_clock(start)} to {_clock(end)} {zone})"
            )
        return None

    def _score(self, x: Floats, ts: Floats) -> Floats:
        return self._run(np.arange(self.n), x, ts, False)

    def _learn(self, x: Floats, ts: Floats, mask: Mask) -> None:
        self._score_learn(x, ts, mask)

    def _score_learn(self, x: Floats, ts: Floats, mask: Mask) -> Floats:
        rows = np.flatnonzero(mask)
        out = np.zeros(self.n)
        out[rows] = self._run(rows, x[rows], ts[rows], True)
        return out


class TransitionNovelty(OneSeries):
    """One series of ``TransitionNoveltyBatch``.

    >>> import random
    >>> rng = random.Random(7)
    >>> d = TransitionNovelty()
    >>> scores = []
    >>> for t in range(600):
    ...     v = 100.0 + 10.0 * (t % 20 < 10) + rng.gauss(0.0, 0.3)
    ...     scores.append(d.score_one(v, float(t)))
    ...     d.learn_one(v, float(t))
    >>> d.warmed_up, max(scores[:30])
    (True, 0.0)
    >>> d.score_one(130.0, 600.0) >= TransitionNovelty.threshold
    True
    """

    batch_cls = TransitionNoveltyBatch


class TolerantNoveltyBatch(TransitionNoveltyBatch):
    """Transition novelty that the series' own step noise cannot explain.

    Stationary noise keeps reaching rarely visited levels by ordinary steps, so plain transition
    novelty fires on it for as long as the series runs. Here a sequence counts as new only if it
    stays new within ``tolerance`` typical steps: every level within that distance of the value
    is new after every previous level within it (the levels that come within the tolerance of the
    centre of the remembered one), and a value beyond the range is new only if it is
    beyond by more than the tolerance. The typical step is the mean absolute step of the series
    (a plain mean for the first ``1 / step_alpha`` steps, then exponentially weighted; a step is
    clipped at ``step_clip`` typical steps once warmed up, so one jump does not blind it). The
    memory and its learning are those of ``TransitionNoveltyBatch``; only the question asked of
    it changes.

    Eight levels are coarse, and the tolerance makes them coarser: a level counts as seen
    within the tolerance if any value in it was, up to a whole level away. A spiky series whose
    range one old burst stretched would hide its next spike in a level its noise once reached.
    So each memory also keeps the values seen at ``FINE`` levels (one bit each; carried through
    a doubling of the span as the coarse levels are; the warm-up's lowest and highest values
    count as seen), and a value that no seen value comes within the tolerance of is new, as a
    never-seen level is. In noise the values seen fill the range densely, so this costs little,
    except for new records: a value beyond every value seen by more than the tolerance, which
    heavy-tailed noise sets while the memory is young. ``records=False`` asks only about values
    between the lowest and the highest seen.

    The tolerance that keeps it quiet on noise also hides changes smaller than a few steps: a
    level that drops by two noise widths, a slow drift. So the detector also asks the question
    at coarser time scales: it averages the points in consecutive blocks of each length in
    ``scales`` and keeps a memory of the block means, with their own range and step noise. A
    mean of k points of noise wanders about sqrt(k) times less than the points, so the
    tolerance at that scale is that much finer, while a sustained change moves the means as
    much as the points. A point scores the most novel of its own value and the blocks it
    completes; an alert at any scale rests them all for ``rest_period`` points. Noise gains
    nothing from this (its block means are noise too, and fewer), so it stays quiet.

    None of this sees a value that is ordinary for the series but not for the hour: a daily
    peak that does not come, a night at midday levels, a weekday as quiet as a Sunday. So the
    point memory also keeps the values seen in each of ``day_parts`` equal parts of the day (in
    UTC, or ``utc_offset_h`` hours from it: the series' local time), apart for weekdays and
    weekends with ``weekends``, one word of fine levels each, and
    asks the same question of the part the point falls in: does any value seen at this
    time of day (in its part, or in the parts an hour earlier and later: daylight saving time
    moves a local shape by an hour) come within the tolerance? A value seen only an hour away is
    learned into its part when the part ends, so an anomaly that begins at a part's edge does
    not teach the part its values before it is news. Most series give no reason to ask: noise,
    spikes and drifting levels reach the same values at every hour. The question is asked only once
    ``day_after`` days have begun and the time of day plainly matters: no fine level has values
    within the tolerance of it in every part. Its novelty, times one minus its own
    recent rate, scores as the point's own does.

    A memory of what was seen forgets nothing and rests after each alert, so a series that
    keeps setting records (a random walk) alerts on them and, resting, misses a x5 spike that
    follows. A second learner of another kind watches beside it: a deviation arm that
    measures each value's distance from the series' robust level (exponentially weighted,
    steps clipped) in the series' own typical absolute deviations, and scores, from 0.5 up,
    only a distance of at least ``deviation`` of them and ``deviation_margin`` times the
    largest one seen lately (a decayed maximum): far beyond anything the series' own noise has
    done, whatever its tails. A point scores the higher of the two; the arm does not rest
    with the memories, and an alert of either rests both. ``deviation=0`` turns it off.
    """

    name: ClassVar[str] = "tolerant_novelty"
    state_version: ClassVar[int] = 6
    #: State of version 4 lacks the memory by time of day, and of 4 and 5 the deviation arm:
    #: those start empty.
    reads_versions: ClassVar[tuple[int, ...]] = (4, 5)
    #: One of the three sequence lengths new, with the memory right 99% of the time lately.
    threshold: ClassVar[float] = 0.33
    for_points: ClassVar[int] = 1

    def __init__(
        self,
        n: int = 1,
        tolerance: float = 3.0,
        step_alpha: float = 0.01,
        step_clip: float = 3.0,
        grids: int = 1,
        order: int = 3,
        warmup: int = 30,
        base_threshold: float = 0.33,
        rest_period: int = 120,
        rel_floor: float = 0.001,
        abs_floor: float = 1e-9,
        novelty_alpha: float = 0.01,
        scales: tuple[int, ...] = (4, 16),
        records: bool = True,
        day_parts: int = 8,
        day_after: int = 7,
        weekends: bool = True,
        utc_offset_h: float = 0.0,
        deviation: float = 6.0,
        deviation_margin: float = 5.0,
    ) -> None:
        if deviation < 0.0 or deviation_margin < 1.0:
            raise ValueError("deviation must be >= 0 (0: no arm) and deviation_margin >= 1")
        if tolerance < 0.0 or not 0.0 < step_alpha <= 1.0 or step_clip <= 0.0:
            raise ValueError("tolerance must be >= 0, step_alpha in (0, 1], step_clip > 0")
        scales = tuple(scales)
        if len(scales) > MAX_SCALES or any(not 2 <= k <= MAX_BLOCK for k in scales):
            raise ValueError(
                f"scales must be at most {MAX_SCALES} block lengths between 2 and {MAX_BLOCK}"
            )
        if len(set(scales)) != len(scales):
            raise ValueError("scales must be different block lengths")
        if not 0 <= day_parts <= MAX_DAY_PARTS or day_after < 1:
            raise ValueError(
                f"day_parts must be between 0 and {MAX_DAY_PARTS} and day_after at least 1"
            )
        if not -14.0 <= utc_offset_h <= 14.0:
            raise ValueError("utc_offset_h must be between -14 and 14 hours")
        self.scales = scales
        self.day_parts, self.day_after, self.weekends = day_parts, day_after, weekends
        self.utc_offset_h = utc_offset_h
        self.deviation, self.deviation_margin = deviation, deviation_margin
        super().__init__(
            n,
            grids=grids,
            order=order,
            warmup=warmup,
            base_threshold=base_threshold,
            rest_period=rest_period,
            rel_floor=rel_floor,
            abs_floor=abs_floor,
            novelty_alpha=novelty_alpha,
        )
        self.tolerance, self.step_alpha, self.step_clip = tolerance, step_alpha, step_clip
        self.records = records
        self._allocate(n)

    def _allocate(self, n: int) -> None:
        """The arrays of the tolerant form's memories, scales, hours and deviation arm."""
        # Step noise and the values seen at fine levels, one row per series and time scale.
        rows = n * self._stride
        self._prev = np.zeros(rows)
        self._step = np.zeros(rows)
        self._fine = np.zeros(rows, dtype=np.uint64)
        # The coarser scales' running blocks, and the series' rest across scales.
        self._scale_lengths = np.asarray(self.scales, dtype=np.int64)
        self._sums = np.zeros((n, len(self.scales)))
        self._rested = np.zeros(n if self.scales else 0, dtype=np.int32)
        # Values seen by time of day: a word of fine levels per part of the day (of weekdays,
        # then of weekends), the recent rate of novelty there, and the clock that counts the
        # days begun.
        days = n if self.day_parts else 0
        words = self.day_parts * (2 if self.weekends else 1)
        self._daily = np.zeros((days, words), dtype=np.uint64)
        self._daily_rate = np.zeros(days)
        self._clock = np.full(days, -1, dtype=np.int32)
        # Values of the current part seen only an hour away, learned when the part ends.
        self._pending = np.zeros(days, dtype=np.uint64)
        # The deviation arm: level, typical deviation, largest recent deviation, points
        # learned (up to its warm-up) and rest.
        # 19 bytes a series: the scales in single precision, the count up to ``Z_WARMUP``.
        arm = n if self.deviation > 0.0 else 0
        self._zmean = np.zeros(arm)
        self._zdev = np.zeros(arm, dtype=np.float32)
        self._zmax = np.zeros(arm, dtype=np.float32)
        self._zcount = np.zeros(arm, dtype=np.uint8)
        self._zrest = np.zeros(arm, dtype=np.int16)

    def arrays(self) -> dict[str, NDArray[Any]]:
        out = super().arrays()
        if self.scales:
            # Views with the series first (writing through them writes the kernel's arrays).
            out = {k: v.reshape(self.n, self._stride, *v.shape[1:]) for k, v in out.items()}
            out |= {"sums": self._sums, "rested": self._rested}
        if self.day_parts:
            out |= {
                "daily": self._daily,
                "daily_rate": self._daily_rate,
                "clock": self._clock,
                "pending": self._pending,
            }
        if self.deviation > 0.0:
            out |= {
                "zmean": self._zmean,
                "zdev": self._zdev,
                "zmax": self._zmax,
                "zcount": self._zcount,
                "zrest": self._zrest,
            }
        return out

    def _memories(self) -> dict[str, NDArray[Any]]:
        return {
            **super()._memories(),
            "prev": self._prev,
            "step": self._step,
            "fine": self._fine,
        }

    def _state(self) -> State:
        # The memories' arrays, then the tolerant form's, in ``State``'s order.
        return State._make(
            (
                *self._memory_arrays(),
                self._prev,
                self._step,
                self._fine,
                self._scale_lengths,
                self._sums,
                self._rested,
                self._daily,
                self._daily_rate,
                self._clock,
                self._pending,
                self._zmean,
                self._zdev,
                self._zmax,
                self._zcount,
                self._zrest,
            )
        )


class TolerantNovelty(OneSeries):
    """One series of ``TolerantNoveltyBatch``.

    >>> import random
    >>> rng = random.Random(7)
    >>> d = TolerantNovelty()
    >>> noise = []
    >>> for t in range(2000):
    ...     v = 100.0 + rng.gauss(0.0, 3.0)
    ...     noise.append(d.score_one(v, float(t)))
    ...     d.learn_one(v, float(t))
    >>> max(noise) < TolerantNovelty.threshold
    True
    >>> d.score_one(160.0, 2000.0) >= TolerantNovelty.threshold
    True
    """

    batch_cls = TolerantNoveltyBatch
