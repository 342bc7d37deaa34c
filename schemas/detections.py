"""``detections.v1``: an anomaly found by a detector, the input of incident correlation."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import Field

from schemas.common import Name, Timestamp, WireModel


class DetectionSeverity(StrEnum):
    """How bad the detector thinks the anomaly is (mapped to SEV1-4 with the service tier)."""

    CRITICAL = "critical"
    ERROR = "error"
    WARNING = "warning"
    INFO = "info"


class Detection(WireModel):
    """A detection event, keyed by service on the topic."""

    id: Name
    ts: Timestamp
    service: Name
    signal: Name
    detector: Name
    score: float = Field(ge=0.0, le=1.0)
    severity: DetectionSeverity = DetectionSeverity.WARNING
    impact_started_at: Timestamp | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    context: dict[str, Any] = Field(default_factory=dict)
