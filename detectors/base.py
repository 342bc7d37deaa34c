"""The detector contract every detector follows (and the contract test suite checks).

Score first, then learn: ``score_one`` says how anomalous a value is against what was learned
*before* it, in [0, 1], higher is more anomalous, 0 during warm-up. State round-trips through
``to_state``/``from_state`` (versioned plain data), because it is checkpointed in a table.
"""

from __future__ import annotations

import inspect
from typing import Any, ClassVar, Protocol, Self, runtime_checkable


@runtime_checkable
class Detector(Protocol):
    """An online detector of one univariate series."""

    name: ClassVar[str]
    state_version: ClassVar[int]

    def score_one(self, value: float, ts: float) -> float:
        """Anomaly score of ``value`` observed at epoch second ``ts``, in [0, 1]."""
        ...

    def learn_one(self, value: float, ts: float) -> None:
        """Update the learned state with ``value``."""
        ...

    @property
    def warmed_up(self) -> bool:
        """False while the detector has seen too little to score (scores are 0 then)."""
        ...

    def to_state(self) -> dict[str, Any]:
        """Plain JSON-able state including ``version`` and the hyperparameters."""
        ...

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Self:
        """Rebuild a detector that scores exactly as the one that produced ``state``."""
        ...


class DetectorFactory(Protocol):
    """Builds a fresh detector from keyword hyperparameters."""

    def __call__(self, **params: Any) -> Detector: ...


def check_version(
    state: dict[str, Any], name: str, version: int, older: tuple[int, ...] = ()
) -> None:
    """Reject state written by another detector or an unknown version of this one (``older``:
    earlier versions it still reads)."""
    if state.get("name") != name:
        raise ValueError(f"state belongs to detector {state.get('name')!r}, not {name!r}")
    if state.get("version") != version and state.get("version") not in older:
        raise ValueError(f"{name} state version {state.get('version')!r} is not {version}")


class Hyperparameters:
    """``params()`` read from the constructor: a detector keeps each constructor parameter (but
    ``n``, the number of series) as an attribute of the same name, so one it gains cannot be
    left out of its checkpointed state or of the copies a batch makes of itself."""

    def params(self) -> dict[str, Any]:
        """The hyperparameters, under their constructor names, as plain JSON-able data."""
        out: dict[str, Any] = {}
        for name in constructor_parameters(type(self)):
            try:
                value = getattr(self, name)
            except AttributeError:
                raise TypeError(
                    f"{type(self).__name__} takes parameter {name!r} but keeps no attribute "
                    "of that name, so params() cannot report it"
                ) from None
            out[name] = _plain(value)
        return out


_PARAMETERS: dict[type[Any], tuple[str, ...]] = {}


def constructor_parameters(cls: type[Any]) -> tuple[str, ...]:
    """The keyword parameters of ``cls``'s constructor but ``n``, those of the base class's
    constructor first. A constructor that passes ``**params`` on takes its base's too.

    >>> class Base:
    ...     def __init__(self, n: int = 1, a: int = 0, b: int = 0) -> None: ...
    >>> class More(Base):
    ...     def __init__(self, n: int = 1, c: int = 0, **params: int) -> None: ...
    >>> constructor_parameters(More)
    ('a', 'b', 'c')
    """
    if cls not in _PARAMETERS:
        _PARAMETERS[cls] = _derived(cls)
    return _PARAMETERS[cls]


def _derived(cls: type[Any]) -> tuple[str, ...]:
    accepted: set[str] = set()  # the constructor's, then its base's while it passes them on
    layers: list[list[str]] = []  # each constructor's in the class hierarchy, own class first
    passes_on = True
    for klass in cls.__mro__:
        if "__init__" not in vars(klass) or klass is object:
            continue
        names, more = _keywords(klass)
        layers.append(names)
        if passes_on:
            accepted.update(names)
            passes_on = more
    order = dict.fromkeys(k for names in reversed(layers) for k in names)
    return tuple(k for k in order if k in accepted)


def _keywords(klass: type[Any]) -> tuple[list[str], bool]:
    """``klass``'s own constructor's named parameters (but ``self`` and ``n``), and whether it
    also takes ``**params``."""
    params = inspect.signature(vars(klass)["__init__"]).parameters.values()
    named = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    names = [p.name for p in params if p.kind in named and p.name not in ("self", "n")]
    return names, any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params)


def _plain(value: Any) -> Any:
    """Tuples and lists as new lists (of plain values), anything else as it is."""
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    return value
