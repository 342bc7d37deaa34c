"""``warroom bench nab``: NAB scores, windows found, false positives and cost of each detector."""

from __future__ import annotations

import argparse
import csv
import itertools
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from detectors.bank import recommended_policy
from detectors.nab import (
    CostProfile,
    CrossValidated,
    LabelledFile,
    cross_validate,
    file_groups,
    profiles_from_config,
    score_corpus,
    window_rows,
)
from detectors.registry import DEFAULT_DETECTOR, DETECTORS, make_batch
from devtools.bench import chosen_detectors, detector_label, machine, machine_line
from streams.backtest import parse_time


@dataclass(frozen=True)
class Series:
    """One corpus file: its labels, values and event times in row order."""

    file: LabelledFile
    values: NDArray[np.float64]
    ts: NDArray[np.float64]


def _label_key(text: str) -> str:
    return text.strip().split(".")[0]


def load_corpus(root: Path) -> list[Series]:
    """Every data file named in the labels, read from ``root`` (never copied)."""
    windows: dict[str, list[list[str]]] = json.loads(
        (root / "labels" / "combined_windows.json").read_text()
    )
    out: list[Series] = []
    for rel in sorted(windows):
        path = root / "data" / rel
        if not path.exists():
            continue
        stamps: list[str] = []
        values: list[float] = []
        with path.open(newline="") as fh:
            for row in csv.DictReader(fh):
                stamps.append(_label_key(row["timestamp"]))
                values.append(float(row["value"]))
        rows = window_rows(stamps, [(_label_key(a), _label_key(b)) for a, b in windows[rel]])
        out.append(
            Series(
                LabelledFile(rel, len(stamps), tuple(rows)),
                np.asarray(values, dtype=np.float64),
                np.asarray([parse_time(s) for s in stamps], dtype=np.float64),
            )
        )
    return out


def run_detector(
    name: str, corpus: list[Series], params: dict[str, Any] | None = None
) -> tuple[list[NDArray[np.float64]], float]:
    """Score every file as one batch of series stepping row by row; returns scores, seconds."""
    n = len(corpus)
    length = max(s.file.n_rows for s in corpus)
    values = np.zeros((length, n))
    stamps = np.zeros((length, n))
    active = np.zeros((length, n), dtype=np.bool_)
    for j, s in enumerate(corpus):
        k = s.file.n_rows
        values[:k, j], stamps[:k, j], active[:k, j] = s.values, s.ts, True
    scores = np.zeros((length, n))
    batch = make_batch(name, n, **(params or {}))
    started = time.perf_counter()
    for i in range(length):
        scores[i] = batch.score_many(values[i], stamps[i], active[i])
        batch.learn_many(values[i], stamps[i], active[i])
    elapsed = time.perf_counter() - started
    return [scores[: s.file.n_rows, j].copy() for j, s in enumerate(corpus)], elapsed


#: Series in the batch-mode cost measurement, and how long to time each detector at most.
BATCH_SERIES = 1000
BATCH_BUDGET_S = 3.0


def batch_cost(
    name: str,
    corpus: list[Series],
    series: int = BATCH_SERIES,
    params: dict[str, Any] | None = None,
) -> float:
    """Microseconds a point in batch mode: ``series`` series (the corpus files side by side,
    repeated) scored and learned one row at a time with ``score_learn_many``, as the worker's
    bank steps many series. Timed from row 200 (past every detector's compile and warm-up) for
    up to ``BATCH_BUDGET_S`` seconds or 2,000 rows."""
    length = min(s.file.n_rows for s in corpus)
    rows = min(length, 2200)
    values = np.stack([corpus[j % len(corpus)].values[:rows] for j in range(series)], axis=1)
    stamps = np.stack([corpus[j % len(corpus)].ts[:rows] for j in range(series)], axis=1)
    batch = make_batch(name, series, **(params or {}))
    for i in range(200):
        batch.score_learn_many(values[i], stamps[i])
    started, done = time.perf_counter(), 0
    for i in range(200, rows):
        batch.score_learn_many(values[i], stamps[i])
        done += 1
        if time.perf_counter() - started > BATCH_BUDGET_S:
            break
    return 1e6 * (time.perf_counter() - started) / (done * series)


def run_river_baseline(corpus: list[Series]) -> tuple[list[NDArray[np.float64]], float]:
    """River's Half-Space Trees as its documentation composes them (a min-max scaler, then the
    trees with default parameters), one series at a time, score then learn: the baseline a
    Python user would start from. Returns scores and seconds."""
    from river import anomaly, compose, preprocessing

    out, elapsed = [], 0.0
    for s in corpus:
        model = compose.Pipeline(preprocessing.MinMaxScaler(), anomaly.HalfSpaceTrees(seed=42))
        scores = np.zeros(s.file.n_rows)
        started = time.perf_counter()
        for i, v in enumerate(s.values.tolist()):
            x = {"value": v}
            scores[i] = model.score_one(x)
            model.learn_one(x)
        elapsed += time.perf_counter() - started
        out.append(scores)
    return out, elapsed


def worker_alerts(
    name: str, corpus: list[Series], scores: list[NDArray[np.float64]]
) -> list[NDArray[np.float64]]:
    """1 where the worker's decision policy for ``name`` (its recommended threshold,
    for-duration and cooldown) starts an episode on the scores, 0 elsewhere. The reminders the
    policy repeats while an episode lasts join its incident and page nobody, so they are not
    counted: NAB would count each as a false positive."""
    out = []
    for series, sc in zip(corpus, scores, strict=True):
        policy = recommended_policy(name)
        fired = np.zeros(len(sc))
        for i, (score, ts) in enumerate(zip(sc.tolist(), series.ts.tolist(), strict=True)):
            decision = policy.decide(score, ts)
            if decision is not None and not decision.repeat:
                fired[i] = 1.0
        out.append(fired)
    return out


def state_bytes(name: str, corpus: list[Series], params: dict[str, Any] | None = None) -> int:
    """Bytes of one series' ``to_state`` JSON after it has learned a corpus file."""
    longest = max(corpus, key=lambda s: s.file.n_rows)
    batch = make_batch(name, 1, **(params or {}))
    for v, t in zip(longest.values[:2000], longest.ts[:2000], strict=True):
        batch.score_many(np.array([v]), np.array([t]))
        batch.learn_many(np.array([v]), np.array([t]))
    return len(json.dumps(batch.row_state(0)))


def param_grid(text: str, names: list[str], params: dict[str, Any]) -> list[dict[str, Any]]:
    """``--grid``: a JSON object of parameter name to a list of values; every combination
    (over ``params``), each checked against every detector in ``names``. ``"{}"`` is the one
    choice ``params``. ``ValueError`` says what is wrong."""
    grid = json.loads(text)  # a JSONDecodeError is a ValueError
    if not isinstance(grid, dict) or not all(isinstance(v, list) and v for v in grid.values()):
        raise ValueError("--grid must be a JSON object of parameter names to lists of values")
    keys = sorted(grid)
    choices = [params | dict(zip(keys, combo, strict=True)) for combo in
               itertools.product(*(grid[k] for k in keys))]  # fmt: skip
    for choice in choices:
        for name in names:
            make_batch(name, 1, **choice)
    return choices


def cv_groups(corpus: list[Series]) -> list[str]:
    """Each file's NAB category; ``ValueError`` when there are fewer than two to leave out."""
    groups = file_groups([s.file for s in corpus])
    if len(set(groups)) < 2:
        raise ValueError("--cv needs files of at least two categories (data/<category>/...)")
    return groups


def cv_figures(cv: CrossValidated) -> dict[str, Any]:
    """A cross-validated score and its folds as JSON-able figures."""
    return {
        "score": round(cv.score, 2),
        "folds": {
            f.group: {
                "choice": f.choice,
                "threshold": f.threshold if f.threshold != float("inf") else None,
                "windows_found": f.found,
                "windows": f.windows,
                "false_positives": f.false_positives,
            }
            for f in cv.folds
        },
    }


def _standard(profiles: list[CostProfile]) -> CostProfile:
    return next((p for p in profiles if p.name == "standard"), profiles[0])


def main(args: argparse.Namespace) -> int:
    root = Path(args.root)
    try:
        profiles = profiles_from_config(json.loads((root / "config" / "profiles.json").read_text()))
        corpus = load_corpus(root)
    except (OSError, ValueError, KeyError) as exc:
        print(f"warroom bench nab: {root}: {exc}", file=sys.stderr)
        return 2
    if not corpus:
        print(f"warroom bench nab: no data files under {root}", file=sys.stderr)
        return 2
    cv = getattr(args, "cv", False)
    try:
        names, params = chosen_detectors(args, sorted(DETECTORS))
        grid = param_grid(getattr(args, "grid", "{}"), names, params)
        groups = cv_groups(corpus) if cv else []
    except ValueError as exc:
        print(f"warroom bench nab: {exc}", file=sys.stderr)
        return 2
    if len(grid) > 1 and not cv:
        print("warroom bench nab: --grid is for --cv (a grid's best is chosen on the left-in "
              "categories)", file=sys.stderr)  # fmt: skip
        return 2
    points = sum(s.file.n_rows for s in corpus)
    print(f"NAB corpus: {len(corpus)} files, {points} points, root {root}")
    if cv:
        print(
            f"cv_std: standard score leaving out each of {len(set(groups))} categories in turn, "
            f"threshold{' and grid choice' if len(grid) > 1 else ''} chosen on the others"
        )
    print(machine_line(host := machine()))
    width = max(len("river HST (baseline)"), *(len(n) + 2 for n in names))
    cv_head = f" {'cv_std':>8}" if cv else ""
    header = (
        f"{'detector':<{width}} {'standard':>8}{cv_head} {'low_FP':>8} {'low_FN':>8} {'worker':>8} "
        f"{'windows':>9} "
        f"{'FP':>5} {'time_s':>7} {'us/pt':>7} {'batch_us':>8} {'state_B':>8}"
    )
    print(header)
    print("-" * len(header))
    figures: dict[str, Any] = {}
    files = [s.file for s in corpus]
    if args.baseline:
        scores, elapsed = run_river_baseline(corpus)
        results = {p.name: score_corpus(files, scores, p) for p in profiles}
        std = results.get("standard", next(iter(results.values())))
        us = 1e6 * elapsed / points
        baseline: dict[str, Any] = {
            **{f"score_{k}": round(r.score, 2) for k, r in results.items()},
            "windows_found": std.found,
            "false_positives": std.false_positives,
            "seconds": round(elapsed, 3),
            "us_per_point": round(us, 3),
        }
        sc = [
            f"{results[k].score:>8.1f}" if k in results else f"{'-':>8}"
            for k in ("standard", "reward_low_FP_rate", "reward_low_FN_rate")
        ]
        cv_col = ""
        if cv:
            held = cross_validate(files, groups, [scores], _standard(profiles))
            baseline["cv_standard"] = cv_figures(held)
            cv_col = f" {held.score:>8.1f}"
        print(
            f"{'river HST (baseline)':<{width}} {sc[0]}{cv_col} {sc[1]} {sc[2]} {'-':>8} "
            f"{std.found:>4}/{std.windows:<4} {std.false_positives:>5} {elapsed:>7.2f} "
            f"{us:>7.2f} {'-':>8} {'-':>8}",
            flush=True,
        )
    for name in names:
        scores, elapsed = run_detector(name, corpus, params)
        results = {p.name: score_corpus(files, scores, p) for p in profiles}
        standard = _standard(profiles)
        std = results[standard.name]
        cv_col = ""
        if cv:
            # Every choice's scores once; the folds only re-threshold them.
            candidates = [
                scores if choice == params else run_detector(name, corpus, choice)[0]
                for choice in grid
            ]
            held = cross_validate(files, groups, candidates, standard)
            cv_col = f" {held.score:>8.1f}"
        # As the worker decides (its recommended policy), not at the threshold this corpus
        # would pick.
        alerts = worker_alerts(name, corpus, scores)
        at = score_corpus([s.file for s in corpus], alerts, standard, 0.5)
        size = state_bytes(name, corpus, params)
        us = 1e6 * elapsed / points
        batch_us = batch_cost(name, corpus, params=params)
        figures[name] = {
            "default": name == DEFAULT_DETECTOR,
            **{f"score_{k}": round(r.score, 2) for k, r in results.items()},
            **{
                f"threshold_{k}": (r.threshold if r.threshold != float("inf") else None)
                for k, r in results.items()
            },
            "score_standard_worker_policy": round(at.score, 2),
            "worker_policy_alerts": int(sum(a.sum() for a in alerts)),
            "windows_found": std.found,
            "windows": std.windows,
            "false_positives": std.false_positives,
            "seconds": round(elapsed, 3),
            "us_per_point": round(us, 3),
            "batch_us_per_point": round(batch_us, 4),
            "batch_series": BATCH_SERIES,
            "state_json_bytes": size,
        }
        if cv:
            figures[name]["cv_standard"] = cv_figures(held)
        # NAB's three profiles by name; a config without one shows "-" in its column.
        sc = [
            f"{results[k].score:>8.1f}" if k in results else f"{'-':>8}"
            for k in ("standard", "reward_low_FP_rate", "reward_low_FN_rate")
        ]
        label = detector_label(name)
        print(
            f"{label:<{width}} {sc[0]}{cv_col} {sc[1]} {sc[2]} {at.score:>8.1f} "
            f"{std.found:>4}/{std.windows:<4} {std.false_positives:>5} {elapsed:>7.2f} "
            f"{us:>7.2f} {batch_us:>8.3f} {size:>8}",
            flush=True,
        )
    summary = {
        "files": len(corpus),
        "points": points,
        "machine": host,
        "detector_params": params,
        "detectors": figures,
    }
    if cv:
        summary["cv"] = {"categories": sorted(set(groups)), "grid": grid}
    if args.baseline:
        summary["baseline_river_hst"] = baseline
    print(json.dumps(summary))
    return 0
