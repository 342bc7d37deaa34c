"""A detector's ``params()`` is read from its constructor: every parameter, under its own name,
so a new one cannot be left out of the checkpointed state."""

from __future__ import annotations

import inspect
import json
from typing import Any

import pytest

from detectors.base import constructor_parameters
from detectors.ewma import EwmaZBatch
from detectors.registry import DETECTORS, checked_params, make_batch, make_detector
from detectors.robust import MedianMad
from detectors.transition import TolerantNoveltyBatch
from tests.contract.test_detectors import PARAMS

NAMES = sorted(DETECTORS)


def _target(name: str) -> type[Any]:
    cls = DETECTORS[name]
    target: type[Any] = getattr(cls, "batch_cls", cls)
    return target


def _signature(target: type[Any]) -> list[str]:
    return [k for k in inspect.signature(target.__init__).parameters if k not in ("self", "n")]


@pytest.mark.parametrize("name", NAMES)
def test_params_name_every_constructor_parameter(name: str) -> None:
    state = make_detector(name, **PARAMS.get(name, {})).to_state()
    assert sorted(state["params"]) == sorted(_signature(_target(name)))


@pytest.mark.parametrize("name", NAMES)
def test_params_round_trip_through_the_constructor(name: str) -> None:
    """Built again from its own ``params()`` (through the registry's validation), a detector
    has the same ``params()``, in the same order, as plain JSON."""
    first = make_detector(name, **PARAMS.get(name, {})).to_state()["params"]
    again = make_detector(name, **checked_params(DETECTORS[name], first)).to_state()["params"]
    assert json.dumps(again) == json.dumps(first)
    batch = make_batch(name, 2, **first)
    assert json.dumps(batch.row_state(1)["params"]) == json.dumps(first)


def test_tolerant_params_keep_their_order_base_class_first() -> None:
    """The order of the checkpointed parameters is the one it always was: the base class's
    parameters, then the subclass's own (checkpoints stay byte for byte the same)."""
    assert list(TolerantNoveltyBatch().params()) == [
        "grids", "order", "warmup", "base_threshold", "rest_period", "rel_floor", "abs_floor",
        "novelty_alpha", "tolerance", "step_alpha", "step_clip", "scales", "records",
        "day_parts", "day_after", "weekends", "utc_offset_h", "deviation", "deviation_margin",
    ]  # fmt: skip
    assert TolerantNoveltyBatch(scales=(3, 5)).params()["scales"] == [3, 5]


class _WiderEwma(EwmaZBatch):
    """A detector that gains a parameter and writes no ``params()`` of its own."""

    def __init__(self, n: int = 1, horizon: int = 7, **params: Any) -> None:
        super().__init__(n, **params)
        self.horizon = horizon


class _WiderMedian(MedianMad):
    def __init__(self, spread: float = 2.5, **params: Any) -> None:
        super().__init__(**params)
        self.spread = spread


def test_a_new_parameter_is_in_params_without_writing_it_out() -> None:
    wider = _WiderEwma(3, horizon=9, alpha=0.1)
    assert wider.params() == {
        "alpha": 0.1,
        "warmup": 20,
        "clip": 4.0,
        "rel_floor": 0.001,
        "abs_floor": 1e-9,
        "horizon": 9,
    }
    assert _WiderEwma(1, **wider.params()).params() == wider.params()
    assert _WiderMedian(spread=4.0, window=30).to_state()["params"] == {
        "window": 30,
        "warmup": 20,
        "rel_floor": 0.01,
        "abs_floor": 1e-9,
        "spread": 4.0,
    }


class _Forgetful(EwmaZBatch):
    """Takes a parameter and keeps it under another name."""

    def __init__(self, n: int = 1, horizon: int = 7, **params: Any) -> None:
        super().__init__(n, **params)
        self._h = horizon


def test_a_parameter_not_kept_under_its_name_is_an_error_that_names_it() -> None:
    with pytest.raises(TypeError, match="horizon"):
        _Forgetful().params()


def test_constructor_parameters_follow_keyword_pass_through_to_the_base() -> None:
    assert constructor_parameters(_WiderEwma) == (
        "alpha",
        "warmup",
        "clip",
        "rel_floor",
        "abs_floor",
        "horizon",
    )
