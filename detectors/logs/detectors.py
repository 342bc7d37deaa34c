"""Log anomaly detectors over mined templates: new templates, bursts, error surges, rules, silence.

Time is event time: records fall into windows of ``window_s`` seconds by their own timestamp.
Each template's count per window is compared with its own baseline (an exponentially weighted
mean and variance over past windows), so no per-source threshold is needed. A condition opens an
episode and fires once; the episode ends after a calm window and ``cooldown_s`` since it fired,
so a burst gives one detection, not one per line. Detection ids derive from the service, the
kind, the template or rule, and the window the episode started in, so a replay repeats ids.
"""

from __future__ import annotations

import math
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Self

from detectors.logs.miner import Match
from schemas import Detection, DetectionSeverity

ERROR_LEVELS = frozenset(
    {"error", "err", "fatal", "critical", "crit", "severe", "alert", "emerg", "emergency"}
    | {"failure", "panic"}
)
"""Levels (lower-cased) that count as errors for the error-share detector."""

_NAMESPACE = uuid.UUID("5d8f0a3e-7c21-4b6e-9a4d-2e1f3c5b7a90")
_EXAMPLES = 3
_EXAMPLE_CHARS = 500
_PRUNE_MEAN = 0.01


@dataclass(frozen=True)
class LogRule:
    """A regular expression (or a plain keyword) that raises a detection of ``severity``."""

    name: str
    pattern: str
    severity: DetectionSeverity = DetectionSeverity.ERROR
    ignore_case: bool = True

    def compile(self) -> re.Pattern[str]:
        return re.compile(self.pattern, re.IGNORECASE if self.ignore_case else 0)


@dataclass(frozen=True)
class LogDetectorConfig:
    """Detector settings; the defaults are relative to each template's own history."""

    window_s: float = 60.0
    warmup_records: int = 200
    warmup_s: float = 600.0
    alpha: float = 0.1
    baseline_windows: int = 5
    burst_min_count: int = 20
    burst_ratio: float = 5.0
    burst_z: float = 6.0
    error_min_count: int = 5
    error_share_delta: float = 0.25
    error_share_ratio: float = 3.0
    error_share_z: float = 6.0
    new_templates_per_window: int = 5
    silence_s: float = 600.0
    cooldown_s: float = 900.0
    rules: tuple[LogRule, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        if self.window_s <= 0 or self.silence_s <= 0:
            raise ValueError("window_s and silence_s must be positive")
        if not 0.0 < self.alpha <= 1.0:
            raise ValueError("alpha must be in (0, 1]")

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            k: getattr(self, k) for k in self.__dataclass_fields__ if k != "rules"
        }
        data["rules"] = [[r.name, r.pattern, r.severity.value, r.ignore_case] for r in self.rules]
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LogDetectorConfig:
        params = {k: v for k, v in data.items() if k != "rules" and k in cls.__dataclass_fields__}
        unknown = set(data) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown log detector settings: {', '.join(sorted(unknown))}")
        rules = tuple(
            LogRule(str(r[0]), str(r[1]), DetectionSeverity(r[2]), bool(r[3]))
            if isinstance(r, list | tuple)
            else LogRule(**r)
            for r in data.get("rules", ())
        )
        return cls(**params, rules=rules)


def detection_id(service: str, kind: str, key: str, window_start: float) -> str:
    """Deterministic id of the detection of one episode."""
    name = f"{service}\x00{kind}\x00{key}\x00{window_start!r}"
    return "det-" + uuid.uuid5(_NAMESPACE, name).hex[:20]


def _share_z(errors: int, total: int, base_share: float) -> float:
    """How many standard deviations ``errors`` in ``total`` records lie above what the baseline
    share gives by chance (a binomial count; the share is floored at 1% so that a source that
    never erred still needs several errors).

    >>> round(_share_z(5, 11, 0.13), 1), round(_share_z(12, 12, 0.0), 1)
    (3.2, 34.5)
    """
    p = max(base_share, 0.01)
    return (errors - total * p) / math.sqrt(total * p * (1.0 - p))


def _at(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, tz=UTC)


def _example(message: str) -> str:
    return message if len(message) <= _EXAMPLE_CHARS else message[:_EXAMPLE_CHARS] + "..."


class LogDetector:
    """All log detectors of one source, fed one mined record at a time.

    >>> d = LogDetector(LogDetectorConfig(warmup_records=2, warmup_s=0, rules=(
    ...     LogRule("oom", r"out of memory", DetectionSeverity.CRITICAL),)))
    >>> m = Match("tpl-1", "worker <*> out of memory")
    >>> [x.detector for x in d.observe("api", 10.0, "ERROR", "worker 3 out of memory", m)]
    ['log_rule']
    >>> d.observe("api", 11.0, "ERROR", "worker 4 out of memory", m)
    []
    """

    state_version = 1

    def __init__(self, config: LogDetectorConfig | None = None) -> None:
        self.config = config or LogDetectorConfig()
        self._rules = [(rule, rule.compile()) for rule in self.config.rules]
        self.records = 0
        self.first_ts: float | None = None
        self.last_ts: float | None = None
        self.window_start: float | None = None
        self.counts: dict[str, int] = {}
        self.examples: dict[str, list[str]] = {}
        self.errors = 0
        self.error_counts: dict[str, int] = {}
        self.error_texts: dict[str, str] = {}
        self.total = 0
        self.new_in_window = 0
        self.baselines: dict[str, list[float]] = {}
        self.error_share: list[float] = [0.0, 0.0]
        self.episodes: dict[str, list[float]] = {}

    @property
    def warmed_up(self) -> bool:
        if self.first_ts is None or self.last_ts is None:
            return False
        return (
            self.records >= self.config.warmup_records
            and self.last_ts - self.first_ts >= self.config.warmup_s
        )

    def _window_of(self, ts: float) -> float:
        return math.floor(ts / self.config.window_s) * self.config.window_s

    def _close(self, until: float) -> None:
        """Fold the current window (and the empty ones up to ``until``) into the baselines."""
        assert self.window_start is not None
        cfg = self.config
        a = cfg.alpha
        gap = max(0, round((until - self.window_start) / cfg.window_s) - 1)
        decay = (1.0 - a) ** min(gap, 10_000)
        for tid in set(self.baselines) | set(self.counts):
            c = float(self.counts.get(tid, 0))
            base = self.baselines.get(tid)
            if base is None:
                base = self.baselines[tid] = [c, 0.0, 1.0]
            else:
                delta = c - base[0]
                base[0] += a * delta
                base[1] = (1.0 - a) * (base[1] + a * delta * delta)
                base[2] += 1.0
            base[0] *= decay
            base[1] *= decay
            base[2] += gap
            if base[0] < _PRUNE_MEAN and tid not in self.counts:
                del self.baselines[tid]
        if self.total:
            share = self.errors / self.total
            mean, n = self.error_share
            self.error_share = [share if n == 0 else mean + a * (share - mean), n + 1.0]
        closed = self.window_start
        for key, (_, fired_at, hot) in list(self.episodes.items()):
            if (
                hot <= closed
                and self.last_ts is not None
                and self.last_ts - fired_at >= cfg.cooldown_s
            ):
                del self.episodes[key]
        self.window_start = until
        self.counts, self.examples = {}, {}
        self.error_counts, self.error_texts = {}, {}
        self.errors = self.total = self.new_in_window = 0

    def _episode(self, key: str, ts: float) -> float | None:
        """Mark ``key`` hot in this window; the episode's start window if it just opened."""
        assert self.window_start is not None
        episode = self.episodes.get(key)
        if episode is not None:
            episode[2] = self.window_start
            return None
        self.episodes[key] = [self.window_start, ts, self.window_start]
        return self.window_start

    def observe(
        self, service: str, ts: float, level: str | None, message: str, match: Match
    ) -> list[Detection]:
        """Count one record mined into ``match``; the detections it triggers."""
        window = self._window_of(ts)
        if self.window_start is None:
            self.window_start = window
        elif window > self.window_start:
            self._close(window)
        elif window < self.window_start:
            return []  # later than its window: counted nowhere, detected nothing
        self.records += 1
        self.first_ts = ts if self.first_ts is None else min(self.first_ts, ts)
        self.last_ts = ts if self.last_ts is None else max(self.last_ts, ts)
        tid = match.template_id
        count = self.counts[tid] = self.counts.get(tid, 0) + 1
        examples = self.examples.setdefault(tid, [])
        if len(examples) < _EXAMPLES:
            examples.append(_example(message))
        self.total += 1
        if level is not None and level.lower() in ERROR_LEVELS:
            self.errors += 1
            self.error_counts[tid] = self.error_counts.get(tid, 0) + 1
            self.error_texts[tid] = match.template
        fired: list[tuple[str, str, float, float, DetectionSeverity, dict[str, Any]]] = []
        for rule, regex in self._rules:
            if regex.search(message) is not None:
                started = self._episode("rule:" + rule.name, ts)
                if started is not None:
                    extra = {"rule": rule.name, "pattern": rule.pattern}
                    fired.append(("log_rule", rule.name, started, 1.0, rule.severity, extra))
        if self.warmed_up:
            fired.extend(self._anomalies(match, count, ts))
        return [
            self._detection(service, kind, key, started, ts, score, severity, match, message, extra)
            for kind, key, started, score, severity, extra in fired
        ]

    def _anomalies(
        self, match: Match, count: int, ts: float
    ) -> list[tuple[str, str, float, float, DetectionSeverity, dict[str, Any]]]:
        cfg = self.config
        tid = match.template_id
        window = self.window_start if self.window_start is not None else ts
        out: list[tuple[str, str, float, float, DetectionSeverity, dict[str, Any]]] = []
        if match.created and self.new_in_window < cfg.new_templates_per_window:
            self.new_in_window += 1
            extra: dict[str, Any] = {
                "history_records": self.records - 1,
                "history_s": round(ts - (self.first_ts if self.first_ts is not None else ts), 3),
                "templates_known": max(0, match.templates - 1),
            }
            out.append(("log_new_template", tid, window, 1.0, DetectionSeverity.WARNING, extra))
        base = self.baselines.get(tid)
        if count >= cfg.burst_min_count and base is not None and base[2] >= cfg.baseline_windows:
            mean, var = base[0], base[1]
            z = (count - mean) / math.sqrt(var + mean + 1.0)
            if count >= cfg.burst_ratio * max(mean, 1.0) and z >= cfg.burst_z:
                started = self._episode("burst:" + tid, ts)
                if started is not None:
                    score = 1.0 - math.exp(-z / cfg.burst_z)
                    extra = {
                        "baseline": round(mean, 3),
                        "baseline_std": round(math.sqrt(var), 3),
                        "ratio": round(count / max(mean, 1.0), 2),
                        "z": round(z, 2),
                        "history_windows": int(base[2]),
                    }
                    out.append(("log_burst", tid, started, score, DetectionSeverity.WARNING, extra))
        if self.errors >= cfg.error_min_count and self.error_share[1] >= 1:
            share, base_share = self.errors / self.total, self.error_share[0]
            z = _share_z(self.errors, self.total, base_share)
            if (
                share >= base_share + cfg.error_share_delta
                and share >= cfg.error_share_ratio * base_share
                and z >= cfg.error_share_z
            ):
                started = self._episode("errors", ts)
                if started is not None:
                    extra = {
                        "errors": self.errors,
                        "records": self.total,
                        "share": round(share, 4),
                        "baseline_share": round(base_share, 4),
                        "ratio": round(share / base_share, 2) if base_share > 0 else None,
                        "z": round(z, 2),
                        "history_windows": int(self.error_share[1]),
                        "error_templates": self._top_errors(),
                    }
                    severity = DetectionSeverity.ERROR
                    out.append(("log_error_share", "errors", started, share, severity, extra))
        return out

    def _top_errors(self) -> list[dict[str, Any]]:
        """The templates with the most error records in this window, most first."""
        top = sorted(self.error_counts.items(), key=lambda kv: (-kv[1], kv[0]))[:_EXAMPLES]
        return [
            {"template_id": tid, "template": self.error_texts.get(tid, ""), "errors": n}
            for tid, n in top
        ]

    def _detection(
        self,
        service: str,
        kind: str,
        key: str,
        started: float,
        ts: float,
        score: float,
        severity: DetectionSeverity,
        match: Match,
        message: str,
        extra: dict[str, Any],
    ) -> Detection:
        tid = match.template_id
        context: dict[str, Any] = {
            "template_id": tid,
            "template": match.template,
            "count": self.counts.get(tid, 0),
            "window_start": _at(self.window_start or started).isoformat(),
            "window_s": self.config.window_s,
            "examples": list(self.examples.get(tid, [])) or [_example(message)],
            **extra,
        }
        return Detection(
            id=detection_id(service, kind, key, started),
            ts=_at(ts),
            service=service,
            signal="logs",
            detector=kind,
            score=max(0.0, min(1.0, score)),
            severity=severity,
            impact_started_at=_at(max(started, self.first_ts or started)),
            labels={"template_id": tid},
            context=context,
        )

    def check_silence(self, service: str, now: float) -> Detection | None:
        """A detection if the source, once warmed up, has sent nothing for ``silence_s``."""
        if not self.warmed_up or self.last_ts is None:
            return None
        quiet_s = now - self.last_ts
        if quiet_s < self.config.silence_s:
            return None
        return Detection(
            id=detection_id(service, "log_silence", "source", self.last_ts),
            ts=_at(now),
            service=service,
            signal="logs",
            detector="log_silence",
            score=min(1.0, quiet_s / (2.0 * self.config.silence_s)),
            severity=DetectionSeverity.WARNING,
            impact_started_at=_at(self.last_ts),
            context={"last_record_at": _at(self.last_ts).isoformat(), "quiet_s": quiet_s},
        )

    def to_state(self) -> dict[str, Any]:
        return {
            "version": self.state_version,
            "config": self.config.to_dict(),
            "records": self.records,
            "first_ts": self.first_ts,
            "last_ts": self.last_ts,
            "window_start": self.window_start,
            "counts": dict(self.counts),
            "examples": {k: list(v) for k, v in self.examples.items()},
            "errors": self.errors,
            "error_counts": dict(self.error_counts),
            "error_texts": dict(self.error_texts),
            "total": self.total,
            "new_in_window": self.new_in_window,
            "baselines": {k: list(v) for k, v in self.baselines.items()},
            "error_share": list(self.error_share),
            "episodes": {k: list(v) for k, v in self.episodes.items()},
        }

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> Self:
        if state.get("version") != cls.state_version:
            raise ValueError(f"log detector state version {state.get('version')!r} is unknown")
        d = cls(LogDetectorConfig.from_dict(state["config"]))
        d.records = int(state["records"])
        d.first_ts = state["first_ts"]
        d.last_ts = state["last_ts"]
        d.window_start = state["window_start"]
        d.counts = {str(k): int(v) for k, v in state["counts"].items()}
        d.examples = {str(k): [str(x) for x in v] for k, v in state["examples"].items()}
        d.errors = int(state["errors"])
        d.error_counts = {str(k): int(v) for k, v in state.get("error_counts", {}).items()}
        d.error_texts = {str(k): str(v) for k, v in state.get("error_texts", {}).items()}
        d.total = int(state["total"])
        d.new_in_window = int(state["new_in_window"])
        d.baselines = {str(k): [float(x) for x in v] for k, v in state["baselines"].items()}
        d.error_share = [float(x) for x in state["error_share"]]
        d.episodes = {str(k): [float(x) for x in v] for k, v in state["episodes"].items()}
        return d
