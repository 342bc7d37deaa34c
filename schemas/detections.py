"""``detections.v1``: an anomaly found by a detector, the input of incident correlation."""

from __future__ import annotations

import json
from enum import StrEnum
from typing import Annotated, Any

from pydantic import AfterValidator, Field

from schemas.common import Labels, Name, Timestamp, WireModel, no_control

#: Bytes of JSON a detection's context may hold: it is copied onto the incident's timeline, the
#: review and the dashboard, so an unbounded one would outgrow a Kafka record downstream.
MAX_CONTEXT_BYTES = 64 * 1024


def _bounded_context(value: dict[str, Any]) -> dict[str, Any]:
    size = len(json.dumps(value, separators=(",", ":"), default=str).encode("utf-8", "replace"))
    if size > MAX_CONTEXT_BYTES:
        raise ValueError(f"{size:,} bytes of JSON; at most {MAX_CONTEXT_BYTES:,}")
    return value


class DetectionSeverity(StrEnum):
    """How bad the detector thinks the anomaly is (mapped to SEV1-4 with the service tier)."""

    CRITICAL = "critical"
    ERROR = "error"
    WARNING = "warning"
    INFO = "info"


class DetectionStatus(StrEnum):
    """A detection says a signal is anomalous (firing) or has recovered (resolved)."""

    FIRING = "firing"
    RESOLVED = "resolved"


class Detection(WireModel):
    """A detection event, keyed by its correlation group (by default the service) on the topic.

    ``dedup_key`` (PagerDuty's) puts the detection in the group of that key instead of the
    service's. ``auto_resolve`` says that when every signal of an incident has recovered the
    incident is resolved (alerts from Alertmanager or PagerDuty), rather than only suggested.
    """

    id: Name
    ts: Timestamp
    service: Name
    signal: Name
    detector: Name
    score: float = Field(ge=0.0, le=1.0)
    severity: DetectionSeverity = DetectionSeverity.WARNING
    impact_started_at: Timestamp | None = None
    labels: Labels = Field(default_factory=dict)
    context: Annotated[dict[str, Any], AfterValidator(_bounded_context)] = Field(
        default_factory=dict,
        description=f"What the detector saw (at most {MAX_CONTEXT_BYTES:,} bytes of JSON).",
    )
    status: DetectionStatus = DetectionStatus.FIRING
    dedup_key: Annotated[str, AfterValidator(no_control)] | None = Field(
        default=None, max_length=255
    )
    auto_resolve: bool = False
    #: When the input it derives from reached warroom (a point's Kafka record time, an alert's
    #: HTTP request); the lateness bound is measured from it. None: the detection's own record.
    received_at: Timestamp | None = None
