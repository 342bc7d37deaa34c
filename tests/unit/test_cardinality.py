"""Series limits and idle-series eviction: named cases, each a small timeline of points."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

import numpy as np
import pytest
from pydantic import ValidationError

from detectors.bank import SeriesBank
from detectors.cardinality import PER_PARTITION, PER_SERVICE, SeriesLimits, refusal
from detectors.registry import DETECTORS
from detectors.routing import DetectorRule, RoutedBanks
from streams.codec import PointBatch, decode_points_many
from streams.detect.scoring import evict
from streams.settings import Settings

DAY = 86_400.0
T0 = 1.7e9

REFUSALS = {
    "room left": ("api", 9, 99, SeriesLimits(per_service=10, per_partition=100), None),
    "service full": ("api", 10, 99, SeriesLimits(per_service=10, per_partition=100), PER_SERVICE),
    "partition full": ("api", 3, 100, SeriesLimits(per_service=10, per_partition=100),
                       PER_PARTITION),
    "both full: the partition is named": ("api", 10, 100,
                                          SeriesLimits(per_service=10, per_partition=100),
                                          PER_PARTITION),
}  # fmt: skip


@pytest.mark.parametrize(
    ("service", "of_service", "on_partition", "limits", "limit"),
    REFUSALS.values(),
    ids=REFUSALS.keys(),
)
def test_refusal_names_the_limit_and_the_service(
    service: str, of_service: int, on_partition: int, limits: SeriesLimits, limit: str | None
) -> None:
    found = refusal(service, of_service, on_partition, limits)
    assert (found.limit if found else None) == limit
    if found is not None:
        assert f"service {service!r}" in found.reason
        assert f"max_series_{limit}=" in found.reason


def test_bad_limits_are_refused() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        SeriesLimits(per_service=0)
    with pytest.raises(ValueError, match="not negative"):
        SeriesLimits(idle_s=-1.0)


@dataclass(frozen=True)
class Admission:
    """Series sent in successive calls, and the positions refused in each, by limit."""

    limits: SeriesLimits
    calls: list[list[str]]
    refused: list[dict[int, str]]
    rules: tuple[DetectorRule, ...] = ()


def ids(service: str, n: int, start: int = 0) -> list[str]:
    return [f"{service}|m|k={i}" for i in range(start, start + n)]


ADMISSIONS = {
    "the fourth series of a service is refused, another service's is not": Admission(
        SeriesLimits(per_service=3), [[*ids("api", 4), "web|m"]], [{3: PER_SERVICE}]
    ),
    "series already watched are never refused at the limit": Admission(
        SeriesLimits(per_service=2), [ids("api", 2), [*ids("api", 2), *ids("api", 1, 5)]],
        [{}, {2: PER_SERVICE}],
    ),
    "a new series twice in one call is refused twice": Admission(
        SeriesLimits(per_service=1), [["api|a", "api|b", "api|b"]], [{1: PER_SERVICE,
                                                                       2: PER_SERVICE}],
    ),
    "the partition limit counts every service": Admission(
        SeriesLimits(per_partition=3), [["a|m", "b|m", "c|m", "d|m", "a|m"]],
        [{3: PER_PARTITION}],
    ),
    "a rule's series count toward their service": Admission(
        SeriesLimits(per_service=2), [["api|disk", "api|cpu", "api|mem"]], [{2: PER_SERVICE}],
        rules=(DetectorRule("disk", "static_threshold", metrics=("disk",),
                            params={"upper": 1.0}),),
    ),
}  # fmt: skip


@pytest.mark.parametrize("case", ADMISSIONS.values(), ids=ADMISSIONS.keys())
def test_admission(case: Admission) -> None:
    banks = RoutedBanks("ewma", rules=case.rules, limits=case.limits)
    for series, expected in zip(case.calls, case.refused, strict=True):
        rows, refused = banks.admit(series)
        assert {i: r.limit for i, r in refused.items()} == expected
        assert all((rows[i] < 0) == (i in refused) for i in range(len(series)))
        admitted = [banks.series(int(r)) for r in rows if r >= 0]
        assert admitted == [s for i, s in enumerate(series) if i not in refused]


def observe(banks: RoutedBanks, series: list[str], at: float) -> None:
    banks.observe(series, np.ones(len(series)), np.full(len(series), at))


@dataclass(frozen=True)
class Eviction:
    """Points of series at times (since T0), then a sweep at ``now``: who is evicted."""

    limits: SeriesLimits
    points: list[tuple[list[str], float]]
    now: float
    evicted: list[str]


EVICTIONS = {
    "idle past the retention": Eviction(
        SeriesLimits(idle_s=DAY, sweep_s=0), [(["a|m", "b|m"], 0), (["b|m"], DAY)], DAY + 1,
        ["a|m"],
    ),
    "idle exactly the retention stays": Eviction(
        SeriesLimits(idle_s=DAY, sweep_s=0), [(["a|m"], 0)], DAY, [],
    ),
    "a retention of 0 keeps every series": Eviction(
        SeriesLimits(idle_s=0), [(["a|m"], 0)], 100 * DAY, [],
    ),
    "a series whose only points came late is idle by its own time": Eviction(
        SeriesLimits(idle_s=DAY, sweep_s=0), [(["a|m"], 5 * DAY), (["b|m"], 0)], 5 * DAY,
        ["b|m"],
    ),
}  # fmt: skip


@pytest.mark.parametrize("case", EVICTIONS.values(), ids=EVICTIONS.keys())
def test_eviction(case: Eviction) -> None:
    banks = RoutedBanks("ewma", limits=case.limits)
    for series, at in case.points:
        observe(banks, series, T0 + at)
    assert banks.evict_idle(T0 + case.now) == case.evicted
    assert not set(case.evicted) & set(banks.index)
    assert sum(banks.per_service.values()) == len(banks)


def test_sweeps_wait_for_event_time_to_pass_sweep_s() -> None:
    banks = RoutedBanks("ewma", limits=SeriesLimits(idle_s=DAY, sweep_s=600))
    observe(banks, ["a|m"], T0)
    observe(banks, ["b|m"], T0 + 500)
    assert banks.evict_idle(T0 + DAY + 1) == ["a|m"]
    assert banks.evict_idle(T0 + DAY + 501) == []  # b is idle, but swept 500 s ago
    assert banks.evict_idle(T0) == []  # an old point does not move the clock back
    assert banks.evict_idle(T0 + DAY + 601) == ["b|m"]


def test_an_evicted_series_makes_room_under_the_limit_and_its_row_is_reused_fresh() -> None:
    banks = RoutedBanks("ewma", limits=SeriesLimits(per_service=2, idle_s=DAY, sweep_s=0))
    for t in range(30):
        observe(banks, ["api|old", "api|busy"], T0 + t)
    _, refused = banks.admit(["api|new"])
    assert [r.limit for r in refused.values()] == [PER_SERVICE]
    old_row = banks.index["api|old"]
    observe(banks, ["api|busy"], T0 + 2 * DAY)
    assert banks.evict_idle(T0 + 2 * DAY) == ["api|old"]
    rows, refused = banks.admit(["api|new"])
    assert refused == {} and int(rows[0]) == old_row
    bank, row = banks.default, old_row // len(banks.banks)
    fresh = RoutedBanks("ewma").default
    fresh.row("x")
    for name, arr in bank.own.items():
        np.testing.assert_array_equal(arr[row], fresh.own[name][0], err_msg=name)
    for name, arr in bank.detector.arrays().items():
        np.testing.assert_array_equal(arr[row], fresh.detector.arrays()[name][0], err_msg=name)
    assert bank.recent(row) == []


def test_a_restart_does_not_bring_an_evicted_series_back() -> None:
    limits = SeriesLimits(per_service=3, idle_s=DAY, sweep_s=0)
    banks = RoutedBanks("ewma", limits=limits)
    observe(banks, ["api|old", "api|busy", "web|m"], T0)
    checkpoint = banks.take_dirty_blocks()
    observe(banks, ["api|busy", "web|m"], T0 + 2 * DAY)
    assert banks.evict_idle(T0 + 2 * DAY) == ["api|old"]
    checkpoint.update(banks.take_dirty_blocks())  # a compacted topic keeps each key's latest

    restored = RoutedBanks("ewma", limits=limits)
    assert restored.load_blocks(checkpoint) == 0
    assert set(restored.index) == {"api|busy", "web|m"}
    assert restored.per_service == {"api": 1, "web": 1}
    rows, refused = restored.admit(["api|new"])
    assert refused == {} and restored.series(int(rows[0])) == "api|new"
    assert int(rows[0]) == banks.index.get("api|old", 0)  # the evicted row, reused
    assert len(restored.default.ids) == 3  # no row appended


def test_a_block_never_written_is_not_reused_but_an_evicted_row_is() -> None:
    banks = RoutedBanks("ewma", limits=SeriesLimits(idle_s=DAY, sweep_s=0))
    banks.default.block_rows = 2
    observe(banks, ["s|a", "s|b", "s|c", "s|d"], T0)
    observe(banks, ["s|a", "s|b", "s|d"], T0 + 2 * DAY)
    assert banks.evict_idle(T0 + 2 * DAY) == ["s|c"]
    blocks = banks.take_dirty_blocks()
    del blocks["0"]  # lost before it was written: its rows stay holes
    restored = RoutedBanks("ewma")
    restored.default.block_rows = 2
    restored.load_blocks(blocks)
    assert restored.index == {"s|d": 3}
    rows = restored.rows_for(["s|x", "s|y"])
    assert rows.tolist() == [2, 4]


@pytest.mark.parametrize("name", sorted(DETECTORS))
def test_every_detector_resets_a_row_to_a_fresh_series(name: str) -> None:
    bank = SeriesBank(name, capacity=3)
    rows = bank.rows_for(["a", "b", "c"])
    for t in range(40):
        bank.observe_rows(rows, np.array([1.0, 2.0, 3.0]) * (t % 5 + 1) / 10, np.full(3, T0 + t))
    bank.detector.reset_rows(np.array([1]))
    fresh = SeriesBank(name, capacity=1)
    fresh.row("x")
    assert bank.detector.row_state(1) == fresh.detector.row_state(0)
    if bank.detector.row_state(0).get("state", True):  # a detector with learned state
        assert bank.detector.row_state(0) != fresh.detector.row_state(0)


@pytest.mark.parametrize(
    ("field", "value"),
    [("max_series_per_service", 0), ("max_series_per_partition", -1), ("series_idle_s", -1.0)],
    ids=["no series per service", "negative per partition", "negative idle time"],
)
def test_bad_limit_settings_are_rejected_naming_the_field(field: str, value: float) -> None:
    with pytest.raises(ValidationError, match=field):
        Settings.model_validate({field: value})


def test_the_settings_limits_reach_the_banks() -> None:
    settings = Settings(max_series_per_service=7, max_series_per_partition=70, series_idle_s=0)
    limits = settings.detector_banks().limits
    assert (limits.per_service, limits.per_partition, limits.idle_s) == (7, 70, 0.0)


class Counting:
    """The part of the pipeline ``evict`` uses: its counters."""

    def __init__(self) -> None:
        self.counters: dict[str, int] = {}

    def count(self, name: str, n: int = 1) -> None:
        self.counters[name] = self.counters.get(name, 0) + n


def chunk(*points: tuple[str, float]) -> PointBatch:
    raws = [
        json.dumps({"ts": ts, "service": sid.split("|")[0], "metric": sid.split("|")[1],
                    "value": 1.0}).encode()
        for sid, ts in points
    ]  # fmt: skip
    return decode_points_many(raws)


def test_the_worker_evicts_by_event_time_never_past_its_wall_clock() -> None:
    counting = Counting()
    banks = RoutedBanks("ewma", limits=SeriesLimits(idle_s=DAY, sweep_s=0))
    now = time.time()
    observe(banks, ["api|old", "api|recent"], now - 2 * DAY)
    observe(banks, ["api|recent"], now - 600)
    # A point stamped ten years ahead moves the clock only to the wall clock: the series seen
    # ten minutes ago stays, the one idle for two days goes.
    evict(counting, banks, chunk(("api|future", now + 10 * 365 * DAY)))
    assert set(banks.index) == {"api|recent"}
    assert counting.counters == {"series_evicted": 1}
    # A backfill of old points moves nothing.
    evict(counting, banks, chunk(("api|recent", now - 3 * DAY)))
    assert set(banks.index) == {"api|recent"}
