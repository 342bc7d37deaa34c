"""Seasonal baseline: z-score against the same hour of the week (or day) in past periods."""

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
    Weight,
    z_to_score,
)


class SeasonalBatch(BatchDetector):
    """Per time slot (``bucket_s`` wide, repeating every ``period_s``) EWMA mean and variance.

    The default slots are the 168 hours of the week (UTC); ``period_s=86400`` gives hours of
    the day. A slot scores once it has ``slot_warmup`` observations; its spread is floored by
    ``global_floor`` times the series' overall spread, so a slot seen in a quiet week does not
    make every later wiggle an anomaly.
    """

    name: ClassVar[str] = "seasonal"
    state_version: ClassVar[int] = 1
    threshold: ClassVar[float] = 0.6

    def __init__(
        self,
        n: int = 1,
        period_s: float = 604800.0,
        bucket_s: float = 3600.0,
        alpha: Weight = 0.2,
        global_alpha: Weight = 0.01,
        slot_warmup: int = 2,
        warmup: int = 20,
        global_floor: NonNegative = 0.25,
        rel_floor: NonNegative = 0.001,
        abs_floor: Positive = 1e-9,
    ) -> None:
        super().__init__(n)
        if bucket_s <= 0 or period_s < bucket_s:
            raise ValueError("need 0 < bucket_s <= period_s")
        self.period_s, self.bucket_s = period_s, bucket_s
        self.alpha, self.global_alpha = alpha, global_alpha
        self.slot_warmup, self.warmup, self.global_floor = slot_warmup, warmup, global_floor
        self.rel_floor, self.abs_floor = rel_floor, abs_floor
        slots = round(period_s / bucket_s)
        self._mean = np.zeros((n, slots))
        self._var = np.zeros((n, slots))
        self._slot_n = np.zeros((n, slots), dtype=np.int64)
        self._g = np.zeros((n, 2))  # overall mean, variance
        self._count = np.zeros(n, dtype=np.int64)

    def arrays(self) -> dict[str, NDArray[Any]]:
        return {
            "mean": self._mean,
            "var": self._var,
            "slot_n": self._slot_n,
            "overall": self._g,
            "count": self._count,
        }

    def warmed_up_many(self) -> Mask:
        return self._count >= self.warmup

    def _slot(self, ts: Floats) -> NDArray[np.int64]:
        slots = self._mean.shape[1]
        idx = np.floor(np.mod(ts, self.period_s) / self.bucket_s).astype(np.int64)
        return np.clip(idx, 0, slots - 1)

    def _score(self, x: Floats, ts: Floats) -> Floats:
        s, rows = self._slot(ts), np.arange(self.n)
        mean, var, seen = (
            self._mean[rows, s],
            self._var[rows, s],
            self._slot_n[rows, s],
        )
        floor = np.maximum.reduce(
            [
                self.global_floor * np.sqrt(self._g[:, 1]),
                self.rel_floor * np.abs(self._g[:, 0]),
                np.full(self.n, self.abs_floor),
            ]
        )
        z = (x - mean) / np.maximum(np.sqrt(var), floor)
        return np.where(seen >= self.slot_warmup, z_to_score(z), 0.0)

    def _learn(self, x: Floats, ts: Floats, mask: Mask) -> None:
        ok = mask & np.isfinite(x)
        rows, s = np.arange(self.n)[ok], self._slot(ts)[ok]
        xv = x[ok]
        seen = self._slot_n[rows, s]
        mean, var = self._mean[rows, s], self._var[rows, s]
        diff = xv - mean
        incr = self.alpha * diff
        self._mean[rows, s] = np.where(seen == 0, xv, mean + incr)
        self._var[rows, s] = np.where(seen == 0, 0.0, (1 - self.alpha) * (var + diff * incr))
        self._slot_n[rows, s] = seen + 1
        g = self._g[rows]
        gd = xv - g[:, 0]
        gi = self.global_alpha * gd
        first = self._count[rows] == 0
        self._g[rows, 0] = np.where(first, xv, g[:, 0] + gi)
        self._g[rows, 1] = np.where(first, 0.0, (1 - self.global_alpha) * (g[:, 1] + gd * gi))
        self._count[rows] += 1


class Seasonal(OneSeries):
    """One series of ``SeasonalBatch``."""

    batch_cls = SeasonalBatch
