"""JSON log decoding, from the samples in Vector's and Fluent Bit's documentation.

Samples (tests/fixtures/ingest/, sources in SOURCES.md there):
- Vector's log event: https://vector.dev/docs/architecture/data-model/log/ (the kafka sink
  writes it as is with ``encoding.codec = "json"``).
- Fluent Bit's kafka output (``format json``, ``@timestamp`` as a double):
  https://docs.fluentbit.io/manual/pipeline/outputs/kafka, with the ``dummy`` input's record
  and a record enriched by the Kubernetes filter
  (https://docs.fluentbit.io/manual/pipeline/filters/kubernetes).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from streams.ingest import jsonlogs
from streams.settings import IngestMappings

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "ingest"
MAPPINGS = IngestMappings()


def test_a_vector_event() -> None:
    raw = (FIXTURES / "vector_log.json").read_bytes()
    [record] = jsonlogs.decode(raw, MAPPINGS).items
    assert record.ts == datetime(2020, 11, 1, 21, 15, 47, tzinfo=UTC)
    assert record.message == "Hello world"
    assert record.service == "my.host.com"  # no service field: the host
    assert record.level is None
    assert record.attributes == {"custom": "field", "host": "my.host.com"}


def test_a_fluent_bit_record_with_a_float_timestamp() -> None:
    raw = (FIXTURES / "fluentbit_dummy.json").read_bytes()
    decoded = jsonlogs.decode(raw, IngestMappings(default_service="edge"))
    [record] = decoded.items
    assert record.ts.timestamp() == 1713453853.25
    assert record.message == "dummy"
    assert record.service == "edge"
    # Without a service field or a default, it is rejected with the fields that were tried.
    [bad] = jsonlogs.decode(raw, MAPPINGS).rejected
    assert bad.reason.startswith("no service: none of the fields service, service.name, ")


def test_a_fluent_bit_kubernetes_record() -> None:
    raw = (FIXTURES / "fluentbit_kubernetes.json").read_bytes()
    [record] = jsonlogs.decode(raw, MAPPINGS).items
    assert record.message == "GET /index.html 200"
    assert record.service == "fluentbit-xxxx"  # kubernetes.labels.k8s-app
    assert record.attributes["stream"] == "stdout"
    assert record.attributes["kubernetes"]["namespace_name"] == "kube-system"
    assert "log" not in record.attributes and "@timestamp" not in record.attributes


COMMON = [
    {"msg": "m", "severity": "ERROR", "service.name": "api", "time": 1.5e12},
    {"log": "m", "log.level": "warn", "service": "db", "date": 1700000000.5},
    {
        "message": "m",
        "log": {"level": "info"},
        "kubernetes": {"labels": {"app": "web"}},
        "@timestamp": "2024-01-01T00:00:00Z",
    },
    {"message": "m", "level": "debug", "host": "h1", "timestamp": "1700000000"},
]


@pytest.mark.parametrize(
    ("event", "expected"),
    list(
        zip(
            COMMON,
            [
                ("api", "ERROR", 1500000000.0),
                ("db", "warn", 1700000000.5),
                ("web", "info", 1704067200.0),
                ("h1", "debug", 1700000000.0),
            ],
            strict=True,
        )
    ),
    ids=["msg-severity-ms", "log-flat-level-date", "nested-level-k8s-app", "numeric-string-time"],
)
def test_common_field_names(event: dict[str, Any], expected: tuple[str, str, float]) -> None:
    [record] = jsonlogs.decode(json.dumps(event).encode(), MAPPINGS).items
    assert (record.service, record.level, record.ts.timestamp()) == expected


def test_mappings_are_configurable() -> None:
    mappings = IngestMappings(
        json_time_fields=("ts",), json_message_fields=("text",), json_service_fields=("app",)
    )
    raw = json.dumps({"ts": 1700000000, "text": "hello", "app": "svc"}).encode()
    [record] = jsonlogs.decode(raw, mappings).items
    assert (record.service, record.message) == ("svc", "hello")


def test_an_event_without_time_takes_the_kafka_timestamp() -> None:
    raw = json.dumps({"message": "m", "service": "s"}).encode()
    [record] = jsonlogs.decode(raw, MAPPINGS, fallback_ts=1700000000.0).items
    assert record.ts.timestamp() == 1700000000.0
    [bad] = jsonlogs.decode(raw, MAPPINGS).rejected
    assert bad.reason == "no time: none of the fields timestamp, @timestamp, time, date is set"
