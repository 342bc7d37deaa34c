"""The transition detectors' state as one record the compiled kernels take, and their settings.

``State`` holds every array the kernels read or write: the memories (one row per series and
time scale), the coarser scales' running blocks, the memory of values by time of day and the
deviation arm. A detector allocates the arrays of what it uses; the others stay the shared empty
arrays below, which the kernel never indexes because the settings turn their part off. The
kernel takes them spread out (``spread``), in this order.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
from numpy.typing import NDArray

#: What a detector without a part of the state passes for its arrays (never indexed).
_FLOATS = np.zeros(0)
_FLOATS_BY_SERIES = np.zeros((0, 0))
_WORDS = np.zeros(0, dtype=np.uint64)
_WORDS_BY_SERIES = np.zeros((0, 0), dtype=np.uint64)
_COUNTS = np.zeros(0, dtype=np.int32)
_LENGTHS = np.zeros(0, dtype=np.int64)
_SINGLES = np.zeros(0, dtype=np.float32)
_BYTES = np.zeros(0, dtype=np.uint8)
_SHORTS = np.zeros(0, dtype=np.int16)


class State(NamedTuple):
    """Every array of a batch of series, as the kernels take it."""

    # One row per series and time scale (row ``series * stride + k``; scale 0: the points).
    #: Per grid, the successors seen (a bit per level) of no context, of each level, each pair.
    seen: NDArray[np.uint8]
    #: Per grid, the last two levels, oldest first.
    recent: NDArray[np.int8]
    #: The range: its lowest value and its span.
    lo: NDArray[np.float64]
    span: NDArray[np.float64]
    #: The grids' shift (empty with one grid).
    shift: NDArray[np.float64]
    #: Points learned (``count`` in the checkpointed state), points left to rest, recent rate
    #: of novelty.
    points: NDArray[np.int32]
    quiet: NDArray[np.int32]
    rate: NDArray[np.float64]
    # The tolerant form's, one row per series and time scale: the last value, the typical
    # step, and the values seen at fine levels (a bit each).
    prev: NDArray[np.float64] = _FLOATS
    step: NDArray[np.float64] = _FLOATS
    fine: NDArray[np.uint64] = _WORDS
    # The coarser scales: block lengths, running sums (series by scale), and the series' rest
    # across scales.
    lengths: NDArray[np.int64] = _LENGTHS
    sums: NDArray[np.float64] = _FLOATS_BY_SERIES
    rested: NDArray[np.int32] = _COUNTS
    # The memory by time of day, one row per series: a word of fine levels per part of the day,
    # the recent rate of novelty there, the clock of days begun, and the values of the current
    # part seen only an hour away.
    daily: NDArray[np.uint64] = _WORDS_BY_SERIES
    daily_rate: NDArray[np.float64] = _FLOATS
    clock: NDArray[np.int32] = _COUNTS
    pending: NDArray[np.uint64] = _WORDS
    # The deviation arm, one entry per series: level, typical deviation, largest recent
    # deviation, points learned (up to its warm-up) and rest.
    zmean: NDArray[np.float64] = _FLOATS
    zdev: NDArray[np.float32] = _SINGLES
    zmax: NDArray[np.float32] = _SINGLES
    zcount: NDArray[np.uint8] = _BYTES
    zrest: NDArray[np.int16] = _SHORTS


class Config(NamedTuple):
    """The hyperparameters the kernels read (see the detectors' docstrings)."""

    order: int
    warmup: int
    base_threshold: float
    rest_period: int
    rel_floor: float
    abs_floor: float
    novelty_alpha: float
    #: 0: exact novelty (then ``step_alpha``, ``step_clip`` and ``records`` are unused).
    tolerance: float = 0.0
    step_alpha: float = 1.0
    step_clip: float = 1.0
    records: bool = False
    #: Parts of the day (0: no memory by time of day), days to see first, the seconds added to
    #: a point's time for its local day.
    parts: int = 0
    daily_after: int = 7
    day_offset: float = 0.0
    #: The deviation arm's least distance to fire (0: no arm) and its margin.
    deviation: float = 0.0
    deviation_margin: float = 5.0


def spread(state: State, config: Config) -> tuple[Any, ...]:
    """``state`` and ``config`` as the one flat tuple ``kernel.observe`` takes: numba reads loose
    arguments without the reference counting that each read of an array out of a record costs,
    and its dispatcher types loose arrays in C but a record of them in Python."""
    return (*state, *config)


#: How many of ``spread``'s values are the state's.
STATE_FIELDS = len(State._fields)
