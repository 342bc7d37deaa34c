"""MTTR folds: per-incident durations, windows by dimension, and exact statistics over them.

Definitions (all in seconds, per incident):

- time to detect: detected_at - impact_started_at
- time to acknowledge: acknowledged_at - opened_at
- time to restore (mitigated): mitigated_at - impact_started_at
- time to resolve: resolved_at - impact_started_at

An incident counts in the windows that contain its ``opened_at``: tumbling ``hour``, ``day`` and
``week`` (UTC, weeks start on Monday), and rolling ``24h``, ``7d`` and ``30d``, which end at the
newest incident opening in the same group, so the figures depend only on the timeline (a replay
gives the same numbers). Percentiles are exact (nearest rank over the stored durations).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from schemas import DurationStats, Incident, IncidentStatus, MttrAggregate, MttrContribution

TUMBLING: dict[str, timedelta] = {
    "hour": timedelta(hours=1),
    "day": timedelta(days=1),
    "week": timedelta(days=7),
}
ROLLING: dict[str, timedelta] = {
    "24h": timedelta(hours=24),
    "7d": timedelta(days=7),
    "30d": timedelta(days=30),
}
KEEP = max(ROLLING.values())
ROLLING_ROWS = "rolling"


@dataclass(frozen=True)
class Durations:
    """The durations one incident contributes; ``None`` where the moment has not happened."""

    detect_s: float | None
    acknowledge_s: float | None
    restore_s: float | None
    resolve_s: float | None
    open: bool
    opened_at: float = 0.0

    def to_list(self) -> list[float | bool | None]:
        return [
            self.detect_s, self.acknowledge_s, self.restore_s, self.resolve_s, self.open,
            self.opened_at,
        ]  # fmt: skip

    @classmethod
    def from_list(cls, values: list[float | bool | None]) -> Durations:
        d, a, m, r, o, at = values
        return cls(_f(d), _f(a), _f(m), _f(r), bool(o), float(at or 0.0))


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
        opened_at=incident.opened_at.timestamp(),
    )


def dimensions(incident: Incident) -> dict[str, str]:
    """The dimension values an incident is counted under."""
    return {
        "service": incident.service,
        "team": incident.team or "none",
        "severity": incident.severity.value,
        "detector": incident.detector or "none",
    }


def contributions(before: Incident | None, after: Incident) -> list[MttrContribution]:
    """What changed for the aggregates when ``before`` became ``after``.

    One contribution per dimension of ``after``, and a removal for each dimension whose value
    changed (a severity raised by a person moves the incident to another group).
    """
    d = durations(after)
    out = [
        MttrContribution(
            incident_id=after.id,
            dimension=dim,
            value=value,
            opened_at=after.opened_at,
            detect_s=d.detect_s,
            acknowledge_s=d.acknowledge_s,
            restore_s=d.restore_s,
            resolve_s=d.resolve_s,
            open=d.open,
        )
        for dim, value in dimensions(after).items()
    ]
    if before is not None:
        now = dimensions(after)
        for dim, value in dimensions(before).items():
            if now[dim] != value:
                out.append(
                    MttrContribution(
                        incident_id=after.id,
                        dimension=dim,
                        value=value,
                        opened_at=before.opened_at,
                        removed=True,
                    )
                )
    return out


def tumbling_start(window: str, at: datetime) -> datetime:
    """Start of the tumbling ``window`` (hour, day, week) containing ``at``, in UTC.

    >>> tumbling_start("week", datetime(2026, 11, 27, 19, 5, tzinfo=UTC)).isoformat()
    '2026-11-23T00:00:00+00:00'
    """
    at = at.astimezone(UTC)
    if window == "hour":
        return at.replace(minute=0, second=0, microsecond=0)
    day = at.replace(hour=0, minute=0, second=0, microsecond=0)
    if window == "day":
        return day
    if window == "week":
        return day - timedelta(days=day.weekday())
    raise ValueError(f"unknown tumbling window {window!r}")


def row_keys(c: MttrContribution) -> list[str]:
    """The table keys holding this contribution's rows: its tumbling windows and the rolling set."""
    keys = [f"{c.group}|{w}@{tumbling_start(w, c.opened_at).isoformat()}" for w in TUMBLING]
    return [*keys, f"{c.group}|{ROLLING_ROWS}"]


def fold(
    rows: Mapping[str, list[float | bool | None]], c: MttrContribution, rolling: bool
) -> dict[str, list[float | bool | None]]:
    """A new row set with the contribution applied (and, for the rolling set, old rows pruned)."""
    out = dict(rows)
    if c.removed:
        out.pop(c.incident_id, None)
    else:
        out[c.incident_id] = Durations(
            c.detect_s, c.acknowledge_s, c.restore_s, c.resolve_s, c.open, c.opened_at.timestamp()
        ).to_list()
    if rolling and out:
        newest = max(float(r[5] or 0.0) for r in out.values())
        horizon = newest - KEEP.total_seconds()
        out = {k: r for k, r in out.items() if float(r[5] or 0.0) > horizon}
    return out


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
    dimension: str,
    value: str,
    window: str,
    start: datetime,
    end: datetime,
    rows: Iterable[Durations],
    key: str | None = None,
) -> MttrAggregate:
    """The aggregate of one window of one dimension value over its incidents' durations."""
    rows = list(rows)
    return MttrAggregate(
        key=key or f"{dimension}={value}|{window}",
        dimension=dimension,
        value=value,
        window=window,
        window_start=start,
        window_end=end,
        incidents=len(rows),
        open_incidents=sum(1 for r in rows if r.open),
        time_to_detect=stats(r.detect_s for r in rows),
        time_to_acknowledge=stats(r.acknowledge_s for r in rows),
        time_to_restore=stats(r.restore_s for r in rows),
        time_to_resolve=stats(r.resolve_s for r in rows),
    )


def tumbling_aggregate(
    row_key: str, rows: Mapping[str, list[float | bool | None]]
) -> MttrAggregate:
    """The aggregate behind a tumbling row key ``<dim>=<value>|<window>@<start>``."""
    group, _, spec = row_key.rpartition("|")  # a value may hold "|"; a window spec never does
    dimension, _, value = group.partition("=")
    window, _, start_text = spec.partition("@")
    start = datetime.fromisoformat(start_text)
    return aggregate(
        dimension, value, window, start, start + TUMBLING[window],
        (Durations.from_list(r) for r in rows.values()), key=row_key,
    )  # fmt: skip


def rolling_aggregates(
    group: str, rows: Mapping[str, list[float | bool | None]]
) -> list[MttrAggregate]:
    """The 24h / 7d / 30d aggregates of a group, ending at its newest incident opening."""
    dimension, _, value = group.partition("=")
    parsed = [Durations.from_list(r) for r in rows.values()]
    if not parsed:
        return []
    newest = max(r.opened_at for r in parsed)
    end = datetime.fromtimestamp(newest, tz=UTC)
    out = []
    for window, span in ROLLING.items():
        horizon = newest - span.total_seconds()
        inside = [r for r in parsed if r.opened_at > horizon]
        out.append(aggregate(dimension, value, window, end - span, end, inside))
    return out
