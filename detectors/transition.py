"""Transition novelty: has the series ever moved between these coarse levels in this order?

A value becomes one of eight equal levels over the series' range, and the detector remembers, as
bit sets, every level, every pair of consecutive levels and every sequence of ``order`` levels
that it has seen. A point's novelty is the share of those sequences ending with it that were never
seen before: 1 for a level never reached, ``(order - 1) / order`` for a known level reached by a
new step, less for a new longer sequence of known steps. The score is the novelty times how often
the memory is right lately (one minus the recent rate of novelty), so a young memory or a noisy
spell counts for little, except for a value more than a whole span beyond the range, which
scores 1 however young the memory. A score of ``base_threshold`` or more silences the next
``rest_period`` points: one alert per episode.

Where level boundaries fall is arbitrary, and with eight levels it matters: a series that sits
on a boundary looks new at every wobble, one that sits inside a level hides a real step. So the
detector keeps ``grids`` memories over grids shifted by ``1 / grids`` of a level from each other,
and a point's novelty is the average over them. Noise near one grid's boundary is inside a level
of the others; a real change is new in all of them.

This keeps the core of the Contextual Anomaly Detector (novel contexts of coarse levels) in a
fixed few hundred bytes per series. The range cannot be known in advance: it is the minimum and
maximum of the first ``warmup`` points and afterwards only widens, by doubling the span towards a
value beyond it. Doubling merges pairs of old levels exactly, so the remembered sequences are
carried over rather than scrambled; the grids' shifts are fixed amounts of the value, so the
doubled grids' boundaries are some of the old ones too.

``TolerantNovelty`` asks the same memory a stricter question: is the step new even allowing for
the series' own step noise? It also remembers the values seen at ``FINE`` levels, so that
"within the tolerance" means near a value seen, not somewhere in a coarse level one was seen in.

One compiled kernel scores and learns a sequence of points of many series in the order given,
for the worker (``score_learn_sequence``) and for the batch form alike.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numba
import numpy as np
from numpy.typing import NDArray

from detectors.vector import BatchDetector, Floats, Mask, OneSeries

LEVELS = 8
#: Fine levels of ``TolerantNoveltyBatch``'s memory of values (one bit each in a 64-bit word).
FINE = 64
#: Coarser time scales ``TolerantNoveltyBatch`` may watch, and their longest block.
MAX_SCALES, MAX_BLOCK = 4, 1024
#: Most parts of the day ``TolerantNoveltyBatch`` keeps values seen for (hours).
MAX_DAY_PARTS = 24
#: Seconds in a day, the period of ``TolerantNoveltyBatch``'s memory of values by time of day,
#: and how far either way of a point's time that memory looks for its value.
DAY_S, HOUR_S = 86400.0, 3600.0
#: The ``why`` of a score that the memory of values by time of day gave.
WHY_HOUR = 100
#: The ``why`` of a score that ``TolerantNoveltyBatch``'s deviation arm gave.
WHY_DEVIATION = 101
#: The deviation arm: points it learns before it scores; its level's and typical deviation's
#: weight (a plain mean before ``1 / Z_ALPHA`` points); a deviation counts at most ``Z_CLIP``
#: typical deviations when learned; the largest recent deviation decays by ``Z_DECAY`` a point
#: (half-life about 1,400 points) and is tracked from ``Z_TRACK`` points; while the arm rests
#: after an alert its level follows the series with weight ``Z_REST_ALPHA``.
#: Its rest is at most ``Z_REST_MAX`` points (it is kept in 16 bits).
Z_WARMUP, Z_ALPHA, Z_CLIP, Z_DECAY, Z_TRACK, Z_REST_ALPHA = 100, 0.02, 3.0, 0.9995, 30, 0.2
Z_REST_MAX = 32767
#: Bytes of one grid's memory: successors (a bit per level) of the empty context, of each
#: level, of each pair of levels.
_MEMORY = 1 + LEVELS + LEVELS * LEVELS


@numba.njit(cache=True, nogil=True)
def _moved(c: int, steps: int, up: bool, levels: int = LEVELS) -> int:
    """Level ``c`` of ``levels`` after ``steps`` doublings of the span upwards or downwards."""
    if up:
        return c >> steps
    return levels - ((levels - c + (1 << steps) - 1) >> steps)


@numba.njit(cache=True, nogil=True)
def _carry(memory: Any, steps: int, up: bool) -> None:
    """Move one grid's remembered sequences to the levels of the doubled span, in place."""
    old = memory.copy()
    memory[:] = 0
    for c in range(LEVELS):
        if old[0] >> c & 1:
            memory[0] |= 1 << _moved(c, steps, up)
    for b in range(LEVELS):
        for c in range(LEVELS):
            if old[1 + b] >> c & 1:
                memory[1 + _moved(b, steps, up)] |= 1 << _moved(c, steps, up)
    for a in range(LEVELS):
        for b in range(LEVELS):
            successors = old[1 + LEVELS + a * LEVELS + b]
            if successors == 0:
                continue
            at = 1 + LEVELS + _moved(a, steps, up) * LEVELS + _moved(b, steps, up)
            for c in range(LEVELS):
                if successors >> c & 1:
                    memory[at] |= 1 << _moved(c, steps, up)


@numba.njit(cache=True, nogil=True)
def _level(x: float, lo: float, span: float, shift: float) -> int:
    return _clip((x - lo + shift) / span * LEVELS)


@numba.njit(cache=True, nogil=True)
def _clip(scaled: float) -> int:
    if not scaled >= 0.0:  # also NaN
        return 0
    return min(math.floor(scaled), LEVELS - 1)


@numba.njit(cache=True, nogil=True)
def _fine(x: float, lo: float, span: float) -> int:
    scaled = (x - lo) / span * FINE
    if not scaled >= 0.0:  # also NaN
        return 0
    return min(math.floor(scaled), FINE - 1)


@numba.njit(cache=True, nogil=True)
def _near_seen(values: Any, x: float, delta: float, lo: float, span: float) -> bool:
    """Whether a fine level within ``delta`` of ``x`` holds a value seen."""
    first, last = _fine(x - delta, lo, span), _fine(x + delta, lo, span)
    width = last - first + 1
    if width >= FINE:
        return bool(values != np.uint64(0))
    mask = ((np.uint64(1) << np.uint64(width)) - np.uint64(1)) << np.uint64(first)
    return bool(values & mask != np.uint64(0))


@numba.njit(cache=True, nogil=True)
def _inside(values: Any, x: float, lo: float, span: float) -> bool:
    """Whether values seen lie both below and above the fine level of ``x``."""
    f = _fine(x, lo, span)
    below = f > 0 and values & ((np.uint64(1) << np.uint64(f)) - np.uint64(1)) != np.uint64(0)
    above = f < FINE - 1 and values >> np.uint64(f + 1) != np.uint64(0)
    return below and above


@numba.njit(cache=True, nogil=True)
def _carry_fine(values: Any, steps: int, up: bool) -> Any:
    """The fine levels seen, moved to the span doubled ``steps`` times."""
    out = np.uint64(0)
    for c in range(FINE):
        if values >> np.uint64(c) & np.uint64(1):
            out |= np.uint64(1) << np.uint64(_moved(c, steps, up, FINE))
    return out


@numba.njit(cache=True, nogil=True)
def _day_slot(t: float, slots: int, weekends: bool) -> int:
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
def _hours_matter(words: Any, reach: int) -> bool:
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


@numba.njit(cache=True, nogil=True, inline="always")
def _deviation(
    r: int, x: float, learn: bool, zmean: Any, zdev: Any, zmax: Any, zcount: Any, zrest: Any,
    fire: float, margin: float, rel_floor: float, abs_floor: float, rest_period: int,
) -> float:  # fmt: skip
    """The deviation arm's score of ``x`` for series ``r`` (learned, with ``learn``).

    ``z`` is the distance from the series' robust level in typical absolute deviations (both
    exponentially weighted, each learned step clipped). It scores, from 0.5 up, once ``z``
    reaches ``fire`` and ``margin`` times the largest ``z`` seen lately: far beyond anything
    the series' own noise has done, whatever its tails. Then the arm rests ``rest_period``
    points while its level follows the series quickly (to a shifted level, or back after a
    spike), and what it knew of the deviations is kept.
    """
    c = zcount[r]
    m, d = zmean[r], zdev[r]
    scale = max(d, max(rel_floor * abs(m), abs_floor))
    # Distances, not ratios: a division only where the largest recent deviation grows.
    dist = abs(x - m)
    bar = max(fire, margin * zmax[r]) * scale
    score = 0.0
    if c >= Z_WARMUP and zrest[r] == 0 and dist >= bar:
        score = 1.0 - 0.5 * bar / dist
    if not learn:
        return score
    if c >= Z_TRACK:
        # Alerts count too: a deviation the series has made is less news the next time.
        decayed = zmax[r] * Z_DECAY
        zmax[r] = dist / scale if dist > decayed * scale else decayed
    if c == 0:
        zmean[r] = x
    elif zrest[r] > 0 or score > 0.0:
        zmean[r] = m + Z_REST_ALPHA * (x - m)
    else:
        a = max(Z_ALPHA, 1.0 / (c + 1))
        step = x - m
        if c >= Z_TRACK:
            step = min(max(step, -Z_CLIP * scale), Z_CLIP * scale)
        zmean[r] = m + a * step
        zdev[r] = d + a * (abs(step) - d)
    if score > 0.0:
        zrest[r] = min(rest_period, Z_REST_MAX)
    elif zrest[r] > 0:
        zrest[r] -= 1
    zcount[r] = min(c + 1, Z_WARMUP)
    return score


@numba.njit(cache=True, nogil=True)
def _levels(x: float, lo: float, span: float, shift: float, out: Any) -> None:
    """The level of ``x`` in each grid: grid ``g`` is shifted down by ``g * shift``."""
    scale = LEVELS / span
    at, by = (x - lo) * scale, shift * scale
    for g in range(len(out)):
        out[g] = _clip(at + g * by)


@numba.njit(cache=True, nogil=True)
def _exact(seen: Any, r: int, g: int, a: int, b: int, c: int, order: int) -> float:
    """Share of the sequences ending ``a, b, c`` (up to ``order`` long) never seen by grid
    ``g`` of series ``r``. (Indexes, not a view of the grid: views cost reference counting.)"""
    new = 0.0 if seen[r, g, 0] >> c & 1 else 1.0
    if order >= 2 and not seen[r, g, 1 + b] >> c & 1:
        new += 1.0
    if order >= 3 and not seen[r, g, 1 + LEVELS + a * LEVELS + b] >> c & 1:
        new += 1.0
    return new / order


@numba.njit(cache=True, nogil=True)
def _tolerant(
    seen: Any, r: int, g: int, a: int, b: int, first: int, last: int, reach: int, order: int
) -> float:
    """Share of the sequence lengths with no seen sequence within the tolerance: a successor
    in ``first..last`` after previous levels within ``reach`` of ``a`` and ``b``."""
    mask = 0
    for c in range(first, last + 1):
        mask |= 1 << c
    new = 1.0 if seen[r, g, 0] & mask == 0 else 0.0
    lo_b, hi_b = max(b - reach, 0), min(b + reach, LEVELS - 1)
    if order >= 2:
        known = 0
        for bb in range(lo_b, hi_b + 1):
            known |= seen[r, g, 1 + bb]
        if known & mask == 0:
            new += 1.0
    if order >= 3:
        known = 0
        for aa in range(max(a - reach, 0), min(a + reach, LEVELS - 1) + 1):
            for bb in range(lo_b, hi_b + 1):
                known |= seen[r, g, 1 + LEVELS + aa * LEVELS + bb]
        if known & mask == 0:
            new += 1.0
    return new / order


@numba.njit(cache=True, nogil=True)
def _observe(
    rows: Any, values: Any, ts: Any, learn: bool,
    seen: Any, recent: Any, lo: Any, span: Any, shift: Any, count: Any, quiet: Any, rate: Any,
    prev: Any, step: Any, fine: Any,
    order: int, warmup: int, base_threshold: float, rest_period: int, rel_floor: float,
    abs_floor: float, novelty_alpha: float, tolerance: float, step_alpha: float,
    step_clip: float, records: bool, scales: Any, sums: Any, rested: Any,
    daily: Any, daily_rate: Any, clock: Any, pending: Any, parts: int, daily_after: int,
    day_offset: float, zmean: Any, zdev: Any, zmax: Any, zcount: Any, zrest: Any,
    deviation: float, deviation_margin: float, out: Any, why: Any,
) -> None:  # fmt: skip
    """Score ``values[i]`` of series ``rows[i]`` in turn into ``out`` and, with ``learn``, learn
    each before the next. Without ``learn`` nothing changes (rows should then be distinct).

    ``tolerance`` 0 asks for exact novelty, which a value beyond the range always has; above 0
    asks ``_tolerant``'s question, against the range as it was before the value, unless no
    value seen comes within the tolerance (``fine``): then the value is new, as a never-seen
    level is.

    With ``scales``, memory row ``series * (1 + len(scales))`` takes the points and row
    ``+ 1 + s`` the means of consecutive blocks of ``scales[s]`` points (running sums in
    ``sums``; where a block ends follows from the points the first memory has counted): a
    point scores the most novel of its value and the blocks it
    completes, and an alert at any scale rests them all (``rested``). Without, the one memory
    rests itself (``quiet``).

    With ``daily`` (one row of words per series, one word for each of the ``parts`` of a day,
    and as many again for weekends when it has twice as many columns; none for zero columns),
    the point memory also asks whether any value seen at this time of day (``ts`` plus
    ``day_offset`` seconds) comes within
    the tolerance, once the series has seen ``daily_after`` days begin (``clock``: days begun
    times words plus the last word, -1 before any) and ``_hours_matter`` within the tolerance.
    That novelty times one minus its own recent rate (``daily_rate``) scores as the point's own
    does. A value seen only an hour away waits in ``pending`` until its part ends.

    With ``deviation`` above 0 (``zmean`` to ``zrest``: one entry per series), the deviation
    arm (``_deviation``) scores each point too, and the point scores the higher of the two: the
    memories' rest does not hold the arm back, and an alert of the arm rests the memories.

    ``why[i]`` says which memory gave ``out[i]``: 0 none, ``1 + m`` memory row ``m`` (the point
    itself, then each scale), ``WHY_HOUR`` the values by time of day, ``WHY_DEVIATION`` the
    deviation arm.
    """
    grids = seen.shape[1]
    words = daily.shape[1]
    weekends = words > parts
    levels = np.empty(grids, dtype=np.int64)
    stride = 1 + len(scales)
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
                    part = _day_slot(ts[i] + day_offset, parts, weekends)
            else:
                k, total = scales[m - 1], sums[rows[i], m - 1] + values[i]
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
            up = down = 0
            if warm and x > top:
                up = math.ceil(math.log2(max((x - lo[r]) / span[r], 1.0)))
            elif warm and x < lo[r]:
                down = math.ceil(math.log2(max((top - x) / span[r], 1.0)))
            novelty = 0.0
            known = False  # whether ``levels`` holds this value's levels in the current range
            if warm:
                if tolerance > 0.0:
                    delta = tolerance * step[r]
                    width = span[r] / LEVELS
                    beyond = x - delta > top or x + delta < lo[r]
                    if beyond or (
                        not _near_seen(fine[r], x, delta, lo[r], span[r])
                        and (records or _inside(fine[r], x, lo[r], span[r]))
                    ):
                        novelty = 1.0
                    else:
                        reach = math.floor(delta / width + 0.5)
                        for g in range(grids):
                            s = g * sh
                            first = _level(x - delta, lo[r], span[r], s)
                            last = _level(x + delta, lo[r], span[r], s)
                            a, b = recent[r, g, 0], recent[r, g, 1]
                            novelty += _tolerant(seen, r, g, a, b, first, last, reach, order)
                        novelty /= grids
                elif up > 0 or down > 0:
                    novelty = 1.0
                else:
                    _levels(x, lo[r], span[r], sh, levels)
                    known = True
                    for g in range(grids):
                        a, b = recent[r, g, 0], recent[r, g, 1]
                        novelty += _exact(seen, r, g, a, b, levels[g], order)
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
                        for moved in (0.0, -HOUR_S, HOUR_S):
                            at = ts[i] + day_offset + moved
                            q = part if moved == 0.0 else _day_slot(at, parts, weekends)
                            if _near_seen(daily[rows[i], q], x, delta, lo[r], span[r]):
                                hour_novelty = 0.0
                                excused = q != part
                                break
                    days = clock[rows[i]] // words if clock[rows[i]] >= 0 else 0
                    # Asked only of a value new at its hour: the rare case, once warmed up.
                    if hour_novelty > 0.0 and days >= daily_after:
                        reach = FINE if delta >= span[r] else math.ceil(delta / span[r] * FINE)
                        hour_score = hour_novelty * (1.0 - daily_rate[rows[i]])
                        if hour_score > score and _hours_matter(daily[rows[i]], reach):
                            score, hour_led = hour_score, True
                score = score if quiet[r] == 0 else 0.0
            if score > best:
                best, best_why = score, (WHY_HOUR if hour_led else m + 1)
            if not learn:
                continue
            if part >= 0:
                # Days begun: the part of the day wrapped around (capped, it only gates).
                tick = clock[rows[i]]
                if tick < 0:
                    clock[rows[i]] = part
                else:
                    last = tick % words
                    days = tick // words + (1 if part % parts < last % parts else 0)
                    clock[rows[i]] = min(days, daily_after) * words + part
                    if part != last:
                        # The part ended: what it was excused is learned now.
                        daily[rows[i], last] |= pending[rows[i]]
                        pending[rows[i]] = 0
            if warm:
                rate[r] += alpha * (novelty - rate[r])
                if part >= 0:
                    daily_rate[rows[i]] += alpha * (hour_novelty - daily_rate[rows[i]])
                if up > 0 or down > 0:
                    lo[r] -= span[r] * (2.0**down - 1.0)
                    span[r] *= 2.0 ** (up + down)
                    if tolerance > 0.0:
                        if up > 0:
                            fine[r] = _carry_fine(fine[r], min(up, 6), True)
                        if down > 0:
                            fine[r] = _carry_fine(fine[r], min(down, 6), False)
                        if m == 0 and parts > 0:
                            s_i = rows[i]
                            for steps, upwards in ((min(up, 6), True), (min(down, 6), False)):
                                if steps > 0:
                                    pending[s_i] = _carry_fine(pending[s_i], steps, upwards)
                                    for q in range(words):
                                        daily[s_i, q] = _carry_fine(daily[s_i, q], steps, upwards)
                    for g in range(grids):
                        for steps, upwards in ((min(up, 3), True), (min(down, 3), False)):
                            if steps > 0:
                                _carry(seen[r, g], steps, upwards)
                                for j in range(2):
                                    recent[r, g, j] = _moved(recent[r, g, j], steps, upwards)
            else:
                # Until the warm-up ends the range is the running minimum and maximum.
                low = x if count[r] == 0 else min(lo[r], x)
                high = x if count[r] == 0 else max(lo[r] + span[r], x)
                lo[r] = low
                span[r] = max(high - low, max(rel_floor * abs(low), abs_floor))
            if not known:
                _levels(x, lo[r], span[r], sh, levels)
            if warm and tolerance > 0.0:
                fine[r] |= np.uint64(1) << np.uint64(_fine(x, lo[r], span[r]))
                if part >= 0:
                    value_bit = np.uint64(1) << np.uint64(_fine(x, lo[r], span[r]))
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
                size = abs(x - prev[r])
                if count[r] >= warmup:
                    size = min(size, step_clip * step[r])
                if count[r] >= 1:
                    step[r] += max(step_alpha, 1.0 / count[r]) * (size - step[r])
                prev[r] = x
            count[r] += 1
            if count[r] == warmup:
                if grids > 1:
                    # The grids' shifts: fixed fractions of the warm-up range's level width.
                    shift[r] = span[r] / LEVELS / grids
                if tolerance > 0.0:
                    # The warm-up's lowest and highest values are values seen.
                    fine[r] |= np.uint64(1) | np.uint64(1) << np.uint64(FINE - 1)
        if stride > 1:
            q = rested[rows[i]]
            if q > 0:
                best, best_why = 0.0, 0
                q -= 1
            elif best >= base_threshold:
                q = rest_period
            if learn:
                rested[rows[i]] = q
        if deviation > 0.0:
            z_score = _deviation(
                rows[i], values[i], learn, zmean, zdev, zmax, zcount, zrest, deviation,
                deviation_margin, rel_floor, abs_floor, rest_period,
            )  # fmt: skip
            if z_score > best:
                best, best_why = z_score, WHY_DEVIATION
                if learn and stride > 1:
                    rested[rows[i]] = rest_period
                elif learn:
                    quiet[rows[i]] = own_rest
        out[i] = best
        why[i] = best_why if best > 0.0 else 0


def _zone(offset_h: float) -> str:
    """``UTC``, or ``UTC+05:30`` for an offset of 5.5 hours."""
    if offset_h == 0.0:
        return "UTC"
    minutes = round(abs(offset_h) * 60.0)
    return f"UTC{'+' if offset_h > 0 else '-'}{minutes // 60:02d}:{minutes % 60:02d}"


def _clock(hours: float) -> str:
    """``hours`` after midnight as ``HH:MM``."""
    minutes = round(hours * 60.0)
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


class TransitionNoveltyBatch(BatchDetector):
    """Share of never-seen coarse-level sequences ending at each point, one alert per episode."""

    name: ClassVar[str] = "transition_novelty"
    state_version: ClassVar[int] = 3
    #: A known level reached by a new step in every grid scores ``(order - 1) / order``.
    threshold: ClassVar[float] = 0.5
    #: It silences the points after an alert itself: decide on a single point.
    for_points: ClassVar[int] = 1
    #: Exact novelty; ``TolerantNoveltyBatch`` sets a tolerance.
    _tolerant: ClassVar[bool] = False
    #: Block lengths of the coarser time scales watched besides the points themselves (none
    #: here; ``TolerantNoveltyBatch`` takes them as a parameter).
    scales: tuple[int, ...] = ()
    #: Parts of the day with a memory of their own values (none here; see
    #: ``TolerantNoveltyBatch``), the days to see before asking it, and whether weekends have
    #: parts of their own.
    day_parts: int = 0
    day_after: int = 7
    weekends: bool = False
    utc_offset_h: float = 0.0
    #: The deviation arm's least distance to fire, in typical deviations (0: no arm here; see
    #: ``TolerantNoveltyBatch``), and how many times the largest recent one it must be.
    deviation: float = 0.0
    deviation_margin: float = 5.0

    def __init__(
        self,
        n: int = 1,
        grids: int = 4,
        order: int = 3,
        warmup: int = 30,
        base_threshold: float = 0.5,
        rest_period: int = 120,
        rel_floor: float = 0.001,
        abs_floor: float = 1e-9,
        novelty_alpha: float = 0.01,
    ) -> None:
        super().__init__(n)
        if not 1 <= grids <= 16 or not 1 <= order <= 3:
            raise ValueError("grids must be between 1 and 16 and order between 1 and 3")
        if not 0.0 < novelty_alpha <= 1.0:
            raise ValueError("novelty_alpha must be in (0, 1]")
        if warmup < order or rest_period < 0:
            raise ValueError("warmup must be at least order and rest_period not negative")
        if rel_floor < 0.0 or abs_floor <= 0.0:
            raise ValueError("rel_floor must be >= 0 and abs_floor > 0")
        self.grids, self.order, self.warmup = grids, order, warmup
        self.base_threshold, self.rest_period = base_threshold, rest_period
        self.rel_floor, self.abs_floor = rel_floor, abs_floor
        self.novelty_alpha = novelty_alpha
        # One memory per series and time scale: row ``series * stride + k`` is scale ``k``
        # (0: the points themselves).
        self._stride = stride = 1 + len(self.scales)
        rows = n * stride
        self._seen = np.zeros((rows, grids, _MEMORY), dtype=np.uint8)
        self._recent = np.zeros((rows, grids, 2), dtype=np.int8)  # last two levels, oldest first
        self._lo = np.zeros(rows)
        self._span = np.zeros(rows)
        self._shift = np.zeros(rows if grids > 1 else 0)  # one grid is not shifted
        self._count = np.zeros(rows, dtype=np.int32)
        self._quiet = np.zeros(rows, dtype=np.int32)
        self._rate = np.ones(rows)  # recent novelty: a young memory finds everything new
        # Step noise, read only by the tolerant form (kept here so the kernel has one shape).
        self._prev = np.zeros(rows if self._tolerant else 0)
        self._step = np.zeros(rows if self._tolerant else 0)
        self._fine = np.zeros(rows if self._tolerant else 0, dtype=np.uint64)
        # The coarser scales' running blocks, and the series' rest across scales.
        self._sums = np.zeros((n, len(self.scales)))
        self._rested = np.zeros(n if self.scales else 0, dtype=np.int32)
        self._scale_lengths = np.asarray(self.scales, dtype=np.int64)
        # Values seen by time of day: a word of fine levels per part of the day (of weekdays,
        # then of weekends), the recent rate of novelty there, and the clock that counts the
        # days begun.
        parts = self.day_parts
        words = parts * (2 if self.weekends else 1)
        self._daily = np.zeros((n if parts else 0, words), dtype=np.uint64)
        self._daily_rate = np.zeros(n if parts else 0)
        self._clock = np.full(n if parts else 0, -1, dtype=np.int32)
        # Values of the current part seen only an hour away, learned when the part ends.
        self._pending = np.zeros(n if parts else 0, dtype=np.uint64)
        # The deviation arm: level, typical deviation, largest recent deviation, points
        # learned (up to its warm-up) and rest.
        # 19 bytes a series: the scales in single precision, the count up to ``Z_WARMUP``.
        arm = n if self.deviation > 0.0 else 0
        self._zmean = np.zeros(arm)
        self._zdev = np.zeros(arm, dtype=np.float32)
        self._zmax = np.zeros(arm, dtype=np.float32)
        self._zcount = np.zeros(arm, dtype=np.uint8)
        self._zrest = np.zeros(arm, dtype=np.int16)
        #: Which memory gave each score of the last call (see ``explain``); not state.
        self.last_why: NDArray[np.int8] = np.zeros(0, dtype=np.int8)

    def _memories(self) -> dict[str, NDArray[Any]]:
        """The kernel's arrays, one row per series and time scale."""
        shifts = {"shift": self._shift} if self.grids > 1 else {}
        return {
            "seen": self._seen,
            "recent": self._recent,
            "lo": self._lo,
            "span": self._span,
            **shifts,
            "count": self._count,
            "quiet": self._quiet,
            "rate": self._rate,
        }

    def arrays(self) -> dict[str, NDArray[Any]]:
        memories = self._memories()
        if not self.scales:
            return memories
        # Views with the series first (writing through them writes the kernel's arrays).
        out = {k: v.reshape(self.n, self._stride, *v.shape[1:]) for k, v in memories.items()}
        return out | {"sums": self._sums, "rested": self._rested}

    def warmed_up_many(self) -> Mask:
        return self._count[:: self._stride] >= self.warmup

    def _tolerance(self) -> tuple[float, float, float, bool]:
        """Tolerance, step_alpha, step_clip, records: none for exact novelty."""
        return 0.0, 1.0, 1.0, False

    def _run(self, rows: NDArray[np.intp], values: Floats, ts: Floats, learn: bool) -> Floats:
        out = np.empty(len(rows))
        self.last_why = why = np.empty(len(rows), dtype=np.int8)
        _observe(
            np.ascontiguousarray(rows, dtype=np.intp),
            np.ascontiguousarray(values, dtype=np.float64),
            np.ascontiguousarray(ts, dtype=np.float64),
            learn,
            self._seen, self._recent, self._lo, self._span, self._shift, self._count,
            self._quiet, self._rate, self._prev, self._step, self._fine,
            self.order, self.warmup, self.base_threshold, self.rest_period, self.rel_floor,
            self.abs_floor, self.novelty_alpha, *self._tolerance(),
            self._scale_lengths, self._sums, self._rested,
            self._daily, self._daily_rate, self._clock, self._pending, self.day_parts,
            self.day_after, self.utc_offset_h * HOUR_S,
            self._zmean, self._zdev, self._zmax, self._zcount, self._zrest,
            self.deviation, self.deviation_margin, out, why,
        )  # fmt: skip
        return out

    def score_learn_sequence(self, rows: NDArray[np.intp], values: Floats, ts: Floats) -> Floats:
        """Score then learn each point in turn, ``values[i]`` of series ``rows[i]`` at
        ``ts[i]``: points of one series may repeat and are taken in the order given. Which
        memory gave each score is left in ``last_why`` (see ``explain``)."""
        return self._run(rows, values, ts, True)

    def explain(self, why: int, ts: float) -> str | None:
        """In words, what found a point at time ``ts`` new, from its ``last_why``."""
        if why == 1:
            return "the value or its steps from the last ones: never seen in this series"
        if 2 <= why <= 1 + len(self.scales):
            k = self.scales[why - 2]
            return f"the mean of the last {k} points: never seen in this series"
        if why == WHY_DEVIATION:
            return (
                "the value: many times further from the series' level than its own "
                "deviations lately"
            )
        if why == WHY_HOUR and self.day_parts:
            # The word the kernel used: the part of the day, counted on from day_parts at
            # weekends.
            word = _day_slot(ts + self.utc_offset_h * HOUR_S, self.day_parts, self.weekends)
            part, weekend = word % self.day_parts, word >= self.day_parts
            hours = 24.0 / self.day_parts
            start, end = part * hours, (part + 1) * hours
            days = ("weekends" if weekend else "weekdays") if self.weekends else "any day"
            zone = _zone(self.utc_offset_h)
            return (
                f"the value: never seen at this time of day ({days}, "
                f"{_clock(start)} to {_clock(end)} {zone})"
            )
        return None

    def _score(self, x: Floats, ts: Floats) -> Floats:
        return self._run(np.arange(self.n), x, ts, False)

    def _learn(self, x: Floats, ts: Floats, mask: Mask) -> None:
        self._score_learn(x, ts, mask)

    def _score_learn(self, x: Floats, ts: Floats, mask: Mask) -> Floats:
        rows = np.flatnonzero(mask)
        out = np.zeros(self.n)
        out[rows] = self._run(rows, x[rows], ts[rows], True)
        return out


class TransitionNovelty(OneSeries):
    """One series of ``TransitionNoveltyBatch``.

    >>> import random
    >>> rng = random.Random(7)
    >>> d = TransitionNovelty()
    >>> scores = []
    >>> for t in range(600):
    ...     v = 100.0 + 10.0 * (t % 20 < 10) + rng.gauss(0.0, 0.3)
    ...     scores.append(d.score_one(v, float(t)))
    ...     d.learn_one(v, float(t))
    >>> d.warmed_up, max(scores[:30])
    (True, 0.0)
    >>> d.score_one(130.0, 600.0) >= TransitionNovelty.threshold
    True
    """

    batch_cls = TransitionNoveltyBatch


class TolerantNoveltyBatch(TransitionNoveltyBatch):
    """Transition novelty that the series' own step noise cannot explain.

    Stationary noise keeps reaching rarely visited levels by ordinary steps, so plain transition
    novelty fires on it for as long as the series runs. Here a sequence counts as new only if it
    stays new within ``tolerance`` typical steps: every level within that distance of the value
    is new after every previous level within it (the levels that come within the tolerance of the
    centre of the remembered one), and a value beyond the range is new only if it is
    beyond by more than the tolerance. The typical step is the mean absolute step of the series
    (a plain mean for the first ``1 / step_alpha`` steps, then exponentially weighted; a step is
    clipped at ``step_clip`` typical steps once warmed up, so one jump does not blind it). The
    memory and its learning are those of ``TransitionNoveltyBatch``; only the question asked of
    it changes.

    Eight levels are coarse, and the tolerance makes them coarser: a level counts as seen
    within the tolerance if any value in it was, up to a whole level away. A spiky series whose
    range one old burst stretched would hide its next spike in a level its noise once reached.
    So each memory also keeps the values seen at ``FINE`` levels (one bit each; carried through
    a doubling of the span as the coarse levels are; the warm-up's lowest and highest values
    count as seen), and a value that no seen value comes within the tolerance of is new, as a
    never-seen level is. In noise the values seen fill the range densely, so this costs little,
    except for new records: a value beyond every value seen by more than the tolerance, which
    heavy-tailed noise sets while the memory is young. ``records=False`` asks only about values
    between the lowest and the highest seen.

    The tolerance that keeps it quiet on noise also hides changes smaller than a few steps: a
    level that drops by two noise widths, a slow drift. So the detector also asks the question
    at coarser time scales: it averages the points in consecutive blocks of each length in
    ``scales`` and keeps a memory of the block means, with their own range and step noise. A
    mean of k points of noise wanders about sqrt(k) times less than the points, so the
    tolerance at that scale is that much finer, while a sustained change moves the means as
    much as the points. A point scores the most novel of its own value and the blocks it
    completes; an alert at any scale rests them all for ``rest_period`` points. Noise gains
    nothing from this (its block means are noise too, and fewer), so it stays quiet.

    None of this sees a value that is ordinary for the series but not for the hour: a daily
    peak that does not come, a night at midday levels, a weekday as quiet as a Sunday. So the
    point memory also keeps the values seen in each of ``day_parts`` equal parts of the day (in
    UTC, or ``utc_offset_h`` hours from it: the series' local time), apart for weekdays and
    weekends with ``weekends``, one word of fine levels each, and
    asks the same question of the part the point falls in: does any value seen at this
    time of day (in its part, or in the parts an hour earlier and later: daylight saving time
    moves a local shape by an hour) come within the tolerance? A value seen only an hour away is
    learned into its part when the part ends, so an anomaly that begins at a part's edge does
    not teach the part its values before it is news. Most series give no reason to ask: noise,
    spikes and drifting levels reach the same values at every hour. The question is asked only once
    ``day_after`` days have begun and the time of day plainly matters: no fine level has values
    within the tolerance of it in every part. Its novelty, times one minus its own
    recent rate, scores as the point's own does.

    A memory of what was seen forgets nothing and rests after each alert, so a series that
    keeps setting records (a random walk) alerts on them and, resting, misses a x5 spike that
    follows. A second learner of another kind watches beside it: a deviation arm that
    measures each value's distance from the series' robust level (exponentially weighted,
    steps clipped) in the series' own typical absolute deviations, and scores, from 0.5 up,
    only a distance of at least ``deviation`` of them and ``deviation_margin`` times the
    largest one seen lately (a decayed maximum): far beyond anything the series' own noise has
    done, whatever its tails. A point scores the higher of the two; the arm does not rest
    with the memories, and an alert of either rests both. ``deviation=0`` turns it off.
    """

    name: ClassVar[str] = "tolerant_novelty"
    state_version: ClassVar[int] = 6
    #: State of version 4 lacks the memory by time of day, and of 4 and 5 the deviation arm:
    #: those start empty.
    reads_versions: ClassVar[tuple[int, ...]] = (4, 5)
    #: One of the three sequence lengths new, with the memory right 99% of the time lately.
    threshold: ClassVar[float] = 0.33
    for_points: ClassVar[int] = 1
    _tolerant: ClassVar[bool] = True

    def __init__(
        self,
        n: int = 1,
        tolerance: float = 3.0,
        step_alpha: float = 0.01,
        step_clip: float = 3.0,
        grids: int = 1,
        order: int = 3,
        warmup: int = 30,
        base_threshold: float = 0.33,
        rest_period: int = 120,
        rel_floor: float = 0.001,
        abs_floor: float = 1e-9,
        novelty_alpha: float = 0.01,
        scales: tuple[int, ...] = (4, 16),
        records: bool = True,
        day_parts: int = 8,
        day_after: int = 7,
        weekends: bool = True,
        utc_offset_h: float = 0.0,
        deviation: float = 6.0,
        deviation_margin: float = 5.0,
    ) -> None:
        if deviation < 0.0 or deviation_margin < 1.0:
            raise ValueError("deviation must be >= 0 (0: no arm) and deviation_margin >= 1")
        if tolerance < 0.0 or not 0.0 < step_alpha <= 1.0 or step_clip <= 0.0:
            raise ValueError("tolerance must be >= 0, step_alpha in (0, 1], step_clip > 0")
        scales = tuple(scales)
        if len(scales) > MAX_SCALES or any(not 2 <= k <= MAX_BLOCK for k in scales):
            raise ValueError(
                f"scales must be at most {MAX_SCALES} block lengths between 2 and {MAX_BLOCK}"
            )
        if len(set(scales)) != len(scales):
            raise ValueError("scales must be different block lengths")
        if not 0 <= day_parts <= MAX_DAY_PARTS or day_after < 1:
            raise ValueError(
                f"day_parts must be between 0 and {MAX_DAY_PARTS} and day_after at least 1"
            )
        if not -14.0 <= utc_offset_h <= 14.0:
            raise ValueError("utc_offset_h must be between -14 and 14 hours")
        self.scales = scales
        self.day_parts, self.day_after, self.weekends = day_parts, day_after, weekends
        self.utc_offset_h = utc_offset_h
        self.deviation, self.deviation_margin = deviation, deviation_margin
        super().__init__(
            n,
            grids=grids,
            order=order,
            warmup=warmup,
            base_threshold=base_threshold,
            rest_period=rest_period,
            rel_floor=rel_floor,
            abs_floor=abs_floor,
            novelty_alpha=novelty_alpha,
        )
        self.tolerance, self.step_alpha, self.step_clip = tolerance, step_alpha, step_clip
        self.records = records

    def arrays(self) -> dict[str, NDArray[Any]]:
        out = super().arrays()
        if self.day_parts:
            out |= {
                "daily": self._daily,
                "daily_rate": self._daily_rate,
                "clock": self._clock,
                "pending": self._pending,
            }
        if self.deviation > 0.0:
            out |= {
                "zmean": self._zmean,
                "zdev": self._zdev,
                "zmax": self._zmax,
                "zcount": self._zcount,
                "zrest": self._zrest,
            }
        return out

    def _memories(self) -> dict[str, NDArray[Any]]:
        return {
            **super()._memories(),
            "prev": self._prev,
            "step": self._step,
            "fine": self._fine,
        }

    def _tolerance(self) -> tuple[float, float, float, bool]:
        return self.tolerance, self.step_alpha, self.step_clip, self.records


class TolerantNovelty(OneSeries):
    """One series of ``TolerantNoveltyBatch``.

    >>> import random
    >>> rng = random.Random(7)
    >>> d = TolerantNovelty()
    >>> noise = []
    >>> for t in range(2000):
    ...     v = 100.0 + rng.gauss(0.0, 3.0)
    ...     noise.append(d.score_one(v, float(t)))
    ...     d.learn_one(v, float(t))
    >>> max(noise) < TolerantNovelty.threshold
    True
    >>> d.score_one(160.0, 2000.0) >= TolerantNovelty.threshold
    True
    """

    batch_cls = TolerantNoveltyBatch
