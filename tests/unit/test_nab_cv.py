"""Leave-one-category-out NAB scores: every choice is made without the category it scores."""

from __future__ import annotations

import numpy as np
import pytest

from detectors.nab import CostProfile, LabelledFile, cross_validate, file_groups, score_corpus

STANDARD = CostProfile("standard", 1.0, 0.11, 1.0)
# 100 rows each: probation is rows 0..14; one window on rows 40..49.
A = LabelledFile("a/one.csv", 100, ((40, 49),))
B = LabelledFile("b/two.csv", 100, ((40, 49),))


def _scores(window: float, outside: float = 0.0) -> np.ndarray:
    s = np.zeros(100)
    s[20:30] = outside
    s[40] = window
    return s


def test_a_file_belongs_to_the_category_of_its_folder() -> None:
    assert file_groups([A, B, LabelledFile("c.csv", 10, ())]) == ["a", "b", ""]


def test_each_category_is_scored_at_the_threshold_the_others_choose() -> None:
    # Category a: the anomaly scores 0.9, ten noise points 0.6; category b: the anomaly 0.6.
    # Chosen on b, the threshold (0.6) takes a's noise; chosen on a (0.9), it misses b.
    scores = [_scores(0.9, outside=0.6), _scores(0.6)]
    visible = score_corpus([A, B], scores, STANDARD)
    cv = cross_validate([A, B], ["a", "b"], [scores], STANDARD)
    assert {f.group: f.threshold for f in cv.folds} == {"a": 0.6, "b": 0.9}
    assert [f.found for f in cv.folds] == [1, 0]
    assert cv.folds[0].false_positives == 10
    assert cv.null == visible.null and cv.perfect == visible.perfect
    assert cv.score < visible.score
    # The raw total is the left-out categories' own totals at their thresholds.
    at_a = score_corpus([A], [scores[0]], STANDARD, threshold=0.6)
    at_b = score_corpus([B], [scores[1]], STANDARD, threshold=0.9)
    assert cv.raw == pytest.approx(at_a.raw + at_b.raw)


def test_a_detector_that_generalizes_keeps_its_score() -> None:
    scores = [_scores(0.9), _scores(0.9)]
    visible = score_corpus([A, B], scores, STANDARD)
    cv = cross_validate([A, B], ["a", "b"], [scores], STANDARD)
    assert cv.score == pytest.approx(visible.score) == pytest.approx(100.0)


def test_a_parameter_from_a_grid_is_chosen_on_the_other_categories() -> None:
    # Choice 0 is perfect on a and blind on b; choice 1 the other way round. Visible, one of
    # them finds one window; left out, each category gets the choice that is blind on it.
    only_a = [_scores(0.9), np.zeros(100)]
    only_b = [np.zeros(100), _scores(0.9)]
    cv = cross_validate([A, B], ["a", "b"], [only_a, only_b], STANDARD)
    assert [(f.group, f.choice) for f in cv.folds] == [("a", 1), ("b", 0)]
    assert [f.found for f in cv.folds] == [0, 0]
    assert cv.score == pytest.approx(0.0)


def test_one_category_cannot_be_cross_validated() -> None:
    with pytest.raises(ValueError, match="two categories"):
        cross_validate([A], ["a"], [[_scores(0.9)]], STANDARD)
