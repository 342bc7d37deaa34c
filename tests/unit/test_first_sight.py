"""A fleet's first points are admitted in one step where nothing is refused: the same rows,
refusals and counts, and the same silence-watch slots, as taking the series one at a time."""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import pytest

from detectors.cardinality import SeriesLimits
from detectors.routing import DetectorRule, NumberedSeries, RoutedBanks
from detectors.silence import SilenceParams, SilenceWatch
from streams.points_scan import SeriesNames


def fleet(n: int, services: int = 3) -> list[str]:
    """``n`` series ids over ``services`` services, each named twice in a row (a message's
    points of one series)."""
    ids = [f"svc{i % services}|m{i}|k=v" for i in range(n)]
    return [sid for sid in ids for _ in range(2)]


def banks(limits: SeriesLimits, rules: bool = False) -> RoutedBanks:
    rule = [DetectorRule("odd", "ewma", metrics=("m*1",))] if rules else []
    return RoutedBanks("ewma", rules=rule, limits=limits)


def assert_one_at_a_time(
    together: RoutedBanks, alone: RoutedBanks, series: list[str], ids: list[str]
) -> Any:
    """``together`` admits ``series`` (the ``ids``, maybe numbered) in one call, ``alone`` one
    at a time: the same rows, refusals and counts; the rows."""
    rows, refused = together.admit(series)
    one = [alone.admit([sid]) for sid in ids]
    assert rows.tolist() == [int(r[0]) for r, _ in one]
    assert {i: (r.limit, r.reason) for i, r in refused.items()} == {
        i: (no[0].limit, no[0].reason) for i, (_, no) in enumerate(one) if no
    }
    assert together.per_service == alone.per_service
    return rows


@pytest.mark.parametrize(
    ("limits", "rules"),
    [
        (SeriesLimits(), False),
        (SeriesLimits(), True),
        (SeriesLimits(per_partition=700), False),  # exactly the fleet: all in
        (SeriesLimits(per_partition=699), False),  # one too many: one by one, the last refused
        (SeriesLimits(per_service=234), True),  # exactly svc0's 234
        (SeriesLimits(per_service=233), False),
    ],
)
def test_one_step_admission_is_admission_one_at_a_time(limits: SeriesLimits, rules: bool) -> None:
    ids = fleet(700)
    together, alone = banks(limits, rules), banks(limits, rules)
    together.admit(["svc0|early"])
    alone.admit(["svc0|early"])
    assert_one_at_a_time(together, alone, ids, ids)
    assert [b.capacity for b in together.banks] == [b.capacity for b in alone.banks]
    assert [b.ids for b in together.banks] == [b.ids for b in alone.banks]


def test_a_fleets_first_slots_are_those_taken_one_at_a_time() -> None:
    params = SilenceParams(floor_s=1.0, min_intervals=2, forget_s=100.0)
    together, alone = SilenceWatch(params), SilenceWatch(params)
    for w in (together, alone):  # three slots freed, one series firing
        w.observe([f"old|m{i}" for i in range(5)], np.zeros(5), 0.0, 0.0)
        w.observe(["old|m0", "old|m4"], np.full(2, 500.0), 500.0, 500.0)
        w.check(500.0)  # forgets m1 to m3
        w._firing["svc1|m7|k=v"] = 1.0
    assert len(together._free) == 3
    keys = sorted(set(fleet(300)))
    together.observe(keys, np.full(len(keys), 600.0), 600.0, 600.0)
    for k in keys:
        alone.observe([k], np.full(1, 600.0), 600.0, 600.0)
    assert together.to_state() == alone.to_state()
    assert together._slot == alone._slot
    assert len(together._last) == len(alone._last)
    assert together._service_of.tolist() == alone._service_of.tolist()
    assert together._silent.tolist() == alone._silent.tolist()


@pytest.mark.parametrize("seed", range(40))
def test_fleets_at_the_limits_after_evictions_are_admitted_as_one_at_a_time(seed: int) -> None:
    # Fleets of new series (each named once or twice, some by number) meet limits of a few
    # dozen series, per service and per partition, while idle series are evicted between
    # batches: rows, refusals and counts as admitting each point's series one at a time.
    rng = random.Random(seed)
    limits = SeriesLimits(per_service=rng.randint(1, 30), per_partition=rng.randint(1, 60),
                          idle_s=50.0, sweep_s=1.0)  # fmt: skip
    together, alone = banks(limits, rules=seed % 2 == 0), banks(limits, rules=seed % 2 == 0)
    names = SeriesNames()
    for t in range(40):
        now = 10.0 * t
        assert together.evict_idle(now) == alone.evict_idle(now)
        ids = [f"s{rng.randrange(4)}|m{rng.randrange(40)}" for _ in range(rng.randint(0, 50))]
        ids = [sid for sid in ids for _ in range(rng.randint(1, 2))]
        numbered = NumberedSeries(
            ids, np.array([names.number(s) for s in ids], dtype=np.intp), names.numbering
        )
        rows = assert_one_at_a_time(together, alone, numbered if t % 2 else ids, ids)
        # Half the series held get a point: the others go idle and are evicted.
        held = np.flatnonzero(rows >= 0)[: max(1, int((rows >= 0).sum()) // 2)]
        if (rows >= 0).any():
            for bank in (together, alone):
                bank.observe_rows(rows[held], np.ones(len(held)), np.full(len(held), now))
