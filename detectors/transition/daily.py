"""The memory of values seen by time of day: which part of the day a point falls in, whether the
values seen at each part say the time of day matters for a series, and the kernels that ask it
and teach it (one row of ``State.daily`` per series, a word of fine levels per part)."""

from __future__ import annotations

import math
from typing import Any

import numba
import numpy as np

from detectors.transition.levels import FINE, carry_fine

#: Most parts of the day ``TolerantNoveltyBatch`` keeps values seen for (hours).
MAX_DAY_PARTS = 24
#: Seconds in a day, the period of ``TolerantNoveltyBatch``'s memory of values by time of day,
#: and how far either way of a point's time that memory looks for its value.
DAY_S, HOUR_S = 86400.0, 3600.0


@numba.njit(cache=True, nogil=True)
def day_slot(t: float, slots: int, weekends: bool) -> int:
    """Which of ``slots`` equal parts of the (UTC) day time ``t`` falls in, counted from
    ``slots`` on a Saturday or Sunday with ``weekends``; -1 for no time."""
    if not math.isfinite(t):
        return -1
    day = math.floor(t / DAY_S)
    slot = max(0, min(int((t - day * DAY_S) / DAY_S * slots), slots - 1))
    # 1970-01-01 was a Thursday: day 0 is weekday 3 counting from Monday.
    if weekends and (int(day) + 3) % 7 >= 5:
        slot += slots
    return slot


@numba.njit(cache=True, nogil=True)
def hours_matter(words: Any, reach: int) -> bool:
    """Whether the values seen at each time of day (one word of fine levels each) say the time of
    day matters: every part of the day has values, and no fine level has values within ``reach``
    levels of it in every part."""
    common = ~np.uint64(0)
    for w in words:
        if w == np.uint64(0):
            return False
        grown = w
        for k in range(1, min(reach, FINE - 1) + 1):
            grown |= (w << np.uint64(k)) | (w >> np.uint64(k))
        common &= grown
    return bool(common == np.uint64(0))


@numba.njit(cache=True, nogil=True)
def carry_hours(daily: Any, pending: Any, row: int, up: int, down: int) -> None:
    """Move series ``row``'s values by time of day to the span doubled ``up`` times upwards and
    ``down`` times downwards."""
    for steps, upwards in ((min(up, 6), True), (min(down, 6), False)):
        if steps > 0:
            pending[row] = carry_fine(pending[row], steps, upwards)
            for q in range(daily.shape[1]):
                daily[row, q] = carry_fine(daily[row, q], steps, upwards)
