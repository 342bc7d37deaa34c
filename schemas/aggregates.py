"""``aggregates.mttr.v1``: time to detect / acknowledge / restore / resolve, per dimension."""

from __future__ import annotations

from pydantic import Field

from schemas.common import Name, Timestamp, WireModel


class DurationStats(WireModel):
    """Exact statistics over a set of durations, in seconds."""

    count: int = Field(ge=0)
    mean_s: float | None = None
    min_s: float | None = None
    max_s: float | None = None
    p50_s: float | None = None
    p90_s: float | None = None
    p99_s: float | None = None


class MttrAggregate(WireModel):
    """The latest value of one aggregate; ``key`` is the Kafka key, so compaction keeps the last."""

    key: Name
    dimension: Name
    value: Name
    window: Name = "all"
    incidents: int = Field(ge=0)
    open_incidents: int = Field(ge=0)
    time_to_detect: DurationStats
    time_to_acknowledge: DurationStats
    time_to_restore: DurationStats
    time_to_resolve: DurationStats
    updated_at: Timestamp
