"""River's Half-Space Trees over (level, step, time of day): contextual anomalies in one series."""

from __future__ import annotations

import math
from typing import Any, ClassVar, Self

from detectors.base import Hyperparameters, check_version


class RiverHalfSpaceTrees(Hyperparameters):
    """Half-Space Trees on three features squashed into [0, 1].

    The features are the value's and the step's EWMA z-scores (through ``0.5 + 0.5 tanh(z/4)``)
    and the time of day, so a normal value at an unusual hour can stand out. The trees are
    rebuilt from ``seed`` on restore and their node masses reloaded, so state is plain numbers.
    """

    name: ClassVar[str] = "river_hst"
    state_version: ClassVar[int] = 1
    #: HST scores are coarse: at 0.98 it pages hundreds of times per million points of noise.
    threshold: ClassVar[float] = 0.985

    def __init__(
        self,
        n_trees: int = 10,
        height: int = 6,
        window_size: int = 100,
        alpha: float = 0.02,
        seed: int = 42,
    ) -> None:
        if not 1 <= n_trees <= 1000 or not 1 <= height <= 20:
            raise ValueError("n_trees must be in [1, 1000] and height in [1, 20]")
        if window_size < 1 or not 0.0 < alpha <= 1.0:
            raise ValueError("window_size must be at least 1 and alpha in (0, 1]")
        self.n_trees, self.height, self.window_size = n_trees, height, window_size
        self.alpha, self.seed = alpha, seed
        # Imported here: river takes about a second to import, and every worker, CLI command
        # and test that never uses this detector would pay for it at start.
        from river.anomaly import HalfSpaceTrees

        self._hst = HalfSpaceTrees(
            n_trees=n_trees, height=height, window_size=window_size, seed=seed
        )
        self._stats = [0.0, 0.0, 0.0, 0.0]  # level mean, var, step mean, var
        self._prev = 0.0
        self._count = 0

    @property
    def warmed_up(self) -> bool:
        return self._count > self.window_size

    def _features(self, value: float, ts: float) -> dict[str, float]:
        lm, lv, sm, sv = self._stats
        zl = (value - lm) / max(math.sqrt(lv), 1e-9 + 1e-3 * abs(lm))
        zs = (value - self._prev - sm) / max(math.sqrt(sv), 1e-9)
        return {
            "level": 0.5 + 0.5 * math.tanh(zl / 4.0),
            "step": 0.5 + 0.5 * math.tanh(zs / 4.0),
            "hour": (ts % 86400.0) / 86400.0,
        }

    def score_one(self, value: float, ts: float) -> float:
        if not self.warmed_up:
            return 0.0
        raw = self._hst.score_one(self._features(value, ts))  # type: ignore[no-untyped-call]
        return min(max(float(raw), 0.0), 1.0)

    def learn_one(self, value: float, ts: float) -> None:
        if not math.isfinite(value):
            return
        if self._count > 0:
            self._hst.learn_one(self._features(value, ts))  # type: ignore[no-untyped-call]
        a = self.alpha
        lm, lv, sm, sv = self._stats
        if self._count == 0:
            lm, lv = value, 0.0
        else:
            d = value - lm
            lm, lv = lm + a * d, (1 - a) * (lv + a * d * d)
            step = value - self._prev
            if self._count == 1:
                sm, sv = step, 0.0
            else:
                e = step - sm
                sm, sv = sm + a * e, (1 - a) * (sv + a * e * e)
        self._stats = [lm, lv, sm, sv]
        self._prev = value
        self._count += 1

    def to_state(self) -> dict[str, Any]:
        masses = [[[n.l_mass, n.r_mass] for n in nodes] for nodes in self._hst._tree_nodes]
        return {
            "name": self.name,
            "version": self.state_version,
            "params": self.params(),
            "stats": list(self._stats),
            "prev": self._prev,
            "count": self._count,
            "hst_counter": self._hst.counter,
            "hst_first_window": self._hst._first_window,
            "masses": masses,
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Self:
        check_version(state, cls.name, cls.state_version)
        detector = cls(**state["params"])
        detector._stats = [float(v) for v in state["stats"]]
        detector._prev = float(state["prev"])
        detector._count = int(state["count"])
        if state["masses"]:
            # Building the trees draws from the seeded generator exactly as the first learn did.
            detector._hst.learn_one(  # type: ignore[no-untyped-call]
                {"hour": 0.0, "level": 0.0, "step": 0.0}
            )
            for nodes, saved in zip(detector._hst._tree_nodes, state["masses"], strict=True):
                for node, (l_mass, r_mass) in zip(nodes, saved, strict=True):
                    node.l_mass, node.r_mass = l_mass, r_mass
            detector._hst.counter = int(state["hst_counter"])
            detector._hst._first_window = bool(state["hst_first_window"])
        return detector
