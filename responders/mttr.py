"""MTTR folds: per-incident durations and exact statistics over them.

Definitions (all in seconds, per incident):

- time to detect: detected_at - impact_started_at
- time to acknowledge: acknowledged_at - opened_at
- time to restore (mitigate): mitigated_at - impact_started_at
- time to resolve: resolved_at - impact_started_at
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime

from schemas import DurationStats, Incident, IncidentStatus, MttrAggregate


@dataclass(frozen=True)
class Durations:
    """The durations one incident contributes; ``None`` where the moment has not happened."""

    detect_s: float | None
    acknowledge_s: float | None
    restore_s: float | None
    resolve_s: float | None
    open: bool

    def to_list(self) -> list[float | bool | None]:
        return [self.detect_s, self.acknowledge_s, self.restore_s, self.resolve_s, self.open]

    @classmethod
    def from_list(cls, values: list[float | bool | None]) -> Durations:
        d, a, m, r, o = values
        return cls(_f(d), _f(a), _f(m), _f(r), bool(o))


def _f(value: float | bool | None) -> float | None:
    return None if value is None else float(value)


def _secs(end: datetime | None, start: datetime) -> float | None:
    return None if end is None else (end - start).total_seconds()


def durations(incident: Incident) -> Durations:
    """What one incident contributes to the aggregates."""
    return Durations(
        detect_s=_secs(incident.detected_at, incident.impact_started_at),
        acknowledge_s=_secs(incident.acknowledged_at, incident.opened_at),
        restore_s=_secs(incident.mitigated_at, incident.impact_started_at),
        resolve_s=_secs(incident.resolved_at, incident.impact_started_at),
        open=incident.status is not IncidentStatus.RESOLVED,
    )


def percentile(sorted_values: list[float], p: float) -> float:
    """Nearest-rank percentile (an observed value; exact, no interpolation).

    >>> percentile([1.0, 2.0, 3.0, 4.0], 50), percentile([1.0, 2.0, 3.0, 4.0], 99)
    (2.0, 4.0)
    """
    rank = max(1, math.ceil(p / 100.0 * len(sorted_values)))
    return sorted_values[rank - 1]


def stats(values: Iterable[float | None]) -> DurationStats:
    """Count, mean, min, max and p50/p90/p99 of the values that are present."""
    present = sorted(v for v in values if v is not None)
    if not present:
        return DurationStats(count=0)
    return DurationStats(
        count=len(present),
        mean_s=math.fsum(present) / len(present),
        min_s=present[0],
        max_s=present[-1],
        p50_s=percentile(present, 50),
        p90_s=percentile(present, 90),
        p99_s=percentile(present, 99),
    )


def aggregate(
    dimension: str, value: str, per_incident: Mapping[str, Durations], now: datetime
) -> MttrAggregate:
    """The aggregate for one dimension value over its incidents' durations."""
    rows = list(per_incident.values())
    return MttrAggregate(
        key=f"{dimension}={value}|window=all",
        dimension=dimension,
        value=value,
        window="all",
        incidents=len(rows),
        open_incidents=sum(1 for r in rows if r.open),
        time_to_detect=stats(r.detect_s for r in rows),
        time_to_acknowledge=stats(r.acknowledge_s for r in rows),
        time_to_restore=stats(r.restore_s for r in rows),
        time_to_resolve=stats(r.resolve_s for r in rows),
        updated_at=now,
    )
