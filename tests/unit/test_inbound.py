"""Alertmanager and PagerDuty payloads as detections."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from responders.inbound import from_alertmanager, from_pagerduty, pagerduty_dedup_key
from responders.lifecycle import routing_key
from schemas import format_errors
from schemas.alerts import AlertmanagerWebhook, PagerDutyEvent

NOW = datetime(2026, 11, 27, 12, tzinfo=UTC)

# The shape of Alertmanager's webhook payload (docs: configuration, <webhook_config>).
AM = {
    "version": "4",
    "groupKey": '{}:{alertname="HighLatency"}',
    "truncatedAlerts": 0,
    "status": "firing",
    "receiver": "warroom",
    "groupLabels": {"alertname": "HighLatency"},
    "commonLabels": {"alertname": "HighLatency", "job": "api"},
    "commonAnnotations": {},
    "externalURL": "http://alertmanager:9093",
    "alerts": [
        {
            "status": "firing",
            "labels": {"alertname": "HighLatency", "job": "api", "severity": "page"},
            "annotations": {"summary": "p99 over 2s"},
            "startsAt": "2026-11-27T11:50:00.000Z",
            "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": "http://prometheus:9090/graph?g0.expr=...",
            "fingerprint": "1c9a3b2d4e5f6a7b",
        },
        {
            "status": "resolved",
            "labels": {"alertname": "HighLatency", "job": "web", "severity": "warning"},
            "annotations": {},
            "startsAt": "2026-11-27T11:00:00Z",
            "endsAt": "2026-11-27T11:40:00Z",
            "fingerprint": "aa",
        },
    ],
}


def test_alertmanager_alerts_become_detections() -> None:
    firing, resolved = from_alertmanager(AlertmanagerWebhook.model_validate(AM), NOW)
    assert (firing.service, firing.severity.value, firing.status.value) == (
        "api",
        "critical",
        "firing",
    )
    assert firing.impact_started_at == datetime(2026, 11, 27, 11, 50, tzinfo=UTC)
    assert firing.auto_resolve and firing.context["summary"] == "p99 over 2s"
    assert resolved.status.value == "resolved"
    assert resolved.ts == datetime(2026, 11, 27, 11, 40, tzinfo=UTC)
    again = from_alertmanager(AlertmanagerWebhook.model_validate(AM), NOW)
    assert [d.id for d in again] == [firing.id, resolved.id]  # redelivery: same ids


@pytest.mark.parametrize(
    ("event", "error"),
    [
        ({"event_action": "trigger", "payload": {"summary": "x", "source": "y", "severity": "bad"}},
         "payload.severity"),
        ({"event_action": "page"}, "event_action"),
        ({"event_action": "trigger", "payload": {"source": "y", "severity": "info"}},
         "payload.summary: Field required"),
    ],
    ids=["severity", "action", "summary"],
)  # fmt: skip
def test_pagerduty_errors_name_the_field(event: dict[str, object], error: str) -> None:
    with pytest.raises(ValidationError) as caught:
        PagerDutyEvent.model_validate(event)
    assert error in format_errors(caught.value)


def test_pagerduty_trigger_and_resolve_share_a_group() -> None:
    trigger = PagerDutyEvent.model_validate(
        {"routing_key": "r", "event_action": "trigger", "dedup_key": "k1",
         "payload": {"summary": "Disk full", "source": "db1", "severity": "error"}}
    )  # fmt: skip
    resolve = PagerDutyEvent.model_validate({"event_action": "resolve", "dedup_key": "k1"})
    t, r = from_pagerduty(trigger, NOW), from_pagerduty(resolve, NOW)
    assert routing_key(t) == routing_key(r) == "dedup:k1"
    assert (t.status.value, r.status.value) == ("firing", "resolved")
    assert t.signal == r.signal == "k1" and t.service == "db1"
    no_key = trigger.model_copy(update={"dedup_key": None})
    assert pagerduty_dedup_key(no_key) == pagerduty_dedup_key(no_key)  # derived, stable
