"""The noise bench counts the alerts the worker's bank would raise on pure noise."""

from __future__ import annotations

from streams.bench.noise import alerts, default_detectors


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
