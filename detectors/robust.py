"""Robust z-score over a sliding window: distance from the median in units of the MAD."""

from __future__ import annotations

import math
from collections import deque
from typing import Any, ClassVar, Self

import numpy as np

from detectors.base import Hyperparameters, check_version

# 1.4826 * MAD estimates the standard deviation of normally distributed data, as does
# 1.2533 * the mean absolute deviation from the median (sqrt(pi / 2)).
_MAD_TO_SIGMA = 1.4826
_MEAN_AD_TO_SIGMA = 1.2533


class MedianMad(Hyperparameters):
    """Score a value by its robust z-score against the last ``window`` values.

    ``z = |x - median| / (1.4826 * MAD)``, mapped to [0, 1] with ``erf(z / sqrt(2))``, the
    probability mass of a normal distribution within ``z`` sigmas. ``min_scale`` floors the
    scale so that a perfectly flat series does not make every wiggle infinitely anomalous;
    it is relative to the median's magnitude (``rel_floor``) plus an absolute ``abs_floor``.

    When more than half the window holds one value (a count that is mostly 0, a gauge that
    mostly sits still), the MAD is 0 and every other value would be infinitely far. The scale
    is then the mean absolute deviation from the median, as in Iglewicz and Hoaglin's modified
    z-score: a count that is 1 two times in five is not an outlier at 1, but is at 10.

    >>> d = MedianMad(window=20, warmup=10)
    >>> for i in range(30):
    ...     d.learn_one(100.0 + (i % 5), float(i))
    >>> d.score_one(101.0, 30.0) < 0.9
    True
    >>> d.score_one(500.0, 30.0) > 0.9999
    True
    """

    name: ClassVar[str] = "median_mad"
    state_version: ClassVar[int] = 1
    threshold: ClassVar[float] = 0.99999

    def __init__(
        self,
        window: int = 60,
        warmup: int = 20,
        rel_floor: float = 0.01,
        abs_floor: float = 1e-9,
    ) -> None:
        if window < 3:
            raise ValueError("window must be at least 3")
        if not 1 <= warmup <= window:
            raise ValueError("warmup must be between 1 and window")
        self.window = window
        self.warmup = warmup
        self.rel_floor = rel_floor
        self.abs_floor = abs_floor
        self._values: deque[float] = deque(maxlen=window)

    @property
    def warmed_up(self) -> bool:
        return len(self._values) >= self.warmup

    def baseline(self) -> tuple[float, float]:
        """The current (median, sigma estimate) of the window."""
        arr = np.fromiter(self._values, dtype=np.float64, count=len(self._values))
        med = float(np.median(arr))
        deviations = np.abs(arr - med)
        mad = float(np.median(deviations))
        spread = _MAD_TO_SIGMA * mad if mad > 0.0 else _MEAN_AD_TO_SIGMA * float(deviations.mean())
        return med, max(spread, self.rel_floor * abs(med), self.abs_floor)

    def score_one(self, value: float, ts: float) -> float:
        if not self.warmed_up:
            return 0.0
        med, scale = self.baseline()
        z = abs(value - med) / scale
        return math.erf(z / math.sqrt(2.0))

    def learn_one(self, value: float, ts: float) -> None:
        self._values.append(float(value))

    def to_state(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.state_version,
            "params": self.params(),
            "values": list(self._values),
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Self:
        check_version(state, cls.name, cls.state_version)
        detector = cls(**state["params"])
        detector._values.extend(float(v) for v in state["values"])
        return detector
