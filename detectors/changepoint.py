"""Level shifts: a two-sided CUSUM on standardized values that re-baselines after each shift."""

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
    masked_update,
    ratio_to_score,
)


class CusumBatch(BatchDetector):
    """Page's CUSUM: ``S+ = max(0, S+ + z - k)``, ``S- = max(0, S- - z - k)``.

    ``z`` is the value standardized by a slow EWMA baseline. The score is ``S / (S + h)``: 0.5
    when the larger sum reaches ``h`` (a shift of ``k`` sigmas sustained for ``h / k`` points, or
    a large one at once). After a shift is found, the baseline restarts at the new level.
    """

    name: ClassVar[str] = "cusum"
    state_version: ClassVar[int] = 1
    threshold: ClassVar[float] = 0.55

    def __init__(
        self,
        n: int = 1,
        alpha: Weight = 0.01,
        k: float = 0.5,
        h: float = 8.0,
        warmup: int = 20,
        rel_floor: NonNegative = 0.001,
        abs_floor: Positive = 1e-9,
    ) -> None:
        super().__init__(n)
        if k < 0 or h <= 0:
            raise ValueError("need k >= 0 and h > 0")
        self.alpha, self.k, self.h, self.warmup = alpha, k, h, warmup
        self.rel_floor, self.abs_floor = rel_floor, abs_floor
        self._mean = np.zeros(n)
        self._var = np.zeros(n)
        self._sums = np.zeros((n, 2))
        self._count = np.zeros(n, dtype=np.int64)

    def arrays(self) -> dict[str, NDArray[Any]]:
        return {"mean": self._mean, "var": self._var, "sums": self._sums, "count": self._count}

    def warmed_up_many(self) -> Mask:
        return self._count >= self.warmup

    def _next_sums(self, x: Floats) -> Floats:
        scale = np.maximum(
            np.sqrt(self._var), np.maximum(self.rel_floor * np.abs(self._mean), self.abs_floor)
        )
        z = (x - self._mean) / scale
        up = np.maximum(0.0, self._sums[:, 0] + z - self.k)
        down = np.maximum(0.0, self._sums[:, 1] - z - self.k)
        return np.stack([up, down], axis=1)

    def _score(self, x: Floats, ts: Floats) -> Floats:
        return ratio_to_score(np.max(self._next_sums(x), axis=1) / self.h)

    def _learn(self, x: Floats, ts: Floats, mask: Mask) -> None:
        ok = mask & np.isfinite(x)
        warm = self.warmed_up_many()
        sums = np.where(warm[:, None], self._next_sums(x), 0.0)
        shifted = np.max(sums, axis=1) >= self.h
        first = self._count == 0
        diff = x - self._mean
        incr = self.alpha * diff
        mean = np.where(first | shifted, x, self._mean + incr)
        var = np.where(first, 0.0, (1 - self.alpha) * (self._var + diff * incr))
        var = np.where(shifted, self._var, var)
        sums = np.where(shifted[:, None], 0.0, sums)
        masked_update(ok, mean, self._mean)
        masked_update(ok, var, self._var)
        masked_update(ok, sums, self._sums)
        self._count += ok


class Cusum(OneSeries):
    """One series of ``CusumBatch``."""

    batch_cls = CusumBatch
