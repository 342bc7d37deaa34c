"""The pattern detector: quiet on a repeating shape, fires once when the shape changes."""

from __future__ import annotations

import itertools
import random

import pytest

from detectors.knn import PatternKnn, PatternKnnBatch


def _square(t: int, period: int) -> float:
    return 100.0 + 10.0 * (t % period < period // 2)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_new_shape_within_the_old_range_fires_once(seed: int) -> None:
    rng = random.Random(seed)
    d = PatternKnn()
    scores = []
    for t in range(1200):
        # The same two levels throughout; the rhythm changes at t = 800.
        v = _square(t, 40 if t < 800 else 6) + rng.gauss(0.0, 0.5)
        scores.append(d.score_one(v, float(t)))
        d.learn_one(v, float(t))
    assert max(scores[300:800]) < PatternKnn.threshold
    fired = [t for t in range(800, 1200) if scores[t] >= PatternKnn.threshold]
    assert fired and fired[0] < 810
    # One alert per episode: the refractory span keeps the rest of the change quiet.
    assert all(b - a >= PatternKnnBatch().refractory for a, b in itertools.pairwise(fired))
