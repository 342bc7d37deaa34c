"""``warroom detect``: score a ``timestamp,value`` CSV offline, one output row per input row.

The output is NAB's results format: ``timestamp,value,anomaly_score`` in input order.
"""

from __future__ import annotations

import csv
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from detectors.registry import DEFAULT_DETECTOR, make_detector, outside_domain


class BacktestError(ValueError):
    """Bad input file or parameters, with the row or parameter at fault."""


def parse_params(pairs: list[str]) -> dict[str, Any]:
    """``K=V`` pairs; values are read as int, then float, then kept as text."""
    params: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise BacktestError(f"--param {pair!r}: expected K=V")
        value: Any = raw
        for cast in (int, float):
            try:
                value = cast(raw)
                break
            except ValueError:
                continue
        params[key] = value
    return params


def parse_time(text: str) -> float:
    """Epoch seconds from epoch seconds, RFC 3339, or NAB's ``YYYY-MM-DD HH:MM:SS`` (UTC)."""
    try:
        return float(text)
    except ValueError:
        pass
    parsed = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


def run_backtest(src: Path, dst: Path, detector: str | None, param_pairs: list[str]) -> int:
    """Score every row of ``src`` into ``dst``; returns the number of rows."""
    name = detector or DEFAULT_DETECTOR
    try:
        model = make_detector(name, **parse_params(param_pairs))
    except ValueError as exc:
        raise BacktestError(str(exc)) from None
    try:
        fin = src.open(newline="")
    except OSError as exc:
        raise BacktestError(f"{src}: {exc.strerror}") from None
    rows = 0
    with fin, dst.open("w", newline="") as fout:
        reader = csv.DictReader(fin)
        if reader.fieldnames is None or not {"timestamp", "value"} <= set(reader.fieldnames):
            raise BacktestError(f"{src}: expected a header with 'timestamp' and 'value' columns")
        writer = csv.writer(fout)
        writer.writerow(["timestamp", "value", "anomaly_score"])
        for line, row in enumerate(reader, start=2):
            try:
                ts, value = parse_time(row["timestamp"]), float(row["value"])
            except (TypeError, ValueError):
                raise BacktestError(f"{src}:{line}: bad timestamp or value") from None
            refused = outside_domain(name, value)
            if refused:
                raise BacktestError(f"{src}:{line}: {refused}")
            score = model.score_one(value, ts)
            model.learn_one(value, ts)
            writer.writerow([row["timestamp"], row["value"], f"{score:.6f}"])
            rows += 1
    return rows
