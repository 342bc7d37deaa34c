"""Rules an operator writes down: static bounds, SLO error-budget burn rates, and absence."""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np
from numpy.typing import NDArray

from detectors.vector import BatchDetector, Floats, Mask, OneSeries, masked_update, ratio_to_score

_DEFAULT_BURN_RULES: list[list[float]] = [[3600.0, 300.0, 14.4], [21600.0, 1800.0, 6.0]]


class StaticThresholdBatch(BatchDetector):
    """1 when the value is above ``upper`` or below ``lower`` (``None`` = no bound), else 0."""

    name: ClassVar[str] = "static_threshold"
    state_version: ClassVar[int] = 1
    threshold: ClassVar[float] = 1.0

    def __init__(self, n: int = 1, lower: float | None = None, upper: float | None = None) -> None:
        super().__init__(n)
        for bound, value in (("lower", lower), ("upper", upper)):
            ok = isinstance(value, int | float) and not isinstance(value, bool)
            if value is not None and not (ok and not math.isnan(value)):
                raise ValueError(f"{bound} must be a number or null, not {value!r}")
        if lower is not None and upper is not None and lower > upper:
            raise ValueError(f"lower ({lower}) is above upper ({upper})")
        self.lower, self.upper = lower, upper

    def arrays(self) -> dict[str, NDArray[Any]]:
        return {}

    def warmed_up_many(self) -> Mask:
        return np.ones(self.n, dtype=np.bool_)

    def _score(self, x: Floats, ts: Floats) -> Floats:
        lo = -math.inf if self.lower is None else self.lower
        hi = math.inf if self.upper is None else self.upper
        return ((x < lo) | (x > hi)).astype(np.float64)

    def _learn(self, x: Floats, ts: Floats, mask: Mask) -> None:
        return None


class StaticThreshold(OneSeries):
    """One series of ``StaticThresholdBatch``.

    >>> d = StaticThreshold(upper=0.9)
    >>> d.score_one(0.5, 0.0), d.score_one(0.95, 1.0)
    (0.0, 1.0)
    """

    batch_cls = StaticThresholdBatch


class SloBurnRateBatch(BatchDetector):
    """Multi-window, multi-burn-rate alerting on an error ratio series (values in [0, 1]).

    The error budget is ``1 - objective``; the burn rate over a window is the mean error ratio
    divided by the budget. Each rule ``[long_s, short_s, factor]`` holds when both windows burn
    faster than ``factor`` (by default 1 h and 5 min at 14.4, 6 h and 30 min at 6: 2% and 5% of a
    30-day budget). Windows are event-time exponential averages with time constant half the
    window, so state stays a few numbers per series. The score is ``r / (1 + r)`` for the best
    rule's ``min(burn_long, burn_short) / factor``: 0.5 exactly when a rule holds. Values
    outside [0, 1] are not error ratios: the worker and the backtest refuse them (``domain``).
    """

    name: ClassVar[str] = "slo_burn_rate"
    state_version: ClassVar[int] = 1
    threshold: ClassVar[float] = 0.5
    domain: ClassVar[tuple[float, float] | None] = (0.0, 1.0)

    def __init__(
        self, n: int = 1, objective: float = 0.999, rules: list[list[float]] | None = None
    ) -> None:
        super().__init__(n)
        if not 0.0 < objective < 1.0:
            raise ValueError("objective must be in (0, 1)")
        self.objective = objective
        self.rules = [list(map(float, r)) for r in (rules or _DEFAULT_BURN_RULES)]
        if any(len(r) != 3 or r[0] <= 0 or r[1] <= 0 or r[2] <= 0 for r in self.rules):
            raise ValueError("each rule is [long_s, short_s, factor], all positive")
        taus = [[r[0] / 2.0, r[1] / 2.0] for r in self.rules]
        self._tau = np.asarray(taus, dtype=np.float64)
        self._factor = np.asarray([r[2] for r in self.rules], dtype=np.float64)
        self._avg = np.zeros((n, len(self.rules), 2))
        self._last = np.zeros(n)
        self._count = np.zeros(n, dtype=np.int64)

    def arrays(self) -> dict[str, NDArray[Any]]:
        return {"avg": self._avg, "last": self._last, "count": self._count}

    def warmed_up_many(self) -> Mask:
        return self._count >= 1

    def _next(self, x: Floats, ts: Floats) -> Floats:
        dt = np.maximum(ts - self._last, 0.0)[:, None, None]
        a = 1.0 - np.exp(-dt / self._tau[None, :, :])
        ratio = np.clip(x, 0.0, 1.0)[:, None, None]
        nxt = self._avg + a * (ratio - self._avg)
        first = (self._count == 0)[:, None, None]
        return np.where(first, np.broadcast_to(ratio, self._avg.shape), nxt)

    def _score(self, x: Floats, ts: Floats) -> Floats:
        burn = self._next(x, ts) / (1.0 - self.objective)
        held = np.min(burn, axis=2) / self._factor[None, :]
        return ratio_to_score(np.max(held, axis=1))

    def _learn(self, x: Floats, ts: Floats, mask: Mask) -> None:
        ok = mask & np.isfinite(x)
        masked_update(ok, self._next(x, ts), self._avg)
        masked_update(ok, np.maximum(ts, self._last), self._last)
        self._count += ok


class SloBurnRate(OneSeries):
    """One series of ``SloBurnRateBatch``.

    >>> d = SloBurnRate(objective=0.999)
    >>> for t in range(0, 3600, 60):
    ...     d.learn_one(0.0, float(t))
    >>> d.score_one(0.0005, 3600.0) < 0.5
    True
    >>> for t in range(3600, 7200, 60):
    ...     d.learn_one(0.05, float(t))
    >>> d.score_one(0.05, 7200.0) >= SloBurnRate.threshold
    True
    """

    batch_cls = SloBurnRateBatch


class AbsenceBatch(BatchDetector):
    """A series that stops reporting: the gap since its last point against its typical gap.

    ``score_at_many(now)`` is what a timer calls (pure: ``now`` is an argument); ``score_many``
    scores the gap before a point that arrives late, so a backtest sees outages as well.
    """

    name: ClassVar[str] = "absence"
    state_version: ClassVar[int] = 1
    threshold: ClassVar[float] = 0.5

    def __init__(
        self, n: int = 1, factor: float = 5.0, alpha: float = 0.05, warmup: int = 5
    ) -> None:
        super().__init__(n)
        if factor <= 0 or not 0.0 < alpha < 1.0:
            raise ValueError("need factor > 0 and 0 < alpha < 1")
        self.factor, self.alpha, self.warmup = factor, alpha, warmup
        self._last = np.zeros(n)
        self._gap = np.zeros(n)
        self._count = np.zeros(n, dtype=np.int64)

    def arrays(self) -> dict[str, NDArray[Any]]:
        return {"last": self._last, "gap": self._gap, "count": self._count}

    def warmed_up_many(self) -> Mask:
        return self._count >= self.warmup

    def score_at_many(self, now: float) -> Floats:
        """Overdue score of every series at ``now`` (0 while warming up)."""
        gap = np.maximum(now - self._last, 0.0)
        r = gap / (self.factor * np.maximum(self._gap, 1e-9))
        return np.where(self.warmed_up_many(), ratio_to_score(r), 0.0)

    def _score(self, x: Floats, ts: Floats) -> Floats:
        gap = np.maximum(ts - self._last, 0.0)
        return ratio_to_score(gap / (self.factor * np.maximum(self._gap, 1e-9)))

    def _learn(self, x: Floats, ts: Floats, mask: Mask) -> None:
        gap = np.maximum(ts - self._last, 0.0)
        first_gap = self._count == 1
        nxt = np.where(first_gap, gap, self._gap + self.alpha * (gap - self._gap))
        masked_update(mask & (self._count >= 1), nxt, self._gap)
        masked_update(mask, np.maximum(ts, self._last), self._last)
        self._count += mask


class Absence(OneSeries):
    """One series of ``AbsenceBatch``.

    >>> d = Absence()
    >>> for t in range(0, 600, 60):
    ...     d.learn_one(1.0, float(t))
    >>> d.score_at(600.0) < 0.5 <= d.score_at(540.0 + 5 * 60.0)
    True
    """

    batch_cls = AbsenceBatch

    def score_at(self, now: float) -> float:
        """Overdue score at ``now``, for a timer when no point arrives."""
        batch = self._batch
        assert isinstance(batch, AbsenceBatch)
        return float(batch.score_at_many(now)[0])
