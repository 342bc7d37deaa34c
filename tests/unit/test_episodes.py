"""A metric episode that ends is reported: the point where the policy clears resolves it."""

from __future__ import annotations

import numpy as np
import pytest

from detectors.bank import SeriesBank, detection
from detectors.routing import DetectorRule, RoutedBanks
from schemas import Detection, DetectionStatus

NORMAL = [100.0 + (i % 5) for i in range(40)]
FAULT = [900.0, 950.0, 925.0]
AFTER = [100.0, 102.0, 101.0, 103.0, 100.0, 101.0]


def _run(bank: SeriesBank | RoutedBanks, values: list[float], ends: bool) -> list[tuple[int, bool]]:
    """(point, resolved) of each firing, feeding the points a few at a time."""
    out = []
    for start in range(0, len(values), 4):
        chunk = values[start : start + 4]
        ts = 1e9 + 60.0 * np.arange(start, start + len(chunk), dtype=np.float64)
        _, fired = bank.observe(["api|p99"] * len(chunk), np.array(chunk), ts, ends=ends)
        out += [(start + f.index, f.decision.resolved) for f in fired]
    return out


@pytest.mark.parametrize(
    ("name", "for_points", "ends_at"),
    [
        ("ewma", 2, len(NORMAL) + len(FAULT) + 2),
        ("median_mad", 2, len(NORMAL) + len(FAULT) + 2),
        # A novelty detector scores only the first new value high: the policy counts the
        # fault's later points as normal, so the episode ends three points after it fired.
        ("tolerant_novelty", 1, len(NORMAL) + 3),
    ],
    ids=["rounds", "per-instance", "compiled-sequence"],
)
def test_the_episode_ends_after_clear_points_normal_points(
    name: str, for_points: int, ends_at: int
) -> None:
    bank = SeriesBank(name, policy_params={"for_points": for_points, "clear_points": 3})
    events = _run(bank, NORMAL + FAULT + AFTER, ends=True)
    fired = [i for i, resolved in events if not resolved]
    ended = [i for i, resolved in events if resolved]
    assert fired and fired[0] == len(NORMAL) + for_points - 1
    # The third point scored normal after the firing, and only once.
    assert ended == [ends_at]


def test_without_ends_only_firings_are_reported() -> None:
    bank = SeriesBank("ewma", policy_params={"for_points": 2, "clear_points": 3})
    assert all(not resolved for _, resolved in _run(bank, NORMAL + FAULT + AFTER, ends=False))


def test_rule_banks_report_ends_too() -> None:
    rule = DetectorRule("p99", "ewma", metrics=("p99",), policy={"clear_points": 3})
    banks = RoutedBanks("surprise", rules=[rule])
    ended = [i for i, resolved in _run(banks, NORMAL + FAULT + AFTER, ends=True) if resolved]
    assert ended == [len(NORMAL) + len(FAULT) + 2]


def test_the_resolved_detection_has_a_deterministic_id_of_its_own() -> None:
    def ended() -> list[Detection]:
        bank = SeriesBank("ewma", policy_params={"for_points": 2, "clear_points": 3})
        values = NORMAL + FAULT + AFTER
        ts = 1e9 + 60.0 * np.arange(len(values), dtype=np.float64)
        _, fired = bank.observe(["api|p99"] * len(values), np.array(values), ts, ends=True)
        return [
            detection(
                f,
                detector="ewma",
                series="api|p99",
                service="api",
                metric="p99",
                labels={},
                ts=float(ts[f.index]),
                value=values[f.index],
            )
            for f in fired
        ]

    first, again = ended(), ended()
    assert first == again
    statuses = [d.status for d in first]
    assert statuses[0] is DetectionStatus.FIRING and statuses[-1] is DetectionStatus.RESOLVED
    resolved = first[-1]
    assert resolved.impact_started_at is None
    assert len({d.id for d in first}) == len(first)


@pytest.mark.parametrize("name", ["tolerant_novelty", "ewma"], ids=["novelty", "ewma"])
def test_a_lasting_shift_resolves_only_when_the_values_come_back(name: str) -> None:
    # The detector learns the new level and stops scoring it high; the episode still lasts
    # while the values stay outside the range the series had before it.
    bank = SeriesBank(name, policy_params={"for_points": 1, "clear_points": 3})
    lasting = [900.0 + (i % 3) for i in range(60)]
    events = _run(bank, NORMAL + lasting + AFTER, ends=True)
    ended = [i for i, resolved in events if resolved]
    assert [i for i, resolved in events if not resolved][:1] == [len(NORMAL)]
    assert ended == [len(NORMAL) + len(lasting)]  # the first point back in range


def test_an_episode_on_a_flat_series_ends_when_the_level_returns() -> None:
    bank = SeriesBank("tolerant_novelty", policy_params={"for_points": 1, "clear_points": 3})
    flat = [50.0] * 40
    events = _run(bank, flat + [80.0] * 30 + [50.2] * 5, ends=True)
    assert [i for i, resolved in events if resolved] == [70]


def test_the_pre_fault_range_survives_a_checkpoint() -> None:
    bank = SeriesBank("tolerant_novelty", policy_params={"for_points": 1, "clear_points": 3})
    lasting = [900.0 + (i % 3) for i in range(20)]
    _run(bank, NORMAL + lasting, ends=True)
    restored = SeriesBank("tolerant_novelty", policy_params={"for_points": 1, "clear_points": 3})
    restored.load_blocks(bank.take_dirty_blocks())
    at = len(NORMAL) + len(lasting)
    ts = 1e9 + 60.0 * np.arange(at, at + 2, dtype=np.float64)
    _, fired = restored.observe(["api|p99"] * 2, np.array([901.0, 100.0]), ts, ends=True)
    assert [(f.index, f.decision.resolved) for f in fired] == [(1, True)]


def test_the_pre_fault_range_counts_the_points_of_the_same_batch() -> None:
    # Warm-up, a lasting shift and the return in one batch: the range before the shift comes
    # from the batch's own earlier points, not only from the checkpointed ring.
    bank = SeriesBank("tolerant_novelty", policy_params={"for_points": 1, "clear_points": 3})
    lasting = [900.0 + (i % 3) for i in range(60)]
    values = NORMAL + lasting + AFTER
    ts = 1e9 + 60.0 * np.arange(len(values), dtype=np.float64)
    _, fired = bank.observe(["api|p99"] * len(values), np.array(values), ts, ends=True)
    assert [f.index for f in fired if f.decision.resolved] == [len(NORMAL) + len(lasting)]
