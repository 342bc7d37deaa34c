"""Transition novelty: a new step between known levels fires; a wider range keeps the memory;
shifted grids and the tolerant form keep it quieter on noise."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from numpy.typing import NDArray

from detectors.transition import (
    DAY_S,
    WHY_HOUR,
    TolerantNovelty,
    TolerantNoveltyBatch,
    TransitionNovelty,
    TransitionNoveltyBatch,
)
from detectors.transition.daily import day_slot, hours_matter
from detectors.transition.levels import carry_fine, fine_level, moved
from detectors.vector import Floats


def _feed(d: TransitionNovelty, values: list[float], start: int = 0) -> list[float]:
    scores = []
    for t, v in enumerate(values, start):
        scores.append(d.score_one(v, float(t)))
        d.learn_one(v, float(t))
    return scores


def _ramp(cycles: int) -> list[float]:
    """A sawtooth over eight levels: 0, 1, ..., 7, 0, 1, ..."""
    return [float(i % 8) + 0.5 for i in range(8 * cycles)]


def test_a_new_step_between_known_levels_fires_once() -> None:
    d = TransitionNovelty()
    scores = _feed(d, _ramp(60))
    assert max(scores[200:]) == 0.0
    # Backwards: every level is known, every step is new.
    backwards = _feed(d, [float(7 - i % 8) + 0.5 for i in range(200)], start=len(scores))
    fired = [t for t, s in enumerate(backwards) if s >= TransitionNovelty.threshold]
    # Within three points: the shifted grids' top level is wider, so some see the first step.
    assert fired and fired[0] <= 2
    rest = TransitionNoveltyBatch().rest_period
    assert all(b - a >= rest for a, b in itertools.pairwise(fired))


@pytest.mark.parametrize("beyond", [20.0, -12.0], ids=["above", "below"])
def test_a_value_beyond_the_range_widens_it_and_keeps_what_was_learned(beyond: float) -> None:
    d = TransitionNovelty()
    # Two levels, far apart in the warm-up range.
    values = [0.5 if i % 2 else 7.5 for i in range(400)]
    assert max(_feed(d, values)[200:]) == 0.0
    assert d.score_one(beyond, 400.0) >= TransitionNovelty.threshold
    d.learn_one(beyond, 400.0)
    # After the rest period the old alternation is still known in the doubled range.
    after = _feed(d, values[:300], start=401)
    assert max(after[150:]) == 0.0


def test_carry_merges_pairs_of_levels() -> None:
    def levels_after(steps: int, up: bool) -> list[int]:
        return [moved(c, steps, up) for c in range(8)]

    assert levels_after(1, True) == [0, 0, 1, 1, 2, 2, 3, 3]  # one doubling upwards
    assert levels_after(1, False) == [4, 4, 5, 5, 6, 6, 7, 7]  # one doubling downwards
    assert levels_after(3, True) == [0] * 8 and levels_after(3, False) == [7] * 8


@pytest.mark.parametrize(
    "params",
    [
        {"grids": 0},
        {"grids": 17},
        {"order": 0},
        {"order": 4},
        {"warmup": 1, "order": 3},
        {"novelty_alpha": 0.0},
        {"abs_floor": 0.0},
    ],
    ids=["no-grid", "grids", "order", "long-order", "warmup", "alpha", "floor"],
)
def test_bad_parameters_are_rejected(params: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        TransitionNoveltyBatch(1, **params)  # type: ignore[arg-type]


def test_state_is_small() -> None:
    batch = TransitionNoveltyBatch(1)
    sizes = {k: v[0].nbytes for k, v in batch.arrays().items()}
    assert sizes["seen"] == 4 * 73  # four grids of 1 + 8 + 64 successor bytes
    assert sum(sizes.values()) <= 360
    assert batch.arrays()["seen"].dtype == np.uint8


def _noise(n: int, seed: int) -> list[float]:
    return (100.0 + 3.0 * np.random.default_rng(seed).standard_t(5, n)).tolist()


def test_without_tolerance_or_scales_it_scores_as_transition_novelty() -> None:
    values = _noise(3000, 5) + [float(i % 8) * 10.0 for i in range(400)]
    rest_at = TolerantNoveltyBatch().base_threshold
    plain = _feed(TransitionNovelty(grids=1, base_threshold=rest_at), values)
    exact = _feed(TolerantNovelty(tolerance=0.0, scales=()), values)  # type: ignore[arg-type]
    assert plain == exact


def _shifted_noise(seed: int, drop: float) -> list[float]:
    """Gaussian noise (sd 3) for 1,500 points, then ``drop`` lower for 400."""
    rng = np.random.default_rng(seed)
    return (100.0 + 3.0 * rng.standard_normal(1900) - drop * (np.arange(1900) >= 1500)).tolist()


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_a_shift_inside_the_noise_band_is_seen_at_a_coarser_scale(seed: int) -> None:
    """A drop of three noise widths stays inside the points' tolerance (three typical steps,
    about 3.4 sd), so the points alone never find it; the means of 4 and 16 points wander two
    and four times less, and find it within a few blocks."""
    values = _shifted_noise(seed, drop=9.0)
    alone = _feed(TolerantNovelty(scales=()), values)  # type: ignore[arg-type]
    scaled = _feed(TolerantNovelty(), values)  # type: ignore[arg-type]
    threshold = TolerantNovelty.threshold
    assert max(alone[1500:]) < threshold
    fired = [t for t, v in enumerate(scaled) if v >= threshold]
    assert fired and 1500 <= fired[0] < 1500 + 3 * 16, fired


def test_one_change_seen_at_every_scale_is_one_alert() -> None:
    d = TolerantNovelty()
    values = [100.0 + (i % 5) * 0.1 for i in range(1000)] + [160.0] * 100
    scores = _feed(d, values)  # type: ignore[arg-type]
    fired = [t for t, v in enumerate(scores) if v >= TolerantNovelty.threshold]
    assert fired == [1000]


def test_the_scales_do_not_make_noise_page() -> None:
    rng = np.random.default_rng(11)
    series, points = 20, 4000
    alone, scaled = TolerantNoveltyBatch(series, scales=()), TolerantNoveltyBatch(series)
    fired = {"alone": 0, "scaled": 0}
    for t in range(points):
        x, ts = 100.0 + 3.0 * rng.standard_normal(series), np.full(series, float(t))
        fired["alone"] += int((alone.score_learn_many(x, ts) >= alone.threshold).sum())
        fired["scaled"] += int((scaled.score_learn_many(x, ts) >= scaled.threshold).sum())
    assert fired == {"alone": 0, "scaled": 0}


def test_scored_in_one_sequence_or_point_by_point_alike() -> None:
    """The worker's bank hands a series' points in one call (``score_learn_sequence``); the
    blocks must complete, and the rest must run, exactly as point by point."""
    values = np.array([_shifted_noise(seed, drop=9.0) for seed in (4, 5)])
    ts = 1.7e9 + 900.0 * np.arange(values.shape[1])  # several days: the daily memory too
    stepped = TolerantNoveltyBatch(2)
    one_by_one = np.array([stepped.score_learn_many(values[:, t], np.full(2, ts[t]))
                           for t in range(values.shape[1])])  # fmt: skip
    sequenced = TolerantNoveltyBatch(2)
    rows = np.tile(np.arange(2), values.shape[1])
    flat = sequenced.score_learn_sequence(rows, values.T.ravel(), np.repeat(ts, 2))
    assert np.array_equal(flat.reshape(-1, 2), one_by_one)
    assert one_by_one.max() >= TolerantNoveltyBatch.threshold
    for key, arr in stepped.arrays().items():
        assert np.array_equal(arr, sequenced.arrays()[key]), key


def _alerts_on_noise(batch: TransitionNoveltyBatch, points: int, seed: int) -> NDArray[np.int64]:
    """Alerts at each point over ``batch.n`` series of Student-t noise."""
    rng = np.random.default_rng(seed)
    fired = np.zeros(points, dtype=np.int64)
    for t in range(points):
        x = 100.0 + 3.0 * rng.standard_t(5, batch.n)
        fired[t] = int((batch.score_learn_many(x, np.full(batch.n, float(t))) >= 0.5).sum())
    return fired


def test_shifted_grids_fire_less_on_noise_than_one_grid() -> None:
    one = _alerts_on_noise(TransitionNoveltyBatch(40, grids=1, base_threshold=0.5), 3000, 4)
    four = _alerts_on_noise(TransitionNoveltyBatch(40, grids=4, base_threshold=0.5), 3000, 4)
    assert one.sum() >= 40
    assert four.sum() * 5 <= one.sum() * 4


def test_alerts_on_noise_fall_as_the_memory_fills() -> None:
    fired = _alerts_on_noise(TransitionNoveltyBatch(40), 8000, 6)
    first, last = fired[:2000].sum(), fired[6000:].sum()
    assert first >= 10
    assert last * 4 <= first


@pytest.mark.parametrize("kind", ["gaussian", "student_t5"])
def test_the_tolerance_keeps_it_quiet_on_noise_that_plain_novelty_fires_on(kind: str) -> None:
    rng = np.random.default_rng(3)
    series, points = 20, 3000
    # Records aside (below): the tolerance alone.
    plain, tolerant = TransitionNoveltyBatch(series), TolerantNoveltyBatch(series, records=False)
    fired = {"plain": 0, "tolerant": 0}
    for t in range(points):
        draw = rng.standard_normal(series) if kind == "gaussian" else rng.standard_t(5, series)
        x, ts = 100.0 + 3.0 * draw, np.full(series, float(t))
        fired["plain"] += int((plain.score_learn_many(x, ts) >= plain.threshold).sum())
        fired["tolerant"] += int((tolerant.score_learn_many(x, ts) >= tolerant.threshold).sum())
    assert fired["plain"] >= 20
    assert fired["tolerant"] * 10 <= fired["plain"]


def test_new_records_cost_a_few_alerts_on_heavy_tailed_noise() -> None:
    """A value beyond every value seen by more than the tolerance is new (``records``): a young
    memory meets some in Student-t noise, still far fewer than plain novelty's alerts."""
    rng = np.random.default_rng(3)
    series, points = 20, 3000
    plain = TransitionNoveltyBatch(series)
    forms = {
        "records": TolerantNoveltyBatch(series),
        "holes": TolerantNoveltyBatch(series, records=False),
    }
    fired = dict.fromkeys(["plain", *forms], 0)
    for t in range(points):
        x, ts = 100.0 + 3.0 * rng.standard_t(5, series), np.full(series, float(t))
        fired["plain"] += int((plain.score_learn_many(x, ts) >= plain.threshold).sum())
        for key, batch in forms.items():
            fired[key] += int((batch.score_learn_many(x, ts) >= batch.threshold).sum())
    assert fired["plain"] >= 20
    assert fired["holes"] < fired["records"]
    assert fired["records"] * 5 <= fired["plain"]


def _known_history(seed: int, doubled: bool = False) -> list[float]:
    """0 and 80 first (the warm-up's range: eight levels of 10), then noise around 15 (sd 1),
    with one visit to 41 at point 500; ``doubled``, one to 100 at point 1,000 as well, which
    doubles the span to 160 (levels of 20)."""
    v = 15.0 + np.random.default_rng(seed).standard_normal(2000)
    v[0], v[1], v[500] = 0.0, 80.0, 41.0
    if doubled:
        v[1000] = 100.0
    return v.tolist()


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_a_value_far_from_every_value_seen_is_new_though_its_level_is_known(seed: int) -> None:
    """48 is in the level of 41 (40 to 50), reached from the noise's level as 41 was: every
    level sequence ending at it is known. But no value seen comes within the tolerance (three
    typical steps, about 3.4) of it, so it is as new as a never-seen level; 43 is not."""
    threshold = TolerantNovelty.threshold
    for records in (True, False):
        d = TolerantNovelty(records=records)
        _feed(d, _known_history(seed))  # type: ignore[arg-type]
        assert d.score_one(48.0, 2000.0) >= threshold
        assert d.score_one(43.0, 2000.0) == 0.0


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_a_new_record_inside_the_range_is_new_only_with_records(seed: int) -> None:
    """After 100 the span reaches 160: 112 is inside it and in the level of 100 (100 to 120),
    but beyond every value seen by more than the tolerance. 42, seen as 41 before the span
    doubled, is still known after it."""
    threshold = TolerantNovelty.threshold
    scores = {}
    for records in (True, False):
        d = TolerantNovelty(records=records)
        _feed(d, _known_history(seed, doubled=True))  # type: ignore[arg-type]
        scores[records] = d.score_one(112.0, 2000.0)
        assert d.score_one(42.0, 2000.0) == 0.0
    assert scores[True] >= threshold
    assert scores[False] == 0.0


@pytest.mark.parametrize("up", [True, False])
def test_doubling_the_span_keeps_each_fine_value_seen(up: bool) -> None:
    """A value's fine level, carried to the doubled span, is the level it has in that span."""
    rng = np.random.default_rng(8)
    lo, span = 3.0, 10.0
    for steps in (1, 2, 3):
        new_lo = lo if up else lo - span * (2.0**steps - 1.0)
        for x in rng.uniform(lo, lo + span, 200):
            before = np.uint64(1) << np.uint64(fine_level(x, lo, span))
            after = np.uint64(1) << np.uint64(fine_level(x, new_lo, span * 2.0**steps))
            assert carry_fine(before, steps, up) == after, (x, steps)


def _staircase(order: list[float], dwell: int, cycles: int) -> list[float]:
    """Levels held for ``dwell`` points each, in ``order``, ``cycles`` times."""
    return [v + 0.01 * (i % 3) for _ in range(cycles) for v in order for i in range(dwell)]


def test_the_tolerant_form_still_fires_on_a_new_step_and_beyond_the_range() -> None:
    d = TolerantNovelty()
    scores = _feed(d, _staircase([0.5, 3.5, 7.5], 20, 12))  # type: ignore[arg-type]
    assert max(scores[200:]) == 0.0
    # Every level is known; stepping down from the top to the middle is not.
    down = _feed(d, _staircase([7.5, 3.5], 20, 1), start=len(scores))  # type: ignore[arg-type]
    assert max(down) >= TolerantNovelty.threshold
    d = TolerantNovelty()
    values = [100.0 + (i % 5) * 0.1 for i in range(400)]
    assert max(_feed(d, values)[200:]) == 0.0  # type: ignore[arg-type]
    assert d.score_one(130.0, 400.0) >= TolerantNovelty.threshold


@pytest.mark.parametrize(
    "params",
    [{"grids": 0}, {"tolerance": -1.0}, {"step_alpha": 0.0}, {"step_clip": 0.0},
     {"scales": (1,)}, {"scales": (4, 4)}, {"scales": (2048,)}, {"scales": (2, 4, 8, 16, 32)},
     {"day_parts": -1}, {"day_parts": 25}, {"day_after": 0}, {"utc_offset_h": 15.0}],
    ids=["grids", "tolerance", "alpha", "clip", "scale-1", "scale-twice", "scale-huge",
         "five-scales", "day-parts-negative", "day-parts-over-24", "day-after-0",
         "offset-15h"],
)  # fmt: skip
def test_bad_tolerant_parameters_are_rejected(params: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        TolerantNoveltyBatch(1, **params)  # type: ignore[arg-type]


def test_tolerant_state_is_small() -> None:
    """Three memories (the points and two block scales) of 131 bytes, the blocks, the rest,
    148 bytes of values by time of day and 19 of the deviation arm: well under the 1 KB a
    series may cost the worker."""
    assert sum(v[0].nbytes for v in TolerantNoveltyBatch(1).arrays().values()) <= 580
    alone = TolerantNoveltyBatch(1, scales=(), day_parts=0, deviation=0.0)
    assert sum(v[0].nbytes for v in alone.arrays().values()) <= 135
    arm = TolerantNoveltyBatch(1, scales=(), day_parts=0)
    assert sum(v[0].nbytes for v in arm.arrays().values()) == 19 + sum(
        v[0].nbytes for v in alone.arrays().values()
    )


@pytest.mark.parametrize("cls", [TransitionNovelty, TolerantNovelty])
def test_a_young_memory_fires_on_a_value_far_beyond_the_range(cls: type[TransitionNovelty]) -> None:
    rng = np.random.default_rng(2)
    d = cls()
    scores = _feed(d, (100.0 + 3.0 * rng.standard_normal(35)).tolist())
    assert d.warmed_up and max(scores) < cls.threshold
    # Five points after the warm-up, most transitions are still new to it: a plain new step
    # counts for little, a value far beyond everything seen counts in full.
    assert d.score_one(900.0, 35.0) == 1.0


def _days(
    days: int, seed: int, skip: int | None = None, moved_h: float = 0.0
) -> tuple[NDArray[np.float64], Floats]:
    """Five-minute points of a strict day shape: 20 at night, 80 from 9:00 to 18:00 (UTC), noise
    of 1; on day ``skip`` the day level never comes; from day 10 on the shape comes ``moved_h``
    hours later."""
    rng = np.random.default_rng(seed)
    ts = 1.7e9 // DAY_S * DAY_S + 300.0 * np.arange(days * 288, dtype=np.float64)
    day = (ts - ts[0]) // DAY_S
    hour = ((ts - np.where(day >= 10, moved_h * 3600.0, 0.0)) % DAY_S) / 3600.0
    high = (hour >= 9.0) & (hour < 18.0) & (day != skip)
    values: Floats = np.where(high, 80.0, 20.0) + rng.normal(0.0, 1.0, len(ts))
    return ts, values


def _scores(values: Floats, ts: NDArray[np.float64], **params: object) -> Floats:
    batch = TolerantNoveltyBatch(1, **params)  # type: ignore[arg-type]
    return batch.score_learn_sequence(np.zeros(len(values), dtype=np.intp), values, ts)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_day_without_its_daily_peak_is_new_only_to_the_memory_by_time_of_day(seed: int) -> None:
    """Every value of the day that stays at the night level is a value the series has always had;
    only the hour is wrong. The memory by time of day fires on it, once, and adds no other alert
    (the sharp steps of this shape make a few of the point memory's own)."""
    ts, values = _days(14, seed, skip=10)
    on = (ts - ts[0]) // DAY_S == 10
    threshold = TolerantNoveltyBatch.threshold
    hour = (ts % DAY_S) / 3600.0
    fired = _scores(values, ts) >= threshold
    without = _scores(values, ts, day_parts=0) >= threshold
    # One alert, once the peak is an hour late (an hour's slack: a shape may move by one);
    # without the memory, none then.
    assert fired[on].sum() == 1 and 10.0 <= hour[on][fired[on]][0] < 11.0
    assert not without[on & (hour < 12.0)].any()
    assert np.array_equal(fired[~on], without[~on])


@pytest.mark.parametrize("moved_h", [-1.0, 1.0])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_day_shape_that_moves_by_an_hour_is_not_news(moved_h: float, seed: int) -> None:
    """Daylight saving time moves a local day shape by an hour in UTC: the memory by time of
    day looks for a value an hour either way, so it adds no alert (asked of its own part of
    the day alone, it added one for two of these seeds)."""
    ts, values = _days(16, seed, moved_h=moved_h)
    threshold = TolerantNoveltyBatch.threshold
    fired = _scores(values, ts) >= threshold
    assert np.array_equal(fired, _scores(values, ts, day_parts=0) >= threshold)


def test_weekends_have_parts_of_their_own() -> None:
    saturday, monday = 1704499200.0, 1704672000.0  # 2024-01-06 and 2024-01-08, 00:00 UTC
    assert [day_slot(saturday + h * 3600.0, 8, True) for h in (0, 13, 23)] == [8, 12, 15]
    assert [day_slot(monday + h * 3600.0, 8, True) for h in (0, 13, 23)] == [0, 4, 7]
    assert day_slot(saturday + 13 * 3600.0, 8, False) == 4
    assert day_slot(float("nan"), 8, True) == -1
    assert 0 <= day_slot(1e300, 8, True) < 16 and 0 <= day_slot(-1e300, 8, True) < 16
    assert day_slot(-3600.0, 8, False) == 7  # 1969-12-31, 23:00


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_weekday_shaped_like_a_weekend_is_new_only_with_weekends_apart(seed: int) -> None:
    """Weekdays rise to 80 from 9:00 to 18:00, weekends stay at 20. A Wednesday that stays at 20
    is ordinary for the hour of a weekend, not of a weekday: only weekends kept apart see it."""
    ts, values = _weekly(seed, skip=16)
    weekday = ((ts // DAY_S).astype(np.int64) + 3) % 7
    day = (ts - ts[0]) // DAY_S
    on = day == 16
    assert weekday[on][0] < 5  # the skipped day is a weekday
    threshold = TolerantNoveltyBatch.threshold
    fired = _scores(values, ts) >= threshold
    assert fired[on].any()
    assert not (_scores(values, ts, weekends=False) >= threshold)[on].any()
    assert np.array_equal(fired[~on], (_scores(values, ts, day_parts=0) >= threshold)[~on])


def _weekly(seed: int, skip: int) -> tuple[NDArray[np.float64], Floats]:
    """Four weeks of ``_days`` whose weekends stay at 20 all day."""
    ts, values = _days(28, seed, skip=skip)
    weekday = ((ts // DAY_S).astype(np.int64) + 3) % 7
    hour = (ts % DAY_S) / 3600.0
    return ts, np.where((weekday >= 5) & (hour >= 9.0) & (hour < 18.0), values - 60.0, values)


@pytest.mark.parametrize("offset_h", [-8.0, 5.5])
def test_a_series_in_local_time_is_seen_as_in_utc_with_its_offset(offset_h: float) -> None:
    """The same week of a series kept in local time (its clock readings ``offset_h`` hours
    from UTC) scores exactly as in UTC once the detector is told the offset."""
    ts, values = _weekly(2, skip=16)
    local = ts - offset_h * 3600.0  # the same readings, taken where the clock is offset_h ahead
    in_utc = _scores(values, ts)
    assert in_utc.max() >= TolerantNoveltyBatch.threshold
    assert np.array_equal(_scores(values, local, utc_offset_h=offset_h), in_utc)
    batch = TolerantNoveltyBatch(1, utc_offset_h=offset_h)
    zone = "UTC-08:00" if offset_h < 0 else "UTC+05:30"
    assert f"09:00 to 12:00 {zone})" in str(batch.explain(WHY_HOUR, local[16 * 288 + 120]))


def test_the_memory_by_time_of_day_waits_its_days() -> None:
    ts, values = _days(14, 1, skip=10)
    day = (ts - ts[0]) // DAY_S
    assert _scores(values, ts, day_after=11)[day == 10].max() < TolerantNoveltyBatch.threshold


@pytest.mark.parametrize("parts", [8, 24])
@pytest.mark.parametrize("kind", ["gaussian", "student-t", "no-times"])
def test_noise_never_opens_the_memory_by_time_of_day(kind: str, parts: int) -> None:
    """Noise reaches the same values at every hour: the time of day never matters, and the
    scores are those of the detector without that memory (also for points without a time)."""
    rng = np.random.default_rng(3)
    n = 14 * 288
    noise = rng.standard_t(3, n) if kind == "student-t" else rng.normal(0.0, 1.0, n)
    values: Floats = 100.0 + 3.0 * noise
    ts = (
        np.full(n, np.nan) if kind == "no-times" else 1.7e9 + 300.0 * np.arange(n, dtype=np.float64)
    )
    batch = TolerantNoveltyBatch(1, day_parts=parts)
    scores = batch.score_learn_sequence(np.zeros(n, dtype=np.intp), values, ts)
    assert np.array_equal(scores, _scores(values, ts, day_parts=0))
    assert not hours_matter(batch.arrays()["daily"][0], 0)


def test_the_time_of_day_matters_when_no_level_is_near_values_at_every_hour() -> None:
    words = np.array([0b0011, 0b0110, 0b1100], dtype=np.uint64)
    assert hours_matter(words, 0)
    assert not hours_matter(words, 1)  # level 2 is within one level of each part's values
    assert not hours_matter(np.array([0b0011, 0b0110, 0b0010], dtype=np.uint64), 0)
    assert not hours_matter(np.array([0b0011, 0, 0b1100], dtype=np.uint64), 0)  # a part unseen
    assert not hours_matter(np.array([1, 1 << 63], dtype=np.uint64), 64)


def test_a_version_4_state_restores_warm_without_the_memory_by_time_of_day() -> None:
    d = TolerantNovelty()
    _feed(d, [100.0 + i % 7 for i in range(60)])  # type: ignore[arg-type]
    state = d.to_state()
    state["version"] = 4
    for key in ("daily", "daily_rate", "clock", "pending"):
        del state["state"][key]
    for key in ("day_parts", "day_after", "weekends"):
        del state["params"][key]
    restored = TolerantNovelty.from_state(state)
    assert restored.warmed_up
    assert restored.to_state()["state"]["clock"] == -1
    assert restored.score_one(100.0, 60.0) == d.score_one(100.0, 60.0)
    state["version"] = 3
    with pytest.raises(ValueError):
        TolerantNovelty.from_state(state)


def test_explain_names_the_memory() -> None:
    batch = TolerantNoveltyBatch(1, day_parts=6)
    saturday_noon = 1704499200.0 + 12 * 3600.0
    assert "never seen in this series" in str(batch.explain(1, saturday_noon))
    assert (
        batch.explain(3, saturday_noon)
        == "the mean of the last 16 points: never seen in this series"
    )
    assert batch.explain(WHY_HOUR, saturday_noon) == (
        "the value: never seen at this time of day (weekends, 12:00 to 16:00 UTC)"
    )
    assert batch.explain(0, saturday_noon) is None and batch.explain(9, saturday_noon) is None
    assert TolerantNoveltyBatch(1, weekends=False).explain(WHY_HOUR, saturday_noon) == (
        "the value: never seen at this time of day (any day, 12:00 to 15:00 UTC)"
    )


@pytest.mark.parametrize("cls", [TransitionNoveltyBatch, TolerantNoveltyBatch])
@pytest.mark.parametrize("side", ["below", "above"])
def test_a_rounding_error_beyond_the_range_does_not_double_the_span(
    cls: type[TransitionNoveltyBatch], side: str
) -> None:
    """A value that repeats the range's lowest or highest one up to rounding (a periodic
    series' value computed again) is not new ground; a value truly beyond it is."""
    warm = 100.0 + 20.0 * np.sin(2.0 * np.pi * np.arange(60) / 60.0)
    edge = float(warm.min() if side == "below" else warm.max())
    for beyond, doubled in ((edge * 1e-15, False), (0.5, True)):
        d = cls(1)
        for t, v in enumerate(warm.tolist()):
            d.score_learn_many(np.array([v]), np.array([60.0 * t]))
        span = float(d._span[0])
        x = edge - beyond if side == "below" else edge + beyond
        assert x != edge
        d.score_learn_many(np.array([x]), np.array([3600.0]))
        assert (float(d._span[0]) == 2.0 * span) is doubled, (beyond, span, d._span[0])


def test_a_noise_free_sine_raises_no_point_to_half() -> None:
    """Sines of every phase, one point a minute, an hour's period: a value a hair below the
    warm-up's lowest one (the same value computed again) doubled the span, and the next step,
    out of a level only just entered, looked new: 18 points scored 0.5 or more in 27 series."""
    t = np.arange(1600, dtype=np.float64)
    phases = np.linspace(0.0, 60.0, 27, endpoint=False)[:, None]
    sines = 100.0 + 20.0 * np.sin(2.0 * np.pi * (t + phases) / 60.0)
    batch = TolerantNoveltyBatch(len(sines))
    scores = np.empty(sines.shape)
    for i in range(sines.shape[1]):
        scores[:, i] = batch.score_learn_many(sines[:, i], np.full(len(sines), 60.0 * i))
    assert int((scores[:, 300:] >= 0.5).sum()) == 0
