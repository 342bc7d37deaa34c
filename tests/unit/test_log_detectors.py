"""Log detectors: each fires once on its case and stays quiet on steady traffic."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from detectors.logs import LogDetectorConfig, LogRule, LogSource
from schemas import Detection, DetectionSeverity, LogRecord

SERVICE = "checkout"
WINDOWS = 20  # one minute each: 240 records over 20 minutes, past the default warm-up


def record(ts: float, message: str, level: str = "INFO") -> LogRecord:
    return LogRecord(ts=ts, service=SERVICE, level=level, message=message)


def steady(start_window: int = 0, windows: int = WINDOWS) -> list[LogRecord]:
    out = []
    for w in range(start_window, start_window + windows):
        base = 1_700_000_000.0 + 60.0 * w
        for i in range(10):
            out.append(record(base + i, f"GET /api/items/{w * 10 + i} 200 in {i + 3}ms"))
        out.append(record(base + 30, f"cache refreshed {w} entries"))
        out.append(record(base + 31, f"worker {w % 3} heartbeat"))
    return out


def at(window: int, second: float = 0.0) -> float:
    return 1_700_000_000.0 + 60.0 * window + second


def burst() -> list[LogRecord]:
    return [record(at(WINDOWS, i * 0.2), f"worker {i % 3} heartbeat") for i in range(200)]


def new_template() -> list[LogRecord]:
    return [record(at(WINDOWS, 1), "disk quota exceeded on volume vol7")]


def errors() -> list[LogRecord]:
    return [
        record(at(WINDOWS, i), f"GET /api/items/{i} 500 in 9ms", level="ERROR") for i in range(12)
    ]


def rule_hit() -> list[LogRecord]:
    # Same template as the steady GET lines; only the rule sees the difference.
    return [record(at(WINDOWS, i), f"GET /api/oom-killer/{i} 200 in 3ms") for i in (1, 2)]


def more_steady() -> list[LogRecord]:
    return steady(WINDOWS, 5)


CONFIG = LogDetectorConfig(rules=(LogRule("oom", "OOM-KILLER", DetectionSeverity.CRITICAL),))

CASES: list[tuple[str, Callable[[], list[LogRecord]], list[str]]] = [
    ("steady-is-quiet", more_steady, []),
    ("burst-fires-once", burst, ["log_burst"]),
    ("new-template-fires-once", new_template, ["log_new_template"]),
    ("error-share-fires-once", errors, ["log_error_share"]),
    ("rule-fires-once-with-severity", rule_hit, ["log_rule"]),
]


def run(records: list[LogRecord], source: LogSource | None = None) -> list[Detection]:
    source = source or LogSource.create(detector=CONFIG)
    return source.process(records)


@pytest.mark.parametrize(("extra", "kinds"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_detector_fires_on_its_case_only(
    extra: Callable[[], list[LogRecord]], kinds: list[str]
) -> None:
    source = LogSource.create(detector=CONFIG)
    assert run(steady(), source) == []
    detections = run(extra(), source)
    assert [d.detector for d in detections] == kinds
    for d in detections:
        assert d.service == SERVICE and 0.0 <= d.score <= 1.0
        assert d.context["template"] and d.context["examples"] and d.context["count"] >= 1


def test_rule_detection_carries_its_severity() -> None:
    source = LogSource.create(detector=CONFIG)
    run(steady(), source)
    (detection,) = run(rule_hit(), source)
    assert detection.severity == DetectionSeverity.CRITICAL
    assert detection.context["rule"] == "oom"


def test_burst_context_names_the_template() -> None:
    source = LogSource.create(detector=CONFIG)
    run(steady(), source)
    (detection,) = run(burst(), source)
    assert detection.context["template"] == "worker <*> heartbeat"
    assert detection.context["count"] >= CONFIG.burst_min_count


def test_new_templates_are_quiet_during_warmup() -> None:
    assert run([*steady(0, 3), record(at(3, 5), "disk quota exceeded on volume vol7")]) == []


def test_replay_gives_the_same_detection_ids() -> None:
    records = steady() + burst() + errors() + new_template()
    assert [d.id for d in run(records)] == [d.id for d in run(records)]


def test_state_round_trip_mid_stream_changes_nothing() -> None:
    first, second = steady(), burst() + errors() + more_steady()
    straight = LogSource.create(detector=CONFIG)
    straight.process(first)
    restored = LogSource.from_state(straight.to_state())
    assert [d.id for d in restored.process(second)] == [d.id for d in straight.process(second)]
    assert restored.to_state() == straight.to_state()


@pytest.mark.parametrize(
    ("quiet_s", "fires"),
    [(30.0, False), (599.0, False), (601.0, True), (7200.0, True)],
    ids=["just-now", "under-threshold", "over-threshold", "hours"],
)
def test_silence(quiet_s: float, fires: bool) -> None:
    source = LogSource.create(detector=CONFIG)
    run(steady(), source)
    last = source.detector.last_ts
    assert last is not None
    detection = source.detector.check_silence(SERVICE, last + quiet_s)
    assert (detection is not None) == fires
    if detection is not None:
        assert detection.detector == "log_silence"
        assert detection.id == source.detector.check_silence(SERVICE, last + quiet_s + 60).id  # type: ignore[union-attr]


def test_silence_needs_a_warmed_up_source() -> None:
    source = LogSource.create(detector=CONFIG)
    run(steady(0, 2), source)
    assert source.detector.check_silence(SERVICE, at(1000)) is None


def test_new_template_says_what_history_it_is_new_against() -> None:
    source = LogSource.create(detector=CONFIG)
    history = steady()
    run(history, source)
    (detection,) = run(new_template(), source)
    assert detection.context["template"] == "disk quota exceeded on volume <*>"
    assert detection.context["history_records"] == len(history)
    assert detection.context["history_s"] == pytest.approx(
        at(WINDOWS, 1) - history[0].ts.timestamp()
    )
    assert detection.context["templates_known"] == 3


def test_burst_says_how_far_from_its_history() -> None:
    source = LogSource.create(detector=CONFIG)
    run(steady(), source)
    (detection,) = run(burst(), source)
    assert detection.context["ratio"] >= CONFIG.burst_ratio
    assert detection.context["baseline"] == pytest.approx(1.0, abs=0.05)
    assert detection.context["history_windows"] >= CONFIG.baseline_windows
    assert "baseline_std" in detection.context


def test_error_share_names_the_templates_that_err() -> None:
    source = LogSource.create(detector=CONFIG)
    run(steady(), source)
    (detection,) = run(errors(), source)
    (top,) = detection.context["error_templates"]
    assert top["template"] == "GET <*> in <*>" and top["errors"] == detection.context["errors"]
    assert detection.context["baseline_share"] == 0.0
    assert detection.context["history_windows"] >= 1


def test_a_new_value_of_a_known_template_is_not_a_new_template() -> None:
    # Three users log in all along; the fourth user's line makes the position a value and its
    # template folds into the first one's: that is no new kind of event.
    def logins(window: int, names: list[str]) -> list[LogRecord]:
        return [
            record(at(window, 40 + i), f"session opened for user {name} by sshd service")
            for i, name in enumerate(names)
        ]

    source = LogSource.create(detector=CONFIG)
    history = steady() + [r for w in range(WINDOWS) for r in logins(w, ["al", "bo", "cy"])]
    run(sorted(history, key=lambda r: r.ts), source)
    assert run(logins(WINDOWS, ["di"]), source) == []


def test_a_few_errors_early_in_a_window_are_not_a_surge() -> None:
    # Errors are one line in eight all along; a window that opens with 5 errors in 11 lines is
    # what such a share gives by chance now and then, not an error surge.
    source = LogSource.create(detector=CONFIG)
    history = []
    for w in range(WINDOWS):
        for i in range(60):
            level = "ERROR" if i % 8 == 0 else "INFO"
            history.append(record(at(w, i), f"request {i} served", level=level))
    run(history, source)
    levels = ["ERROR"] * 5 + ["INFO"] * 6
    start = at(WINDOWS + 1) // 60 * 60  # the first seconds of a window
    opening = [record(start + i, f"request {i} served", level=lv) for i, lv in enumerate(levels)]
    assert run(opening, source) == []
