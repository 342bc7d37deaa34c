"""Robust EWMA z-scores: of the value (level) and of its rate of change per second."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
from numpy.typing import NDArray

from detectors.vector import (
    BatchDetector,
    Floats,
    Mask,
    NonNegative,
    OneSeries,
    Positive,
    masked_update,
    z_to_score,
)


class _EwmaStats:
    """Exponentially weighted mean and variance per series, with Huber-clipped updates."""

    def __init__(self, n: int, alpha: float, clip: float) -> None:
        self.alpha = alpha
        self.clip = clip
        self.mean = np.zeros(n)
        self.var = np.zeros(n)
        self.count = np.zeros(n, dtype=np.int64)

    def scale(self, rel_floor: float, abs_floor: float) -> Floats:
        floor = np.maximum(rel_floor * np.abs(self.mean), abs_floor)
        return np.maximum(np.sqrt(self.var), floor)

    def update(self, x: Floats, mask: Mask, scale: Floats) -> None:
        first = self.count == 0
        diff = x - self.mean
        # Clip the step at ``clip`` sigmas once there is a baseline, so one outlier barely moves
        # it while a lasting shift is followed within a few dozen points.
        lim = self.clip * scale
        diff = np.where(first | (self.count < 3), diff, np.clip(diff, -lim, lim))
        incr = self.alpha * diff
        mean = np.where(first, x, self.mean + incr)
        var = np.where(first, 0.0, (1.0 - self.alpha) * (self.var + diff * incr))
        ok = mask & np.isfinite(x)
        masked_update(ok, mean, self.mean)
        masked_update(ok, var, self.var)
        self.count += ok


class EwmaZBatch(BatchDetector):
    """``z = |x - mean| / sd`` with an exponentially weighted mean and sd, as ``z_to_score(z)``:
    0.5 at four sigmas, and (unlike ``erf``) still ranking deviations far beyond that.

    The cheapest detector here: a handful of array operations per point for all series.
    """

    name: ClassVar[str] = "ewma"
    state_version: ClassVar[int] = 1
    threshold: ClassVar[float] = 0.5

    def __init__(
        self,
        n: int = 1,
        alpha: float = 0.03,
        warmup: int = 20,
        clip: float = 4.0,
        rel_floor: NonNegative = 0.001,
        abs_floor: Positive = 1e-9,
    ) -> None:
        super().__init__(n)
        if not 0.0 < alpha < 1.0:
            raise ValueError("alpha must be in (0, 1)")
        self.alpha, self.warmup, self.clip = alpha, warmup, clip
        self.rel_floor, self.abs_floor = rel_floor, abs_floor
        self._s = _EwmaStats(n, alpha, clip)

    def arrays(self) -> dict[str, NDArray[Any]]:
        return {"mean": self._s.mean, "var": self._s.var, "count": self._s.count}

    def warmed_up_many(self) -> Mask:
        return self._s.count >= self.warmup

    def _score(self, x: Floats, ts: Floats) -> Floats:
        z = (x - self._s.mean) / self._s.scale(self.rel_floor, self.abs_floor)
        return z_to_score(z)

    def _learn(self, x: Floats, ts: Floats, mask: Mask) -> None:
        self._s.update(x, mask, self._s.scale(self.rel_floor, self.abs_floor))


class EwmaZ(OneSeries):
    """One series of ``EwmaZBatch``.

    >>> d = EwmaZ(warmup=10)
    >>> for i in range(40):
    ...     d.learn_one(100.0 + (i % 3), float(i))
    >>> d.score_one(101.0, 40.0) < 0.9, d.score_one(400.0, 40.0) >= EwmaZ.threshold
    (True, True)
    """

    batch_cls = EwmaZBatch


class RateOfChangeBatch(BatchDetector):
    """EWMA z-score of the rate of change ``(x - x_prev) / (t - t_prev)``: sudden moves."""

    name: ClassVar[str] = "rate_of_change"
    state_version: ClassVar[int] = 1
    threshold: ClassVar[float] = 0.7

    def __init__(
        self,
        n: int = 1,
        alpha: float = 0.03,
        warmup: int = 20,
        clip: float = 4.0,
        abs_floor: Positive = 1e-9,
    ) -> None:
        super().__init__(n)
        if not 0.0 < alpha < 1.0:
            raise ValueError("alpha must be in (0, 1)")
        self.alpha, self.warmup, self.clip, self.abs_floor = alpha, warmup, clip, abs_floor
        self._s = _EwmaStats(n, alpha, clip)
        self._prev_x = np.zeros(n)
        self._prev_t = np.zeros(n)
        self._seen = np.zeros(n, dtype=np.int64)

    def arrays(self) -> dict[str, NDArray[Any]]:
        return {
            "mean": self._s.mean,
            "var": self._s.var,
            "count": self._s.count,
            "prev_x": self._prev_x,
            "prev_t": self._prev_t,
            "seen": self._seen,
        }

    def warmed_up_many(self) -> Mask:
        return self._s.count >= self.warmup

    def _rate(self, x: Floats, ts: Floats) -> Floats:
        dt = np.maximum(ts - self._prev_t, 1.0)
        return (x - self._prev_x) / dt

    def _score(self, x: Floats, ts: Floats) -> Floats:
        scale = self._s.scale(0.0, self.abs_floor)
        return z_to_score((self._rate(x, ts) - self._s.mean) / scale)

    def _learn(self, x: Floats, ts: Floats, mask: Mask) -> None:
        ok = mask & np.isfinite(x)
        self._s.update(self._rate(x, ts), ok & (self._seen > 0), self._s.scale(0.0, self.abs_floor))
        masked_update(ok, x, self._prev_x)
        masked_update(ok, ts, self._prev_t)
        self._seen += ok


class RateOfChange(OneSeries):
    """One series of ``RateOfChangeBatch``."""

    batch_cls = RateOfChangeBatch
