"""The series bank: many series in arrays behave exactly like one detector per series."""

from __future__ import annotations

import dataclasses
import random
from typing import Any

import numpy as np
import pytest

from detectors import SeriesBank, ThresholdPolicy
from detectors.bank import detection
from detectors.registry import DETECTORS, make_detector
from tests.contract.test_detectors import PARAMS, _series

NAMES = sorted(DETECTORS)


def _interleaved(
    n_series: int, n: int, seed: int
) -> list[tuple[list[str], list[float], list[float]]]:
    """Messages of random size over ``n_series`` series; a message may hold several points of
    one series (in time order), as a collector's batch does."""
    data = {f"svc|m{i}": _series(seed + i, n) for i in range(n_series)}
    cursor = dict.fromkeys(data, 0)
    rng = random.Random(seed)
    messages = []
    while any(c < n for c in cursor.values()):
        sids, xs, ts = [], [], []
        for _ in range(rng.randint(1, 12)):
            sid = rng.choice([s for s, c in cursor.items() if c < n] or [None])
            if sid is None:
                break
            values, stamps = data[sid]
            sids.append(sid)
            xs.append(values[cursor[sid]])
            ts.append(stamps[cursor[sid]])
            cursor[sid] += 1
        messages.append((sids, xs, ts))
    return messages


def _reference(name: str, messages: Any) -> tuple[dict[str, list[float]], list[tuple[str, float]]]:
    """One detector and one policy per series, one point at a time."""
    bank = SeriesBank(name, PARAMS.get(name, {}))
    detectors: dict[str, Any] = {}
    policies: dict[str, ThresholdPolicy] = {}
    scores: dict[str, list[float]] = {}
    fired = []
    for sids, xs, ts in messages:
        for sid, x, t in zip(sids, xs, ts, strict=True):
            d = detectors.setdefault(sid, make_detector(name, **PARAMS.get(name, {})))
            pol = policies.setdefault(sid, ThresholdPolicy.from_state(bank.policy.to_state()))
            s = d.score_one(x, t)
            d.learn_one(x, t)
            scores.setdefault(sid, []).append(s)
            if pol.decide(s, t) is not None:
                fired.append((sid, t))
    return scores, fired


def _run(bank: SeriesBank, messages: Any) -> tuple[dict[str, list[float]], list[tuple[str, float]]]:
    scores: dict[str, list[float]] = {}
    fired = []
    for sids, xs, ts in messages:
        out, hits = bank.observe(sids, np.array(xs), np.array(ts))
        for sid, s in zip(sids, out, strict=True):
            scores.setdefault(sid, []).append(float(s))
        fired += [(sids[f.index], ts[f.index]) for f in hits]
    return scores, fired


def _lockstep(n_series: int, n: int, seed: int) -> list[tuple[list[str], list[float], list[float]]]:
    """Every message holds one point of every series: rounds as wide as the fleet."""
    data = {f"svc|m{i}": _series(seed + i, n) for i in range(n_series)}
    return [
        (list(data), [v[k] for v, _ in data.values()], [t[k] for _, t in data.values()])
        for k in range(n)
    ]


@pytest.mark.parametrize("wide", [False, True], ids=["few-series-rounds", "wide-rounds"])
@pytest.mark.parametrize("name", NAMES)
def test_bank_agrees_with_one_detector_per_series(name: str, wide: bool) -> None:
    messages = _lockstep(24, 200, seed=5) if wide else _interleaved(5, 300, seed=11)
    want_scores, want_fired = _reference(name, messages)
    got_scores, got_fired = _run(SeriesBank(name, PARAMS.get(name, {})), messages)
    assert set(got_scores) == set(want_scores)
    for sid in want_scores:
        np.testing.assert_allclose(got_scores[sid], want_scores[sid], rtol=1e-9, atol=1e-12)
    assert sorted(got_fired) == sorted(want_fired)


def test_the_default_fires_on_a_spike_once_with_context() -> None:
    bank = SeriesBank("surprise")
    sids = ["api|lat", "api|err"]
    for t in range(60):
        bank.observe(sids, np.array([100.0 + (t % 3), 5.0 + (t % 2)]), np.full(2, 1e9 + t))
    _, fired = bank.observe(sids, np.array([900.0, 5.0]), np.full(2, 1e9 + 60))
    assert [f.index for f in fired] == [0]
    [hit] = fired
    assert len(hit.recent) == bank.recent_points and hit.recent[-1] == [1e9 + 60, 900.0]
    assert [p[0] for p in hit.recent] == sorted(p[0] for p in hit.recent)


def test_the_default_says_what_it_found_new() -> None:
    """A jump to a level never seen, and a weekday whose daytime level never comes (values the
    series has at night): each detection says which memory found it."""
    bank = SeriesBank("tolerant_novelty")
    rng = np.random.default_rng(4)
    start = 1.7e9 // 86400 * 86400  # a Tuesday, 00:00 UTC
    whys = []
    for t in range(16 * 288):
        ts = start + 300.0 * t
        hour, day = (ts % 86400) / 3600, t // 288
        level = 80.0 if 9 <= hour < 18 and day != 10 else 20.0  # day 10: a Friday
        level = 500.0 if day == 14 and hour >= 12 else level  # day 14: never seen
        _, fired = bank.observe(["api|lat"], np.array([level + rng.normal()]), np.array([ts]))
        whys += [(day, hit.why) for hit in fired if day >= 10]
    assert (10, "the value: never seen at this time of day (weekdays, 09:00 to 12:00 UTC)") in whys
    assert (14, "the value or its steps from the last ones: never seen in this series") in whys


def test_points_at_or_before_the_last_time_are_skipped() -> None:
    bank = SeriesBank("surprise")
    for t in range(30):
        bank.observe(["a|m"], np.array([1.0 + t % 2]), np.array([1e9 + t]))
    before = bank.block_state(0)
    scores, fired = bank.observe(
        ["a|m", "a|m"], np.array([500.0, 500.0]), np.array([1e9, 1e9 + 29])
    )
    assert scores.tolist() == [0.0, 0.0] and fired == []
    assert bank.block_state(0) == before


@pytest.mark.parametrize("name", ["surprise", "seasonal", "median_mad"])
def test_checkpointed_blocks_restore_every_series_exactly(name: str) -> None:
    messages = _interleaved(9, 200, seed=3)
    live = SeriesBank(name)
    live.block_rows = 4  # several blocks, the last one partial
    _run(live, messages[: len(messages) // 2])
    blocks = live.take_dirty_blocks()
    assert len(blocks) == 3 and not live.take_dirty_blocks()
    restored = SeriesBank(name)
    restored.block_rows = 4
    assert restored.load_blocks(blocks) == 0
    assert restored.ids == live.ids
    rest = messages[len(messages) // 2 :]
    assert _run(restored, rest) == _run(live, rest)


def test_blocks_written_under_another_configuration_start_afresh() -> None:
    old = SeriesBank("surprise", {"warmup": 10})
    for t in range(30):
        old.observe(["a|m", "b|m"], np.array([1.0, 2.0]), np.full(2, 1e9 + t))
    new = SeriesBank("surprise", {"warmup": 20})
    assert new.load_blocks(old.take_dirty_blocks()) == 1
    assert new.index == {"a|m": 0, "b|m": 1}
    assert not new.detector.warmed_up_many()[:2].any()
    assert set(new.take_dirty_blocks()) == {"0"}  # rewritten under the new configuration


def test_blocks_from_an_older_version_of_the_detector_start_afresh() -> None:
    """An upgrade that changes a detector's state (its version) under the same configuration:
    the worker must restore, not fail on every attempt to read the partition's blocks."""
    old = SeriesBank("tolerant_novelty")
    for t in range(40):
        old.observe(["a|m", "b|m"], np.array([1.0, 2.0 + t % 3]), np.full(2, 1e9 + t))
    blocks = old.take_dirty_blocks()
    for state in blocks.values():
        # A version it does not read (it reads the two before, see the next test).
        state["detector"]["version"] -= 3
    new = SeriesBank("tolerant_novelty")
    assert new.load_blocks(blocks) == 1
    assert new.index == {"a|m": 0, "b|m": 1}
    assert not new.detector.warmed_up_many()[:2].any()
    assert set(new.take_dirty_blocks()) == {"0"}


def test_blocks_of_the_version_before_the_memory_by_time_of_day_restore_warm() -> None:
    """Version 4 of the default lacks only the memory by time of day: its blocks restore the
    series warm, with that memory empty, rather than re-warm every series of an upgraded fleet."""
    old = SeriesBank("tolerant_novelty")
    for t in range(40):
        old.observe(["a|m", "b|m"], np.array([1.0, 2.0 + t % 3]), np.full(2, 1e9 + 600.0 * t))
    blocks = old.take_dirty_blocks()
    for state in blocks.values():
        state["detector"]["version"] = 4
        for key in ("daily", "daily_rate", "clock"):
            del state["detector"]["arrays"][key]
    new = SeriesBank("tolerant_novelty")
    assert new.load_blocks(blocks) == 0
    assert new.detector.warmed_up_many()[:2].all()
    arrays = new.detector.arrays()
    assert not arrays["daily"][:2].any() and (arrays["clock"][:2] == -1).all()
    assert np.array_equal(arrays["step"][:2], old.detector.arrays()["step"][:2])


def test_a_block_never_written_leaves_a_hole_and_new_series_go_after() -> None:
    live = SeriesBank("surprise")
    live.block_rows = 2
    live.observe(["a", "b", "c", "d", "e"], np.ones(5), np.full(5, 1e9))
    blocks = live.take_dirty_blocks()
    del blocks["1"]  # c and d: lost before their block was written
    restored = SeriesBank("surprise")
    restored.block_rows = 2
    restored.load_blocks(blocks)
    assert restored.index == {"a": 0, "b": 1, "e": 4}
    assert restored.row("c") == 5


def test_detection_id_depends_only_on_series_and_time() -> None:
    bank = SeriesBank("static_threshold", {"upper": 10.0}, {"for_points": 1})
    _, [hit] = bank.observe(["api|lat"], np.array([50.0]), np.array([1.7e9]))

    def at(ts: float, value: float) -> Any:
        return detection(hit, detector="static_threshold", series="api|lat", service="api",
                         metric="lat", labels={}, ts=ts, value=value)  # fmt: skip

    one, again, other = at(1.7e9, 50.0), at(1.7e9, 51.0), at(1.7e9 + 1, 50.0)
    assert one.id == again.id != other.id
    assert one.context["series"] == "api|lat" and one.signal == "lat"
    assert "why" not in one.context  # the rule says nothing more than its score
    said = detection(dataclasses.replace(hit, why="the value: never seen"), detector="d",
                     series="api|lat", service="api", metric="lat", labels={}, ts=1.7e9,
                     value=50.0)  # fmt: skip
    assert said.context["why"] == "the value: never seen"


def test_a_run_written_by_its_deciding_blocks_alone_survives_a_handover() -> None:
    # A series starts a run (one hot point of the two the policy needs); only the blocks of
    # rows whose policy moved are written, not the whole partition. A new owner restores the
    # last full checkpoint with those blocks over it, replays every point since the full one
    # (the offsets were committed with it), and fires on the run's next point, as the old owner
    # would have: no run is dropped, and no point is learned twice.
    ids = [f"svc|m{i}" for i in range(12)]
    live = SeriesBank("static_threshold", {"upper": 10.0}, {"for_points": 2})
    live.block_rows = 4

    def batch(t: float, hot: int | None) -> tuple[list[str], Any, Any]:
        x = np.array([50.0 if i == hot else 1.0 for i in range(len(ids))])
        return ids, x, np.full(len(ids), t)

    live.observe(*batch(1.0, None))
    full = live.take_dirty_blocks()
    assert len(full) == 3
    since = [batch(2.0, None), batch(3.0, 9)]  # series 9 starts its run at t=3
    seen = [live.observe(*b) for b in since]
    assert not any(fired for _, fired in seen)
    assert live.deciding
    deciding = live.take_deciding_blocks()
    assert sorted(deciding) == ["2"], "only the block of row 9"
    assert not live.deciding and not live.take_deciding_blocks()
    new = SeriesBank("static_threshold", {"upper": 10.0}, {"for_points": 2})
    new.block_rows = 4
    assert new.load_blocks({**full, **deciding}) == 0
    replayed = [new.observe(*b) for b in since]
    assert not any(fired for _, fired in replayed)
    # Rows 8 to 11 were written with the run: their points since are skipped, not learned
    # twice; the others are scored again from the full checkpoint.
    assert replayed[1][0][:8].tolist() == seen[1][0][:8].tolist()
    assert replayed[1][0][8:].tolist() == [0.0] * 4
    nxt = batch(4.0, 9)
    got, want = new.observe(*nxt), live.observe(*nxt)
    assert [f.index for f in got[1]] == [f.index for f in want[1]] == [9]
    assert got[0].tolist() == want[0].tolist()
    # The next full checkpoint writes every row changed since, those written early too.
    assert len(live.take_dirty_blocks()) == 3


def test_deciding_blocks_leave_the_other_changed_blocks_for_the_full_checkpoint() -> None:
    live = SeriesBank("static_threshold", {"upper": 10.0}, {"for_points": 3})
    live.block_rows = 4
    ids = [f"svc|m{i}" for i in range(12)]
    live.observe(ids, np.ones(12), np.ones(12))
    live.take_dirty_blocks()
    live.observe(ids, np.where(np.arange(12) == 1, 50.0, 1.0), np.full(12, 2.0))
    assert sorted(live.take_deciding_blocks()) == ["0"]
    assert sorted(live.take_dirty_blocks()) == ["1", "2"]
