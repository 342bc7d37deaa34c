"""MTTR folds: exact statistics and the per-incident durations they are built from."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from responders.mttr import (
    Durations,
    aggregate,
    durations,
    fold,
    percentile,
    rolling_aggregates,
    row_keys,
    stats,
    tumbling_aggregate,
)
from schemas import Incident, MttrContribution

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
    rows = [
        Durations(10.0, 60.0, 100.0, 200.0, open=False),
        Durations(30.0, None, None, None, open=True),
    ]
    agg = aggregate("service", "api", "24h", T0 - timedelta(hours=24), T0, rows)
    assert agg.key == "service=api|24h"
    assert agg.incidents == 2 and agg.open_incidents == 1
    assert agg.time_to_detect.mean_s == 20.0 and agg.time_to_acknowledge.count == 1


def contribution(
    incident: str, opened: datetime, resolve_s: float | None = None, **kw: object
) -> MttrContribution:
    return MttrContribution.model_validate(
        {"incident_id": incident, "dimension": "service", "value": "api", "opened_at": opened,
         "resolve_s": resolve_s, "open": resolve_s is None, **kw}
    )  # fmt: skip


def test_windows_of_a_contribution() -> None:
    c = contribution("i1", datetime(2026, 11, 27, 19, 5, tzinfo=UTC))
    assert row_keys(c) == [
        "service=api|hour@2026-11-27T19:00:00+00:00",
        "service=api|day@2026-11-27T00:00:00+00:00",
        "service=api|week@2026-11-23T00:00:00+00:00",
        "service=api|rolling",
    ]


def test_a_value_with_the_key_separator_aggregates_under_its_own_group() -> None:
    """A service may be named ``a|b``: its row keys split at their last ``|`` (the first gave
    group ``service=a`` and window ``b|hour``, a KeyError, and the service had no aggregates)."""
    c = contribution("i1", T0, resolve_s=60.0, value="a|b")
    hour = row_keys(c)[0]
    agg = tumbling_aggregate(hour, fold({}, c, rolling=False))
    assert (agg.dimension, agg.value, agg.window, agg.key) == ("service", "a|b", "hour", hour)
    assert agg.time_to_resolve.mean_s == 60.0


def test_fold_is_idempotent_and_removals_remove() -> None:
    c = contribution("i1", T0, resolve_s=60.0)
    once = fold({}, c, rolling=False)
    assert fold(once, c, rolling=False) == once
    assert fold(once, contribution("i1", T0, removed=True), rolling=False) == {}


def test_rolling_windows_end_at_the_newest_opening_and_prune_old_rows() -> None:
    rows: dict[str, list[float | bool | None]] = {}
    for i, (age_days, resolve) in enumerate([(40, 1.0), (20, 2.0), (3, 3.0), (0.5, 4.0), (0, 5.0)]):
        rows = fold(rows, contribution(f"i{i}", T0 - timedelta(days=age_days), resolve), True)
    assert "i0" not in rows  # older than 30 days before the newest opening
    by_window = {a.window: a for a in rolling_aggregates("service=api", rows)}
    assert by_window["24h"].incidents == 2 and by_window["24h"].time_to_resolve.mean_s == 4.5
    assert by_window["7d"].incidents == 3 and by_window["30d"].incidents == 4
    assert by_window["24h"].window_end == T0
    assert by_window["30d"].time_to_resolve.p50_s == 3.0
