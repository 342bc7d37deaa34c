"""The seasonal bench: anomalies that only the hour or the weekday gives away."""

from __future__ import annotations

import numpy as np
import pytest

from devtools.bench.seasonal import LEARNING_DAYS, SCENARIOS, run, scenario
from streams.cli import main


@pytest.mark.parametrize("kind", SCENARIOS[1:])
def test_each_anomaly_is_one_day_between_day_40_and_54_and_only_its_hour_is_wrong(
    kind: str,
) -> None:
    case = scenario(kind, series=6, days=60, seed=3)
    clean = scenario("clean", series=6, days=60, seed=3)
    start = case.ts[0]
    for s, span in enumerate(case.spans):
        assert span is not None
        first, last = ((t - start) / 86400 for t in span)
        assert 40 <= first <= last < 55 and int(first) == int(last)
        on = (case.ts >= span[0]) & (case.ts <= span[1])
        assert on.any() and np.array_equal(case.values[s, ~on], clean.values[s, ~on])
        if kind == "weekday_like_weekend":
            assert int(first) % 7 < 5  # a weekday (day 0 is a Monday)
        if kind != "night_peak":  # inside the range the series always had
            assert case.values[s, on].max() < clean.values[s].max() * 1.1
    again = scenario(kind, series=6, days=60, seed=3)
    assert np.array_equal(case.values, again.values) and case.spans == again.spans


def test_the_recent_pattern_finds_night_peaks_that_the_default_misses() -> None:
    night = scenario("night_peak", series=6, days=56, seed=7)
    pattern_found, pattern_false = run("pattern_knn", night)
    default_found, _ = run("tolerant_novelty", night)
    assert pattern_found >= 4 and pattern_false == 0
    assert default_found < pattern_found
    # Nothing happens in the clean series after the learning days, and nothing is reported.
    assert run("tolerant_novelty", scenario("clean", series=6, days=56, seed=7)) == (0, 0)
    assert LEARNING_DAYS < 40


def test_too_few_days_are_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "seasonal", "--days", "30"]) == 2
    assert "--days must be at least 56" in capsys.readouterr().out
