"""``warroom bench obvious``: anomalies nobody would miss, on simple series, with ground truth.

Seven shapes, one point a minute unless said: a smooth sine (100 +- 20, an hour's period), the
same with noise (sd 2), a slow random walk (from 100, steps of sd 0.3), a flat line (100), a
sawtooth (100 to 140 each hour), a sparse series (counts around 20 at irregular times, 1 to 30
minutes apart) and a weekly-seasonal one (hourly; weekday days busy, weekends quiet). Each
one-minute shape comes clean and with one anomaly per series after ``WARMUP`` points: a x5
``spike`` of ``SPIKE_POINTS`` points, a x3 level ``shift`` to the end, or a slow ``ramp`` to x3
over ``RAMP_POINTS`` points. The weekly one has a ``holiday``: from 09:00 on a Monday, a week's
weekdays shaped like its weekend, every value inside the range seen before.

An anomaly is missed when no score reaches 0.5 from its onset through ``REACH`` points (for a
ramp, ``REACH`` points past its end). Clean series' points from ``WARMUP`` on that score 0.5 or
more are counted per million. The detectors' raw scores are read (no decision policy), and a
ten-line EWMA z-score (|z| >= 5 scores 0.5 or more) runs beside them as the baseline.
Seeded, so a run is repeatable.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from detectors.registry import DEFAULT_DETECTOR, DETECTORS, make_batch
from devtools.bench import (
    add_detector_choice,
    chosen_detectors,
    detector_label,
    machine,
    machine_line,
)
from streams.argtypes import positive_int

Floats = NDArray[np.float64]

LENGTH, WARMUP = 1600, 300
SPIKE_POINTS, SPIKE_FACTOR, SHIFT_FACTOR, RAMP_POINTS = 9, 5.0, 3.0, 200
#: Points from an anomaly's onset (a ramp's end) within which a score of 0.5 finds it.
REACH = 10
FOUND = 0.5
_ONE_MINUTE = ("clean", "spike", "shift", "ramp")
KINDS: dict[str, tuple[str, ...]] = {
    "sine": _ONE_MINUTE,
    "noisy_sine": _ONE_MINUTE,
    "random_walk": _ONE_MINUTE,
    "flat": _ONE_MINUTE,
    "sawtooth": _ONE_MINUTE,
    "sparse": _ONE_MINUTE,
    "weekly": ("clean", "holiday"),
}
SHAPES = tuple(KINDS)
#: 2024-01-01 00:00 UTC, a Monday.
_START = 1704067200.0
_DAY, _HOUR = 86400.0, 3600.0
BASELINE = "ewma_z5 (baseline)"


@dataclass(frozen=True, eq=False)
class Case:
    """``series`` series of one shape and kind: ``values[s, t]`` at ``ts[s, t]``; the anomaly
    of series ``s`` starts at index ``onsets[s]`` and must be found by index ``ends[s]`` (both
    -1 for a clean series)."""

    shape: str
    kind: str
    ts: Floats
    values: Floats
    onsets: NDArray[np.int64]
    ends: NDArray[np.int64]


def _clean(shape: str, rng: np.random.Generator) -> tuple[Floats, Floats]:
    """One clean series of ``shape``: times and values."""
    t = np.arange(LENGTH, dtype=np.float64)
    ts = _START + 60.0 * t
    if shape in ("sine", "noisy_sine"):
        values = 100.0 + 20.0 * np.sin(2.0 * np.pi * (t + rng.uniform(0, 60)) / 60.0)
        if shape == "noisy_sine":
            values += rng.normal(0.0, 2.0, LENGTH)
    elif shape == "random_walk":
        values = 100.0 + np.cumsum(rng.normal(0.0, 0.3, LENGTH))
    elif shape == "flat":
        values = np.full(LENGTH, 100.0)
    elif shape == "sawtooth":
        values = 100.0 + 40.0 * ((t + rng.integers(0, 60)) % 60) / 60.0
    elif shape == "sparse":
        ts = _START + 60.0 * np.cumsum(rng.integers(1, 31, LENGTH)).astype(np.float64)
        values = rng.poisson(20.0, LENGTH).astype(np.float64)
    else:  # weekly
        ts = _START + _HOUR * t
        values = _weekly(ts, holiday_from=np.inf) * (1.0 + rng.normal(0.0, 0.03, LENGTH))
    return ts, values


def _weekly(ts: Floats, holiday_from: float) -> Floats:
    """Hourly traffic: a busy day on weekdays (peak 1,800 at 13:00), a quiet one at weekends
    (peak 1,200); from ``holiday_from`` to that week's Saturday, weekdays are weekend days."""
    day = np.floor((ts - _START) / _DAY)
    hour = (ts % _DAY) / _HOUR
    bump = np.exp(-((hour - 13.0) ** 2) / 12.0)
    weekend = day % 7 >= 5
    holiday = (ts >= holiday_from) & (ts < holiday_from + 5 * _DAY - 9 * _HOUR)
    return np.asarray(1000.0 + np.where(weekend | holiday, 200.0, 800.0) * bump)


def _anomalous(
    shape: str, kind: str, ts: Floats, values: Floats, rng: np.random.Generator
) -> tuple[Floats, int, int]:
    """The series with one anomaly of ``kind``: its values, onset and last index to find it."""
    out = values.copy()
    if kind == "holiday":
        # A Monday from week 4 on, at 09:00: the holiday shows from there.
        monday = int(rng.integers(4, (LENGTH // 24 - 7) // 7 + 1)) * 7
        onset = monday * 24 + 9
        noise = values / _weekly(ts, np.inf)
        out[onset:] = _weekly(ts[onset:], float(ts[onset])) * noise[onset:]
        return out, onset, onset + REACH - 1
    onset = int(rng.integers(WARMUP, LENGTH - RAMP_POINTS - 2 * REACH))
    if kind == "spike":
        out[onset : onset + SPIKE_POINTS] *= SPIKE_FACTOR
        return out, onset, onset + REACH - 1
    if kind == "shift":
        out[onset:] *= SHIFT_FACTOR
        return out, onset, onset + REACH - 1
    steps = np.minimum(np.arange(1, LENGTH - onset + 1) / RAMP_POINTS, 1.0)
    out[onset:] *= 1.0 + (SHIFT_FACTOR - 1.0) * steps
    return out, onset, onset + RAMP_POINTS + REACH - 1


def case(shape: str, kind: str, series: int, seed: int) -> Case:
    """``series`` series of ``shape`` with anomalies of ``kind``; the same seed gives the same
    clean series for every kind."""
    if kind not in KINDS.get(shape, ()):
        raise ValueError(f"unknown shape and kind {shape!r}, {kind!r}")
    ts, values = np.empty((series, LENGTH)), np.empty((series, LENGTH))
    onsets, ends = np.full(series, -1, np.int64), np.full(series, -1, np.int64)
    for s in range(series):
        rng = np.random.default_rng([seed, SHAPES.index(shape), s])
        ts[s], values[s] = _clean(shape, rng)
        if kind != "clean":
            where = np.random.default_rng([seed, SHAPES.index(shape), s, KINDS[shape].index(kind)])
            values[s], onsets[s], ends[s] = _anomalous(shape, kind, ts[s], values[s], where)
    return Case(shape, kind, ts, values, onsets, ends)


Scorer = Callable[[Case], Floats]


def detector_scorer(name: str, params: dict[str, Any] | None = None) -> Scorer:
    """Scores of detector ``name``: the case's series side by side, scored then learned one
    time step at a time, as the worker's bank steps them."""

    def score(c: Case) -> Floats:
        batch = make_batch(name, len(c.values), **(params or {}))
        out = np.empty(c.values.shape)
        for t in range(c.values.shape[1]):
            out[:, t] = batch.score_learn_many(c.values[:, t], c.ts[:, t])
        return out

    return score


def ewma_z_baseline(c: Case, alpha: float = 0.05, warmup: int = 30) -> Floats:
    """A ten-line EWMA z-score: ``|z| / 10`` against the mean and variance before each point,
    capped at 1 (0.5 at five sigmas), 0 in the first ``warmup`` points."""
    mean, var = c.values[:, 0].copy(), np.zeros(len(c.values))
    out = np.zeros(c.values.shape)
    for t in range(1, c.values.shape[1]):
        x = c.values[:, t]
        z = np.abs(x - mean) / np.maximum(np.sqrt(var), 1e-9 * np.maximum(np.abs(mean), 1.0))
        out[:, t] = np.minimum(z / 10.0, 1.0) if t >= warmup else 0.0
        diff = x - mean
        mean += alpha * diff
        var = (1.0 - alpha) * (var + alpha * diff * diff)
    return out


def missed(c: Case, scores: Floats) -> int:
    """Series whose anomaly no score of ``FOUND`` or more meets between onset and end."""
    return sum(
        1
        for s, (a, b) in enumerate(zip(c.onsets.tolist(), c.ends.tolist(), strict=True))
        if a >= 0 and not (scores[s, a : b + 1] >= FOUND).any()
    )


def evaluate(
    scorer: Scorer, series: int, seed: int, threshold: float = FOUND
) -> dict[str, dict[str, Any]]:
    """Per shape: anomalies missed by kind (of ``series`` each) and clean points scoring
    ``FOUND`` or more per million (from ``WARMUP`` on); also those reaching ``threshold`` (a
    detector's own, where the worker alerts) as ``clean_alerts``."""
    out: dict[str, dict[str, Any]] = {}
    for shape in SHAPES:
        figures: dict[str, Any] = {"missed": {}}
        for kind in KINDS[shape]:
            c = case(shape, kind, series, seed)
            scores = scorer(c)
            if kind == "clean":
                high = int((scores[:, WARMUP:] >= FOUND).sum())
                figures["clean_high"] = high
                figures["clean_points"] = scores[:, WARMUP:].size
                figures["clean_per_million"] = 1e6 * high / scores[:, WARMUP:].size
                figures["clean_alerts"] = int((scores[:, WARMUP:] >= threshold).sum())
            else:
                figures["missed"][kind] = missed(c, scores)
        out[shape] = figures
    return out


_COLUMNS = ("spike", "shift", "ramp", "holiday")


def _row(shape: str, label: str, width: int, figures: dict[str, Any], series: int) -> str:
    cells = [
        f"{figures['missed'][k]}/{series}" if k in figures["missed"] else "-" for k in _COLUMNS
    ]
    return (
        f"{shape:<12} {label:<{width}} " + " ".join(f"{c:>8}" for c in cells)
        + f" {figures['clean_high']:>6} {figures['clean_per_million']:>9.1f}"
    )  # fmt: skip


def main(args: argparse.Namespace) -> int:
    try:
        names, params = chosen_detectors(args, [DEFAULT_DETECTOR])
    except ValueError as exc:
        print(f"warroom bench obvious: {exc}", file=sys.stderr)
        return 2
    print(
        f"obvious: {args.series} series per shape and kind, seed {args.seed}; anomalies "
        f"missed (no score >= {FOUND} within {REACH} points), clean points >= {FOUND}"
    )
    print(machine_line(host := machine()))
    width = max(len(BASELINE), *(len(detector_label(n)) for n in names))
    print(f"{'shape':<12} {'detector':<{width}} " + " ".join(f"{k:>8}" for k in _COLUMNS)
          + f" {'clean':>6} {'per_M':>9}")  # fmt: skip
    runs: list[tuple[str, str, Scorer, float]] = [
        (n, detector_label(n), detector_scorer(n, params), float(DETECTORS[n].threshold))
        for n in names
    ]
    runs.append((BASELINE, BASELINE, ewma_z_baseline, FOUND))
    results: dict[str, dict[str, Any]] = {}
    for key, _, scorer, threshold in runs:
        started = time.perf_counter()
        shapes = evaluate(scorer, args.series, args.seed, threshold)
        elapsed = time.perf_counter() - started
        total_missed = sum(sum(f["missed"].values()) for f in shapes.values())
        high = sum(f["clean_high"] for f in shapes.values())
        points = sum(f["clean_points"] for f in shapes.values())
        alerts = sum(f["clean_alerts"] for f in shapes.values())
        results[key] = {
            "threshold": threshold,
            "clean_alerts_per_million": round(1e6 * alerts / points, 1),
            "missed": total_missed,
            "cases": sum(len(f["missed"]) for f in shapes.values()) * args.series,
            "clean_high": high,
            "clean_per_million": round(1e6 * high / points, 1),
            "seconds": round(elapsed, 2),
            "shapes": shapes,
        }
    for shape in SHAPES:
        for key, label, *_ in runs:
            print(_row(shape, label, width, results[key]["shapes"][shape], args.series))
    for key, label, *_ in runs:
        r = results[key]
        print(f"{'all':<12} {label:<{width}} missed {r['missed']}/{r['cases']}, clean points "
              f">= {FOUND}: {r['clean_high']} ({r['clean_per_million']} per million; "
              f">= its threshold {r['threshold']:g}: {r['clean_alerts_per_million']} per "
              f"million), {r['seconds']} s")  # fmt: skip
    print(json.dumps({"series": args.series, "seed": args.seed, "machine": host,
                      "detector_params": params, "detectors": results}))  # fmt: skip
    return 0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--series", type=positive_int, default=27, help="series per shape and kind")
    parser.add_argument("--seed", type=int, default=7)
    add_detector_choice(parser)
