"""The noise bench counts the alerts the worker's bank would raise on pure noise."""

from __future__ import annotations

import pytest

from devtools.bench.noise import alerts, default_detectors
from streams.cli import main


def test_counts_are_seeded_and_tell_detectors_apart() -> None:
    quiet = alerts("surprise", "gaussian", series=20, points=400, seed=3)
    jumpy = alerts("transition_novelty", "gaussian", series=20, points=400, seed=3)
    assert quiet.tolist() == alerts("surprise", "gaussian", series=20, points=400, seed=3).tolist()
    assert len(jumpy) == 400
    assert quiet.sum() == 0 < jumpy.sum()


def test_rule_and_per_instance_detectors_are_left_out_by_default() -> None:
    names = default_detectors()
    assert "surprise" in names and "transition_novelty" in names
    assert not {"static_threshold", "slo_burn_rate", "absence", "context_ose"} & set(names)


def test_detector_params_configure_the_detector_run() -> None:
    """With no tolerance, ``tolerant_novelty`` asks for exact novelty, which Gaussian noise
    keeps meeting; the default tolerance keeps it quiet."""
    tolerant = alerts("tolerant_novelty", "gaussian", series=20, points=600, seed=3)
    exact = alerts(
        "tolerant_novelty", "gaussian", series=20, points=600, seed=3, params={"tolerance": 0.0}
    )
    assert tolerant.sum() == 0 < exact.sum()


@pytest.mark.parametrize(
    ("args", "problem"),
    [
        (["bench", "noise", "--series", "0"], "argument --series: '0' must be 1 or more"),
        (["bench", "noise", "--points", "-5"], "argument --points: '-5' must be 1 or more"),
        (["bench", "noise", "--points", "many"], "argument --points: 'many' is not a whole number"),
        (["bench", "throughput", "--workers", "0"], "argument --workers: '0' must be 1 or more"),
        (["bench", "throughput", "--rate", "nan"], "argument --rate: 'nan' must be above 0"),
        (["bench", "throughput", "--latency-duration", "0"], "'0' must be above 0"),
        (["demo", "--duration", "-1"], "argument --duration: '-1' must be above 0"),
    ],
)
def test_counts_and_durations_below_one_are_refused_before_anything_runs(
    args: list[str], problem: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(args)
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert problem in err and "Traceback" not in err
