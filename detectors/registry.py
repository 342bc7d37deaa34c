"""Detectors by name, so configuration and the CLI can pick one, streaming or batched."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any, get_type_hints

import numpy as np
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict, ValidationError, create_model

from detectors.base import Detector
from detectors.changepoint import Cusum
from detectors.context import ContextAnomalyDetector
from detectors.ensemble import SurpriseEnsemble
from detectors.ewma import EwmaZ, RateOfChange
from detectors.knn import PatternKnn
from detectors.multivariate import RiverHalfSpaceTrees
from detectors.robust import MedianMad
from detectors.rules import Absence, SloBurnRate, StaticThreshold
from detectors.seasonal import Seasonal
from detectors.transition import TolerantNovelty, TransitionNovelty
from detectors.vector import BatchDetector, Floats, Mask, OneSeries

_CLASSES: list[type[Any]] = [
    TransitionNovelty,
    TolerantNovelty,
    PatternKnn,
    SurpriseEnsemble,
    ContextAnomalyDetector,
    MedianMad,
    EwmaZ,
    RateOfChange,
    Seasonal,
    Cusum,
    StaticThreshold,
    SloBurnRate,
    Absence,
    RiverHalfSpaceTrees,
]

DETECTORS: Mapping[str, type[Any]] = {cls.name: cls for cls in _CLASSES}
"""Every registered detector class, by its ``name``."""

DEFAULT_DETECTOR = TolerantNovelty.name


def value_domain(name: str) -> tuple[float, float] | None:
    """The closed interval of values detector ``name`` accepts, or ``None`` for any value.

    >>> value_domain("slo_burn_rate"), value_domain("median_mad")
    ((0.0, 1.0), None)
    """
    domain: tuple[float, float] | None = getattr(DETECTORS[name], "domain", None)
    return domain


def outside_domain(name: str, value: float, rule: str | None = None) -> str | None:
    """Why ``value`` cannot be given to detector ``name`` (watching a series for ``rule``), or
    ``None`` when it can.

    >>> outside_domain("slo_burn_rate", 12.5, "slo")
    "value 12.5 is outside [0, 1], the values detector 'slo_burn_rate' (rule 'slo') accepts"
    """
    domain = value_domain(name)
    if domain is None or domain[0] <= value <= domain[1]:
        return None
    lo, hi = (f"{b:g}" for b in domain)
    by = f"detector {name!r}" + (f" (rule {rule!r})" if rule else "")
    return f"value {value:g} is outside [{lo}, {hi}], the values {by} accepts"


def make_detector(name: str = DEFAULT_DETECTOR, **params: Any) -> Detector:
    """A fresh detector; unknown names and parameters are errors that say what exists.

    >>> make_detector("nope")
    Traceback (most recent call last):
    ...
    ValueError: unknown detector 'nope'; known: ...
    """
    try:
        cls: Callable[..., Detector] = DETECTORS[name]
    except KeyError:
        known = ", ".join(sorted(DETECTORS))
        raise ValueError(f"unknown detector {name!r}; known: {known}") from None
    params = checked_params(DETECTORS[name], params)
    try:
        return cls(**params)
    except TypeError as exc:
        raise ValueError(f"bad parameters: {exc}") from None


def restore_detector(state: dict[str, Any]) -> Detector:
    """Rebuild a detector from ``to_state()`` output."""
    name = state.get("name")
    if not isinstance(name, str) or name not in DETECTORS:
        raise ValueError(f"state names unknown detector {name!r}")
    detector: Detector = DETECTORS[name].from_state(state)
    return detector


class LoopBatch(BatchDetector):
    """The batch form of a detector that has no vectorized kernel: one instance per series."""

    def __init__(self, n: int, cls: type[Any], **params: Any) -> None:
        super().__init__(n)
        self._cls = cls
        self._params = params
        self.items: list[Detector] = [cls(**params) for _ in range(n)]
        self.name = cls.name  # type: ignore[misc]
        self.state_version = cls.state_version  # type: ignore[misc]
        self.threshold = cls.threshold  # type: ignore[misc]

    def warmed_up_many(self) -> Mask:
        return np.array([d.warmed_up for d in self.items], dtype=np.bool_)

    def score_many(self, values: Floats, ts: Floats, mask: Mask | None = None) -> Floats:
        out = np.zeros(self.n)
        for i, d in enumerate(self.items):
            if mask is None or mask[i]:
                out[i] = d.score_one(float(values[i]), float(ts[i]))
        return out

    def learn_many(self, values: Floats, ts: Floats, mask: Mask | None = None) -> None:
        for i, d in enumerate(self.items):
            if mask is None or mask[i]:
                d.learn_one(float(values[i]), float(ts[i]))

    def score_learn_many(self, values: Floats, ts: Floats) -> Floats:
        out = self.score_many(values, ts)
        self.learn_many(values, ts)
        return out

    def row_state(self, i: int) -> dict[str, Any]:
        return self.items[i].to_state()

    def take(self, rows: NDArray[np.intp]) -> LoopBatch:
        part = LoopBatch(1, self._cls, **self._params)
        part.n, part.items = len(rows), [self.items[int(r)] for r in rows]
        return part

    def put(self, rows: NDArray[np.intp], part: BatchDetector) -> None:
        """Nothing to copy: the instances were worked on in place."""

    def grow(self, extra: int) -> None:
        self.items.extend(self._cls(**self._params) for _ in range(extra))
        self.n += extra

    def reset_rows(self, rows: NDArray[np.intp]) -> None:
        for r in rows.tolist():
            self.items[r] = self._cls(**self._params)

    def block_state(self, start: int, stop: int) -> dict[str, Any]:
        return {"items": [d.to_state() for d in self.items[start:stop]]}

    def load_block(self, start: int, state: dict[str, Any]) -> None:
        for i, item in enumerate(state["items"]):
            self.items[start + i] = self._cls.from_state(item)

    def load_row(self, i: int, state: dict[str, Any]) -> None:
        self.items[i] = self._cls.from_state(state)


def make_batch(name: str, n: int, **params: Any) -> BatchDetector:
    """The batch form of detector ``name`` for ``n`` series with the same hyperparameters."""
    if name not in DETECTORS:
        known = ", ".join(sorted(DETECTORS))
        raise ValueError(f"unknown detector {name!r}; known: {known}")
    cls = DETECTORS[name]
    params = checked_params(cls, params)
    try:
        if issubclass(cls, OneSeries):
            return cls.batch_cls(n, **params)
        return LoopBatch(n, cls, **params)
    except TypeError as exc:
        raise ValueError(f"bad parameters: {exc}") from None


def checked_params(
    cls: type[Any], params: Mapping[str, Any], what: str = "parameters"
) -> dict[str, Any]:
    """``params`` validated against ``cls``'s constructor (a detector's, or a decision
    policy's): only those given (the defaults stay the constructor's own), converted where
    pydantic's lax mode converts (``"12"`` to 12); ``ValueError`` names each field at fault."""
    target: type[Any] = cls.batch_cls if issubclass(cls, OneSeries) else cls
    try:
        checked = _parameters(target).model_validate(dict(params))
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or '(params)'}: {e['msg']}" for e in exc.errors()
        )
        raise ValueError(f"bad {what}: {problems}") from None
    return {k: getattr(checked, k) for k in params}


_MODELS: dict[type[Any], type[BaseModel]] = {}


def _parameters(target: type[Any]) -> type[BaseModel]:
    """A model of ``target``'s keyword parameters (all but ``n``) from its annotations, so a
    parameter of the wrong type is refused when configured, not when the first point comes."""
    if target in _MODELS:
        return _MODELS[target]
    init = target.__init__
    hints = get_type_hints(init, include_extras=True)
    fields: dict[str, Any] = {
        k: (hints.get(k, Any), p.default)
        for k, p in inspect.signature(init).parameters.items()
        if k not in ("self", "n") and p.default is not inspect.Parameter.empty
    }
    config = ConfigDict(extra="forbid", arbitrary_types_allowed=True, allow_inf_nan=False)
    model: type[BaseModel] = create_model(f"{target.__name__}Params", __config__=config, **fields)
    _MODELS[target] = model
    return model
