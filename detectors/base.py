"""The detector contract every detector follows (and the contract test suite checks).

Score first, then learn: ``score_one`` says how anomalous a value is against what was learned
*before* it, in [0, 1], higher is more anomalous, 0 during warm-up. State round-trips through
``to_state``/``from_state`` (versioned plain data), because it is checkpointed in a table.
"""

from __future__ import annotations

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
