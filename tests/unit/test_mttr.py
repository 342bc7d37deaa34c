"""MTTR folds: exact statistics and the per-incident durations they are built from."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from responders.mttr import Durations, aggregate, durations, percentile, stats
from schemas import Incident

T0 = datetime(2026, 3, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("values", "p", "expected"),
    [
        ([5.0], 50, 5.0),
        ([1.0, 2.0, 3.0, 4.0, 5.0], 50, 3.0),
        ([1.0, 2.0, 3.0, 4.0, 5.0], 90, 5.0),
        ([float(i) for i in range(1, 101)], 99, 99.0),
        ([float(i) for i in range(1, 101)], 90, 90.0),
    ],
    ids=["one", "median-odd", "p90-small", "p99-100", "p90-100"],
)
def test_nearest_rank_percentile(values: list[float], p: float, expected: float) -> None:
    assert percentile(values, p) == expected


def test_stats_skip_missing_values() -> None:
    s = stats([3.0, None, 1.0, 2.0])
    assert (s.count, s.mean_s, s.min_s, s.max_s, s.p50_s) == (3, 2.0, 1.0, 3.0, 2.0)
    assert stats([None]).count == 0 and stats([]).mean_s is None


def test_durations_of_an_incident() -> None:
    incident = Incident(
        id="i", routing_key="a", service="a", title="t", status="resolved", severity="SEV2",
        impact_started_at=T0, detected_at=T0 + timedelta(seconds=20),
        opened_at=T0 + timedelta(seconds=21), acknowledged_at=T0 + timedelta(seconds=81),
        mitigated_at=T0 + timedelta(seconds=600), resolved_at=T0 + timedelta(seconds=900),
    )  # fmt: skip
    d = durations(incident)
    assert (d.detect_s, d.acknowledge_s, d.restore_s, d.resolve_s, d.open) == (
        20.0, 60.0, 600.0, 900.0, False,
    )  # fmt: skip
    assert Durations.from_list(d.to_list()) == d


def test_aggregate_counts_open_incidents() -> None:
    rows = {
        "a": Durations(10.0, 60.0, 100.0, 200.0, open=False),
        "b": Durations(30.0, None, None, None, open=True),
    }
    agg = aggregate("service", "api", rows, T0)
    assert agg.key == "service=api|window=all"
    assert agg.incidents == 2 and agg.open_incidents == 1
    assert agg.time_to_detect.mean_s == 20.0 and agg.time_to_acknowledge.count == 1
