"""Transition novelty: has the series ever moved between these coarse levels in this order?

A value becomes one of ``2**value_bits`` equal levels over the series' range, and the detector
remembers, as bit sets, every level, every pair of consecutive levels and so on up to sequences of
``order`` levels that it has seen. A point's score is the share of those sequences ending with it
that were never seen before: 1 for a level never reached, ``(order - 1) / order`` for a known level
reached by a new step, less for a new longer sequence of known steps. A score of
``base_threshold`` or more silences the next ``rest_period`` points: one alert per episode.

This keeps the core of the Contextual Anomaly Detector (novel contexts of coarse levels) in a
fixed few bytes per series, so many series are scored at once. The range cannot be known in
advance: it is the minimum and maximum of the first ``warmup`` points and afterwards only
widens, by doubling the span towards a value beyond it. Doubling merges pairs of old levels
exactly, so the remembered sequences are carried over rather than scrambled.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
from numpy.typing import NDArray

from detectors.vector import BatchDetector, Floats, Mask, OneSeries, masked_update

Ints = NDArray[np.int64]


def _carry(levels: int, order: int, bits: int) -> Ints:
    """Where each remembered sequence moves when the span doubles ``1..bits`` times.

    Row ``s - 1`` is for ``s`` doublings upwards (level ``c`` becomes ``c >> s``), row
    ``bits + s - 1`` for ``s`` doublings downwards (``c`` becomes ``levels - ceil((levels - c)
    / 2**s)``). Columns index the flat table: sequences of length 1, then 2, ... then ``order``.
    """
    code = np.arange(levels)
    up = [code >> s for s in range(1, bits + 1)]
    down = [levels - -((code - levels) >> s) for s in range(1, bits + 1)]
    rows = []
    for moved in up + down:
        parts, offset = [], 0
        for k in range(1, order + 1):
            flat = np.arange(levels**k)
            digits = [(flat // levels**j) % levels for j in range(k)]
            parts.append(offset + sum(moved[d] * levels**j for j, d in enumerate(digits)))
            offset += levels**k
        rows.append(np.concatenate(parts))
    return np.asarray(rows, dtype=np.int64)


class TransitionNoveltyBatch(BatchDetector):
    """Share of never-seen coarse-level sequences ending at each point, one alert per episode."""

    name: ClassVar[str] = "transition_novelty"
    state_version: ClassVar[int] = 1
    #: A known level reached by a new step scores ``(order - 1) / order``: 2/3 by default.
    threshold: ClassVar[float] = 0.6
    #: It silences the points after an alert itself: decide on a single point.
    for_points: ClassVar[int] = 1

    def __init__(
        self,
        n: int = 1,
        value_bits: int = 3,
        order: int = 3,
        warmup: int = 30,
        base_threshold: float = 0.6,
        rest_period: int = 120,
        rel_floor: float = 0.001,
        abs_floor: float = 1e-9,
        novelty_alpha: float = 0.01,
    ) -> None:
        super().__init__(n)
        if value_bits not in (3, 4) or not 1 <= order <= 4:
            raise ValueError("value_bits must be 3 or 4 and order between 1 and 4")
        if not 0.0 < novelty_alpha <= 1.0:
            raise ValueError("novelty_alpha must be in (0, 1]")
        if warmup < order or rest_period < 0:
            raise ValueError("warmup must be at least order and rest_period not negative")
        self.value_bits, self.order, self.warmup = value_bits, order, warmup
        self.base_threshold, self.rest_period = base_threshold, rest_period
        self.rel_floor, self.abs_floor = rel_floor, abs_floor
        self.novelty_alpha = novelty_alpha
        self._levels = 1 << value_bits
        sizes = [self._levels**k for k in range(1, order + 1)]
        self._offsets = np.cumsum([0, *sizes[:-1]]).astype(np.int64)
        self._bits = sum(sizes)
        self._carry = _carry(self._levels, order, value_bits)
        self._seen = np.zeros((n, -(-self._bits // 8)), dtype=np.uint8)  # bit sets, packed
        self._recent = np.zeros((n, order - 1), dtype=np.int64)  # last levels, oldest first
        self._lo = np.zeros(n)
        self._span = np.zeros(n)
        self._count = np.zeros(n, dtype=np.int64)
        self._quiet = np.zeros(n, dtype=np.int64)
        self._rate = np.ones(n)  # recent novelty: a young memory finds everything new
        self._rows = np.arange(n)

    def params(self) -> dict[str, Any]:
        return {
            "value_bits": self.value_bits,
            "order": self.order,
            "warmup": self.warmup,
            "base_threshold": self.base_threshold,
            "rest_period": self.rest_period,
            "rel_floor": self.rel_floor,
            "abs_floor": self.abs_floor,
            "novelty_alpha": self.novelty_alpha,
        }

    def arrays(self) -> dict[str, NDArray[Any]]:
        return {
            "seen": self._seen,
            "recent": self._recent,
            "lo": self._lo,
            "span": self._span,
            "count": self._count,
            "quiet": self._quiet,
            "rate": self._rate,
        }

    def warmed_up_many(self) -> Mask:
        return self._count >= self.warmup

    def _doublings(self, x: Floats) -> tuple[Ints, Ints] | None:
        """How often the span must double up and down so that the range holds ``x``.

        None when no warmed-up series needs it, which is nearly always.
        """
        top = self._lo + self._span
        fixed = self.warmed_up_many() & np.isfinite(x)
        outside = fixed & ((x > top) | (x < self._lo))
        if not outside.any():
            return None
        span = np.where(self._span > 0, self._span, 1.0)
        above = np.where(outside & (x > top), (x - self._lo) / span, 1.0)
        below = np.where(outside & (x < self._lo), (top - x) / span, 1.0)
        up = np.ceil(np.log2(np.maximum(above, 1.0))).astype(np.int64)
        down = np.ceil(np.log2(np.maximum(below, 1.0))).astype(np.int64)
        return up, down

    def _widened(self, moves: tuple[Ints, Ints] | None) -> tuple[Floats, Floats, Ints]:
        """Range and last levels after the doublings."""
        if moves is None:
            return self._lo, self._span, self._recent
        up, down = moves
        lo: Floats = self._lo - self._span * (np.exp2(down) - 1.0)
        span: Floats = self._span * np.exp2(up + down)
        recent = self._recent >> np.minimum(up, self.value_bits)[:, None]
        shift = np.minimum(down, self.value_bits)[:, None]
        ceil_half = (self._levels - recent + np.left_shift(1, shift) - 1) >> shift
        recent = np.asarray(self._levels - ceil_half, dtype=np.int64)
        return lo, span, recent

    def _sequences(self, x: Floats, lo: Floats, span: Floats, recent: Ints) -> tuple[Ints, Ints]:
        """The level of ``x`` and the flat table index of each sequence ending with it."""
        scaled = (x - lo) / np.where(span > 0, span, 1.0) * self._levels
        scaled = np.where(np.isfinite(scaled), scaled, 0.0)
        level = np.clip(np.floor(scaled), 0, self._levels - 1).astype(np.int64)
        index = np.empty((self.n, self.order), dtype=np.int64)
        flat = level
        index[:, 0] = flat
        for k in range(1, self.order):
            flat = flat + recent[:, self.order - 1 - k] * self._levels**k
            index[:, k] = self._offsets[k] + flat
        return level, index

    def _novelty(self, x: Floats) -> Floats:
        """Share of the sequences ending with ``x`` that were never seen."""
        moves = self._doublings(x)
        lo, span, recent = self._widened(moves)
        _, index = self._sequences(x, lo, span, recent)
        return self._novelty_of(x, moves, index)

    def _novelty_of(self, x: Floats, moves: tuple[Ints, Ints] | None, index: Ints) -> Floats:
        """``_novelty`` from the doublings and the table indexes it found for ``x``."""
        bits = self._seen[self._rows[:, None], index >> 3] >> (index & 7).astype(np.uint8)
        score = np.mean((bits & 1) == 0, axis=1)
        if moves is not None:
            # A value beyond the range lands in a level the doubled range has never held.
            score = np.where((moves[0] > 0) | (moves[1] > 0), 1.0, score)
        out: Floats = np.where(np.isfinite(x), score, 0.0)
        return out

    def _score(self, x: Floats, ts: Floats) -> Floats:
        # Novelty counts as much as the memory is usually right: while recent points were often
        # new (a young memory, a noisy spell), one more new sequence is little news.
        score = self._novelty(x) * (1.0 - self._rate)
        out: Floats = np.where(self._quiet > 0, 0.0, score)
        return out

    def _carry_over(self, moves: tuple[Ints, Ints], ok: Mask) -> None:
        """Move the widened series' remembered sequences to the new range's levels."""
        up, down = moves
        for i in np.flatnonzero(ok & ((up > 0) | (down > 0))):
            bits = np.unpackbits(self._seen[i], count=self._bits, bitorder="little")
            for steps, side in ((up[i], 0), (down[i], self.value_bits)):
                if steps > 0:
                    moved = np.zeros_like(bits)
                    moved[self._carry[side + min(int(steps), self.value_bits) - 1][bits == 1]] = 1
                    bits = moved
            self._seen[i] = np.packbits(bits, bitorder="little")

    def _learn(self, x: Floats, ts: Floats, mask: Mask) -> None:
        self._score_learn(x, ts, mask)

    def _score_learn(self, x: Floats, ts: Floats, mask: Mask) -> Floats:
        ok = mask & np.isfinite(x)
        warm = self.warmed_up_many()
        moves = self._doublings(x)
        lo, span, recent = self._widened(moves)
        level, index = self._sequences(x, lo, span, recent)
        novelty = self._novelty_of(x, moves, index)
        score = np.where(warm & (self._quiet == 0), novelty * (1.0 - self._rate), 0.0)
        rate = self._rate + self.novelty_alpha * (novelty - self._rate)
        masked_update(ok & warm, rate, self._rate)
        if moves is not None:
            self._carry_over(moves, ok)
        # Until the warm-up ends the range is the running minimum and maximum.
        if not warm.all():
            fresh = self._count == 0
            low = np.where(fresh, x, np.fmin(self._lo, x))
            high = np.where(fresh, x, np.fmax(self._lo + self._span, x))
            floor = np.maximum(self.rel_floor * np.abs(low), self.abs_floor)
            lo = np.where(warm, lo, low)
            span = np.where(warm, span, np.maximum(high - low, floor))
            level, index = self._sequences(x, lo, span, recent)
        learn = self._rows[ok & warm]
        if learn.size:
            # Each sequence length has its own bytes (levels are 8 or 16), so no byte repeats.
            at = index[learn]
            rows = learn[:, None]
            self._seen[rows, at >> 3] |= np.left_shift(1, at & 7).astype(np.uint8)
        quiet = np.where(
            score >= self.base_threshold, self.rest_period, np.maximum(self._quiet - 1, 0)
        )
        masked_update(ok, quiet, self._quiet)
        masked_update(ok, np.concatenate([recent[:, 1:], level[:, None]], axis=1), self._recent)
        masked_update(ok, lo, self._lo)
        masked_update(ok, span, self._span)
        self._count += ok
        out: Floats = score
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


_CODES = np.arange(8)


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
    it changes. Eight levels, so the successors of each context are one byte.
    """

    name: ClassVar[str] = "tolerant_novelty"
    state_version: ClassVar[int] = 1
    threshold: ClassVar[float] = 0.6
    for_points: ClassVar[int] = 1

    def __init__(
        self,
        n: int = 1,
        tolerance: float = 3.0,
        step_alpha: float = 0.01,
        step_clip: float = 3.0,
        value_bits: int = 3,
        order: int = 3,
        warmup: int = 30,
        base_threshold: float = 0.6,
        rest_period: int = 120,
        rel_floor: float = 0.001,
        abs_floor: float = 1e-9,
        novelty_alpha: float = 0.01,
    ) -> None:
        if value_bits != 3:
            raise ValueError("value_bits must be 3: one byte holds a context's successors")
        if tolerance < 0.0 or not 0.0 < step_alpha <= 1.0 or step_clip <= 0.0:
            raise ValueError("tolerance must be >= 0, step_alpha in (0, 1], step_clip > 0")
        super().__init__(
            n,
            value_bits=value_bits,
            order=order,
            warmup=warmup,
            base_threshold=base_threshold,
            rest_period=rest_period,
            rel_floor=rel_floor,
            abs_floor=abs_floor,
            novelty_alpha=novelty_alpha,
        )
        self.tolerance, self.step_alpha, self.step_clip = tolerance, step_alpha, step_clip
        self._prev = np.zeros(n)
        self._step = np.zeros(n)  # mean absolute step

    def params(self) -> dict[str, Any]:
        return {
            **super().params(),
            "tolerance": self.tolerance,
            "step_alpha": self.step_alpha,
            "step_clip": self.step_clip,
        }

    def arrays(self) -> dict[str, NDArray[Any]]:
        return {**super().arrays(), "prev": self._prev, "step": self._step}

    def _novelty_of(self, x: Floats, moves: tuple[Ints, Ints] | None, index: Ints) -> Floats:
        """Share of the sequence lengths at which ``x`` is new within the tolerance.

        Asked of the memory as it is (before any widening), so ``moves`` and ``index`` are not
        needed: a value that widens the range is judged against the range it widens.
        """
        span = np.where(self._span > 0, self._span, 1.0)
        width = span / self._levels
        delta = self.tolerance * self._step
        beyond = (x - delta > self._lo + span) | (x + delta < self._lo)
        top = self._levels - 1
        first = np.clip(np.floor((x - delta - self._lo) / width), 0, top)
        last = np.clip(np.floor((x + delta - self._lo) / width), 0, top)
        near = (first[:, None] <= _CODES) & (last[:, None] >= _CODES)
        mask = np.packbits(near, axis=1, bitorder="little")[:, 0]
        # A previous value is taken at the centre of its remembered level: the levels that come
        # within the tolerance of that centre.
        reach = np.floor(delta / width + 0.5)
        context = [
            np.abs(_CODES - self._recent[:, j, None]) <= reach[:, None]
            for j in range(self.order - 1)
        ]
        new = np.zeros(self.n)
        for k in range(1, self.order + 1):
            start = int(self._offsets[k - 1]) >> 3
            block = self._seen[:, start : start + self._levels ** (k - 1)]
            if k > 1:
                chosen = context[self.order - k]  # the oldest previous level this length uses
                for c in context[self.order - k + 1 :]:
                    chosen = (chosen[:, :, None] & c[:, None, :]).reshape(self.n, -1)
                block = np.where(chosen, block, 0)
            successors = np.bitwise_or.reduce(block, axis=1)
            new += (successors & mask) == 0
        out: Floats = np.where(beyond, 1.0, new / self.order)
        return np.where(np.isfinite(x), out, 0.0)

    def _score_learn(self, x: Floats, ts: Floats, mask: Mask) -> Floats:
        ok = mask & np.isfinite(x)
        steps = self._count.copy()  # steps seen including this one, where there was a point
        score = super()._score_learn(x, ts, mask)
        size = np.abs(x - self._prev)
        size = np.where(steps >= self.warmup, np.minimum(size, self.step_clip * self._step), size)
        weight = np.maximum(self.step_alpha, 1.0 / np.maximum(steps, 1))
        step = np.where(steps >= 1, self._step + weight * (size - self._step), 0.0)
        masked_update(ok, step, self._step)
        masked_update(ok, x, self._prev)
        return score


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
