"""Vectorized detectors: one state array row per series, and the one-series form built on it.

A batch detector holds the state of ``n`` series as numpy arrays and scores one point per series
per call (``score_many`` then ``learn_many``); a ``mask`` leaves series without a point untouched.
``OneSeries`` wraps a batch of one, so the streaming form and the batch form cannot disagree.
"""

from __future__ import annotations

import base64
import math
from typing import Annotated, Any, ClassVar, Self

import numpy as np
from numpy.typing import NDArray
from pydantic import Field

from detectors.base import Hyperparameters, check_version

Floats = NDArray[np.float64]
Mask = NDArray[np.bool_]


#: Parameter types with a range, checked (with the parameter's name) when the registry configures
#: a detector: a weight or decay in (0, 1), a scale or floor above 0, a floor of at least 0.
Weight = Annotated[float, Field(gt=0.0, lt=1.0)]
Positive = Annotated[float, Field(gt=0.0)]
NonNegative = Annotated[float, Field(ge=0.0)]


def z_to_score(z: Floats, z_half: float = 4.0) -> Floats:
    """``r / (1 + r)`` with ``r = (z / z_half)**2``: 0.5 at ``z_half`` sigmas.

    Unlike ``erf`` it does not round to exactly 1.0 beyond about 8 sigmas, so scores keep
    ranking large deviations against each other.
    """
    return ratio_to_score(np.square(np.asarray(z, dtype=np.float64) / z_half))


def ratio_to_score(r: Floats) -> Floats:
    """``r / (1 + r)`` for ``r >= 0``: 0.5 exactly where a rule's ratio reaches 1."""
    r = np.maximum(r, 0.0)
    return np.asarray(r / (1.0 + r), dtype=np.float64)


class BatchDetector(Hyperparameters):
    """State of ``n`` series in arrays; subclasses define the hyperparameters and the math."""

    name: ClassVar[str]
    state_version: ClassVar[int]
    threshold: ClassVar[float]
    #: The closed interval of values the detector is defined on (``None``: any finite value).
    #: The worker dead-letters points outside it and the backtest refuses them, rather than let
    #: a series of the wrong kind (a percentage where a ratio is expected) page on every point.
    domain: ClassVar[tuple[float, float] | None] = None
    #: Earlier state versions it reads: those that lack only some arrays, which start fresh.
    reads_versions: ClassVar[tuple[int, ...]] = ()

    def __init__(self, n: int = 1) -> None:
        if n < 1:
            raise ValueError("n must be at least 1")
        self.n = n

    def arrays(self) -> dict[str, NDArray[Any]]:
        """The learned state: arrays whose first axis is the series."""
        raise NotImplementedError

    def warmed_up_many(self) -> Mask:
        raise NotImplementedError

    def _score(self, x: Floats, ts: Floats) -> Floats:
        raise NotImplementedError

    def _learn(self, x: Floats, ts: Floats, mask: Mask) -> None:
        raise NotImplementedError

    def score_many(self, values: Floats, ts: Floats, mask: Mask | None = None) -> Floats:
        """One score per series, 0 where warming up or masked out."""
        ok = self.warmed_up_many() if mask is None else self.warmed_up_many() & mask
        x, t = np.asarray(values, dtype=np.float64), np.asarray(ts, dtype=np.float64)
        return _scores(self._score(x, t), ok)

    def _score_learn(self, x: Floats, ts: Floats, mask: Mask) -> Floats:
        """``_score`` then ``_learn``; a detector may fuse them to share the work."""
        out = self._score(x, ts)
        self._learn(x, ts, mask)
        return out

    def score_learn_many(self, values: Floats, ts: Floats) -> Floats:
        """``score_many`` then ``learn_many`` for every series, in one step."""
        ok = self.warmed_up_many()  # before learning, as score_many would see it
        x, t = np.asarray(values, dtype=np.float64), np.asarray(ts, dtype=np.float64)
        return _scores(self._score_learn(x, t, np.ones(self.n, np.bool_)), ok)

    def learn_many(self, values: Floats, ts: Floats, mask: Mask | None = None) -> None:
        """Learn one point per series (only where ``mask`` is true)."""
        m = np.ones(self.n, dtype=np.bool_) if mask is None else np.asarray(mask, dtype=np.bool_)
        self._learn(np.asarray(values, dtype=np.float64), np.asarray(ts, dtype=np.float64), m)

    def row_state(self, i: int) -> dict[str, Any]:
        """Series ``i`` as plain JSON-able data."""
        return {
            "name": self.name,
            "version": self.state_version,
            "params": self.params(),
            "state": {k: v[i].tolist() for k, v in self.arrays().items()},
        }

    def load_row(self, i: int, state: dict[str, Any]) -> None:
        """Overwrite series ``i`` from ``row_state`` output of the same detector."""
        check_version(state, self.name, self.state_version, self.reads_versions)
        arrays, stored = self.arrays(), state["state"]
        fresh = self._fresh_row() if any(k not in stored for k in arrays) else {}
        for key, arr in arrays.items():
            arr[i] = np.asarray(stored[key] if key in stored else fresh[key], dtype=arr.dtype)

    # Many series at once, for a fleet held in one batch: take a subset of rows, work on it,
    # put it back; grow the batch as series appear; checkpoint a block of rows as one value.

    def take(self, rows: NDArray[np.intp]) -> Self:
        """A batch of the series at ``rows`` (distinct), copied out of this one."""
        part = type(self)(len(rows), **self.params())
        mine = self.arrays()
        for key, arr in part.arrays().items():
            arr[...] = mine[key][rows]
        return part

    def score_learn_rows(self, rows: NDArray[np.intp], values: Floats, ts: Floats) -> Floats:
        """``score_learn_many`` for the series at ``rows`` (distinct) only."""
        part = self.take(rows)
        out = part.score_learn_many(values, ts)
        self.put(rows, part)
        return out

    def put(self, rows: NDArray[np.intp], part: Self) -> None:
        """Write back a batch made by ``take(rows)``."""
        mine = self.arrays()
        for key, arr in part.arrays().items():
            mine[key][rows] = arr

    def grow(self, extra: int) -> None:
        """Append ``extra`` fresh series."""
        bigger = type(self)(self.n + extra, **self.params())
        for key, arr in self.arrays().items():
            bigger.arrays()[key][: self.n] = arr
        vars(self).update(vars(bigger))

    def block_state(self, start: int, stop: int) -> dict[str, Any]:
        """Rows ``start:stop`` as one compact JSON-able value (arrays as base64 bytes)."""
        return {
            "name": self.name,
            "version": self.state_version,
            "params": self.params(),
            "arrays": {k: pack(v[start:stop]) for k, v in self.arrays().items()},
        }

    def load_block(self, start: int, state: dict[str, Any]) -> None:
        """Overwrite the rows from ``start`` with a ``block_state`` of the same detector."""
        check_version(state, self.name, self.state_version, self.reads_versions)
        stored = {k: unpack(v) for k, v in state["arrays"].items()}
        rows = len(next(iter(stored.values()))) if stored else 0
        arrays = self.arrays()
        fresh = self._fresh_row() if any(k not in stored for k in arrays) else {}
        for key, arr in arrays.items():
            arr[start : start + rows] = stored[key] if key in stored else fresh[key]

    def reset_rows(self, rows: NDArray[np.intp]) -> None:
        """The series at ``rows`` back to a fresh series' state (their rows are reused)."""
        fresh = self._fresh_row()
        for key, arr in self.arrays().items():
            arr[rows] = fresh[key]

    def _fresh_row(self) -> dict[str, NDArray[Any]]:
        """The arrays of one fresh series (what a row an older state lacks starts as)."""
        return {k: v[0] for k, v in type(self)(1, **self.params()).arrays().items()}


def _scores(raw: Floats, ok: Mask) -> Floats:
    """Raw scores made valid: NaN as 0, clipped to [0, 1], 0 where ``ok`` is false."""
    return np.where(ok, np.clip(np.nan_to_num(raw, nan=0.0), 0.0, 1.0), 0.0)


def _where(mask: Mask, new: NDArray[Any], old: NDArray[Any]) -> None:
    """``old[mask] = new[mask]`` in place."""
    np.copyto(old, new, where=mask.reshape(mask.shape + (1,) * (old.ndim - 1)))


class OneSeries:
    """The streaming form of a batch detector: a batch of one series."""

    batch_cls: ClassVar[type[BatchDetector]]
    name: ClassVar[str]
    state_version: ClassVar[int]
    threshold: ClassVar[float]
    for_points: ClassVar[int]
    domain: ClassVar[tuple[float, float] | None]

    def __init__(self, **params: Any) -> None:
        self._batch = self.batch_cls(1, **params)
        self._ts = np.zeros(1)
        self._x = np.zeros(1)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.name = cls.batch_cls.name
        cls.state_version = cls.batch_cls.state_version
        cls.threshold = cls.batch_cls.threshold
        cls.for_points = getattr(cls.batch_cls, "for_points", 2)
        cls.domain = cls.batch_cls.domain

    @property
    def warmed_up(self) -> bool:
        return bool(self._batch.warmed_up_many()[0])

    def score_one(self, value: float, ts: float) -> float:
        self._x[0], self._ts[0] = value, ts
        return float(self._batch.score_many(self._x, self._ts)[0])

    def learn_one(self, value: float, ts: float) -> None:
        self._x[0], self._ts[0] = value, ts
        self._batch.learn_many(self._x, self._ts)

    def to_state(self) -> dict[str, Any]:
        return self._batch.row_state(0)

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Self:
        check_version(state, cls.name, cls.state_version, cls.batch_cls.reads_versions)
        detector = cls(**state["params"])
        detector._batch.load_row(0, state)
        return detector


def masked_update(mask: Mask, new: NDArray[Any], old: NDArray[Any]) -> None:
    """Write ``new`` into ``old`` for the series selected by ``mask``."""
    _where(mask, new, old)


def pack(arr: NDArray[Any]) -> dict[str, Any]:
    """An array as dtype, shape and its raw bytes (``detectors.blocks`` writes them as they
    are; JSON would need base64)."""
    arr = np.ascontiguousarray(arr)
    return {"dtype": arr.dtype.str, "shape": list(arr.shape), "data": arr.tobytes()}


def unpack(data: Any) -> NDArray[Any]:
    """The array ``pack`` wrote (its bytes, or base64 text as checkpoints once held them).

    A stored array is checked before anything is allocated: a plain number dtype (bool,
    integer, float) of at most 16 bytes, a shape of non-negative integers, and exactly the
    bytes that shape needs; anything else is ``ValueError`` saying which.
    """
    if not isinstance(data, dict):
        raise ValueError("stored array is not an object")
    dtype = _stored_dtype(data.get("dtype"))
    raw = _stored_bytes(data.get("data"))
    shape = data.get("shape")
    if not isinstance(shape, list) or not all(_count(n) for n in shape):
        raise ValueError(f"stored array shape {shape!r:.60} is not a list of counts")
    need = dtype.itemsize * math.prod(shape)
    if need != len(raw):
        raise ValueError(f"stored array of shape {shape!r:.60} needs {need} bytes, has {len(raw)}")
    return np.frombuffer(raw, dtype=dtype).reshape(shape).copy()


_DTYPE_KINDS = frozenset("biuf")


def _stored_dtype(value: Any) -> np.dtype[Any]:
    """A stored array's dtype, if it is a plain number type (never objects, records, text)."""
    if not isinstance(value, str) or len(value) > 8:
        raise ValueError(f"stored array dtype {value!r:.60} is not a number type")
    try:
        dtype = np.dtype(value)
    except TypeError:
        raise ValueError(f"stored array dtype {value!r} is not a number type") from None
    if dtype.kind not in _DTYPE_KINDS or dtype.itemsize > 16:
        raise ValueError(f"stored array dtype {value!r} is not a number type")
    return dtype


def _stored_bytes(value: Any) -> bytes:
    """A stored array's bytes: raw, or base64 text (strictly: no stray characters)."""
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    if isinstance(value, str):
        try:
            return base64.b64decode(value, validate=True)
        except ValueError:
            raise ValueError("stored array data is not base64") from None
    raise ValueError(f"stored array data is {type(value).__name__}, not bytes")


def _count(n: Any) -> bool:
    return isinstance(n, int) and not isinstance(n, bool) and n >= 0
