"""Deciding, separate from scoring: threshold, for-duration, hysteresis and repeat cooldown."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Self

from schemas import DetectionSeverity


@dataclass(frozen=True)
class Decision:
    """The policy decided to emit a detection for this point (``resolved``: the series'
    episode ended on it; ``decide`` itself returns only firing decisions)."""

    score: float
    severity: DetectionSeverity
    impact_started_at: float
    repeat: bool
    resolved: bool = False


class ThresholdPolicy:
    """Fire when the score stays at or above ``threshold`` for ``for_points`` points in a row.

    An episode starts at the first point of that run (the impact start) and stays active until
    ``clear_points`` points in a row fall below ``clear_threshold`` (hysteresis). While active, it
    fires again at most every ``repeat_s`` seconds of event time, so the incident learns that the
    signal is still bad without a flood.

    >>> p = ThresholdPolicy(threshold=0.9, for_points=2, clear_points=2)
    >>> [p.decide(s, float(t)) is not None for t, s in enumerate([0.1, 0.95, 0.97, 0.99, 0.1, 0.1])]
    [False, False, True, False, False, False]
    >>> p.decide(0.1, 6.0) is None and not p.active
    True
    """

    state_version = 1

    def __init__(
        self,
        threshold: float = 0.9999,
        for_points: int = 2,
        clear_threshold: float | None = None,
        clear_points: int = 3,
        repeat_s: float = 300.0,
        critical_score: float = 0.999999,
    ) -> None:
        if not 0.0 < threshold <= 1.0:
            raise ValueError("threshold must be in (0, 1]")
        if for_points < 1 or clear_points < 1:
            raise ValueError("for_points and clear_points must be at least 1")
        if clear_threshold is not None and not 0.0 <= clear_threshold <= threshold:
            raise ValueError("clear_threshold must be between 0 and threshold (hysteresis)")
        if repeat_s <= 0.0:
            raise ValueError("repeat_s must be above 0")
        if not 0.0 < critical_score <= 1.0:
            raise ValueError("critical_score must be in (0, 1]")
        self.threshold = threshold
        self.for_points = for_points
        self.clear_threshold = threshold if clear_threshold is None else clear_threshold
        self.clear_points = clear_points
        self.repeat_s = repeat_s
        self.critical_score = critical_score
        self.run = 0
        self.run_started_at: float | None = None
        self.calm = 0
        self.active = False
        self.last_fired_at: float | None = None

    def decide(self, score: float, ts: float) -> Decision | None:
        """Feed one score; return a decision when a detection should be emitted."""
        if score >= self.threshold:
            if self.run == 0:
                self.run_started_at = ts
            self.run += 1
            self.calm = 0
        else:
            self.run = 0
            if self.active and score < self.clear_threshold:
                self.calm += 1
                if self.calm >= self.clear_points:
                    self.active = False
                    self.calm = 0
            return None
        if self.run < self.for_points:
            return None
        severity = (
            DetectionSeverity.CRITICAL if score >= self.critical_score else DetectionSeverity.ERROR
        )
        started = self.run_started_at if self.run_started_at is not None else ts
        if not self.active:
            self.active = True
            self.last_fired_at = ts
            return Decision(score, severity, started, repeat=False)
        if self.last_fired_at is not None and ts - self.last_fired_at >= self.repeat_s:
            self.last_fired_at = ts
            return Decision(score, severity, started, repeat=True)
        return None

    def to_state(self) -> dict[str, Any]:
        return {
            "version": self.state_version,
            "params": {
                "threshold": self.threshold,
                "for_points": self.for_points,
                "clear_threshold": self.clear_threshold,
                "clear_points": self.clear_points,
                "repeat_s": self.repeat_s,
                "critical_score": self.critical_score,
            },
            "run": self.run,
            "run_started_at": self.run_started_at,
            "calm": self.calm,
            "active": self.active,
            "last_fired_at": self.last_fired_at,
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Self:
        if state.get("version") != cls.state_version:
            raise ValueError(f"policy state version {state.get('version')!r} is unknown")
        policy = cls(**state["params"])
        policy.run = int(state["run"])
        policy.run_started_at = state["run_started_at"]
        policy.calm = int(state["calm"])
        policy.active = bool(state["active"])
        policy.last_fired_at = state["last_fired_at"]
        return policy
