"""One contract suite run over every registered detector, streaming and batch forms."""

from __future__ import annotations

import inspect
import json
import math
import random
from typing import Any

import numpy as np
import pytest

from detectors.registry import DETECTORS, make_batch, make_detector, restore_detector

NAMES = sorted(DETECTORS)
STEP_S = 300.0
# Bounds that a series in 100 +- 3 with spikes crosses, so the static rule has something to do.
PARAMS: dict[str, dict[str, Any]] = {"static_threshold": {"lower": 90.0, "upper": 110.0}}


def _series(seed: int, n: int = 600) -> tuple[list[float], list[float]]:
    """A noisy daily pattern with spikes and a level shift, one point every five minutes."""
    rng = random.Random(seed)
    values, stamps = [], []
    for i in range(n):
        v = 100.0 + 3.0 * np.sin(i / 40.0) + rng.gauss(0.0, 3.0)
        if i % 97 == 50:
            v += 40.0
        if i > n * 2 // 3:
            v += 25.0
        values.append(float(v))
        stamps.append(1_700_000_000.0 + STEP_S * i)
    return values, stamps


def _run(name: str, values: list[float], stamps: list[float]) -> list[float]:
    d = make_detector(name, **PARAMS.get(name, {}))
    out = []
    for v, t in zip(values, stamps, strict=True):
        out.append(d.score_one(v, t))
        d.learn_one(v, t)
    return out


@pytest.mark.parametrize("name", NAMES)
def test_scores_in_unit_interval_and_some_signal(name: str) -> None:
    scores = _run(name, *_series(1))
    assert all(0.0 <= s <= 1.0 for s in scores)
    assert max(scores) > 0.0


@pytest.mark.parametrize("name", NAMES)
def test_warm_up_scores_zero(name: str) -> None:
    d = make_detector(name, **PARAMS.get(name, {}))
    values, stamps = _series(2)
    seen_warm = False
    for v, t in zip(values, stamps, strict=True):
        s = d.score_one(v, t)
        if not d.warmed_up:
            assert s == 0.0
        else:
            seen_warm = True
        d.learn_one(v, t)
    assert seen_warm


@pytest.mark.parametrize("name", NAMES)
def test_deterministic(name: str) -> None:
    values, stamps = _series(3)
    assert _run(name, values, stamps) == _run(name, values, stamps)


@pytest.mark.parametrize("name", NAMES)
def test_state_round_trip_scores_identically(name: str) -> None:
    values, stamps = _series(4)
    cut = 400
    d = make_detector(name, **PARAMS.get(name, {}))
    for v, t in zip(values[:cut], stamps[:cut], strict=True):
        d.score_one(v, t)
        d.learn_one(v, t)
    state = d.to_state()
    text = json.dumps(state, allow_nan=False)
    restored = restore_detector(json.loads(text))
    assert json.dumps(restored.to_state(), allow_nan=False) == text
    for v, t in zip(values[cut:], stamps[cut:], strict=True):
        assert restored.score_one(v, t) == d.score_one(v, t)
        d.learn_one(v, t)
        restored.learn_one(v, t)


@pytest.mark.parametrize("name", NAMES)
def test_state_names_detector_and_version(name: str) -> None:
    state = make_detector(name, **PARAMS.get(name, {})).to_state()
    assert state["name"] == name
    bad = dict(state, version=-1)
    with pytest.raises(ValueError):
        restore_detector(bad)


@pytest.mark.parametrize("name", NAMES)
def test_batch_agrees_with_streaming(name: str) -> None:
    series = [_series(seed) for seed in (5, 6, 7)]
    expected = [_run(name, v, t) for v, t in series]
    batch = make_batch(name, len(series), **PARAMS.get(name, {}))
    # The third series skips every fifth step: a masked-out series must not move.
    got: list[list[float]] = [[], [], []]
    cursor = [0, 0, 0]
    for step in range(len(series[0][0]) + 200):
        mask = np.array(
            [cursor[j] < len(series[j][0]) and (j != 2 or step % 5 != 0) for j in range(3)]
        )
        x = np.array([series[j][0][min(cursor[j], len(series[j][0]) - 1)] for j in range(3)])
        t = np.array([series[j][1][min(cursor[j], len(series[j][1]) - 1)] for j in range(3)])
        s = batch.score_many(x, t, mask)
        batch.learn_many(x, t, mask)
        for j in range(3):
            if mask[j]:
                got[j].append(float(s[j]))
                cursor[j] += 1
    for j in range(3):
        assert got[j] == pytest.approx(expected[j], rel=1e-12, abs=1e-12)
    assert json.dumps(batch.row_state(1), allow_nan=False)


@pytest.mark.parametrize("name", NAMES)
def test_threshold_is_usable_by_the_policy(name: str) -> None:
    threshold = DETECTORS[name].threshold
    assert 0.0 < threshold <= 1.0


def _numeric_parameters(name: str) -> dict[str, int | float]:
    cls = DETECTORS[name]
    target = getattr(cls, "batch_cls", cls)
    return {
        k: p.default
        for k, p in inspect.signature(target.__init__).parameters.items()
        if k not in ("self", "n")
        and isinstance(p.default, int | float)
        and not isinstance(p.default, bool)
    }


NONSENSE = [0, -1, -0.5, 0.5, 1.5, math.nan, math.inf, 10**9]


@pytest.mark.filterwarnings("error::RuntimeWarning")
@pytest.mark.parametrize("name", NAMES)
def test_a_nonsense_parameter_is_refused_when_configured_or_harmless(name: str) -> None:
    """Zero, negative, fractional, non-finite and huge values of every numeric parameter: the
    detector is either refused at configuration (a ``ValueError`` naming the problem) or scores
    a spiky series in [0, 1] without numpy's warnings of NaN or overflow. Never an exception or a
    gigabyte allocation on the hot path."""
    values, stamps = _series(5, 300)
    x, ts = np.array(values), np.array(stamps)
    for param, default in _numeric_parameters(name).items():
        for value in NONSENSE:
            if isinstance(default, int) and not float(value).is_integer():
                continue
            try:
                batch = make_batch(name, 2, **{param: value})
            except ValueError as exc:
                assert str(exc), (param, value)
                continue
            for i in range(len(x)):
                pair, at = np.full(2, x[i]), np.full(2, ts[i])
                scores = batch.score_many(pair, at)
                batch.learn_many(pair, at)
                assert np.all((scores >= 0.0) & (scores <= 1.0)), (param, value, scores)
