"""The compiled kernel of the transition detectors: score and learn a sequence of points of many
series, in the order given.

``observe`` takes the points in turn and asks each memory a point reaches (its own, then the
coarser scales' blocks it completes) how new it is, then the deviation arm; the small kernels
below answer one question each or learn one thing. They take the arrays they use, not the
``State`` record: numba counts a reference each time an array is read out of a record (a
namedtuple, a structref or a jitclass alike), and read per point that made the kernel several
times slower. ``observe`` reads the record once a call.
"""

from __future__ import annotations

import math
from typing import Any

import numba
import numpy as np

from detectors.transition.daily import (
    carry_hours,
    day_slot,
    hour_score,
    novelty_at_hour,
    remember_at_hour,
    tick_clock,
)
from detectors.transition.deviation import deviation
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

_kernel = numba.njit(cache=True, nogil=True)


@_kernel
def observe(rows: Any, values: Any, ts: Any, learn: bool, out: Any, why: Any, *fields: Any) -> None:
    """Score ``values[i]`` of series ``rows[i]`` at ``ts[i]`` in turn into ``out`` and, with
    ``learn``, learn each before the next. Without ``learn`` nothing changes (rows should then
    be distinct). ``fields`` are a ``State`` then a ``Config``, spread (``state.spread``).

    ``tolerance`` 0 asks for exact novelty, which a value beyond the range always has; above 0
    asks ``tolerant_share``'s question, against the range as it was before the value, unless no
    value seen comes within the tolerance (``fine``): then the value is new, as a never-seen
    level is.

    With scales (``lengths``), memory row ``series * (1 + len(lengths))`` takes the points and
    row ``+ 1 + s`` the means of consecutive blocks of ``lengths[s]`` points (``block_mean``): a
    point scores the most novel of its value and the blocks it completes, and an alert at any
    scale rests them all (``rested``). Without, the one memory rests itself (``quiet``).

    With ``parts`` (the memory by time of day: ``daily``), the point memory also asks whether
    any value seen at this time of day comes within the tolerance (``novelty_at_hour``,
    ``hour_score``); that novelty times one minus its own recent rate (``daily_rate``) scores
    as the point's own does.

    With ``deviation`` above 0, the deviation arm scores each point too, and the point scores
    the higher of the two: the memories' rest does not hold the arm back, and an alert of the
    arm rests the memories.

    ``why[i]`` says which memory gave ``out[i]``: 0 none, ``1 + m`` memory row ``m`` (the point
    itself, then each scale), ``WHY_HOUR`` the values by time of day, ``WHY_DEVIATION`` the
    deviation arm.
    """
    seen, recent, lo, span, shift, count, quiet, rate, prev, step, fine = fields[:11]
    lengths, sums, rested, daily, daily_rate, clock, pending = fields[11:18]
    zmean, zdev, zmax, zcount, zrest = fields[18:STATE_FIELDS]
    cfg = Config(*fields[STATE_FIELDS:])
    grids, stride = seen.shape[1], 1 + len(lengths)
    own_rest = cfg.rest_period if stride == 1 else 0
    levels = np.empty(grids, dtype=np.int64)  # scratch: a value's level in each grid
    for i in range(len(rows)):
        out[i], why[i] = 0.0, 0
        if not math.isfinite(values[i]):
            continue
        row, t = rows[i], ts[i]
        best, best_why = 0.0, 0
        # Each memory the point reaches: its own (m = 0), then each block it completes.
        for m in range(stride):
            r, x, alpha, part = row * stride, values[i], cfg.novelty_alpha, -1
            if m == 0:
                part = day_part(t, daily.shape[1], cfg)
            else:
                complete, x = block_mean(sums, lengths, count, row, m, values[i], learn, stride)
                if not complete:
                    continue
                # A block of k points is k points of time: the recent rate of novelty spans
                # the same time at every scale, not k times more.
                r, alpha = r + m, min(1.0, cfg.novelty_alpha * lengths[m - 1])
            warm = count[r] >= cfg.warmup
            sh = shift[r] if grids > 1 else 0.0  # one grid is not shifted (and keeps none)
            up, down = doublings(lo[r], span[r], x, warm)
            score, novelty, known = 0.0, 0.0, False
            hour_novelty, excused, hour_led = 0.0, False, False
            if warm:
                novelty, known = novelty_of(
                    seen, recent, lo, span, step, fine, r, x, sh, up, down, cfg, levels
                )
                # A young memory misses transitions, not values a whole span beyond everything
                # seen: those are news at once.
                score = 1.0 if up + down >= 2 else novelty * (1.0 - rate[r])
                if part >= 0:
                    delta = cfg.tolerance * step[r]
                    hour_novelty, excused = novelty_at_hour(
                        daily, row, x, t, part, delta, lo[r], span[r], cfg
                    )
                    by_hour = hour_score(
                        daily, clock, daily_rate, row, hour_novelty, delta, span[r], score, cfg
                    )
                    if by_hour > score:
                        score, hour_led = by_hour, True
                score = score if quiet[r] == 0 else 0.0
            if score > best:
                best, best_why = score, (WHY_HOUR if hour_led else m + 1)
            if not learn:
                continue
            if part >= 0:
                tick_clock(daily, clock, pending, row, part, cfg)
            if warm:
                rate[r] += alpha * (novelty - rate[r])
                if part >= 0:
                    daily_rate[row] += alpha * (hour_novelty - daily_rate[row])
                if up > 0 or down > 0:
                    widen(seen, recent, lo, span, fine, r, up, down, cfg)
                    if m == 0 and cfg.parts > 0 and cfg.tolerance > 0.0:
                        carry_hours(daily, pending, row, up, down)
            else:
                warm_up_range(lo, span, count, r, x, cfg)
            if not known:
                levels_of(x, lo[r], span[r], sh, levels)
            if warm and cfg.tolerance > 0.0:
                bit = np.uint64(1) << np.uint64(fine_level(x, lo[r], span[r]))
                fine[r] |= bit
                if part >= 0:
                    remember_at_hour(daily, pending, row, part, excused, bit)
            remember_levels(seen, recent, r, levels, warm)
            if warm and score >= cfg.base_threshold:
                quiet[r] = own_rest
            elif quiet[r] > 0:
                quiet[r] -= 1
            if cfg.tolerance > 0.0:
                learn_step(prev, step, count, r, x, cfg)
            count_point(count, shift, span, fine, r, grids, cfg)
        if stride > 1:
            best, best_why = rest_across_scales(rested, row, best, best_why, learn, cfg)
        if cfg.deviation > 0.0:
            z_score = deviation(zmean, zdev, zmax, zcount, zrest, cfg, row, values[i], learn)
            if z_score > best:
                best, best_why = z_score, WHY_DEVIATION
                if learn and stride > 1:
                    rested[row] = cfg.rest_period
                elif learn:
                    quiet[row] = own_rest
        out[i] = best
        why[i] = best_why if best > 0.0 else 0


@_kernel
def day_part(t: float, words: int, cfg: Config) -> int:
    """The part of the day of time ``t`` (counted on from ``parts`` at weekends when there are
    twice as many ``words`` as parts), or -1: no time, or no memory by time of day."""
    if cfg.parts > 0 and cfg.tolerance > 0.0:
        return day_slot(t + cfg.day_offset, cfg.parts, words > cfg.parts)
    return -1


@_kernel
def block_mean(
    sums: Any, lengths: Any, count: Any, row: int, m: int, x: float, learn: bool, stride: int
) -> tuple[bool, float]:
    """Whether point ``x`` of series ``row`` completes a block of scale ``m - 1``, and its mean;
    learning, it adds to (or, completing it, clears) the running sum. Blocks start at the first
    point: the first memory's count (which has already counted this point when learning) says
    where one ends."""
    k, total = lengths[m - 1], sums[row, m - 1] + x
    complete = (count[row * stride] + (0 if learn else 1)) % k == 0
    if learn:
        sums[row, m - 1] = 0.0 if complete else total
    return complete, total / k


@_kernel
def rest_across_scales(
    rested: Any, row: int, best: float, best_why: int, learn: bool, cfg: Config
) -> tuple[float, int]:
    """With scales the series rests as a whole: nothing scores while it rests, and an alert at
    any scale starts the rest."""
    q = rested[row]
    if q > 0:
        best, best_why = 0.0, 0
        q -= 1
    elif best >= cfg.base_threshold:
        q = cfg.rest_period
    if learn:
        rested[row] = q
    return best, best_why


@_kernel
def doublings(lo: float, span: float, x: float, warm: bool) -> tuple[int, int]:
    """How many times the span must double upwards, or downwards, to hold ``x`` (none while
    warming up: the range is then the running minimum and maximum)."""
    top = lo + span
    up = down = 0
    if warm and x > top:
        up = math.ceil(math.log2(max((x - lo) / span, 1.0)))
    elif warm and x < lo:
        down = math.ceil(math.log2(max((top - x) / span, 1.0)))
    return up, down


@_kernel
def novelty_of(
    seen: Any, recent: Any, lo: Any, span: Any, step: Any, fine: Any, r: int, x: float,
    sh: float, up: int, down: int, cfg: Config, levels: Any,
) -> tuple[float, bool]:  # fmt: skip
    """The novelty of ``x`` to warm memory row ``r``, and whether ``levels`` now holds its
    levels in the current range: within the tolerance, or exact (1 beyond the range)."""
    if cfg.tolerance > 0.0:
        return tolerant_novelty(
            seen, recent, lo[r], span[r], step[r], fine[r], r, x, sh, cfg
        ), False
    if up > 0 or down > 0:
        return 1.0, False
    return exact_novelty(seen, recent, lo[r], span[r], r, x, sh, cfg, levels), True


@_kernel
def exact_novelty(
    seen: Any, recent: Any, lo: float, span: float, r: int, x: float, sh: float, cfg: Config,
    levels: Any,
) -> float:  # fmt: skip
    """Share of the sequences ending at ``x``'s levels never seen, averaged over the grids
    (``levels`` is left holding those levels)."""
    grids: int = seen.shape[1]
    levels_of(x, lo, span, sh, levels)
    novelty = 0.0
    for g in range(grids):
        a, b = recent[r, g, 0], recent[r, g, 1]
        novelty += exact_share(seen, r, g, a, b, levels[g], cfg.order)
    return novelty / grids


@_kernel
def tolerant_novelty(
    seen: Any, recent: Any, lo: float, span: float, step: float, fine: Any, r: int, x: float,
    sh: float, cfg: Config,
) -> float:  # fmt: skip
    """``exact_novelty`` within the tolerance (``tolerance`` typical ``step`` s): 1 for a value
    beyond the range, or that no value seen (``fine``) comes near (with ``records``, or inside
    the values seen), else the share of sequence lengths with nothing seen within the
    tolerance, averaged over the grids."""
    delta = cfg.tolerance * step
    width = span / LEVELS
    beyond = x - delta > lo + span or x + delta < lo
    if beyond or (
        not near_seen(fine, x, delta, lo, span) and (cfg.records or inside(fine, x, lo, span))
    ):
        return 1.0
    grids: int = seen.shape[1]
    reach = math.floor(delta / width + 0.5)
    novelty = 0.0
    for g in range(grids):
        shift = g * sh
        first = level(x - delta, lo, span, shift)
        last = level(x + delta, lo, span, shift)
        a, b = recent[r, g, 0], recent[r, g, 1]
        novelty += tolerant_share(seen, r, g, a, b, first, last, reach, cfg.order)
    return novelty / grids


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
def remember_levels(seen: Any, recent: Any, r: int, levels: Any, warm: bool) -> None:
    """Each grid remembers the sequences ending at ``levels`` (once warm) and moves on."""
    for g in range(seen.shape[1]):
        a, b, c = recent[r, g, 0], recent[r, g, 1], levels[g]
        if warm:
            bit = np.uint8(1 << c)
            seen[r, g, 0] |= bit
            seen[r, g, 1 + b] |= bit
            seen[r, g, 1 + LEVELS + a * LEVELS + b] |= bit
        recent[r, g, 0], recent[r, g, 1] = b, c


@_kernel
def learn_step(prev: Any, step: Any, count: Any, r: int, x: float, cfg: Config) -> None:
    """The typical step: a plain mean, then exponentially weighted, clipped once warm."""
    size = abs(x - prev[r])
    if count[r] >= cfg.warmup:
        size = min(size, cfg.step_clip * step[r])
    if count[r] >= 1:
        step[r] += max(cfg.step_alpha, 1.0 / count[r]) * (size - step[r])
    prev[r] = x


@_kernel
def count_point(
    count: Any, shift: Any, span: Any, fine: Any, r: int, grids: int, cfg: Config
) -> None:
    """One more point; at the end of the warm-up, fix the grids' shifts (fixed fractions of the
    warm-up range's level width) and count the range's ends as values seen."""
    count[r] += 1
    if count[r] != cfg.warmup:
        return
    if grids > 1:
        shift[r] = span[r] / LEVELS / grids
    if cfg.tolerance > 0.0:
        fine[r] |= np.uint64(1) | np.uint64(1) << np.uint64(FINE - 1)
