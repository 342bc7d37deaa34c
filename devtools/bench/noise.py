"""``warroom bench noise``: how often each detector alerts on series that are pure noise.

NAB counts early detections and false positives on labelled files; an on-call engineer also pays
for every page on a series where nothing happens. This bench runs the detectors as the worker
does (the series bank, each detector's recommended decision policy) over many series of
stationary noise, Gaussian and heavy-tailed (Student-t with 5 degrees of freedom, closer to real
latency series), and prints the alerts per million points: over the whole run, and over its last
quarter, which shows whether a detector that learns stops paging on noise it has come to know.
Seeded, so a run is repeatable.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

import numpy as np
from numpy.typing import NDArray

from detectors import SeriesBank
from detectors.registry import DETECTORS
from detectors.vector import OneSeries
from devtools.bench import (
    add_detector_choice,
    chosen_detectors,
    detector_label,
    machine,
    machine_line,
)
from streams.argtypes import positive_int

KINDS = ("gaussian", "student_t5")


def alerts(
    detector: str,
    kind: str,
    series: int,
    points: int,
    seed: int,
    params: dict[str, Any] | None = None,
) -> NDArray[np.int64]:
    """Alerts fired at each time step over ``series`` series of ``points`` points of noise
    around 100, sd 3."""
    bank = SeriesBank(detector, params)
    rng = np.random.default_rng(seed)
    ids = [f"noise|s{i}" for i in range(series)]
    fired = np.zeros(points, dtype=np.int64)
    for t in range(points):
        draw = rng.standard_normal(series) if kind == "gaussian" else rng.standard_t(5, series)
        _, hits = bank.observe(ids, 100.0 + 3.0 * draw, np.full(series, 1.7e9 + 60.0 * t))
        fired[t] = len(hits)
    return fired


def default_detectors() -> list[str]:
    """The anomaly detectors with an array kernel: the per-instance ones take minutes at this
    size, and the rule detectors do what their bounds or objective say, not what noise is."""
    return sorted(
        n
        for n in DETECTORS
        if DETECTORS[n].__module__ != "detectors.rules" and issubclass(DETECTORS[n], OneSeries)
    )


def main(args: argparse.Namespace) -> int:
    try:
        names, params = chosen_detectors(args, default_detectors())
    except ValueError as exc:
        print(f"warroom bench noise: {exc}")
        return 2
    total = args.series * args.points
    print(f"noise: {args.series} series x {args.points} points per kind, seed {args.seed}")
    print(machine_line(host := machine()))
    width = max(len("detector"), *(len(n) + 2 for n in names))
    columns = [*KINDS, *(f"{k}_last_q" for k in KINDS)]
    print(f"{'detector':<{width}} " + " ".join(f"{k:>17}" for k in columns) + f" {'s':>7}")
    figures: dict[str, dict[str, float]] = {}
    quarter = args.points - args.points * 3 // 4
    for name in names:
        started = time.perf_counter()
        fired = {k: alerts(name, k, args.series, args.points, args.seed, params) for k in KINDS}
        elapsed = time.perf_counter() - started
        per_million = {k: 1e6 * float(f.sum()) / total for k, f in fired.items()}
        per_million |= {
            f"{k}_last_q": 1e6 * float(f[-quarter:].sum()) / (args.series * quarter)
            for k, f in fired.items()
        }
        figures[name] = per_million
        label = detector_label(name)
        print(f"{label:<{width}} " + " ".join(f"{per_million[k]:>17.1f}" for k in columns)
              + f" {elapsed:>7.1f}", flush=True)  # fmt: skip
    print(json.dumps({"series": args.series, "points": args.points, "seed": args.seed,
                      "machine": host, "detector_params": params,
                      "alerts_per_million_points": figures}))  # fmt: skip
    return 0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--series", type=positive_int, default=200)
    parser.add_argument("--points", type=positive_int, default=5000, help="points per series")
    parser.add_argument("--seed", type=int, default=7)
    add_detector_choice(parser)
