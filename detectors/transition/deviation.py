"""The deviation arm of ``TolerantNoveltyBatch``: how far a value is from the series' robust
level, in the series' own typical deviations, against the largest it has made lately."""

from __future__ import annotations

from typing import Any

import numba

from detectors.transition.state import Config

#: The arm: points it learns before it scores; its level's and typical deviation's weight (a
#: plain mean before ``1 / Z_ALPHA`` points); a deviation counts at most ``Z_CLIP`` typical
#: deviations when learned; the largest recent deviation decays by ``Z_DECAY`` a point
#: (half-life about 1,400 points) and is tracked from ``Z_TRACK`` points; while the arm rests
#: after an alert its level follows the series with weight ``Z_REST_ALPHA``.
#: Its rest is at most ``Z_REST_MAX`` points (it is kept in 16 bits).
Z_WARMUP, Z_ALPHA, Z_CLIP, Z_DECAY, Z_TRACK, Z_REST_ALPHA = 100, 0.02, 3.0, 0.9995, 30, 0.2
Z_REST_MAX = 32767


@numba.njit(cache=True, nogil=True, inline="always")
def deviation(
    zmean: Any, zdev: Any, zmax: Any, zcount: Any, zrest: Any, cfg: Config, r: int, x: float,
    learn: bool,
) -> float:  # fmt: skip
    """The arm's score of ``x`` for series ``r`` (learned, with ``learn``).

    ``z`` is the distance from the series' robust level in typical absolute deviations (both
    exponentially weighted, each learned step clipped). It scores, from 0.5 up, once ``z``
    reaches ``cfg.deviation`` and ``cfg.deviation_margin`` times the largest ``z`` seen lately:
    far beyond anything the series' own noise has done, whatever its tails. Then the arm rests
    ``rest_period`` points while its level follows the series quickly (to a shifted level, or
    back after a spike), and what it knew of the deviations is kept.

    The arrays are ``State``'s of the arm (``zmean`` to ``zrest``).
    """
    m, d = zmean[r], zdev[r]
    scale = max(d, max(cfg.rel_floor * abs(m), cfg.abs_floor))
    # Distances, not ratios: a division only where the largest recent deviation grows.
    dist = abs(x - m)
    bar = max(cfg.deviation, cfg.deviation_margin * zmax[r]) * scale
    score = 0.0
    if zcount[r] >= Z_WARMUP and zrest[r] == 0 and dist >= bar:
        score = 1.0 - 0.5 * bar / dist
    if learn:
        _learn(zmean, zdev, zmax, zcount, zrest, cfg, r, x, score, dist, scale)
    return score


@numba.njit(cache=True, nogil=True, inline="always")
def _learn(
    zmean: Any, zdev: Any, zmax: Any, zcount: Any, zrest: Any, cfg: Config, r: int,
    x: float, score: float, dist: float, scale: float,
) -> None:  # fmt: skip
    """Learn ``x`` (at ``dist`` from the level, ``scale`` its typical deviation), scored
    ``score``: the largest recent deviation, the level and typical deviation, the rest."""
    c = zcount[r]
    if c >= Z_TRACK:
        # Alerts count too: a deviation the series has made is less news the next time.
        decayed = zmax[r] * Z_DECAY
        zmax[r] = dist / scale if dist > decayed * scale else decayed
    _follow(zmean, zdev, zcount, zrest, r, x, score, scale)
    if score > 0.0:
        zrest[r] = min(cfg.rest_period, Z_REST_MAX)
    elif zrest[r] > 0:
        zrest[r] -= 1
    zcount[r] = min(c + 1, Z_WARMUP)


@numba.njit(cache=True, nogil=True, inline="always")
def _follow(
    zmean: Any, zdev: Any, zcount: Any, zrest: Any, r: int, x: float, score: float, scale: float
) -> None:
    """The level and typical deviation after ``x``: the first value, quickly while resting or
    alerting, else a clipped step of the running (then exponentially weighted) means."""
    c, m, d = zcount[r], zmean[r], zdev[r]
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
