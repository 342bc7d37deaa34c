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
