"""Coarse and fine levels of a value in a series' range, and the memory of level sequences.

A value is one of ``LEVELS`` equal levels of the range (in each of the shifted grids), and one of
``FINE`` finer ones for the memory of values seen. A grid's memory is ``MEMORY`` bytes: the
successors (a bit per level) of no context, of each level and of each pair of levels. Doubling
the span merges pairs of old levels exactly, so ``carry`` and ``carry_fine`` move what was
remembered to the new levels rather than scramble it.
"""

from __future__ import annotations

import math
from typing import Any

import numba
import numpy as np

LEVELS = 8
#: Fine levels of ``TolerantNoveltyBatch``'s memory of values (one bit each in a 64-bit word).
FINE = 64
#: Bytes of one grid's memory: successors (a bit per level) of the empty context, of each
#: level, of each pair of levels.
MEMORY = 1 + LEVELS + LEVELS * LEVELS


@numba.njit(cache=True, nogil=True)
def moved(c: int, steps: int, up: bool, levels: int = LEVELS) -> int:
    """Level ``c`` of ``levels`` after ``steps`` doublings of the span upwards or downwards."""
    if up:
        return c >> steps
    return levels - ((levels - c + (1 << steps) - 1) >> steps)


@numba.njit(cache=True, nogil=True)
def carry(memory: Any, steps: int, up: bool) -> None:
    """Move one grid's remembered sequences to the levels of the doubled span, in place."""
    old = memory.copy()
    memory[:] = 0
    for c in range(LEVELS):
        if old[0] >> c & 1:
            memory[0] |= 1 << moved(c, steps, up)
    for b in range(LEVELS):
        for c in range(LEVELS):
            if old[1 + b] >> c & 1:
                memory[1 + moved(b, steps, up)] |= 1 << moved(c, steps, up)
    for a in range(LEVELS):
        for b in range(LEVELS):
            successors = old[1 + LEVELS + a * LEVELS + b]
            if successors == 0:
                continue
            at = 1 + LEVELS + moved(a, steps, up) * LEVELS + moved(b, steps, up)
            for c in range(LEVELS):
                if successors >> c & 1:
                    memory[at] |= 1 << moved(c, steps, up)


@numba.njit(cache=True, nogil=True)
def level(x: float, lo: float, span: float, shift: float) -> int:
    """The level of ``x`` in the grid shifted down by ``shift``."""
    return clip((x - lo + shift) / span * LEVELS)


@numba.njit(cache=True, nogil=True)
def clip(scaled: float) -> int:
    """A level from a value scaled to levels: clipped to the levels (0 for NaN)."""
    if not scaled >= 0.0:  # also NaN
        return 0
    return min(math.floor(scaled), LEVELS - 1)


@numba.njit(cache=True, nogil=True)
def fine_level(x: float, lo: float, span: float) -> int:
    """The fine level of ``x`` in the range (0 for NaN)."""
    scaled = (x - lo) / span * FINE
    if not scaled >= 0.0:  # also NaN
        return 0
    return min(math.floor(scaled), FINE - 1)


@numba.njit(cache=True, nogil=True)
def near_seen(values: Any, x: float, delta: float, lo: float, span: float) -> bool:
    """Whether a fine level within ``delta`` of ``x`` holds a value seen."""
    first, last = fine_level(x - delta, lo, span), fine_level(x + delta, lo, span)
    width = last - first + 1
    if width >= FINE:
        return bool(values != np.uint64(0))
    mask = ((np.uint64(1) << np.uint64(width)) - np.uint64(1)) << np.uint64(first)
    return bool(values & mask != np.uint64(0))


@numba.njit(cache=True, nogil=True)
def inside(values: Any, x: float, lo: float, span: float) -> bool:
    """Whether values seen lie both below and above the fine level of ``x``."""
    f = fine_level(x, lo, span)
    below = f > 0 and values & ((np.uint64(1) << np.uint64(f)) - np.uint64(1)) != np.uint64(0)
    above = f < FINE - 1 and values >> np.uint64(f + 1) != np.uint64(0)
    return below and above


@numba.njit(cache=True, nogil=True)
def carry_fine(values: Any, steps: int, up: bool) -> Any:
    """The fine levels seen, moved to the span doubled ``steps`` times."""
    out = np.uint64(0)
    for c in range(FINE):
        if values >> np.uint64(c) & np.uint64(1):
            out |= np.uint64(1) << np.uint64(moved(c, steps, up, FINE))
    return out


@numba.njit(cache=True, nogil=True)
def levels_of(x: float, lo: float, span: float, shift: float, out: Any) -> None:
    """The level of ``x`` in each grid: grid ``g`` is shifted down by ``g * shift``."""
    scale = LEVELS / span
    at, by = (x - lo) * scale, shift * scale
    for g in range(len(out)):
        out[g] = clip(at + g * by)


@numba.njit(cache=True, nogil=True)
def exact_share(seen: Any, r: int, g: int, a: int, b: int, c: int, order: int) -> float:
    """Share of the sequences ending ``a, b, c`` (up to ``order`` long) never seen by grid
    ``g`` of series ``r``. (Indexes, not a view of the grid: views cost reference counting.)"""
    new = 0.0 if seen[r, g, 0] >> c & 1 else 1.0
    if order >= 2 and not seen[r, g, 1 + b] >> c & 1:
        new += 1.0
    if order >= 3 and not seen[r, g, 1 + LEVELS + a * LEVELS + b] >> c & 1:
        new += 1.0
    return new / order


@numba.njit(cache=True, nogil=True)
def tolerant_share(
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
