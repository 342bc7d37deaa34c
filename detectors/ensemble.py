"""The default detector: the strongest of several robust surprises, reported once per episode.

Three views of each point are scored against exponentially weighted baselines: its level against a
slow baseline, its level against a fast one, and its step from the previous point against typical
steps. The largest of the three z-scores is the point's surprise. A surprise that does not exceed
the (slowly decaying) peak of recent surprises is discounted, so an episode scores high when it
starts and not on every later point of it: an alert says something new happened.
"""

from __future__ import annotations

import functools
import math
from typing import Any, ClassVar

import numba
import numpy as np
from numpy.typing import NDArray

from detectors.vector import (
    BatchDetector,
    Floats,
    Mask,
    NonNegative,
    OneSeries,
    Positive,
    Weight,
    masked_update,
    z_to_score,
)


class SurpriseEnsembleBatch(BatchDetector):
    """Max of level (slow, fast) and step z-scores, with episode suppression."""

    name: ClassVar[str] = "surprise"
    state_version: ClassVar[int] = 1
    threshold: ClassVar[float] = 0.5
    #: It scores an episode once, where it starts: decide on a single point.
    for_points: ClassVar[int] = 1

    def __init__(
        self,
        n: int = 1,
        slow_alpha: Weight = 0.02,
        fast_alpha: Weight = 0.1,
        warmup: int = 20,
        clip: float = 3.0,
        peak_decay: Weight = 0.999,
        rel_floor: NonNegative = 0.001,
        abs_floor: Positive = 1e-9,
        z_half: Positive = 6.0,
    ) -> None:
        super().__init__(n)
        self.slow_alpha, self.fast_alpha = slow_alpha, fast_alpha
        self.warmup, self.clip, self.peak_decay = warmup, clip, peak_decay
        self.rel_floor, self.abs_floor, self.z_half = rel_floor, abs_floor, z_half
        self._m = np.zeros((n, 3))  # slow mean, fast mean, mean step
        self._v = np.zeros((n, 3))  # their variances
        self._prev = np.zeros(n)
        self._peak = np.zeros(n)
        self._count = np.zeros(n, dtype=np.int64)
        self._alpha = np.array([slow_alpha, fast_alpha, slow_alpha])

    def arrays(self) -> dict[str, NDArray[Any]]:
        return {
            "mean": self._m,
            "var": self._v,
            "prev": self._prev,
            "peak": self._peak,
            "count": self._count,
        }

    def warmed_up_many(self) -> Mask:
        return self._count >= self.warmup

    def _features(self, x: Floats) -> Floats:
        return np.stack([x, x, x - self._prev], axis=1)

    def _scale(self) -> Floats:
        # An exponentially weighted variance that starts at zero underestimates the spread for
        # its first ~1/alpha updates; divide by 1 - (1 - alpha)^k (k updates so far), as one
        # corrects the bias of such averages, so a young series is not judged too strictly.
        updates = np.maximum(self._count[:, None] - np.array([1, 1, 2]), 1)
        sd = np.sqrt(self._v / (1.0 - (1.0 - self._alpha) ** updates))
        level_floor = np.maximum(self.rel_floor * np.abs(self._m[:, :1]), self.abs_floor)
        # The fast baseline is judged with the slow spread: its own shrinks in quiet spells.
        sd = np.maximum(sd, sd[:, :1] * np.array([0.0, 1.0, 0.0]))
        out: Floats = np.maximum(sd, level_floor)
        return out

    def _surprise(self, x: Floats, scale: Floats) -> tuple[Floats, Floats, Floats]:
        """The features, their deviations from the baselines, and the largest z-score."""
        f = self._features(x)
        diff = f - self._m
        z = np.abs(diff) / scale
        z[:, 2] = np.where(self._count >= 2, z[:, 2], 0.0)
        return f, diff, np.max(z, axis=1)

    def _score(self, x: Floats, ts: Floats) -> Floats:
        _, _, z = self._surprise(x, self._scale())
        return z_to_score(np.maximum(z - self._peak, 0.0), self.z_half)

    def _learn(self, x: Floats, ts: Floats, mask: Mask) -> None:
        self._score_learn(x, ts, mask)

    def _score_learn(self, x: Floats, ts: Floats, mask: Mask) -> Floats:
        scale = self._scale()
        f, diff, z = self._surprise(x, scale)
        score = z_to_score(np.maximum(z - self._peak, 0.0), self.z_half)
        ok = mask & np.isfinite(x)
        peak = np.maximum(self._peak * self.peak_decay, np.where(self.warmed_up_many(), z, 0.0))
        first = (self._count == 0)[:, None]
        lim = self.clip * scale
        diff = np.where(self._count[:, None] < 3, diff, np.clip(diff, -lim, lim))
        incr = self._alpha * diff
        m = np.where(first, f, self._m + incr)
        v = np.where(first, 0.0, (1.0 - self._alpha) * (self._v + diff * incr))
        # The step statistics start with the second point.
        second = (self._count == 1)[:, None] & np.array([False, False, True])
        m = np.where(second, f, m)
        v = np.where(second, 0.0, v)
        masked_update(ok, m, self._m)
        masked_update(ok, v, self._v)
        masked_update(ok, x, self._prev)
        masked_update(ok, peak, self._peak)
        self._count += ok
        return score

    # A few series at a time, plain floats are several times cheaper than numpy arrays of a few
    # elements; these follow the array code above step for step (the contract suite and the
    # bank's tests check that both agree).

    #: Up to this many series, ``score_learn_rows`` works row by row with plain floats.
    scalar_rows: ClassVar[int] = 8

    def score_learn_rows(self, rows: NDArray[np.intp], values: Floats, ts: Floats) -> Floats:
        if len(rows) > self.scalar_rows:
            return super().score_learn_rows(rows, values, ts)
        return np.array(
            [
                self.step_row(i, x, learn=True)
                for i, x in zip(rows.tolist(), values.tolist(), strict=True)
            ]
        )

    def score_learn_sequence(self, rows: NDArray[np.intp], values: Floats, ts: Floats) -> Floats:
        """Score then learn each point in turn, ``values[i]`` of series ``rows[i]``: points of
        one series may repeat and are taken in the order given (compiled, see ``_sequence``).
        The times ``ts`` play no part."""
        out = np.empty(len(rows))
        _sequence(
            np.ascontiguousarray(rows, dtype=np.intp),
            np.ascontiguousarray(values, dtype=np.float64),
            self._m, self._v, self._prev, self._peak, self._count,
            self.slow_alpha, self.fast_alpha, _debias(self.slow_alpha), _debias(self.fast_alpha),
            self.warmup, self.clip, self.peak_decay, self.rel_floor, self.abs_floor, self.z_half,
            out,
        )  # fmt: skip
        return out

    def _row_scales(self, m: list[float], v: list[float], count: int) -> list[float]:
        sd = [
            math.sqrt(var / (1.0 - (1.0 - alpha) ** max(count - lag, 1)))
            for var, alpha, lag in zip(
                v, (self.slow_alpha, self.fast_alpha, self.slow_alpha), (1, 1, 2), strict=True
            )
        ]
        sd[1] = max(sd[1], sd[0])
        floor = max(self.rel_floor * abs(m[0]), self.abs_floor)
        return [max(x, floor) for x in sd]

    def step_row(self, i: int, value: float, learn: bool) -> float:
        """Score ``value`` for series ``i`` (0 while warming up) and, with ``learn``, learn it."""
        if not math.isfinite(value):
            return 0.0
        count = int(self._count[i])
        m, v = self._m[i].tolist(), self._v[i].tolist()
        prev, peak = float(self._prev[i]), float(self._peak[i])
        scale = self._row_scales(m, v, count)
        z_level = max(abs(value - m[0]) / scale[0], abs(value - m[1]) / scale[1])
        z_step = abs((value - prev) - m[2]) / scale[2] if count >= 2 else 0.0
        z = max(z_level, z_step)
        score = 0.0
        if count >= self.warmup:
            r = (max(z - peak, 0.0) / self.z_half) ** 2
            score = min(max(r / (1.0 + r), 0.0), 1.0) if math.isfinite(r) else 0.0
        if not learn:
            return score
        peak = max(peak * self.peak_decay, z if count >= self.warmup else 0.0)
        features = (value, value, value - prev)
        alphas = (self.slow_alpha, self.fast_alpha, self.slow_alpha)
        for j in range(3):
            diff = features[j] - m[j]
            if count >= 3:
                lim = self.clip * scale[j]
                diff = min(max(diff, -lim), lim)
            incr = alphas[j] * diff
            starts = count == 0 or (j == 2 and count == 1)
            v[j] = 0.0 if starts else (1.0 - alphas[j]) * (v[j] + diff * incr)
            m[j] = features[j] if starts else m[j] + incr
        self._m[i], self._v[i] = m, v
        self._prev[i], self._peak[i], self._count[i] = value, peak, count + 1
        return score


@functools.cache
def _debias(alpha: float) -> Floats:
    """``1 - (1 - alpha)**k`` for k = 0, 1, ... until it is exactly 1.0 in floating point (at
    most 2**20 entries), computed as ``step_row`` computes it: a lookup instead of a ``pow``."""
    out, k = [], 0
    while k < 1 << 20:
        out.append(1.0 - (1.0 - alpha) ** float(k))
        if out[-1] == 1.0 and k > 0:
            break
        k += 1
    return np.array(out)


@numba.njit(cache=True, nogil=True, inline="always")
def _table(debias: Any, alpha: float, k: int) -> float:
    if k < debias.shape[0] - 1:
        return float(debias[k])
    # Past the table: 1.0 if the table ended there, else computed.
    return 1.0 if debias[-1] == 1.0 else 1.0 - (1.0 - alpha) ** float(k)


@numba.njit(cache=True, nogil=True)
def _sequence(
    rows: Any, xs: Any, m: Any, v: Any, prev: Any, peak: Any, count: Any,
    slow_alpha: float, fast_alpha: float, slow_debias: Any, fast_debias: Any,
    warmup: int, clip: float, peak_decay: float, rel_floor: float, abs_floor: float,
    z_half: float, out: Any,
) -> None:  # fmt: skip
    """``step_row`` (learning) for each point in turn, compiled: no rounds, no temporaries."""
    alphas = (slow_alpha, fast_alpha, slow_alpha)
    for i in range(rows.shape[0]):
        r, x = rows[i], xs[i]
        if not math.isfinite(x):
            out[i] = 0.0
            continue
        c = count[r]
        sd0 = math.sqrt(v[r, 0] / _table(slow_debias, slow_alpha, max(c - 1, 1)))
        sd1 = math.sqrt(v[r, 1] / _table(fast_debias, fast_alpha, max(c - 1, 1)))
        sd2 = math.sqrt(v[r, 2] / _table(slow_debias, slow_alpha, max(c - 2, 1)))
        sd1 = max(sd1, sd0)
        floor = max(rel_floor * abs(m[r, 0]), abs_floor)
        s0, s1, s2 = max(sd0, floor), max(sd1, floor), max(sd2, floor)
        z = max(abs(x - m[r, 0]) / s0, abs(x - m[r, 1]) / s1)
        if c >= 2:
            z = max(z, abs((x - prev[r]) - m[r, 2]) / s2)
        score = 0.0
        if c >= warmup:
            q = (max(z - peak[r], 0.0) / z_half) ** 2
            score = min(max(q / (1.0 + q), 0.0), 1.0) if math.isfinite(q) else 0.0
        out[i] = score
        peak[r] = max(peak[r] * peak_decay, z if c >= warmup else 0.0)
        scales = (s0, s1, s2)
        for j in range(3):
            f = x - prev[r] if j == 2 else x
            diff = f - m[r, j]
            if c >= 3:
                lim = clip * scales[j]
                diff = min(max(diff, -lim), lim)
            incr = alphas[j] * diff
            if c == 0 or (j == 2 and c == 1):
                v[r, j] = 0.0
                m[r, j] = f
            else:
                v[r, j] = (1.0 - alphas[j]) * (v[r, j] + diff * incr)
                m[r, j] = m[r, j] + incr
        prev[r] = x
        count[r] = c + 1


class SurpriseEnsemble(OneSeries):
    """One series of ``SurpriseEnsembleBatch``.

    >>> import random
    >>> rng = random.Random(7)
    >>> d = SurpriseEnsemble()
    >>> quiet = []
    >>> for t in range(200):
    ...     v = 100.0 + rng.gauss(0.0, 3.0)
    ...     quiet.append(d.score_one(v, float(t)))
    ...     d.learn_one(v, float(t))
    >>> max(quiet) < SurpriseEnsemble.threshold, d.score_one(400.0, 200.0) >= d.threshold
    (True, True)
    """

    batch_cls = SurpriseEnsembleBatch
    _batch: SurpriseEnsembleBatch

    def score_one(self, value: float, ts: float) -> float:
        return self._batch.step_row(0, value, learn=False)

    def learn_one(self, value: float, ts: float) -> None:
        self._batch.step_row(0, value, learn=True)
