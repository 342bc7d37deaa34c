"""``warroom detect``: score a ``timestamp,value`` CSV offline, one output row per input row.

The output is NAB's results format: ``timestamp,value,anomaly_score`` in input order. With
alerts asked for, an ``alert`` column says where the worker's decision policy would have
started an episode (1), which is what would have opened or joined an incident and paged.
"""

from __future__ import annotations

import csv
import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from detectors.bank import recommended_policy
from detectors.policy import ThresholdPolicy
from detectors.registry import DEFAULT_DETECTOR, make_detector, outside_domain


class BacktestError(ValueError):
    """Bad input file or parameters, with the row or parameter at fault."""


def parse_params(pairs: list[str]) -> dict[str, Any]:
    """``K=V`` pairs; a value is read as JSON where it is JSON (a number, ``true``, a list such
    as ``[4,16]``) and kept as text otherwise; the detector's parameter types decide the rest."""
    params: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise BacktestError(f"--param {pair!r}: expected K=V")
        try:
            params[key] = json.loads(raw)
        except ValueError:
            params[key] = raw
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


@dataclass(frozen=True)
class BacktestResult:
    """Rows scored; with alerts asked for, the episodes the policy started and the policy."""

    rows: int
    alerts: int | None = None
    policy: dict[str, Any] | None = None


def run_backtest(
    src: Path,
    dst: Path,
    detector: str | None,
    param_pairs: list[str],
    policy_pairs: list[str] | None = None,
    alerts: bool = False,
) -> BacktestResult:
    """Score every row of ``src`` into ``dst``. With ``alerts`` (or any ``policy_pairs``, a
    detector rule's ``policy`` as ``K=V``), also decide each score with the worker's policy.

    The output appears whole or not at all: it is written beside ``dst`` and moved into place
    only once every row is scored, so a bad row leaves no partial file (and an earlier output
    at ``dst`` untouched)."""
    name = detector or DEFAULT_DETECTOR
    try:
        model = make_detector(name, **parse_params(param_pairs))
    except ValueError as exc:
        raise BacktestError(str(exc)) from None
    policy: ThresholdPolicy | None = None
    if alerts or policy_pairs:
        try:
            policy = recommended_policy(name, parse_params(policy_pairs or []))
        except ValueError as exc:
            raise BacktestError(str(exc)) from None
    try:
        # utf-8-sig: a spreadsheet's byte-order mark is not part of the first column's name.
        fin = src.open(newline="", encoding="utf-8-sig")
    except OSError as exc:
        raise BacktestError(f"{src}: {exc.strerror}") from None
    tmp = dst.with_name(f".{dst.name}.{os.getpid()}.tmp")
    try:
        fout = tmp.open("w", newline="")
    except OSError as exc:
        fin.close()
        raise BacktestError(f"{dst}: {exc.strerror}") from None
    try:
        with fin, fout:
            try:
                rows, fired = _score_rows(src, fin, fout, name, model, policy)
            except (UnicodeDecodeError, csv.Error) as exc:  # not text, or not CSV
                raise BacktestError(f"{src}: unreadable as UTF-8 CSV ({exc})") from None
        try:
            os.replace(tmp, dst)
        except OSError as exc:
            raise BacktestError(f"{dst}: {exc.strerror}") from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if policy is None:
        return BacktestResult(rows)
    return BacktestResult(rows, fired, policy.to_state()["params"])


def _score_rows(
    src: Path, fin: TextIO, fout: TextIO, name: str, model: Any, policy: ThresholdPolicy | None
) -> tuple[int, int]:
    reader = csv.DictReader(fin)
    if reader.fieldnames is None or not {"timestamp", "value"} <= set(reader.fieldnames):
        raise BacktestError(f"{src}: expected a header with 'timestamp' and 'value' columns")
    writer = csv.writer(fout)
    writer.writerow(["timestamp", "value", "anomaly_score", *(["alert"] if policy else [])])
    rows = fired = 0
    for line, row in enumerate(reader, start=2):
        stamp, text = row["timestamp"], row["value"]
        try:
            ts = parse_time(stamp or "")
        except ValueError:
            raise BacktestError(f"{src}:{line}: bad timestamp {stamp!r}") from None
        try:
            value = float(text or "")
        except ValueError:
            raise BacktestError(f"{src}:{line}: bad value {text!r} (not a number)") from None
        refused = outside_domain(name, value)
        if refused:
            raise BacktestError(f"{src}:{line}: {refused}")
        score = model.score_one(value, ts)
        model.learn_one(value, ts)
        out = [stamp, text, f"{score:.6f}"]
        if policy is not None:
            # Reminders while an episode lasts join its incident: only a start is an alert.
            decision = policy.decide(score, ts)
            alert = decision is not None and not decision.repeat
            fired += alert
            out.append("1" if alert else "0")
        writer.writerow(out)
        rows += 1
    return rows, fired
