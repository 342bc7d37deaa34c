"""The NAB score on hand-computed cases."""

from __future__ import annotations

import math

import numpy as np
import pytest

from detectors.nab import (
    CostProfile,
    LabelledFile,
    probation_rows,
    profiles_from_config,
    scaled_sigmoid,
    score_corpus,
    window_rows,
)

STANDARD = CostProfile("standard", 1.0, 0.11, 1.0)
LOW_FN = CostProfile("reward_low_FN_rate", 1.0, 0.11, 2.0)
# 100 rows: probation is rows 0..14; one window on rows 40..49 (width 10).
FILE = LabelledFile("f.csv", 100, ((40, 49),))


def _scores(*hits: int) -> np.ndarray:
    s = np.zeros(100)
    for i in hits:
        s[i] = 1.0
    return s


def test_probation_is_fifteen_percent_capped_at_750_rows() -> None:
    assert probation_rows(100) == 15
    assert probation_rows(4033) == 604
    assert probation_rows(22695) == 750


def test_scaled_sigmoid_reference_points() -> None:
    assert scaled_sigmoid(-1.0) == pytest.approx(0.98661, abs=1e-5)
    assert scaled_sigmoid(-0.5) == pytest.approx(0.84828, abs=1e-5)
    assert scaled_sigmoid(0.0) == 0.0
    assert scaled_sigmoid(1.0) == pytest.approx(-0.98661, abs=1e-5)
    assert scaled_sigmoid(3.0) == -1.0


@pytest.mark.parametrize("profile", [STANDARD, LOW_FN], ids=lambda p: p.name)
def test_null_detector_scores_zero(profile: CostProfile) -> None:
    r = score_corpus([FILE], [np.full(100, 0.5)], profile)
    assert r.score == 0.0
    assert r.null == -profile.fn_weight
    assert r.found == 0


def test_perfect_detector_scores_hundred() -> None:
    r = score_corpus([FILE], [_scores(40)], STANDARD)
    assert r.score == pytest.approx(100.0)
    assert (r.found, r.false_positives, r.threshold) == (1, 0, 1.0)


def test_late_detection_is_worth_the_sigmoid_of_its_position() -> None:
    # Row 45 of window 40..49: position -(49 - 45 + 1) / 10 = -0.5.
    r = score_corpus([FILE], [_scores(45)], STANDARD)
    tp = scaled_sigmoid(-0.5) / scaled_sigmoid(-1.0)
    assert r.raw == pytest.approx(tp)
    assert r.score == pytest.approx(100.0 * (tp + 1.0) / 2.0)


def test_false_positive_before_any_window_costs_the_full_weight() -> None:
    # A detection at row 20 and one at the window start: 1 - 0.11.
    r = score_corpus([FILE], [_scores(20, 40)], STANDARD)
    assert r.raw == pytest.approx(1.0 - 0.11)
    assert r.score == pytest.approx(100.0 * (1.0 - 0.11 + 1.0) / 2.0)
    assert r.false_positives == 1


def test_false_positive_right_after_a_window_costs_little() -> None:
    # Row 50 is 1 row past the window end: position 1 / (10 - 1).
    r = score_corpus([FILE], [_scores(40, 50)], STANDARD)
    fp = 0.11 * scaled_sigmoid(1.0 / 9.0)
    assert r.raw == pytest.approx(1.0 + fp)
    assert fp < 0.0


def test_detections_in_probation_are_ignored() -> None:
    r = score_corpus([FILE], [_scores(5, 40)], STANDARD)
    assert r.score == pytest.approx(100.0)


def test_only_the_earliest_detection_in_a_window_counts() -> None:
    r = score_corpus([FILE], [_scores(42, 43, 48)], STANDARD)
    position = -(49 - 42 + 1) / 10.0
    assert r.raw == pytest.approx(scaled_sigmoid(position) / scaled_sigmoid(-1.0))


def test_threshold_is_optimized_over_the_corpus() -> None:
    # Graded scores: the window start scores 0.8, a spike outside scores 0.9. Admitting the
    # spike costs 0.11 but gains the window, so the best threshold is 0.8, not 0.9.
    s = np.zeros(100)
    s[30], s[40] = 0.9, 0.8
    r = score_corpus([FILE], [s], STANDARD)
    assert r.threshold == 0.8
    assert r.raw == pytest.approx(1.0 - 0.11)
    # Under a costlier false positive than a missed window, skipping both is best.
    costly = CostProfile("costly", 1.0, 3.0, 1.0)
    assert score_corpus([FILE], [s], costly).threshold == math.inf


def test_a_given_threshold_scores_the_operating_point() -> None:
    s = np.zeros(100)
    s[30], s[40] = 0.9, 0.8
    # At 0.85 only the spike outside the window is detected: the window is missed.
    at = score_corpus([FILE], [s], STANDARD, threshold=0.85)
    assert at.threshold == 0.85 and at.found == 0 and at.false_positives == 1
    assert at.raw == pytest.approx(-1.0 - 0.11)
    # At the optimum it agrees with the optimized score.
    assert score_corpus([FILE], [s], STANDARD, threshold=0.8).raw == pytest.approx(1.0 - 0.11)


def test_window_rows_match_first_timestamp() -> None:
    assert window_rows(["a", "b", "b", "c"], [("b", "c")]) == [(1, 3)]
    with pytest.raises(ValueError):
        window_rows(["a"], [("x", "a")])


def test_profiles_from_config() -> None:
    config = {"standard": {"CostMatrix": {"tpWeight": 1.0, "fpWeight": 0.11, "fnWeight": 1.0}}}
    assert profiles_from_config(config) == [STANDARD]
