"""The memory of values seen by time of day: which part of the day a point falls in, whether the
values seen at each part say the time of day matters for a series, and the kernels that ask it
and teach it (one row of ``State.daily`` per series, a word of fine levels per part)."""

from __future__ import annotations

import math
from typing import Any

import numba
import numpy as np

from detectors.transition.levels import FINE, carry_fine, near_seen
from detectors.transition.state import Config

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
def novelty_at_hour(
    daily: Any, row: int, x: float, t: float, part: int, delta: float, lo: float,
    span: float, cfg: Config,
) -> tuple[float, bool]:  # fmt: skip
    """Whether ``x`` is new at its time of day ``t`` (in ``part``) for series ``row``: 1
    unless a value within ``delta`` of it was seen in its part of the day or in the parts an
    hour earlier and later (a shape that moves by an hour, as with daylight saving time, is not
    news); and whether only an hour away (excused: learned into its part when the part ends, so
    an anomaly that begins at a part's edge does not teach the part its values before it is
    news). A value beyond the range (``lo``, ``span``) by more than ``delta`` is new."""
    if x - delta > lo + span or x + delta < lo:
        return 1.0, False
    weekends = daily.shape[1] > cfg.parts
    for moved in (0.0, -HOUR_S, HOUR_S):
        at = t + cfg.day_offset + moved
        q = part if moved == 0.0 else day_slot(at, cfg.parts, weekends)
        if near_seen(daily[row, q], x, delta, lo, span):
            return 0.0, q != part
    return 1.0, False


@numba.njit(cache=True, nogil=True)
def hour_score(
    daily: Any, clock: Any, daily_rate: Any, row: int, hour_novelty: float, delta: float,
    span: float, beat: float, cfg: Config,
) -> float:  # fmt: skip
    """The score of a value ``hour_novelty`` new at its hour when it is above ``beat`` and the
    memory by time of day is asked (the series has seen ``daily_after`` days begin and the time
    of day matters to it, within the tolerance ``delta`` of a range ``span`` wide); else 0."""
    words = daily.shape[1]
    days = clock[row] // words if clock[row] >= 0 else 0
    # Asked only of a value new at its hour: the rare case, once warmed up.
    if hour_novelty <= 0.0 or days < cfg.daily_after:
        return 0.0
    reach = FINE if delta >= span else math.ceil(delta / span * FINE)
    score: float = hour_novelty * (1.0 - daily_rate[row])
    if score > beat and hours_matter(daily[row], reach):
        return score
    return 0.0


@numba.njit(cache=True, nogil=True)
def tick_clock(daily: Any, clock: Any, pending: Any, row: int, part: int, cfg: Config) -> None:
    """Count the days begun (the part of the day wrapped around; capped, it only gates) and,
    when a part ended, learn what it was excused."""
    words = daily.shape[1]
    tick = clock[row]
    if tick < 0:
        clock[row] = part
        return
    last = tick % words
    days = tick // words + (1 if part % cfg.parts < last % cfg.parts else 0)
    clock[row] = min(days, cfg.daily_after) * words + part
    if part != last:
        daily[row, last] |= pending[row]
        pending[row] = 0


@numba.njit(cache=True, nogil=True)
def remember_at_hour(
    daily: Any, pending: Any, row: int, part: int, excused: bool, bit: Any
) -> None:
    """Learn a value's fine level ``bit`` into its part of the day, or keep it pending until
    the part ends when it was excused (seen only an hour away)."""
    if excused:
        pending[row] |= bit
    else:
        daily[row, part] |= bit


@numba.njit(cache=True, nogil=True)
def carry_hours(daily: Any, pending: Any, row: int, up: int, down: int) -> None:
    """Move series ``row``'s values by time of day to the span doubled ``up`` times upwards and
    ``down`` times downwards."""
    for steps, upwards in ((min(up, 6), True), (min(down, 6), False)):
        if steps > 0:
            pending[row] = carry_fine(pending[row], steps, upwards)
            for q in range(daily.shape[1]):
                daily[row, q] = carry_fine(daily[row, q], steps, upwards)
