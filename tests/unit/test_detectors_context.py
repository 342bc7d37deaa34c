"""The context detector: learns a repeating series, alerts once on a new step, bounds its memory."""

from __future__ import annotations

import json
import random

import pytest

from detectors.context import ContextAnomalyDetector


def _square(t: int, period: int) -> float:
    return 100.0 + 10.0 * (t % period < period // 2)


def _feed(d: ContextAnomalyDetector, values: list[float]) -> list[float]:
    out = []
    for t, v in enumerate(values):
        out.append(d.score_one(v, float(t)))
        d.learn_one(v, float(t))
    return out


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_known_rhythm_is_quiet_and_a_new_level_alerts_once(seed: int) -> None:
    rng = random.Random(seed)
    d = ContextAnomalyDetector()
    values = [_square(t, 20) + rng.gauss(0.0, 0.3) for t in range(1000)]
    # Halfway between the two known levels: a bin the series has never been in.
    values += [105.0 + rng.gauss(0.0, 0.3) for _ in range(50)]
    scores = _feed(d, values)
    assert max(scores[500:1000]) < ContextAnomalyDetector.threshold
    fired = [t for t in range(1000, 1050) if scores[t] >= ContextAnomalyDetector.threshold]
    assert fired == [1000]


@pytest.mark.parametrize(
    ("x", "expected"),
    [(105.0, (100.0, 110.0)), (120.0, (100.0, 140.0)), (95.0, (80.0, 110.0))],
    ids=["inside", "above doubles up", "below doubles down"],
)
def test_range_doubles_on_the_side_a_value_leaves(x: float, expected: tuple[float, float]) -> None:
    d = ContextAnomalyDetector()
    _feed(d, [100.0, 110.0])
    assert d._range(x) == expected


def test_facts_are_the_bits_of_the_bin() -> None:
    d = ContextAnomalyDetector(value_bits=3)
    # bin 5 = 0b101 over eight bins of [0, 7]: (bit 0 is 1, bit 1 is 0, bit 2 is 1)
    assert d._facts(5.2, 0.0, 7.0) == (1, 2, 5)
    assert d._facts(-1.0, 0.0, 7.0) == (0, 2, 4)


def test_memory_is_bounded_and_survives_a_round_trip() -> None:
    rng = random.Random(9)
    d = ContextAnomalyDetector(max_contexts=200)
    values = [rng.uniform(0.0, 100.0) for _ in range(800)]
    _feed(d, values[:600])
    assert len(d._memory.contexts) <= 200
    restored = ContextAnomalyDetector.from_state(json.loads(json.dumps(d.to_state())))
    for t, v in enumerate(values[600:], start=600):
        assert restored.score_one(v, float(t)) == d.score_one(v, float(t))
        d.learn_one(v, float(t))
        restored.learn_one(v, float(t))
    assert restored.to_state() == d.to_state()
