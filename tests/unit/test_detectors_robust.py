"""Median/MAD robust z-score: a window that mostly holds one value still has a scale."""

from __future__ import annotations

import pytest

from detectors.robust import MedianMad


def _fed(values: list[float]) -> MedianMad:
    d = MedianMad()
    for t, v in enumerate(values):
        d.learn_one(v, float(t))
    return d


def test_a_count_that_is_mostly_zero_is_scaled_by_its_mean_deviation() -> None:
    # 0, 0, 1, 0, 1, ...: the median is 0 and so is the MAD (three in five are 0).
    d = _fed([1.0 if t % 5 in (2, 4) else 0.0 for t in range(60)])
    _, scale = d.baseline()
    assert scale == pytest.approx(1.2533 * 0.4)
    assert d.score_one(1.0, 60.0) < MedianMad.threshold
    assert d.score_one(10.0, 60.0) >= MedianMad.threshold


def test_a_window_with_spread_keeps_the_mad() -> None:
    d = _fed([100.0 + (t % 7) for t in range(60)])
    med, scale = d.baseline()
    assert med == 103.0
    assert scale == pytest.approx(1.4826 * 2.0)


def test_a_flat_window_falls_back_to_the_floor() -> None:
    d = _fed([50.0] * 60)
    med, scale = d.baseline()
    assert med == 50.0 and scale == pytest.approx(0.5)  # 1% of the median
    assert d.score_one(50.0, 60.0) == 0.0
    assert d.score_one(53.0, 60.0) >= MedianMad.threshold
