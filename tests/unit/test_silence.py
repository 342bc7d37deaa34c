"""Silent streams (``detectors.silence``), as timelines: points in, the silences they make."""

from __future__ import annotations

import json

import numpy as np
import pytest

from detectors.silence import Deadlines, SilenceParams, SilenceWatch, Silent, heartbeat_series

LIVE = 1_000_000.0  # wall-clock seconds of a live partition: points at ``LIVE + t``


def feed(
    w: SilenceWatch, points: dict[str, list[float]], wall: float, **kw: object
) -> list[Silent]:
    series = [k for k, ts in points.items() for _ in ts]
    ts = np.array([t for v in points.values() for t in v], dtype=np.float64)
    received = float(kw.get("received", ts.max()))  # type: ignore[arg-type]
    return w.observe(series, ts, received, wall, kw.get("deadlines"))  # type: ignore[arg-type]


def every(start: float, stop: float, step: float = 10.0) -> list[float]:
    return [float(t) for t in np.arange(start, stop, step)]


def test_a_regular_series_that_stops_fires_once_and_resolves_when_it_returns() -> None:
    w = SilenceWatch(SilenceParams(floor_s=1.0))
    feed(w, {"api|rps": every(LIVE, LIVE + 100), "api|p99": every(LIVE, LIVE + 100)}, LIVE + 100)
    fired = []
    # p99 stops at LIVE + 90; rps goes on: the expectation is 5 x 10 s.
    for t in every(LIVE + 100, LIVE + 300):
        feed(w, {"api|rps": [t]}, t)
        fired += w.check(t)
    assert [(s.key, s.status, s.last_ts) for s in fired] == [("api|p99", "firing", LIVE + 90)]
    assert fired[0].at == LIVE + 140 and fired[0].expected_s == 50.0
    back = feed(w, {"api|p99": [LIVE + 300]}, LIVE + 300)
    assert [(s.key, s.status, s.last_ts, s.at) for s in back] == [
        ("api|p99", "resolved", LIVE + 90, LIVE + 300)
    ]
    # The silence is no interval of its cadence: it is watched again at once.
    feed(w, {"api|rps": every(LIVE + 310, LIVE + 400)}, LIVE + 400)
    assert [s.key for s in w.check(LIVE + 400)] == ["api|p99"]


def test_no_silence_while_points_flow() -> None:
    w = SilenceWatch(SilenceParams(floor_s=1.0))
    fired = []
    for t in every(LIVE, LIVE + 2000):
        feed(w, {"a|x": [t], "b|x": [t + 3]}, t + 3)
        fired += w.check(t + 9)
    assert fired == []


def test_a_whole_live_partition_that_stops_fires_by_the_wall_clock() -> None:
    w = SilenceWatch(SilenceParams(floor_s=1.0))
    feed(w, {"a|x": every(LIVE, LIVE + 100)}, LIVE + 90)
    assert w.check(LIVE + 120) == []
    assert [s.key for s in w.check(LIVE + 150)] == ["a|x"]


def test_a_paused_replay_fires_nothing() -> None:
    """Last week's points read now: far behind the broker, so a pause is not an outage."""
    w = SilenceWatch(SilenceParams(floor_s=1.0))
    week_ago = LIVE - 7 * 86400
    feed(w, {"a|x": every(week_ago, week_ago + 100), "b|x": every(week_ago, week_ago + 100)},
         LIVE, received=LIVE)  # fmt: skip
    assert w.check(LIVE + 86400) == []


@pytest.mark.parametrize("future", [3600.0, 7 * 86400.0], ids=["an-hour", "a-week"])
def test_one_point_from_the_future_fires_nothing(future: float) -> None:
    w = SilenceWatch(SilenceParams(floor_s=1.0))
    start = LIVE - 30 * 86400  # a replay of last month; the broker time is now
    names = [f"s{i}|x" for i in range(20)]
    feed(w, {n: every(start, start + 100) for n in names}, LIVE, received=LIVE)
    # A producer with a wrong clock: one point of one series, far ahead of the others.
    feed(w, {"s0|x": [start + 90 + future]}, LIVE, received=LIVE)
    assert w.check(LIVE) == []
    # A new series' first point from the future, the same.
    feed(w, {"new|x": [start + 90 + future]}, LIVE, received=LIVE)
    assert w.check(LIVE) == []


def test_a_point_never_moves_the_clock_past_the_broker() -> None:
    w = SilenceWatch(SilenceParams(floor_s=1.0))
    feed(w, {"a|x": every(LIVE, LIVE + 100), "b|x": every(LIVE, LIVE + 100)}, LIVE + 90)
    feed(w, {"b|x": [LIVE + 100]}, LIVE + 95, received=LIVE + 95)
    assert w.clock == LIVE + 95
    assert w.check(LIVE + 95) == []


def test_an_irregular_series_is_not_watched() -> None:
    w = SilenceWatch(SilenceParams(floor_s=1.0))
    bursty = [LIVE, LIVE + 1, LIVE + 2, LIVE + 60, LIVE + 61, LIVE + 62, LIVE + 63]
    for t in bursty:  # as they arrive: a batch's points of one series count as its mean step
        feed(w, {"job|x": [t], "api|x": [t]}, t)
    assert w.expected_s("job|x") is None
    assert all(s.key != "job|x" for s in w.check(LIVE + 10_000))


def test_too_few_intervals_are_not_a_cadence() -> None:
    w = SilenceWatch(SilenceParams(floor_s=1.0, min_intervals=5))
    feed(w, {"a|x": every(LIVE, LIVE + 50)}, LIVE + 50)  # 4 intervals
    assert w.check(LIVE + 100_000) == []


def test_the_floor_bounds_a_fast_cadence() -> None:
    w = SilenceWatch(SilenceParams(floor_s=300.0))
    feed(w, {"a|x": every(LIVE, LIVE + 10, 1.0)}, LIVE + 9)
    assert w.check(LIVE + 9 + 299) == []
    assert [s.expected_s for s in w.check(LIVE + 9 + 301)] == [300.0]


def test_a_service_heartbeat_is_any_point_of_the_service() -> None:
    w = SilenceWatch(SilenceParams(learned=False))
    beat = Deadlines(services={"db": 30.0})
    feed(w, {"db|conn": [LIVE], "db|qps": [LIVE + 20]}, LIVE + 20, deadlines=beat)
    assert w.check(LIVE + 49, beat) == []
    [silent] = w.check(LIVE + 51, beat)
    assert (silent.key, silent.service, silent.last_ts, silent.source) == (
        "service:db", "db", LIVE + 20, "heartbeat"
    )  # fmt: skip
    assert w.check(LIVE + 500, beat) == []
    [back] = feed(w, {"db|conn": [LIVE + 600]}, LIVE + 600, deadlines=beat)
    assert (back.key, back.status, back.last_ts) == ("service:db", "resolved", LIVE + 20)


def test_a_named_heartbeat_is_watched_from_its_first_beat() -> None:
    w = SilenceWatch(SilenceParams(learned=False))
    key = heartbeat_series("db", "backup")
    beat = Deadlines(series={key: 3600.0})
    feed(w, {key: [LIVE]}, LIVE, deadlines=beat)
    assert w.check(LIVE + 3599, beat) == []
    [silent] = w.check(LIVE + 3601, beat)
    assert (silent.key, silent.status, silent.expected_s) == (key, "firing", 3600.0)


def test_a_daily_job_that_beat_twice_and_stopped_fires_on_a_partition_of_its_own() -> None:
    # Two beats a day apart: the second is within the catalog's expectation, so it moves the
    # partition's clock though the series has no learned cadence yet. Else the clock stayed
    # at the first beat, the partition looked like a replay a day behind, and nothing fired.
    w = SilenceWatch()
    key = heartbeat_series("billing", "nightly-export")
    beat = Deadlines(series={key: 90_000.0})
    day = 86_400.0
    feed(w, {key: [LIVE]}, LIVE, deadlines=beat)
    feed(w, {key: [LIVE + day]}, LIVE + day, deadlines=beat)
    assert w.check(LIVE + day + 89_999, beat) == []
    [silent] = w.check(LIVE + day + 90_001, beat)
    assert (silent.key, silent.last_ts, silent.source) == (key, LIVE + day, "heartbeat")


def test_a_service_heartbeat_slower_than_the_live_lag_fires_before_a_cadence_is_learned() -> None:
    w = SilenceWatch()
    beat = Deadlines(services={"db": 900.0})
    for t in (LIVE, LIVE + 600):  # every 10 minutes: two points are no learned cadence
        feed(w, {"db|conn": [t]}, t, deadlines=beat)
    assert w.check(LIVE + 600 + 899, beat) == []
    [silent] = w.check(LIVE + 600 + 901, beat)
    assert (silent.key, silent.last_ts) == ("service:db", LIVE + 600)


def test_a_beat_far_past_the_catalog_expectation_does_not_move_the_clock() -> None:
    w = SilenceWatch()
    key = heartbeat_series("db", "backup")
    beat = Deadlines(series={key: 3600.0})
    feed(w, {key: [LIVE]}, LIVE, deadlines=beat)
    feed(w, {key: [LIVE + 86_400]}, LIVE + 10, received=LIVE + 10, deadlines=beat)
    assert w.clock == LIVE + 10  # the 10 s of wall-clock time, not the beat's day


def test_a_live_partition_keeps_the_wall_clock_time_it_gained_when_a_new_series_arrives() -> None:
    # The partition is live at LIVE; 211 s later the first point of another service comes.
    # Its own point moves nothing (no cadence yet), but the 211 s already counted stay: its
    # 15 s heartbeat fires 15 s after it, not 211 s later.
    w = SilenceWatch(SilenceParams(learned=False))
    beat = Deadlines(services={"checkout": 15.0})
    feed(w, {"billing|heartbeat": [LIVE]}, LIVE, deadlines=beat)
    feed(w, {"checkout|latency_ms": [LIVE + 211]}, LIVE + 211, deadlines=beat)
    assert w.check(LIVE + 211 + 14, beat) == []
    [silent] = w.check(LIVE + 211 + 16, beat)
    assert (silent.key, silent.last_ts) == ("service:checkout", LIVE + 211)


def test_rows_and_names_give_the_same_silences() -> None:
    by_name, by_row = (
        SilenceWatch(SilenceParams(floor_s=1.0)),
        SilenceWatch(SilenceParams(floor_s=1.0)),
    )
    names = ["a|x", "b|x"]
    for t in every(LIVE, LIVE + 200):
        points = {"a|x": [t, t + 5]} if t < LIVE + 100 else {}
        points["b|x"] = [t, t + 5]
        feed(by_name, points, t + 5)
        rows = np.array([names.index(k) for k, v in points.items() for _ in v], dtype=np.intp)
        ts = np.array([x for v in points.values() for x in v])
        by_row.observe_rows(rows, ts, names.__getitem__, float(ts.max()), t + 5)
        assert by_name.check(t + 5) == by_row.check(t + 5)
    assert by_name._firing == by_row._firing == {"a|x": 25.0}


def test_forgotten_series_free_their_memory() -> None:
    w = SilenceWatch(SilenceParams(floor_s=1.0, forget_s=1000.0))
    feed(w, {"a|x": every(LIVE, LIVE + 100)}, LIVE + 90)
    w.check(LIVE + 200)
    assert len(w) == 1
    w.check(LIVE + 2000)
    assert len(w) == 0


def test_a_restored_watch_neither_fires_again_nor_forgets_to_resolve() -> None:
    params = SilenceParams(floor_s=1.0)
    w = SilenceWatch(params)
    beat = Deadlines(services={"api": 30.0})
    feed(w, {"api|x": every(LIVE, LIVE + 100)}, LIVE + 90, deadlines=beat)
    fired = w.check(LIVE + 200, beat)
    assert sorted(s.key for s in fired) == ["api|x", "service:api"]
    again = SilenceWatch.from_state(params, w.to_state())
    assert again.check(LIVE + 300, beat) == []
    back = feed(again, {"api|x": [LIVE + 300]}, LIVE + 300, deadlines=beat)
    assert sorted((s.key, s.status) for s in back) == [
        ("api|x", "resolved"), ("service:api", "resolved")
    ]  # fmt: skip


def test_a_state_of_another_version_starts_afresh() -> None:
    assert len(SilenceWatch.from_state(SilenceParams(), {"v": 99, "series": {"a|x": []}})) == 0


def test_checkpoint_blocks_are_bounded_by_size() -> None:
    from streams.detect.checkpoints import watch_blocks

    entries = {f"s{i}|m|" + "x" * 100: [1.0, None, None, 1.0] for i in range(50)}
    entries["huge|m|" + "y" * 5000] = [1.0, None, None]
    blocks = [json.loads(b) for b in watch_blocks({"v": 1, "series": entries}, 1000)]
    assert all(len(json.dumps(b["series"], separators=(",", ":"))) <= 1000 for b in blocks)
    assert sum(len(b["series"]) for b in blocks) == 50  # the one larger than a block is left out
    assert [b["part"] for b in blocks] == list(range(len(blocks))) and blocks[0]["of"] == len(
        blocks
    )
    assert [json.loads(b) for b in watch_blocks({"v": 1, "series": {}}, 1000)] == [
        {"v": 1, "part": 0, "of": 1, "series": {}}
    ]


def test_a_silence_detection_is_built_whatever_labels_its_id_holds() -> None:
    from detectors.silence import Silent, detection
    from schemas.common import MAX_LABELS

    many = ",".join(f"k{i}=v" for i in range(MAX_LABELS + 5))
    found = detection(Silent(f"api|rps|{many}", "api", "firing", 20.0, 10.0, 10.0, "learned"))
    assert found.labels == {} and found.context["series"].startswith("api|rps|k0=v")
    ok = detection(Silent("api|rps|zone=a,x=1", "api", "resolved", 20.0, 10.0, 10.0, "learned"))
    assert ok.labels == {"zone": "a", "x": "1"} and ok.status == "resolved"
