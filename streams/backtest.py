"""``warroom detect``: score a ``timestamp,value`` CSV offline, one output row per input row.

The output is NAB's results format: ``timestamp,value,anomaly_score`` in input order. With
alerts asked for, an ``alert`` column says where the worker's decision policy would have
started an episode (1), which is what would have opened or joined an incident and paged. With a
series column, each of its values is a series of its own (its own detector and policy, as the
worker keeps them), and the column is kept first in the output.
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
    """Rows and series scored; with alerts asked for, the episodes the policy started, in how
    many series, and the policy's settings."""

    rows: int
    series: int = 1
    alerts: int | None = None
    alerting_series: int | None = None
    policy: dict[str, Any] | None = None


def run_backtest(
    src: Path,
    dst: Path,
    detector: str | None,
    param_pairs: list[str],
    policy_pairs: list[str] | None = None,
    alerts: bool = False,
    series_column: str | None = None,
) -> BacktestResult:
    """Score every row of ``src`` into ``dst``. With ``alerts`` (or any ``policy_pairs``, a
    detector rule's ``policy`` as ``K=V``), also decide each score with the worker's policy.
    With ``series_column``, each of that column's values is a series of its own.

    The output appears whole or not at all: it is written beside ``dst`` and moved into place
    only once every row is scored, so a bad row leaves no partial file (and an earlier output
    at ``dst`` untouched)."""
    name = detector or DEFAULT_DETECTOR
    params = parse_params(param_pairs)
    try:
        make_detector(name, **params)  # refused here, before any file is touched
    except ValueError as exc:
        raise BacktestError(str(exc)) from None
    policy: dict[str, Any] | None = None  # the policy's state, each series starting from it
    if alerts or policy_pairs:
        try:
            policy = recommended_policy(name, parse_params(policy_pairs or [])).to_state()
        except ValueError as exc:
            raise BacktestError(str(exc)) from None
    setup = _Setup(name, params, policy, series_column)
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
                result = _score_rows(src, fin, fout, setup)
            except (UnicodeDecodeError, csv.Error) as exc:  # not text, or not CSV
                raise BacktestError(f"{src}: unreadable as UTF-8 CSV ({exc})") from None
        try:
            os.replace(tmp, dst)
        except OSError as exc:
            raise BacktestError(f"{dst}: {exc.strerror}") from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return result


@dataclass
class _Series:
    model: Any
    policy: ThresholdPolicy | None
    alerts: int = 0


@dataclass(frozen=True)
class _Setup:
    """What each row is scored with: the detector and its parameters, the policy's starting
    state (None: no alerts), and the column naming a row's series (None: one series)."""

    detector: str
    params: dict[str, Any]
    policy: dict[str, Any] | None
    series_column: str | None

    def fresh(self) -> _Series:
        policy = None if self.policy is None else ThresholdPolicy.from_state(self.policy)
        return _Series(make_detector(self.detector, **self.params), policy)


def _score_rows(src: Path, fin: TextIO, fout: TextIO, setup: _Setup) -> BacktestResult:
    name, key = setup.detector, setup.series_column
    reader = csv.DictReader(fin)
    needed = {"timestamp", "value", *([key] if key else [])}
    if reader.fieldnames is None or not needed <= set(reader.fieldnames):
        wanted = ", ".join(repr(c) for c in sorted(needed))
        raise BacktestError(f"{src}: expected a header with the columns {wanted}")
    writer = csv.writer(fout)
    alerting = setup.policy is not None
    writer.writerow(
        [*([key] if key else []), "timestamp", "value", "anomaly_score"]
        + (["alert"] if alerting else [])
    )
    series: dict[str, _Series] = {}
    rows = 0
    for line, row in enumerate(reader, start=2):
        stamp, text = row["timestamp"], row["value"]
        label = (row[key] or "") if key else ""
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
        one = series.get(label)
        if one is None:
            one = series[label] = setup.fresh()
        score = one.model.score_one(value, ts)
        one.model.learn_one(value, ts)
        out = [*([label] if key else []), stamp, text, f"{score:.6f}"]
        if one.policy is not None:
            # Reminders while an episode lasts join its incident: only a start is an alert.
            decision = one.policy.decide(score, ts)
            alert = decision is not None and not decision.repeat
            one.alerts += alert
            out.append("1" if alert else "0")
        writer.writerow(out)
        rows += 1
    if setup.policy is None:
        return BacktestResult(rows, len(series))
    return BacktestResult(
        rows,
        len(series),
        sum(s.alerts for s in series.values()),
        sum(1 for s in series.values() if s.alerts),
        setup.policy["params"],
    )
