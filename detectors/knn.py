"""Pattern novelty by nearest neighbours: is the recent shape of a series unlike its history?

The last ``window`` values form the current pattern. It is compared with every earlier pattern of
the same length in the last ``history`` values, and its novelty is the mean distance to its ``k``
nearest neighbours, as a fraction of the series' observed range (values are kept as 8-bit codes
over that range, so the history costs ``history`` bytes). A pattern alerts when it is more novel,
by ``margin``, than any pattern of the last ``blocks * block`` points (their maxima are kept per
block): a rank test against the series' own recent past that needs no scale, with a margin so that
steady noise, whose record novelty creeps up only slowly, stays quiet. The level surprise of the
``surprise`` detector covers the first points, before the history fills, and jumps far out of
range. After an alert the detector stays quiet for ``refractory`` points: an episode is reported
once, where it starts.
"""

from __future__ import annotations

import base64
from typing import Any, ClassVar

import numpy as np
from numpy.typing import NDArray

from detectors.base import check_version
from detectors.ensemble import SurpriseEnsembleBatch
from detectors.vector import BatchDetector, Floats, Mask, OneSeries, Positive, masked_update

_LEVELS = 255.0
_INNER = "surprise_"


class PatternKnnBatch(BatchDetector):
    """Nearest-neighbour novelty of the recent pattern, ranked against recent novelty."""

    name: ClassVar[str] = "pattern_knn"
    state_version: ClassVar[int] = 1
    #: Clearly above every recent novelty (0.5 is just above it), or a level surprise of six
    #: sigmas over its peak. The detector keeps quiet for ``refractory`` points after it.
    threshold: ClassVar[float] = 0.55
    #: It reports an episode once and then keeps quiet: decide on a single point.
    for_points: ClassVar[int] = 1

    def __init__(
        self,
        n: int = 1,
        window: int = 10,
        history: int = 400,
        k: int = 3,
        warmup: int = 150,
        block: int = 50,
        blocks: int = 8,
        floor: Positive = 0.01,
        margin: Positive = 1.1,
        refractory: int = 100,
    ) -> None:
        super().__init__(n)
        if window < 2 or history < 2 * window + k:
            raise ValueError("history must hold at least 2 * window + k values")
        if not 2 * window + k <= warmup:
            raise ValueError("warmup must be at least 2 * window + k")
        if block < 1 or blocks < 1 or k < 1:
            raise ValueError("k, block and blocks must be positive")
        if history > 100_000 or blocks > 1_000:
            raise ValueError("history is at most 100000 values and blocks at most 1000 per series")
        self.window, self.history, self.k, self.warmup = window, history, k, warmup
        self.block, self.blocks, self.floor, self.margin = block, blocks, floor, margin
        self.refractory = refractory
        self._inner = SurpriseEnsembleBatch(n)
        self._codes = np.zeros((n, history), dtype=np.uint8)  # oldest first
        self._lo = np.zeros(n)
        self._hi = np.zeros(n)
        self._count = np.zeros(n, dtype=np.int64)
        self._block_max = np.zeros((n, blocks))  # newest block first
        self._open_max = np.zeros(n)
        self._novelties = np.zeros(n, dtype=np.int64)
        self._quiet = np.zeros(n, dtype=np.int64)
        self._generation = 0
        self._cache: tuple[int, Floats, Floats, Floats] | None = None

    def arrays(self) -> dict[str, NDArray[Any]]:
        own: dict[str, NDArray[Any]] = {
            "codes": self._codes,
            "lo": self._lo,
            "hi": self._hi,
            "count": self._count,
            "block_max": self._block_max,
            "open_max": self._open_max,
            "novelties": self._novelties,
            "quiet": self._quiet,
        }
        inner = {_INNER + key: arr for key, arr in self._inner.arrays().items()}
        return own | inner

    def row_state(self, i: int) -> dict[str, Any]:
        state = super().row_state(i)
        state["state"]["codes"] = base64.b64encode(self._codes[i].tobytes()).decode("ascii")
        return state

    def load_row(self, i: int, state: dict[str, Any]) -> None:
        check_version(state, self.name, self.state_version)
        codes = np.frombuffer(base64.b64decode(state["state"]["codes"]), dtype=np.uint8)
        if codes.shape != (self.history,):
            raise ValueError(f"{self.name} state holds {codes.size} codes, not {self.history}")
        rest = dict(state, state={k: v for k, v in state["state"].items() if k != "codes"})
        for key, arr in self.arrays().items():
            if key != "codes":
                arr[i] = np.asarray(rest["state"][key], dtype=arr.dtype)
        self._codes[i] = codes
        self._generation += 1
        self._cache = None

    def warmed_up_many(self) -> Mask:
        return self._inner.warmed_up_many()

    def _step(self) -> Floats:
        """Value per code unit; 1 while a series has been flat (all codes are then 0)."""
        out: Floats = np.where(self._hi > self._lo, (self._hi - self._lo) / _LEVELS, 1.0)
        return out

    def _novelty(self, x: Floats) -> Floats:
        """Mean distance of the pattern ending with ``x`` to its ``k`` nearest earlier ones.

        Distances are taken in code units (float32 is ample for 8-bit codes) and converted to a
        fraction of the range including ``x``.
        """
        w, h = self.window, self.history
        fresh = self._count == 0
        lo = np.where(fresh, x, np.fmin(self._lo, x))
        hi = np.where(fresh, x, np.fmax(self._hi, x))
        span = np.maximum(hi - lo, 1e-12 * np.maximum(np.abs(hi), 1.0))
        step = self._step()
        codes = self._codes.astype(np.float32)
        current = np.empty((self.n, w), dtype=np.float32)
        current[:, :-1] = codes[:, h - w + 1 :]
        current[:, -1] = np.nan_to_num((x - self._lo) / step)
        starts = h - 2 * w + 2  # earlier patterns end before the current one starts
        dist = np.zeros((self.n, starts), dtype=np.float32)
        for j in range(w):
            dist += np.abs(codes[:, j : j + starts] - current[:, j : j + 1])
        filled = np.minimum(self._count, h)
        dist[np.arange(starts)[None, :] < (h - filled)[:, None]] = np.inf
        nearest = np.partition(dist, self.k - 1, axis=1)[:, : self.k].astype(np.float64)
        out: Floats = np.mean(nearest, axis=1) * step / (w * span)
        return out

    def _evaluate(self, x: Floats, ts: Floats) -> tuple[Floats, Floats]:
        """(novelty, score) of ``x`` against the state before it; cached for ``_learn``."""
        cached = self._cache
        if (
            cached is not None
            and cached[0] == self._generation
            and np.array_equal(cached[1], x, equal_nan=True)
        ):
            return cached[2], cached[3]
        novelty = self._novelty(x)
        ref = np.maximum(np.maximum(self._block_max.max(axis=1), self._open_max), self.floor)
        ready = (self._count >= self.warmup) & (self._novelties >= self.block)
        ratio = np.where(ready, novelty / (self.margin * ref), 0.0)
        pattern = ratio / (1.0 + ratio)
        level = self._inner.score_many(x, ts)
        score = np.where(self._quiet > 0, 0.0, np.fmax(pattern, level))
        score = np.nan_to_num(score, nan=0.0)
        self._cache = (self._generation, x.copy(), novelty, score)
        return novelty, score

    def _score(self, x: Floats, ts: Floats) -> Floats:
        return self._evaluate(x, ts)[1]

    def _learn(self, x: Floats, ts: Floats, mask: Mask) -> None:
        ok = mask & np.isfinite(x)
        novelty, score = self._evaluate(x, ts)
        fired = score >= self.threshold
        masked_update(
            ok, np.where(fired, self.refractory, np.maximum(self._quiet - 1, 0)), self._quiet
        )
        # Novelty counts once the history is long enough to judge it.
        judged = ok & (self._count >= self.warmup) & np.isfinite(novelty)
        open_max = np.where(judged, np.maximum(self._open_max, novelty), self._open_max)
        novelties = self._novelties + judged
        closed = judged & (novelties % self.block == 0)
        shifted = np.concatenate([open_max[:, None], self._block_max[:, :-1]], axis=1)
        masked_update(closed, shifted, self._block_max)
        masked_update(ok, np.where(closed, 0.0, open_max), self._open_max)
        masked_update(ok, novelties, self._novelties)
        self._learn_history(x, ok)
        self._inner.learn_many(x, ts, mask)
        self._generation += 1
        self._cache = None

    def _learn_history(self, x: Floats, ok: Mask) -> None:
        """Append ``x`` to the coded history, re-coding it where the range widens."""
        fresh = self._count == 0
        lo = np.where(fresh, x, np.fmin(self._lo, x))
        hi = np.where(fresh, x, np.fmax(self._hi, x))
        widened = ok & ((lo != self._lo) | (hi != self._hi)) & ~fresh
        step = np.where(hi > lo, (hi - lo) / _LEVELS, 1.0)
        if widened.any():
            rows = np.flatnonzero(widened)
            values = self._lo[rows, None] + self._codes[rows] * self._step()[rows, None]
            recoded = np.rint((values - lo[rows, None]) / step[rows, None])
            self._codes[rows] = np.clip(recoded, 0, _LEVELS).astype(np.uint8)
        code = np.clip(np.nan_to_num(np.rint((x - lo) / step)), 0, _LEVELS).astype(np.uint8)
        if ok.all():
            self._codes[:, :-1] = self._codes[:, 1:]
            self._codes[:, -1] = code
        else:
            rows = np.flatnonzero(ok)
            self._codes[rows, :-1] = self._codes[rows, 1:]
            self._codes[rows, -1] = code[rows]
        masked_update(ok, lo, self._lo)
        masked_update(ok, hi, self._hi)
        self._count += ok


class PatternKnn(OneSeries):
    """One series of ``PatternKnnBatch``.

    >>> import random
    >>> rng = random.Random(7)
    >>> d = PatternKnn()
    >>> quiet = []
    >>> for t in range(600):
    ...     v = 100.0 + 10.0 * (t % 20 < 10) + rng.gauss(0.0, 1.0)
    ...     quiet.append(d.score_one(v, float(t)))
    ...     d.learn_one(v, float(t))
    >>> max(quiet[200:]) < PatternKnn.threshold
    True
    >>> d.score_one(400.0, 600.0) >= PatternKnn.threshold
    True
    """

    batch_cls = PatternKnnBatch
