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


class MttrContribution(WireModel):
    """What one incident contributes to the aggregates of one dimension value (internal topic)."""

    incident_id: Name
    dimension: Name
    value: Name
    opened_at: Timestamp
    detect_s: float | None = None
    acknowledge_s: float | None = None
    restore_s: float | None = None
    resolve_s: float | None = None
    open: bool = True
    removed: bool = False

    @property
    def group(self) -> str:
        """The Kafka key: ``<dimension>=<value>``."""
        return f"{self.dimension}={self.value}"


class MttrAggregate(WireModel):
    """The latest value of one aggregate; ``key`` is the Kafka key, so compaction keeps the last.

    ``window`` is ``hour``, ``day`` or ``week`` (tumbling, by the incidents' opening time) or
    ``24h``, ``7d`` or ``30d`` (rolling, ending at the newest incident's opening in the group).
    """

    key: Name
    dimension: Name
    value: Name
    window: Name
    window_start: Timestamp
    window_end: Timestamp
    incidents: int = Field(ge=0)
    open_incidents: int = Field(ge=0)
    time_to_detect: DurationStats
    time_to_acknowledge: DurationStats
    time_to_restore: DurationStats
    time_to_resolve: DurationStats
