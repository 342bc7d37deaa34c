"""The default detector on a live-like series: quiet on noise, fires on a jump right away."""

from __future__ import annotations

import random

import pytest

from detectors.registry import DEFAULT_DETECTOR, DETECTORS, make_detector


@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5])
def test_default_fires_on_a_jump_and_not_on_noise(seed: int) -> None:
    rng = random.Random(seed)
    d = make_detector(DEFAULT_DETECTOR)
    threshold = DETECTORS[DEFAULT_DETECTOR].threshold
    t = 0.0
    warm_at = None
    fired = []
    for i in range(3000):
        v = 100.0 + rng.gauss(0.0, 3.0)
        s = d.score_one(v, t)
        if d.warmed_up and warm_at is None:
            warm_at = i
        if s >= threshold:
            fired.append(i)
        d.learn_one(v, t)
        t += 1.0
    assert warm_at is not None and warm_at <= 30
    assert not fired, f"fired on noise at points {fired}"
    jump = []
    for _ in range(2):
        v = 400.0 + rng.gauss(0.0, 3.0)
        jump.append(d.score_one(v, t))
        d.learn_one(v, t)
        t += 1.0
    assert max(jump) >= threshold
