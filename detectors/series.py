"""One metric series under watch: a detector, a deciding policy and the last event time seen.

Points at or before the last event time are ignored, so a replayed point is neither learned
twice nor detected twice; the detection id is derived from the series and the point's time.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from detectors.base import Detector
from detectors.policy import ThresholdPolicy
from detectors.registry import make_detector, restore_detector
from schemas import Detection, MetricPoint

_NAMESPACE = uuid.UUID("0b6c8f7e-2d1a-4c3b-9e8f-7a6b5c4d3e2f")


@dataclass
class Observation:
    """What one point did: its score, and a detection if the policy fired."""

    score: float
    detection: Detection | None
    stale: bool = False


class SeriesDetector:
    """Detector plus policy for one series, with versioned state for a changelog table."""

    state_version = 1

    #: Recent points kept for the detection's context (the chart in the review).
    recent_points = 16

    def __init__(
        self,
        detector: Detector,
        policy: ThresholdPolicy,
        last_ts: float | None = None,
        recent: list[list[float]] | None = None,
    ) -> None:
        self.detector = detector
        self.policy = policy
        self.last_ts = last_ts
        self.recent: list[list[float]] = recent or []

    @classmethod
    def create(
        cls, detector: str, detector_params: dict[str, Any], policy_params: dict[str, Any]
    ) -> SeriesDetector:
        """A fresh series; the policy defaults to the detector's recommended decision settings."""
        model = make_detector(detector, **detector_params)
        recommended = {
            "threshold": getattr(model, "threshold", 0.9999),
            "for_points": getattr(model, "for_points", 2),
        }
        return cls(model, ThresholdPolicy(**{**recommended, **policy_params}))

    def observe(self, point: MetricPoint) -> Observation:
        """Score, learn and decide one point (score before learning)."""
        ts = point.ts.timestamp()
        if self.last_ts is not None and ts <= self.last_ts:
            return Observation(0.0, None, stale=True)
        score = self.detector.score_one(point.value, ts)
        self.detector.learn_one(point.value, ts)
        self.last_ts = ts
        self.recent = [*self.recent[-(self.recent_points - 1) :], [ts, point.value]]
        decision = self.policy.decide(score, ts)
        if decision is None:
            return Observation(score, None)
        series = point.series_id
        detection = Detection(
            id="det-" + uuid.uuid5(_NAMESPACE, f"{series}\x00{ts!r}").hex[:20],
            ts=point.ts,
            service=point.service,
            signal=point.metric,
            detector=self.detector.name,
            score=score,
            severity=decision.severity,
            impact_started_at=datetime.fromtimestamp(decision.impact_started_at, tz=UTC),
            labels=point.labels,
            context={
                "series": series,
                "value": point.value,
                "repeat": decision.repeat,
                "recent": [list(p) for p in self.recent],
            },
        )
        return Observation(score, detection)

    def to_state(self) -> dict[str, Any]:
        return {
            "version": self.state_version,
            "detector": self.detector.to_state(),
            "policy": self.policy.to_state(),
            "last_ts": self.last_ts,
            "recent": self.recent,
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> SeriesDetector:
        if state.get("version") != cls.state_version:
            raise ValueError(f"series state version {state.get('version')!r} is unknown")
        return cls(
            restore_detector(state["detector"]),
            ThresholdPolicy.from_state(state["policy"]),
            state["last_ts"],
            [list(p) for p in state.get("recent", [])],
        )
