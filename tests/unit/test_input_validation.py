"""Hostile but well-formed input: control characters in names, oversized labels, times far ahead
of their arrival, and backfilled detections, each refused (or kept quiet) with the reason."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from responders.correlation import Group, Timing, late, on_detection_in_group
from responders.lifecycle import on_detection
from schemas import Catalog, Command, Detection, IncidentEventKind, LogRecord, MetricPoint
from schemas.alerts import AlertmanagerWebhook, PagerDutyEvent
from schemas.common import format_errors, received
from streams.codec import arrival, decode_batchable, decode_one, decode_points, decode_points_many

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
NOW_S = NOW.timestamp()
POINT = {"ts": NOW_S, "service": "api", "metric": "latency", "value": 1.0}
DETECTION = {"id": "d1", "ts": NOW_S, "service": "api", "signal": "latency", "detector": "x",
             "score": 1.0}  # fmt: skip
COMMAND = {"id": "c1", "kind": "note", "incident_id": "inc-1", "routing_key": "api",
           "issued_at": NOW_S}  # fmt: skip
LOG = {"ts": NOW_S, "service": "api", "message": "hello"}


def _reason(model: type[BaseModel], data: dict[str, Any], context: Any = None) -> str:
    decoded = decode_one(json.dumps(data).encode(), model, context)
    assert not decoded.items, f"{data!r} was accepted"
    return decoded.rejected[0].reason


# -- names ---------------------------------------------------------------------------------------

CONTROLS = {
    "cr-lf": "api\r\nBcc: x@example.com",
    "lf": "api\nx",
    "nul": "api\x00",
    "tab": "a\tpi",
    "esc": "api\x1b[31m",
    "del": "api\x7f",
    "c1-nel": "api\x85x",
    "line-separator": "api\u2028x",
    "paragraph-separator": "api\u2029x",
}


@pytest.mark.parametrize(
    ("model", "base", "field"),
    [
        (MetricPoint, POINT, "service"),
        (MetricPoint, POINT, "metric"),
        (LogRecord, LOG, "service"),
        (Detection, DETECTION, "service"),
        (Detection, DETECTION, "signal"),
        (Detection, DETECTION, "detector"),
        (Detection, DETECTION, "dedup_key"),
        (Command, COMMAND, "actor"),
        (Command, COMMAND, "routing_key"),
        (Command, COMMAND, "person"),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
@pytest.mark.parametrize("text", list(CONTROLS.values()), ids=list(CONTROLS))
def test_control_characters_in_names_are_refused_naming_the_field(
    model: type[BaseModel], base: dict[str, Any], field: str, text: str
) -> None:
    reason = _reason(model, {**base, field: text})
    assert reason.startswith(f"{field}: holds the control character U+"), reason


def test_plain_unicode_names_are_kept() -> None:
    point = MetricPoint.model_validate(
        {**POINT, "service": "zahlungsdienst-ü-東京", "metric": "p99"}
    )
    assert point.service == "zahlungsdienst-ü-東京"


LABELS_BAD = [
    ({f"k{i}": "v" for i in range(33)}, "labels: 33 labels; at most 32"),
    ({"k" * 129: "v"}, "labels: key 'kkkk"),
    ({"": "v"}, "labels: key '': a label key has 1 to 128 characters"),
    ({"k": "v" * 1025}, "labels: value of 'k' has 1025 characters; at most 1024"),
    ({"k\n": "v"}, "labels: key holds the control character U+000A"),
    ({"k": "v\r\n"}, "labels: value of 'k' holds the control character U+000D"),
    ({"k": "\u2028"}, "labels: value of 'k' holds the control character U+2028"),
]
LABEL_IDS = ["count", "long-key", "empty-key", "long-value", "key-lf", "value-crlf", "value-u2028"]


@pytest.mark.parametrize(("labels", "reason"), LABELS_BAD, ids=LABEL_IDS)
def test_label_limits_point_and_detection(labels: dict[str, str], reason: str) -> None:
    assert _reason(MetricPoint, {**POINT, "labels": labels}).startswith(reason)
    assert _reason(Detection, {**DETECTION, "labels": labels}).startswith(reason)
    webhook = {"status": "firing", "alerts": [{"status": "firing", "labels": labels,
                                               "startsAt": "2026-12-07T12:00:00Z"}]}  # fmt: skip
    with pytest.raises(ValidationError) as caught:
        AlertmanagerWebhook.model_validate(webhook)
    assert "alerts.0.labels" in str(caught.value)


def test_labels_at_their_limits_are_kept() -> None:
    labels = {f"{i:03d}" + "k" * 125: "v" * 1024 for i in range(32)}
    assert MetricPoint.model_validate({**POINT, "labels": labels}).labels == labels


# -- the codec's fast paths apply the same checks ---------------------------------------------


def _message(*points: dict[str, Any]) -> bytes:
    return json.dumps({"points": list(points)}).encode()


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        ({**POINT, "service": "api\r\nx"}, "points.1.service: holds the control character U+000D"),
        ({**POINT, "metric": "p\x0099"}, "points.1.metric: holds the control character U+0000"),
        ({**POINT, "labels": {"k": "v\n"}}, "points.1.labels: value of 'k' holds the control"),
        ({**POINT, "labels": {f"k{i}": "v" for i in range(40)}}, "points.1.labels: 40 labels"),
        ({**POINT, "labels": {"k": "v" * 2000}}, "points.1.labels: value of 'k' has 2000"),
    ],
    ids=["service-crlf", "metric-nul", "label-lf", "label-count", "label-length"],
)
def test_fast_paths_reject_what_the_model_rejects(bad: dict[str, Any], reason: str) -> None:
    good = {**POINT, "service": "web"}
    raw = _message(good, bad, {**good, "ts": NOW_S + 1})
    single = decode_points(raw)
    many = decode_points_many([raw, _message(good)])
    for rejected, series in ((single.rejected, single.series), (many.rejected[0], many.series)):
        assert [r.reason[: len(reason)] for r in rejected] == [reason]
        assert series[:2] == ["web|latency", "web|latency"]
    assert many.spans == [(0, 2), (2, 3)]


KEYS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJ"


@pytest.mark.parametrize(
    ("labels", "kept"),
    [
        ({k: "" for k in KEYS[:32]}, True),
        ({k: "" for k in KEYS[:33]}, False),
        ({"": "v"}, False),
        ({"a": "", "": ""}, False),
        ({"k" * 128: "v" * 1024}, True),
        ({"k" * 129: "v"}, False),
    ],
    ids=["32-short", "33-short", "empty-key", "empty-key-second", "longest", "key-too-long"],
)
def test_fast_paths_label_limits_at_their_edges(labels: dict[str, str], kept: bool) -> None:
    """The fast paths skip the per-label checks for a short series id: its edges."""
    raw = _message({**POINT, "service": "s", "metric": "m", "labels": labels})
    for series in (decode_points(raw).series, decode_points_many([raw]).series):
        assert len(series) == int(kept)


def test_surrounding_line_breaks_are_stripped_by_every_path() -> None:
    """A name's surrounding whitespace (a trailing newline too) is stripped, as before; inside
    a name a line break is refused."""
    decode_points_many([_message({**POINT, "service": "seen"})])  # its id is remembered valid
    trailing = decode_points_many([_message({**POINT, "service": "seen\r\n"})])
    assert trailing.series == ["seen|latency"] and trailing.rejected == [[]]
    inside = decode_points_many([_message({**POINT, "service": "se\r\nen"})])
    assert inside.series == []
    assert inside.rejected[0][0].reason.startswith("points.0.service: holds")


# -- times ahead of their arrival -----------------------------------------------------------------

TEN_YEARS_S = 10 * 365 * 86400.0


@pytest.mark.parametrize(
    ("ahead_s", "kept"),
    [(-86400.0, True), (0.0, True), (300.0, True), (301.0, False), (TEN_YEARS_S, False)],
    ids=["yesterday", "now", "at-the-bound", "past-the-bound", "ten-years"],
)
def test_points_ahead_of_their_arrival(ahead_s: float, kept: bool) -> None:
    far = {**POINT, "ts": NOW_S + ahead_s}
    raw = _message(POINT, far)
    single = decode_points(raw, NOW_S, 300.0)
    many = decode_points_many([raw], [NOW_S], 300.0)
    for series, rejected in ((single.series, single.rejected), (many.series, many.rejected[0])):
        assert len(series) == (2 if kept else 1)
        reasons = [r.reason for r in rejected]
        if kept:
            assert reasons == []
            continue
        assert len(reasons) == 1
        assert reasons[0].startswith("points.1.ts: timestamp ")
        assert "after the message was received (2026-12-07T12:00:00Z)" in reasons[0]
        assert "at most 300 s of clock skew is allowed" in reasons[0]


def test_points_without_an_arrival_are_not_bounded() -> None:
    """Offline decoding (``warroom detect``, benches) has no arrival time to compare with."""
    raw = _message({**POINT, "ts": NOW_S + TEN_YEARS_S})
    assert len(decode_points(raw).series) == 1


def test_a_record_without_a_timestamp_is_not_bounded() -> None:
    """Kafka gives -1 for a record without a timestamp: nothing to compare with."""
    raw = _message({**POINT, "ts": NOW_S + TEN_YEARS_S})
    assert len(decode_points(raw, -0.001, 300.0).series) == 1
    assert decode_points_many([raw], [-0.001], 300.0).spans == [(0, 1)]
    assert arrival(-0.001, 300.0) is None and arrival(None, 300.0) is None


def test_each_message_has_its_own_arrival() -> None:
    raw = _message({**POINT, "ts": NOW_S + 3600})
    decoded = decode_points_many([raw, raw], [NOW_S, NOW_S + 3600], 300.0)
    assert decoded.spans == [(0, 0), (0, 1)]
    assert len(decoded.rejected[0]) == 1 and decoded.rejected[1] == []


@pytest.mark.parametrize(
    ("model", "data", "field"),
    [
        (Detection, {**DETECTION, "ts": NOW_S + TEN_YEARS_S}, "ts"),
        (Detection, {**DETECTION, "impact_started_at": NOW_S + 3600}, "impact_started_at"),
        (Detection, {**DETECTION, "received_at": NOW_S + 3600}, "received_at"),
        (Command, {**COMMAND, "issued_at": NOW_S + TEN_YEARS_S}, "issued_at"),
        (Command, {**COMMAND, "at": "2036-12-07T12:00:00Z"}, "at"),
        (LogRecord, {**LOG, "ts": NOW_S + 600}, "ts"),
    ],
    ids=[
        "detection-ts",
        "detection-impact",
        "detection-received",
        "command-issued",
        "command-at",
        "log-ts",
    ],
)
def test_times_ahead_of_arrival_are_refused(
    model: type[BaseModel], data: dict[str, Any], field: str
) -> None:
    context = arrival(NOW_S, 300.0)
    assert _reason(model, data, context).startswith(f"{field}: timestamp ")
    assert decode_one(json.dumps(data).encode(), model).items  # without an arrival: kept


def test_log_batches_keep_their_timely_records() -> None:
    raw = json.dumps({"records": [LOG, {**LOG, "ts": NOW_S + 3600}]}).encode()
    decoded = decode_batchable(raw, LogRecord, "records", arrival(NOW_S, 300.0))
    assert len(decoded.items) == 1
    assert decoded.rejected[0].reason.startswith("records.1.ts: timestamp ")


def test_inbound_alerts_ahead_of_the_request_are_refused() -> None:
    context = received(NOW, 300.0)
    event = {"event_action": "trigger", "payload": {"summary": "s", "source": "api",
             "severity": "error", "timestamp": "2036-12-07T12:00:00Z"}}  # fmt: skip
    with pytest.raises(ValidationError, match=r"payload\.timestamp"):
        PagerDutyEvent.model_validate(event, context=context)
    webhook = {"status": "firing", "alerts": [{"status": "firing", "labels": {},
               "startsAt": "2036-12-07T12:00:00Z"}]}  # fmt: skip
    with pytest.raises(ValidationError, match=r"alerts\.0\.startsAt"):
        AlertmanagerWebhook.model_validate(webhook, context=context)


# -- lateness: backfilled detections are recorded, not paged --------------------------------------

CATALOG = Catalog.model_validate(
    {
        "services": {"api": {"team": "core", "tier": 1}},
        "teams": {"core": {"escalation": [{"targets": ["ann"]}]}},
        "people": {"ann": {"contacts": [{"channel": "console"}]}},
    }
)
OPEN_AT_ONCE = Timing(group_wait_s=0)
HOUR = 3600.0


def _detection(age_s: float | None, status: str = "firing", n: int = 1) -> Detection:
    """A detection on a point ``age_s`` old when it was received (None: no arrival time)."""
    return Detection(
        id=f"d{n}", ts=NOW - timedelta(seconds=age_s or 0), service="api", signal=f"s{n}",
        detector="x", score=1.0, status=status,
        received_at=NOW if age_s is not None else None,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("age_s", "status", "expected"),
    [
        (None, "firing", False),
        (0.0, "firing", False),
        (HOUR, "firing", False),
        (HOUR + 1, "firing", True),
        (20 * HOUR, "firing", True),
        (20 * HOUR, "resolved", False),
    ],
    ids=["no-arrival", "live", "at-the-bound", "past-the-bound", "20-hours", "late-resolve"],
)
def test_late(age_s: float | None, status: str, expected: bool) -> None:
    assert late(_detection(age_s, status), HOUR) is expected


@pytest.mark.parametrize(
    ("age_s", "opened", "pages"),
    [(0.0, True, 1), (59 * 60.0, True, 1), (20 * HOUR, False, 0)],
    ids=["live", "59-minutes", "20-hours"],
)
def test_a_backfilled_detection_opens_nothing_and_pages_nobody(
    age_s: float, opened: bool, pages: int
) -> None:
    step = on_detection_in_group(
        Group("api"), None, _detection(age_s), CATALOG, OPEN_AT_ONCE, NOW, max_lateness_s=HOUR
    )
    assert step.outcome.opened is opened
    assert len(step.outcome.pages) == pages
    assert (step.group.incident_id is not None) is opened
    assert not step.group.held


def test_a_backfilled_detection_is_recorded_on_the_open_incident_without_a_page() -> None:
    opened = on_detection(None, _detection(0.0), CATALOG, NOW, key="api")
    incident = opened.incident
    assert incident is not None
    group = Group(
        "api", incident_id=incident.id, firing=("s1",), last_update_at=NOW - timedelta(hours=1)
    )
    later = NOW + timedelta(minutes=10)
    step = on_detection_in_group(
        group,
        incident,
        _detection(20 * HOUR, n=2),
        CATALOG,
        OPEN_AT_ONCE,
        later,
        max_lateness_s=HOUR,
    )
    assert [e.kind for e in step.outcome.events] == [IncidentEventKind.DETECTION_ATTACHED]
    assert step.outcome.pages == ()
    assert step.group.unannounced == () and step.group.firing == ("s1",)
    # The same detection on time would announce its new signal to the responders.
    on_time = on_detection_in_group(
        group, incident, _detection(0.0, n=2), CATALOG, OPEN_AT_ONCE, later, max_lateness_s=HOUR
    )
    assert len(on_time.outcome.pages) == 1


# -- the catalog: what reaches a notification -------------------------------------------------


@pytest.mark.parametrize(
    ("person", "reason"),
    [
        (
            {"name": "Ann\r\nBcc: x@example.com", "contacts": [{"channel": "console"}]},
            "people.ann.name: holds the control character U+000D",
        ),
        (
            {"contacts": [{"channel": "email", "address": "ann@example.com\n"}]},
            "an email contact needs an address like name@example.com",
        ),
    ],
    ids=["display-name-crlf", "email-trailing-newline"],
)
def test_catalog_refuses_control_characters_that_reach_notifications(
    person: dict[str, Any], reason: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        Catalog.model_validate({"people": {"ann": person}})
    assert reason in format_errors(caught.value)
    with pytest.raises(ValidationError, match="holds the control character"):
        Catalog.model_validate({"people": {"an\nn": {"contacts": [{"channel": "console"}]}}})


@pytest.mark.parametrize(
    "ts",
    ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00", "9999-12-31T00:00:00Z",
     "1969-12-31T23:59:59Z"],
    ids=["year-1-east", "year-9999-west", "year-9999", "before-1970"],
)  # fmt: skip
def test_timestamps_outside_1970_to_2200_are_refused_never_raised(ts: str) -> None:
    from pydantic import ValidationError

    from schemas import MetricPoint

    with pytest.raises(ValidationError) as caught:
        MetricPoint.model_validate({"ts": ts, "service": "s", "metric": "m", "value": 1})
    assert "out of range" in str(caught.value)


def test_a_lone_surrogate_in_a_batch_entry_is_dead_lettered_not_raised() -> None:
    from streams.codec import decode_points

    raw = (
        b'{"points":[{"ts":1796622000,"service":"ok","metric":"m","value":1},'
        b'{"ts":1796622000,"service":"x","metric":"m","value":"\\ud800"}]}'
    )
    decoded = decode_points(raw)
    assert [p.service for p in decoded.points] == ["ok"]
    assert len(decoded.rejected) == 1
