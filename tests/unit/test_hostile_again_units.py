"""Hostile values on the pure code: JSON integers no float holds where a time or delay goes,
Slack timestamps of thousands of digits, and catalog delays beyond any calendar.

Each must be refused with a reason that names the field (a dead letter, a 4xx, a config error),
never raise an exception the callers do not expect (``OverflowError`` is not a ``ValueError``,
so pydantic lets it through)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import TypeAdapter, ValidationError

from responders.access import slack_problem, slack_signature
from responders.oncall import escalation_plan, next_due, policy_for
from schemas import Command, Detection, LogRecord, MetricPoint, Timestamp
from schemas.catalog import Catalog
from streams.codec import decode_batchable, decode_one
from streams.ingest import jsonlogs, otlp, prometheus
from streams.settings import IngestMappings

HUGE = 10**400


@pytest.mark.parametrize("value", [HUGE, -HUGE, 2**1024], ids=["1e400", "minus-1e400", "2e1024"])
def test_a_timestamp_of_a_huge_integer_is_a_validation_error(value: int) -> None:
    with pytest.raises(ValidationError, match="timestamp"):
        TypeAdapter(Timestamp).validate_python(value)


@pytest.mark.parametrize(
    ("raw", "model", "batch_key"),
    [
        (b'{"ts": %d, "service": "a", "metric": "m", "value": 1}', MetricPoint, "points"),
        (b'{"points": [{"ts": %d, "service": "a", "metric": "m", "value": 1}]}', MetricPoint,
         "points"),
        (b'{"ts": %d, "service": "a", "message": "m"}', LogRecord, "records"),
    ],
    ids=["point", "point-in-batch", "log-record"],
)  # fmt: skip
def test_a_huge_integer_time_is_rejected_by_the_batch_decoder(
    raw: bytes, model: Any, batch_key: str
) -> None:
    decoded = decode_batchable(raw % HUGE, model, batch_key)
    assert not decoded.items
    assert len(decoded.rejected) == 1 and "ts" in decoded.rejected[0].reason


@pytest.mark.parametrize(
    ("raw", "model"),
    [
        (b'{"id": "d1", "ts": %d, "service": "a", "signal": "s", "detector": "d", "score": 1, '
         b'"severity": "critical"}', Detection),
        (b'{"id": "c1", "kind": "note", "incident_id": "i", "routing_key": "a", "actor": "x", '
         b'"issued_at": %d, "text": "t"}', Command),
    ],
    ids=["detection", "command"],
)  # fmt: skip
def test_a_huge_integer_time_is_rejected_by_the_single_decoder(raw: bytes, model: Any) -> None:
    decoded = decode_one(raw % HUGE, model)
    assert not decoded.items and len(decoded.rejected) == 1


@pytest.mark.parametrize(
    "timestamp", ["9" * 4000, "-" + "9" * 4000, "9" * 400], ids=["4000", "minus-4000", "400"]
)
def test_a_slack_timestamp_of_thousands_of_digits_is_a_problem_not_an_exception(
    timestamp: str,
) -> None:
    body = b"payload=%7B%7D"
    signature = slack_signature(b"secret", timestamp, body)
    problem = slack_problem(b"secret", timestamp, signature, body, now_s=1_700_000_000.0)
    assert problem is not None and "X-Slack-Request-Timestamp" in problem


def _catalog(delay_s: float) -> dict[str, Any]:
    return {
        "services": {"s": {"team": "core", "tier": 1}},
        "teams": {
            "core": {"escalation": [{"targets": ["ann"]}, {"targets": ["ann"], "delay_s": delay_s}]}
        },
        "people": {"ann": {"contacts": [{"channel": "console"}]}},
    }


@pytest.mark.parametrize("delay_s", [1e300, 1e13], ids=["1e300", "1e13"])
def test_an_escalation_delay_beyond_the_calendar_is_refused_naming_the_field(
    delay_s: float,
) -> None:
    """Accepted, such a delay makes every escalation of the team raise ``OverflowError``."""
    with pytest.raises(ValidationError, match="delay_s"):
        Catalog.model_validate(_catalog(delay_s))


@pytest.mark.parametrize("delay_s", [60.0, 7 * 86_400.0])
def test_an_ordinary_escalation_delay_plans(delay_s: float) -> None:
    catalog = Catalog.model_validate(_catalog(delay_s))
    found = policy_for(catalog, "s")
    assert found is not None
    opened = datetime(2026, 1, 1, tzinfo=UTC)
    assert next_due(catalog, found[0], 0, opened) is not None
    assert len(escalation_plan(catalog, "s", opened)) == 2


# --- ingest formats: one huge time among valid entries ------------------------------------------

_BIG = "1" + "0" * 400
_RESOURCE = {"attributes": [{"key": "service.name", "value": {"stringValue": "s"}}]}
_GOOD_NANOS = "1700000000000000000"


def _otlp_metrics(*nanos: str) -> bytes:
    points = [{"timeUnixNano": n, "asDouble": 1.0} for n in nanos]
    metric = {"name": "m", "gauge": {"dataPoints": points}}
    return json.dumps(
        {"resourceMetrics": [{"resource": _RESOURCE, "scopeMetrics": [{"metrics": [metric]}]}]}
    ).encode()


def _otlp_logs(*nanos: str) -> bytes:
    records = [{"timeUnixNano": n, "body": {"stringValue": "x"}} for n in nanos]
    return json.dumps(
        {"resourceLogs": [{"resource": _RESOURCE, "scopeLogs": [{"logRecords": records}]}]}
    ).encode()


def _prometheus(*stamps: str) -> bytes:
    entries = ", ".join(
        f'{{"labels": {{"__name__": "m", "job": "s"}}, "value": "1", "timestamp": {s}}}'
        for s in stamps
    )
    return f"[{entries}]".encode()


@pytest.mark.parametrize(
    ("decode", "raw"),
    [
        (lambda raw: otlp.decode_metrics(raw, IngestMappings()),
         _otlp_metrics(_GOOD_NANOS, _BIG)),
        (lambda raw: otlp.decode_logs(raw, IngestMappings()), _otlp_logs(_GOOD_NANOS, _BIG)),
        (lambda raw: prometheus.decode(raw, IngestMappings()), _prometheus("1700000000", _BIG)),
        (lambda raw: jsonlogs.decode(raw, IngestMappings(), fallback_ts=1.7e9),
         b'{"time": %s, "service": "s", "msg": "x"}' % _BIG.encode()),
    ],
    ids=["otlp-metrics", "otlp-logs", "prometheus", "json-log-time"],
)  # fmt: skip
def test_a_huge_time_in_an_ingest_format_is_rejected_not_raised(decode: Any, raw: bytes) -> None:
    """Raised, it dead-letters the whole export (the valid entries with it) with an
    ``OverflowError`` instead of the entry's field."""
    decoded = decode(raw)
    assert decoded.rejected, decoded


# --- delivery decisions with a destination's hostile error text ---------------------------------


@pytest.mark.parametrize(
    "detail",
    ["\ud800 lone surrogate", "\x00\x1b[31mred", "x" * 2_000_000, "", None],
    ids=["surrogate", "controls", "two-megabytes", "empty", "none"],
)
def test_a_destinations_error_text_always_makes_a_delivery_failed_command(
    detail: str | None,
) -> None:
    """The error text comes from the destination (an exception's message, a reply): whatever it
    holds, the incident is told its page reached nobody, so escalation goes on."""
    from responders.delivery import delivery_failed
    from streams.codec import encode
    from tests.unit.test_delivery_decisions import page

    command = delivery_failed(page(), detail, datetime(2026, 5, 4, 12, 0, tzinfo=UTC))
    assert command.text and len(encode(command)) < 100_000
