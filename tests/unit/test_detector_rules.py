"""Per-series detector rules: routing, firing, checkpoints and configuration errors."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from pydantic import ValidationError

from detectors import SeriesBank
from detectors import blocks as blocks_codec
from detectors.routing import DetectorRule, RoutedBanks
from streams.settings import Settings

DISK = DetectorRule(
    "disk-full", "static_threshold", metrics=("disk_*",), params={"upper": 0.9},
    policy={"for_points": 1},
)  # fmt: skip
CHECKOUT = DetectorRule(
    "checkout-slo", "slo_burn_rate", services=("checkout", "pay*"), metrics=("error_ratio",)
)


def _banks(**kw: Any) -> RoutedBanks:
    return RoutedBanks("surprise", {"warmup": 10}, {}, [DISK, CHECKOUT], **kw)


def test_first_matching_rule_wins_and_the_rest_go_to_the_default() -> None:
    banks = _banks()
    series = ["db|disk_used", "checkout|error_ratio", "payments|error_ratio|az=b",
              "checkout|latency", "api|disk_used|dev=sda", "search|error_ratio"]  # fmt: skip
    rows = banks.rows_for(series)
    assert [banks.detector(int(r)) for r in rows] == [
        "static_threshold", "slo_burn_rate", "slo_burn_rate", "surprise", "static_threshold",
        "surprise",
    ]  # fmt: skip
    assert [banks.series(int(r)) for r in rows] == series
    assert len(banks) == 6 and len(set(rows.tolist())) == 6
    assert (banks.rows_for(series) == rows).all()  # known series keep their rows


def test_a_rule_series_fires_on_its_bound_from_its_first_point() -> None:
    banks = _banks()
    series = ["db|disk_used", "web|disk_free_ratio", "web|cpu"]
    scores, fired = banks.observe(series, np.array([0.95, 0.5, 0.95]), np.full(3, 1e9))
    # A static bound needs no warm-up; the default detector has not warmed up on ``web|cpu``.
    assert [f.index for f in fired] == [0]
    assert scores.tolist() == [1.0, 0.0, 0.0]
    assert fired[0].decision.repeat is False


def test_routed_scores_equal_each_bank_on_its_own() -> None:
    rng = np.random.default_rng(4)
    series = ["db|disk_used", "checkout|error_ratio", "web|cpu", "api|lat"]
    alone = {
        "db|disk_used": SeriesBank("static_threshold", {"upper": 0.9}, {"for_points": 1}),
        "checkout|error_ratio": SeriesBank("slo_burn_rate"),
        "web|cpu": SeriesBank("surprise", {"warmup": 10}),
        "api|lat": SeriesBank("surprise", {"warmup": 10}),
    }
    banks = _banks()
    for t in range(200):
        x = rng.random(4)
        together, fired = banks.observe(series, x, np.full(4, 1e9 + 60 * t))
        for i, sid in enumerate(series):
            own, own_fired = alone[sid].observe([sid], x[i : i + 1], np.array([1e9 + 60 * t]))
            assert together[i] == own[0]
            assert (i in [f.index for f in fired]) == bool(own_fired)


def test_blocks_restore_into_their_banks_and_default_keys_stay_numbers() -> None:
    banks = _banks()
    series = ["db|disk_used", "checkout|error_ratio", "web|cpu"]
    for t in range(30):
        banks.observe(series, np.array([0.5, 0.01, 3.0]), np.full(3, 1e9 + 60 * t))
    blocks = banks.take_dirty_blocks()
    assert set(blocks) == {"disk-full/0", "checkout-slo/0", "0"}
    wire = {k: blocks_codec.decode(blocks_codec.encode(v)) for k, v in blocks.items()}
    restored = _banks()
    assert restored.load_blocks(wire) == 0
    assert restored.index == banks.index
    later = np.full(3, 1e9 + 60 * 31)
    assert (restored.observe(series, np.array([0.95, 0.5, 9.0]), later)[0]
            == banks.observe(series, np.array([0.95, 0.5, 9.0]), later)[0]).all()  # fmt: skip


def test_a_checkpoint_without_rules_restores_into_the_default_bank() -> None:
    plain = SeriesBank("surprise", {"warmup": 10})
    for t in range(20):
        plain.observe(["web|cpu"], np.array([1.0 + t % 3]), np.array([1e9 + 60 * t]))
    blocks = plain.take_dirty_blocks()
    banks = _banks()
    assert banks.load_blocks(blocks) == 0
    row = int(banks.rows_for(["web|cpu"])[0])
    assert banks.detector(row) == "surprise" and banks.default.detector.warmed_up_many()[0]


def test_series_of_a_removed_rule_start_afresh_where_they_now_go() -> None:
    banks = _banks()
    banks.observe(["db|disk_used"], np.array([0.5]), np.array([1e9]))
    blocks = banks.take_dirty_blocks()
    without = RoutedBanks("surprise", {"warmup": 10}, {}, [CHECKOUT])
    assert without.load_blocks(blocks) == 1
    row = int(without.rows_for(["db|disk_used"])[0])
    assert without.detector(row) == "surprise"


def test_rule_names_are_checked() -> None:
    with pytest.raises(ValueError, match="unique"):
        RoutedBanks("surprise", rules=[DISK, DISK])
    with pytest.raises(ValueError, match="'/'"):
        RoutedBanks("surprise", rules=[DetectorRule("a/b", "surprise", metrics=("x",))])


def _settings(rules: list[dict[str, Any]]) -> Settings:
    return Settings(detector_rules=rules)


def test_settings_build_the_rules() -> None:
    s = _settings([{"name": "disk", "detector": "static_threshold", "metrics": ["disk_*"],
                    "params": {"upper": 0.9}}])  # fmt: skip
    banks = s.detector_banks()
    assert banks.detector(int(banks.rows_for(["db|disk_used"])[0])) == "static_threshold"
    assert banks.detector(int(banks.rows_for(["db|cpu"])[0])) == s.detector


@pytest.mark.parametrize(
    ("rule", "problem"),
    [
        ({"name": "x", "detector": "nope", "metrics": ["m"]}, "unknown detector 'nope'"),
        (
            {
                "name": "x",
                "detector": "static_threshold",
                "metrics": ["m"],
                "params": {"upper": "high"},
            },
            "detector 'static_threshold': bad parameters: upper: Input should be a valid number",
        ),
        (
            {
                "name": "x",
                "detector": "static_threshold",
                "metrics": ["m"],
                "params": {"lower": 2, "upper": 1},
            },
            "lower (2.0) is above upper (1.0)",
        ),
        (
            {"name": "x", "detector": "surprise", "metrics": ["m"], "policy": {"threshold": 2}},
            "threshold must be in",
        ),
        (
            {"name": "x", "detector": "surprise", "metrics": ["m"], "policy": {"for": 3}},
            "detector 'surprise': bad policy: for: Extra inputs are not permitted",
        ),
        (
            {"name": "x", "detector": "surprise", "metrics": ["m"], "policy": {"for_points": "3x"}},
            "bad policy: for_points: Input should be a valid integer",
        ),
        (
            {"name": "x", "detector": "surprise", "metrics": ["m"], "policy": {"repeat_s": 0}},
            "repeat_s must be above 0",
        ),
        (
            {
                "name": "x",
                "detector": "surprise",
                "metrics": ["m"],
                "policy": {"threshold": 0.5, "clear_threshold": 0.7},
            },
            "clear_threshold must be between 0 and threshold",
        ),
        ({"name": "x", "detector": "surprise"}, "names services or metrics"),
        ({"name": "42", "detector": "surprise", "metrics": ["m"]}, "name"),
        ({"name": "a/b", "detector": "surprise", "metrics": ["m"]}, "name"),
        ({"name": "x", "detector": "surprise", "metric": ["m"]}, "metric"),
    ],
)
def test_bad_rules_are_rejected_with_the_field_and_the_problem(
    rule: dict[str, Any], problem: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        _settings([rule])
    text = str(caught.value)
    assert "detector_rules.0" in text and problem in text


def test_duplicate_rule_names_are_rejected() -> None:
    rule = {"name": "x", "detector": "surprise", "metrics": ["m"]}
    with pytest.raises(ValidationError, match="rule names must be unique \\(x\\)"):
        _settings([rule, rule])


def test_rules_come_from_the_environment_as_json(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "WARROOM_DETECTOR_RULES",
        '[{"name": "disk", "detector": "static_threshold", "metrics": ["disk_*"],'
        ' "params": {"upper": 0.9}}]',
    )
    assert Settings().detector_rules[0].params == {"upper": 0.9}


@pytest.mark.parametrize(
    ("name", "known"),
    [("surprise", "warmup"), ("tolerant_novelty", "tolerance"), ("median_mad", "window"),
     ("river_hst", "n_trees")],
)  # fmt: skip
def test_a_parameter_of_the_wrong_type_is_refused_batched_or_alone(name: str, known: str) -> None:
    from detectors.registry import make_batch, make_detector

    for make in (lambda **p: make_batch(name, 1, **p), lambda **p: make_detector(name, **p)):
        with pytest.raises(ValueError, match=f"bad parameters: {known}: Input should be"):
            make(**{known: "not a number"})
        with pytest.raises(ValueError, match="bad parameters: typo: Extra inputs"):
            make(typo=1)


def test_parameters_given_as_numeric_text_are_converted() -> None:
    from detectors.registry import make_batch

    assert make_batch("surprise", 1, warmup="12").params()["warmup"] == 12


def test_points_outside_a_rule_detectors_domain_are_refused_with_the_reason() -> None:
    banks = _banks()
    series = ["checkout|error_ratio", "checkout|error_ratio", "db|disk_used", "api|p99"]
    rows = banks.rows_for(series)
    refused = banks.refused(rows, np.array([0.02, 12.5, 40.0, -3.0]))
    # Only the SLO rule's detector has a domain: a percentage where a ratio belongs.
    assert refused is not None and refused.tolist() == [False, True, False, False]
    assert banks.why_refused(int(rows[1]), 12.5) == (
        "value 12.5 is outside [0, 1], the values detector 'slo_burn_rate' "
        "(rule 'checkout-slo') accepts"
    )
    assert RoutedBanks("surprise").refused(rows, np.zeros(4)) is None
