"""``metrics.points.v1``: one metric point, or a batch of them under ``points``."""

from __future__ import annotations

import math

from pydantic import Field, field_validator

from schemas.common import Labels, Name, Timestamp, WireModel


class MetricPoint(WireModel):
    """One sample of one series; the series is (service, metric, labels).

    >>> p = MetricPoint.model_validate({"ts": 60, "service": "api", "metric": "p99", "value": 1})
    >>> p.series_id
    'api|p99'
    """

    ts: Timestamp
    service: Name
    metric: Name
    value: float
    labels: Labels = Field(default_factory=dict)

    @field_validator("value")
    @classmethod
    def _finite(cls, value: float) -> float:
        if not math.isfinite(value):
            raise ValueError("value must be a finite number")
        return value

    @property
    def series_id(self) -> str:
        """Stable identity of the series: service, metric and sorted labels."""
        return series_id(self.service, self.metric, self.labels)


def series_id(service: str, metric: str, labels: dict[str, str]) -> str:
    """``service|metric`` and, if any, ``|k=v,...`` with the labels sorted by key."""
    if not labels:
        return f"{service}|{metric}"
    return f"{service}|{metric}|" + ",".join(f"{k}={v}" for k, v in sorted(labels.items()))


class MetricBatch(WireModel):
    """Several points in one message (collectors batch; so should producers)."""

    points: list[MetricPoint] = Field(min_length=1)
