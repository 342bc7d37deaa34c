"""The obvious-anomalies bench: its ground truth, and that it tells a bad detector apart."""

from __future__ import annotations

import json

import numpy as np
import pytest

from devtools.bench.obvious import (
    KINDS,
    LENGTH,
    RAMP_POINTS,
    REACH,
    SHAPES,
    SPIKE_POINTS,
    WARMUP,
    Case,
    case,
    evaluate,
    ewma_z_baseline,
)
from streams.cli import main

CASES = [(s, k) for s in SHAPES for k in KINDS[s]]


@pytest.mark.parametrize(("shape", "kind"), CASES, ids=[f"{s}-{k}" for s, k in CASES])
def test_ground_truth_is_the_clean_series_changed_only_where_it_says(shape: str, kind: str) -> None:
    clean = case(shape, "clean", series=5, seed=3)
    c = case(shape, kind, series=5, seed=3)
    assert c.values.shape == c.ts.shape == (5, LENGTH)
    assert (np.diff(c.ts, axis=1) > 0).all()
    assert (c.ts == clean.ts).all()
    again = case(shape, kind, series=5, seed=3)  # seeded
    assert np.array_equal(again.values, c.values) and np.array_equal(again.onsets, c.onsets)
    if kind == "clean":
        assert (c.onsets == -1).all()
        return
    for s in range(5):
        onset, end = int(c.onsets[s]), int(c.ends[s])
        assert WARMUP <= onset < end < LENGTH
        # Before the onset the series is the clean one, point for point.
        assert (c.values[s, :onset] == clean.values[s, :onset]).all()
        ratio = c.values[s, onset:] / clean.values[s, onset:]
        if kind == "spike":
            assert np.allclose(ratio[:SPIKE_POINTS], 5.0)
            assert np.allclose(ratio[SPIKE_POINTS:], 1.0)
            assert end == onset + REACH - 1
        elif kind == "shift":
            assert np.allclose(ratio, 3.0) and end == onset + REACH - 1
        elif kind == "ramp":
            assert ratio[0] == pytest.approx(1.0 + 2.0 / RAMP_POINTS)
            assert np.allclose(ratio[RAMP_POINTS - 1 :], 3.0)
            assert (np.diff(ratio) >= -1e-12).all()
            assert end == onset + RAMP_POINTS + REACH - 1
        else:  # holiday: a weekday shaped like the weekend, inside the range seen before
            assert end == onset + REACH - 1 and ratio[0] < 0.9 and ratio[:REACH].min() < 0.7
            assert c.values[s, onset : end + 1].max() < clean.values[s, :onset].max()
            assert c.values[s, onset : end + 1].min() > clean.values[s, :onset].min()


def _oracle(c: Case) -> np.ndarray:
    """Scores 1 on each anomaly's first point, 0 elsewhere: what a perfect detector does."""
    out = np.zeros(c.values.shape)
    for s, onset in enumerate(c.onsets.tolist()):
        if onset >= 0:
            out[s, onset] = 1.0
    return out


def test_a_perfect_detector_misses_nothing_and_raises_nothing() -> None:
    report = evaluate(_oracle, series=4, seed=1)
    assert all(m == 0 for shape in report.values() for m in shape["missed"].values())
    assert all(shape["clean_per_million"] == 0.0 for shape in report.values())


@pytest.mark.parametrize(
    ("name", "scorer", "missed", "per_million"),
    [
        ("blind", lambda c: np.zeros(c.values.shape), 4, 0.0),
        ("always", lambda c: np.ones(c.values.shape), 0, 1e6),
        # Late by a whole reach: every spike, shift and holiday is missed; a ramp is not.
        ("late", lambda c: np.roll(_oracle(c), REACH, axis=1), 4, 0.0),
    ],
    ids=["blind", "always", "late"],
)
def test_a_bad_detector_fails_it(
    name: str, scorer: object, missed: int, per_million: float
) -> None:
    report = evaluate(scorer, series=4, seed=1)  # type: ignore[arg-type]
    for shape, figures in report.items():
        for kind, m in figures["missed"].items():
            expected = 0 if name == "late" and kind == "ramp" else missed
            assert m == expected, (shape, kind)
        assert figures["clean_per_million"] == per_million


def test_clean_alerts_count_at_the_detectors_own_threshold() -> None:
    # Scores of 0.4 everywhere: under 0.5, but an alert for a detector whose threshold is 0.33.
    report = evaluate(lambda c: np.full(c.values.shape, 0.4), series=2, seed=1, threshold=0.33)
    for figures in report.values():
        assert figures["clean_high"] == 0
        assert figures["clean_alerts"] == figures["clean_points"] == 2 * (LENGTH - WARMUP)


def test_the_ewma_baseline_catches_a_spike_on_a_flat_line_and_not_noise() -> None:
    spike = case("flat", "spike", series=3, seed=2)
    scores = ewma_z_baseline(spike)
    for s, onset in enumerate(spike.onsets.tolist()):
        assert scores[s, onset] >= 0.5 and (scores[s, WARMUP:onset] < 0.5).all()
    assert (ewma_z_baseline(case("noisy_sine", "clean", series=3, seed=2)) < 0.5).all()


def test_the_bench_prints_a_row_per_shape_and_detector_and_one_json_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["bench", "obvious", "--series", "3", "--detector", "ewma"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].startswith("machine: ")
    summary = json.loads(lines[-1])
    assert set(summary["detectors"]) == {"ewma", "ewma_z5 (baseline)"}
    assert summary["detectors"]["ewma"]["threshold"] == 0.5
    assert summary["detectors"]["ewma"]["clean_alerts_per_million"] >= 0.0
    for figures in summary["detectors"].values():
        assert set(figures["shapes"]) == set(SHAPES)
        assert figures["cases"] == sum(len(KINDS[s]) - 1 for s in SHAPES) * 3
    assert sum(line.startswith(SHAPES[0]) for line in lines) == 2


def test_an_unknown_detector_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "obvious", "--detector", "nope"]) == 2
    assert "nope" in capsys.readouterr().err
