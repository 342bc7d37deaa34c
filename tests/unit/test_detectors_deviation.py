"""The default's deviation arm: a value many times further from the series' robust level than
any lately seen scores at once, whatever the novelty memory is resting from; noise never does."""

from __future__ import annotations

import numpy as np
import pytest

from detectors.transition import WHY_DEVIATION, TolerantNovelty, TolerantNoveltyBatch

THRESHOLD = TolerantNovelty.threshold


def _scores(d: TolerantNovelty, values: np.ndarray, start: int = 0) -> list[float]:
    out = []
    for t, v in enumerate(values.tolist(), start):
        out.append(d.score_one(v, 60.0 * t))
        d.learn_one(v, 60.0 * t)
    return out


def _walk(seed: int, n: int = 1200) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return 100.0 + np.cumsum(rng.normal(0.0, 0.3, n))


@pytest.mark.parametrize("kind", ["spike", "shift"])
def test_an_obvious_change_right_after_an_alert_is_not_rested_away(kind: str) -> None:
    # A random walk sets new records: the novelty memory alerts on one and rests for
    # ``rest_period`` points. A x5 spike or a x3 shift inside that rest still scores at once.
    for seed in range(6):
        d = TolerantNovelty()
        walk = _walk(seed)
        scores = _scores(d, walk[:600])
        alerts = [t for t, s in enumerate(scores) if t > 300 and s >= THRESHOLD]
        if not alerts:
            continue
        onset = alerts[0] + 5
        rest = walk.copy()
        if kind == "spike":
            rest[onset : onset + 9] *= 5.0
        else:
            rest[onset:] *= 3.0
        d = TolerantNovelty()
        scores = _scores(d, rest[: onset + 10])
        assert max(scores[onset:]) >= 0.5, (seed, alerts[0], onset)
        return
    pytest.fail("no seed gave an alert to rest from")


def _noise_alerts(kind: str, deviation: float) -> int:
    rng = np.random.default_rng(11)
    batch = TolerantNoveltyBatch(50, deviation=deviation)
    high = 0
    for t in range(4000):
        draw = rng.standard_normal(50) if kind == "gaussian" else rng.standard_t(3, 50)
        scores = batch.score_learn_many(100.0 + 3.0 * draw, np.full(50, 60.0 * t))
        high += int((scores >= THRESHOLD).sum())
    return high


@pytest.mark.parametrize("kind", ["gaussian", "student_t3"])
def test_noise_raises_no_deviation_alert(kind: str) -> None:
    # Student-t with 3 degrees of freedom: tails so heavy that the memory alone alerts on
    # some of its records; the arm adds none of its own.
    assert _noise_alerts(kind, 6.0) == _noise_alerts(kind, 0.0)


def test_the_arm_can_be_turned_off_and_then_rests_with_the_novelty() -> None:
    walk = _walk(0)
    off = TolerantNovelty(deviation=0.0)
    on = TolerantNovelty()
    assert "zmean" not in off.to_state()["state"] and "zmean" in on.to_state()["state"]
    quiet = walk.copy()
    assert _scores(off, quiet[:300]) == _scores(TolerantNovelty(deviation=0.0), quiet[:300])


def test_a_version_5_state_restores_warm_with_a_fresh_deviation_arm() -> None:
    d = TolerantNovelty()
    _scores(d, _walk(1, 400))
    state = d.to_state()
    state["version"] = 5
    for key in ("zmean", "zdev", "zmax", "zcount", "zrest"):
        del state["state"][key]
    for key in ("deviation", "deviation_margin"):
        del state["params"][key]
    restored = TolerantNovelty.from_state(state)
    assert restored.warmed_up
    # A fresh arm learns before it scores: the next ordinary point is not news.
    assert restored.score_one(float(_walk(1, 401)[-1]), 400 * 60.0) < THRESHOLD
    assert restored.to_state()["state"]["zcount"] == 0


def test_a_detection_of_the_arm_says_so() -> None:
    # A x5 spike while the memories rest from an alert of their own: the arm's score.
    for seed in range(6):
        batch = TolerantNoveltyBatch(1)
        walk = _walk(seed)
        alert = None
        for t, v in enumerate(walk.tolist()):
            [score] = batch.score_learn_many(np.array([v]), np.array([60.0 * t]))
            if t > 300 and score >= THRESHOLD:
                alert = t
                break
        if alert is None:
            continue
        spike = walk[alert + 1] * 5.0
        [score] = batch.score_learn_many(np.array([spike]), np.array([60.0 * (alert + 1)]))
        assert score >= 0.5 and batch.last_why[0] == WHY_DEVIATION
        assert "further from the series' level" in str(batch.explain(WHY_DEVIATION, 0.0))
        return
    pytest.fail("no seed gave an alert to rest from")
