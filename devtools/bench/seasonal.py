"""``warroom bench seasonal``: what the detectors see of anomalies that only the time of day or
week gives away.

Traffic-like series have a daily shape: here a morning and an evening peak on weekdays, lower
weekends, 5% multiplicative noise, a point every 30 minutes. Each series of a scenario carries
one anomaly on one day between day 40 and day 54: a peak at 3 a.m. (``night_peak``), the evening
peak that does not come (``missing_peak``), or a weekday shaped like a weekend day
(``weekday_like_weekend``). Every value in the last two stays inside the range the series has
always had, and the night peak's values are ordinary at 6 p.m.: only their hour is wrong.
``clean`` has none. The detectors run as the worker runs them (the series bank, each detector's
recommended decision policy); an anomaly is found when an alert starts within six hours of it,
and every other alert after the first two weeks (the detectors' learning time) is a false one.
Seeded, so a run is repeatable.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from detectors import SeriesBank
from devtools.bench import (
    add_detector_choice,
    chosen_detectors,
    detector_label,
    machine,
    machine_line,
)
from devtools.bench.noise import default_detectors
from streams.argtypes import positive_int

SCENARIOS = ("clean", "night_peak", "missing_peak", "weekday_like_weekend")
STEP_S = 1800
#: Alerts this long before or after an anomaly count as finding it.
SLACK_S = 6 * 3600
#: Alerts in the first days are the detectors' learning, not counted as false.
LEARNING_DAYS = 14


@dataclass(frozen=True)
class Scenario:
    """Series of one scenario: ``values[s, t]`` at ``ts[t]``; ``spans[s]`` the anomaly's first
    and last time (None for ``clean``)."""

    ts: NDArray[np.float64]
    values: NDArray[np.float64]
    spans: list[tuple[float, float] | None]


def _shape(ts: NDArray[np.float64], weekend: bool) -> NDArray[np.float64]:
    hour = (ts % 86400) / 3600
    weekday: NDArray[np.float64] = 8000 * np.exp(-((hour - 9) ** 2) / 6) + 10000 * np.exp(
        -((hour - 18) ** 2) / 8
    )
    return 10000 + (0.6 * weekday - 4000 if weekend else weekday)


def scenario(kind: str, series: int, days: int, seed: int) -> Scenario:
    """``series`` series of ``days`` days of ``kind``, seeded."""
    if kind not in SCENARIOS:
        raise ValueError(f"unknown scenario {kind!r}")
    rng = np.random.default_rng(seed)
    # Day 0 is a Monday (2024-01-01, UTC).
    ts = 1704067200.0 + STEP_S * np.arange(days * 86400 // STEP_S, dtype=np.float64)
    day, hour = (ts - ts[0]) // 86400, (ts % 86400) / 3600
    weekend = day % 7 >= 5
    clean = np.where(weekend, _shape(ts, True), _shape(ts, False))
    values = np.empty((series, len(ts)))
    spans: list[tuple[float, float] | None] = []
    last = min(days - 1, 54)  # main() asks for at least 56 days
    for s in range(series):
        shape = clean.copy()
        days_ok = [d for d in range(40, last + 1) if kind != "weekday_like_weekend" or d % 7 < 5]
        target = int(rng.choice(days_ok))
        on = day == target
        if kind == "night_peak":
            on &= (hour >= 1) & (hour < 5)
            shape[on] += 12000 * np.exp(-((hour[on] - 3) ** 2))
        elif kind == "missing_peak":
            on &= (hour >= 14) & (hour < 22)
            shape[on] -= 10000 * np.exp(-((hour[on] - 18) ** 2) / 8)
        elif kind == "weekday_like_weekend":
            shape[on] = _shape(ts[on], True)
        values[s] = shape * (1.0 + 0.05 * rng.standard_normal(len(ts)))
        spans.append((float(ts[on][0]), float(ts[on][-1])) if kind != "clean" else None)
    return Scenario(ts, values, spans)


def run(detector: str, case: Scenario, params: dict[str, Any] | None = None) -> tuple[int, int]:
    """Anomalies found and false alerts, the detector run as the worker runs it."""
    bank = SeriesBank(detector, params)
    series = len(case.spans)
    ids = [f"seasonal|s{i}" for i in range(series)]
    starts: list[list[float]] = [[] for _ in range(series)]
    for t, now in enumerate(case.ts.tolist()):
        _, fired = bank.observe(ids, case.values[:, t], np.full(series, now))
        for hit in fired:
            if not hit.decision.repeat:
                starts[hit.index].append(now)
    learned = float(case.ts[0]) + LEARNING_DAYS * 86400
    found = false = 0
    for span, alerts in zip(case.spans, starts, strict=True):
        near = [span is not None and span[0] - SLACK_S <= a <= span[1] + SLACK_S for a in alerts]
        found += any(near)
        false += sum(1 for a, n in zip(alerts, near, strict=True) if not n and a >= learned)
    return found, false


def main(args: argparse.Namespace) -> int:
    try:
        names, params = chosen_detectors(args, default_detectors())
    except ValueError as exc:
        print(f"warroom bench seasonal: {exc}")
        return 2
    if args.days < 56:
        print("warroom bench seasonal: --days must be at least 56 (anomalies fall on days 40-54)")
        return 2
    cases = {k: scenario(k, args.series, args.days, args.seed) for k in SCENARIOS}
    print(f"seasonal: {args.series} series x {args.days} days of 30-minute points per scenario, "
          f"seed {args.seed}; found / false alerts")  # fmt: skip
    print(machine_line(host := machine()))
    width = max(len("detector"), *(len(n) + 2 for n in names))
    print(f"{'detector':<{width}} " + " ".join(f"{k:>21}" for k in SCENARIOS) + f" {'s':>6}")
    figures: dict[str, dict[str, dict[str, int]]] = {}
    for name in names:
        started = time.perf_counter()
        result = {k: run(name, case, params) for k, case in cases.items()}
        elapsed = time.perf_counter() - started
        figures[name] = {k: {"found": f, "false_alerts": x} for k, (f, x) in result.items()}
        cells = [
            f"{'-' if k == 'clean' else f'{f}/{args.series}'} / {x}" for k, (f, x) in result.items()
        ]
        label = detector_label(name)
        print(f"{label:<{width}} " + " ".join(f"{c:>21}" for c in cells) + f" {elapsed:>6.1f}",
              flush=True)  # fmt: skip
    summary = {"series": args.series, "days": args.days, "seed": args.seed, "machine": host}
    print(json.dumps(summary | {"detector_params": params, "detectors": figures}))
    return 0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--series", type=positive_int, default=20, help="series per scenario")
    parser.add_argument("--days", type=positive_int, default=60, help="days per series")
    parser.add_argument("--seed", type=int, default=7)
    add_detector_choice(parser)
