"""The compiled kernel of the transition detectors: score and learn a sequence of points of many
series, in the order given, over the arrays of a ``State`` and the settings of a ``Config``.

``observe`` is one loop over the points and, for each, over the memories it reaches; what happens
rarely (the span doubling, the warm-up's range, the end of the warm-up), the deviation arm and
the steps over scalars only (``doublings``, ``next_step``, ``next_clock``,
``rest_across_scales``) are kernels of their own. The rest of what happens at every point stays
in the loop: split into kernels that take the arrays they use, the per-point work measured 1.4
to 1.8 times slower (more calls, each passing several arrays, and their reference counts), and
taking the ``State`` record itself six to ten times slower (numba counts a reference each time
an array is read out of a record: a namedtuple, and a structref or a jitclass the same way).
``observe`` reads the record once a call.
"""

from __future__ import annotations

import math
from typing import Any

import numba
import numpy as np

from detectors.transition.daily import HOUR_S, carry_hours, day_slot, hours_matter
from detectors.transition.deviation import deviation as arm_score
from detectors.transition.levels import (
    FINE,
    LEVELS,
    carry,
    carry_fine,
    exact_share,
    fine_level,
    inside,
    level,
    levels_of,
    moved,
    near_seen,
    tolerant_share,
)
from detectors.transition.state import STATE_FIELDS, Config

#: The ``why`` of a score that the memory of values by time of day gave.
WHY_HOUR = 100
#: The ``why`` of a score that ``TolerantNoveltyBatch``'s deviation arm gave.
WHY_DEVIATION = 101

#: How far beyond the range, as a share of its span, a value is taken for rounding (no doubling).
ROUNDING = 1e-9

_kernel = numba.njit(cache=True, nogil=True)
#: A kernel of scalars only, compiled into the loop (no arrays: nothing to count).
_scalar = numba.njit(cache=True, nogil=True, inline="always")


@_kernel
def observe(rows: Any, values: Any, ts: Any, learn: bool, out: Any, why: Any, *fields: Any) -> None:
    """Score ``values[i]`` of series ``rows[i]`` in turn into ``out`` and, with ``learn``, learn
    each before the next. Without ``learn`` nothing changes (rows should then be distinct).
    ``fields`` are a ``State`` then a ``Config``, spread (``state.spread``); the names below are
    theirs.

    ``tolerance`` 0 asks for exact novelty, which a value beyond the range always has; above 0
    asks ``tolerant_share``'s question, against the range as it was before the value, unless no
    value seen comes within the tolerance (``fine``): then the value is new, as a never-seen
    level is.

    With ``lengths``, memory row ``series * (1 + len(lengths))`` takes the points and row
    ``+ 1 + s`` the means of consecutive blocks of ``lengths[s]`` points (running sums in
    ``sums``; where a block ends follows from the points the first memory has counted): a
    point scores the most novel of its value and the blocks it
    completes, and an alert at any scale rests them all (``rested``). Without, the one memory
    rests itself (``quiet``).

    With ``daily`` (one row of words per series, one word for each of the ``parts`` of a day,
    and as many again for weekends when it has twice as many columns; none for zero columns),
    the point memory also asks whether any value seen at this time of day (``ts`` plus
    ``day_offset`` seconds) comes within
    the tolerance, once the series has seen ``daily_after`` days begin (``clock``: days begun
    times words plus the last word, -1 before any) and ``hours_matter`` within the tolerance.
    That novelty times one minus its own recent rate (``daily_rate``) scores as the point's own
    does. A value seen only an hour away waits in ``pending`` until its part ends.

    With ``deviation`` above 0 (``zmean`` to ``zrest``: one entry per series), the deviation
    arm (``deviation.deviation``) scores each point too, and the point scores the higher of the
    two: the memories' rest does not hold the arm back, and an alert of the arm rests the
    memories.

    ``why[i]`` says which memory gave ``out[i]``: 0 none, ``1 + m`` memory row ``m`` (the point
    itself, then each scale), ``WHY_HOUR`` the values by time of day, ``WHY_DEVIATION`` the
    deviation arm.
    """
    seen, recent, lo, span, shift, count, quiet, rate, prev, step, fine = fields[:11]
    lengths, sums, rested, daily, daily_rate, clock, pending = fields[11:18]
    zmean, zdev, zmax, zcount, zrest = fields[18:STATE_FIELDS]
    cfg = Config(*fields[STATE_FIELDS:])
    order, warmup, novelty_alpha = cfg.order, cfg.warmup, cfg.novelty_alpha
    base_threshold, rest_period = cfg.base_threshold, cfg.rest_period
    tolerance, records = cfg.tolerance, cfg.records
    parts, daily_after, day_offset = cfg.parts, cfg.daily_after, cfg.day_offset
    grids = seen.shape[1]
    words = daily.shape[1]
    weekends = words > parts
    levels = np.empty(grids, dtype=np.int64)
    stride = 1 + len(lengths)
    own_rest = rest_period if stride == 1 else 0
    for i in range(len(rows)):
        out[i] = 0.0
        why[i] = 0
        if not math.isfinite(values[i]):
            continue
        best = 0.0
        best_why = 0
        # Each memory the point reaches: its own (m = 0), then each block it completes.
        for m in range(stride):
            part = -1  # the point's part of the day, for its memory by time of day
            hour_novelty = 0.0
            excused = False  # new to its part, but seen an hour away
            hour_led = False  # the score is the time of day's
            if m == 0:
                r, x, alpha = rows[i] * stride, values[i], novelty_alpha
                if parts > 0 and tolerance > 0.0:
                    part = day_slot(ts[i] + day_offset, parts, weekends)
            else:
                k, total = lengths[m - 1], sums[rows[i], m - 1] + values[i]
                # Blocks start at the first point: the first memory's count (which has
                # already counted this point when learning) says where one ends.
                complete = (count[rows[i] * stride] + (0 if learn else 1)) % k == 0
                if learn:
                    sums[rows[i], m - 1] = 0.0 if complete else total
                if not complete:
                    continue
                # A block of k points is k points of time: the recent rate of novelty spans
                # the same time at every scale, not k times more.
                r, x, alpha = rows[i] * stride + m, total / k, min(1.0, novelty_alpha * k)
            score = 0.0
            warm = count[r] >= warmup
            sh = shift[r] if grids > 1 else 0.0  # one grid is not shifted (and keeps none)
            top = lo[r] + span[r]
            up, down = doublings(lo[r], span[r], x, warm)
            novelty = 0.0
            known = False  # whether ``levels`` holds this value's levels in the current range
            if warm:
                if tolerance > 0.0:
                    delta = tolerance * step[r]
                    width = span[r] / LEVELS
                    beyond = x - delta > top or x + delta < lo[r]
                    if beyond or (
                        not near_seen(fine[r], x, delta, lo[r], span[r])
                        and (records or inside(fine[r], x, lo[r], span[r]))
                    ):
                        novelty = 1.0
                    else:
                        reach = math.floor(delta / width + 0.5)
                        for g in range(grids):
                            s = g * sh
                            first = level(x - delta, lo[r], span[r], s)
                            last = level(x + delta, lo[r], span[r], s)
                            a, b = recent[r, g, 0], recent[r, g, 1]
                            novelty += tolerant_share(seen, r, g, a, b, first, last, reach, order)
                        novelty /= grids
                elif up > 0 or down > 0:
                    novelty = 1.0
                else:
                    levels_of(x, lo[r], span[r], sh, levels)
                    known = True
                    for g in range(grids):
                        a, b = recent[r, g, 0], recent[r, g, 1]
                        novelty += exact_share(seen, r, g, a, b, levels[g], order)
                    novelty /= grids
                # A young memory misses transitions, not values a whole span beyond everything
                # seen: those are news at once.
                score = 1.0 if up + down >= 2 else novelty * (1.0 - rate[r])
                if m == 0 and part >= 0:
                    delta = tolerance * step[r]
                    hour_novelty = 1.0
                    if not (x - delta > top or x + delta < lo[r]):
                        # New at its hour: no value near it in its part of the day, nor in the
                        # parts an hour earlier and later (a shape that moves by an hour, as
                        # with daylight saving time, is not news). A value seen only an hour
                        # away is learned into this part when the part ends, so an anomaly
                        # that begins at a part's edge does not teach the part its values
                        # before it is news.
                        for by in (0.0, -HOUR_S, HOUR_S):
                            at = ts[i] + day_offset + by
                            q = part if by == 0.0 else day_slot(at, parts, weekends)
                            if near_seen(daily[rows[i], q], x, delta, lo[r], span[r]):
                                hour_novelty = 0.0
                                excused = q != part
                                break
                    days = clock[rows[i]] // words if clock[rows[i]] >= 0 else 0
                    # Asked only of a value new at its hour: the rare case, once warmed up.
                    if hour_novelty > 0.0 and days >= daily_after:
                        reach = FINE if delta >= span[r] else math.ceil(delta / span[r] * FINE)
                        hour_score = hour_novelty * (1.0 - daily_rate[rows[i]])
                        if hour_score > score and hours_matter(daily[rows[i]], reach):
                            score, hour_led = hour_score, True
                score = score if quiet[r] == 0 else 0.0
            if score > best:
                best, best_why = score, (WHY_HOUR if hour_led else m + 1)
            if not learn:
                continue
            if part >= 0:
                # Days begun: the part of the day wrapped around (capped, it only gates).
                clock[rows[i]], ended = next_clock(clock[rows[i]], part, words, cfg)
                if ended >= 0:
                    # The part ended: what it was excused is learned now.
                    daily[rows[i], ended] |= pending[rows[i]]
                    pending[rows[i]] = 0
            if warm:
                rate[r] += alpha * (novelty - rate[r])
                if part >= 0:
                    daily_rate[rows[i]] += alpha * (hour_novelty - daily_rate[rows[i]])
                if up > 0 or down > 0:
                    widen(seen, recent, lo, span, fine, r, up, down, cfg)
                    if m == 0 and parts > 0 and tolerance > 0.0:
                        carry_hours(daily, pending, rows[i], up, down)
            else:
                warm_up_range(lo, span, count, r, x, cfg)
            if not known:
                levels_of(x, lo[r], span[r], sh, levels)
            if warm and tolerance > 0.0:
                fine[r] |= np.uint64(1) << np.uint64(fine_level(x, lo[r], span[r]))
                if part >= 0:
                    value_bit = np.uint64(1) << np.uint64(fine_level(x, lo[r], span[r]))
                    if excused:
                        pending[rows[i]] |= value_bit
                    else:
                        daily[rows[i], part] |= value_bit
            for g in range(grids):
                a, b, c = recent[r, g, 0], recent[r, g, 1], levels[g]
                if warm:
                    bit = np.uint8(1 << c)
                    seen[r, g, 0] |= bit
                    seen[r, g, 1 + b] |= bit
                    seen[r, g, 1 + LEVELS + a * LEVELS + b] |= bit
                recent[r, g, 0], recent[r, g, 1] = b, c
            if warm and score >= base_threshold:
                quiet[r] = own_rest
            elif quiet[r] > 0:
                quiet[r] -= 1
            if tolerance > 0.0:
                step[r] = next_step(step[r], prev[r], count[r], x, cfg)
                prev[r] = x
            count[r] += 1
            if count[r] == warmup:
                end_warm_up(shift, span, fine, r, grids, cfg)
        if stride > 1:
            best, best_why, q = rest_across_scales(rested[rows[i]], best, best_why, cfg)
            if learn:
                rested[rows[i]] = q
        if cfg.deviation > 0.0:
            z_score = arm_score(zmean, zdev, zmax, zcount, zrest, cfg, rows[i], values[i], learn)
            if z_score > best:
                best, best_why = z_score, WHY_DEVIATION
                if learn and stride > 1:
                    rested[rows[i]] = rest_period
                elif learn:
                    quiet[rows[i]] = own_rest
        out[i] = best
        why[i] = best_why if best > 0.0 else 0


@_kernel
def widen(
    seen: Any, recent: Any, lo: Any, span: Any, fine: Any, r: int, up: int, down: int,
    cfg: Config,
) -> None:  # fmt: skip
    """Double memory row ``r``'s span ``up`` times upwards and ``down`` times downwards,
    carrying the levels and fine values it remembers to the new levels."""
    lo[r] -= span[r] * (2.0**down - 1.0)
    span[r] *= 2.0 ** (up + down)
    if cfg.tolerance > 0.0:
        if up > 0:
            fine[r] = carry_fine(fine[r], min(up, 6), True)
        if down > 0:
            fine[r] = carry_fine(fine[r], min(down, 6), False)
    for g in range(seen.shape[1]):
        for steps, upwards in ((min(up, 3), True), (min(down, 3), False)):
            if steps > 0:
                carry(seen[r, g], steps, upwards)
                for j in range(2):
                    recent[r, g, j] = moved(recent[r, g, j], steps, upwards)


@_kernel
def warm_up_range(lo: Any, span: Any, count: Any, r: int, x: float, cfg: Config) -> None:
    """Until the warm-up ends the range is the running minimum and maximum."""
    low = x if count[r] == 0 else min(lo[r], x)
    high = x if count[r] == 0 else max(lo[r] + span[r], x)
    lo[r] = low
    span[r] = max(high - low, max(cfg.rel_floor * abs(low), cfg.abs_floor))


@_kernel
def end_warm_up(shift: Any, span: Any, fine: Any, r: int, grids: int, cfg: Config) -> None:
    """At the end of memory row ``r``'s warm-up: the grids' shifts (fixed fractions of the
    warm-up range's level width), and the warm-up's lowest and highest values as values seen."""
    if grids > 1:
        shift[r] = span[r] / LEVELS / grids
    if cfg.tolerance > 0.0:
        fine[r] |= np.uint64(1) | np.uint64(1) << np.uint64(FINE - 1)


@_scalar
def doublings(lo: float, span: float, x: float, warm: bool) -> tuple[int, int]:
    """How many times the span must double upwards, or downwards, to hold ``x`` (none while
    warming up: the range is then the running minimum and maximum, and none for a value beyond
    it by ``ROUNDING`` of the span or less: the same value computed again, which the edge level
    holds)."""
    top = lo + span
    up = down = 0
    hair = ROUNDING * span
    if warm and x > top + hair:
        up = math.ceil(math.log2(max((x - lo) / span, 1.0)))
    elif warm and x < lo - hair:
        down = math.ceil(math.log2(max((top - x) / span, 1.0)))
    return up, down


@_scalar
def next_step(step: float, prev: float, count: int, x: float, cfg: Config) -> float:
    """The typical step after ``x`` (the last value ``prev``, ``count`` points learned): a plain
    mean, then exponentially weighted, each step clipped once warm."""
    size = abs(x - prev)
    if count >= cfg.warmup:
        size = min(size, cfg.step_clip * step)
    if count >= 1:
        step += max(cfg.step_alpha, 1.0 / count) * (size - step)
    return step


@_scalar
def next_clock(tick: int, part: int, words: int, cfg: Config) -> tuple[int, int]:
    """The clock of days begun after a point in ``part`` of the day (days begun times ``words``
    plus the last part, -1 before any; the day count is capped, it only gates), and the part
    that ended with it (-1 for none)."""
    if tick < 0:
        return part, -1
    last = tick % words
    days = tick // words + (1 if part % cfg.parts < last % cfg.parts else 0)
    return min(days, cfg.daily_after) * words + part, (last if part != last else -1)


@_scalar
def rest_across_scales(
    rested: int, best: float, best_why: int, cfg: Config
) -> tuple[float, int, int]:
    """With scales the series rests as a whole: nothing scores while it rests (``rested``
    points left), and an alert at any scale starts the rest. The score, its memory and the
    rest left after this point."""
    if rested > 0:
        return 0.0, 0, rested - 1
    if best >= cfg.base_threshold:
        return best, best_why, cfg.rest_period
    return best, best_why, rested
