"""Foreign formats through the real broker: OTLP, prometheus-kafka-adapter, Vector and Fluent Bit
samples in, canonical batches on ``metrics.points.v1`` / ``logs.records.v1`` out, bad entries on
``<topic>.dlq`` one by one.

The payloads are the formats' own documented samples (tests/fixtures/ingest/, sources in
SOURCES.md there): opentelemetry-proto's examples/metrics.json and logs.json, the
prometheus-kafka-adapter README, Vector's log data model and Fluent Bit's kafka output.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from google.protobuf import json_format
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)

from tests.harness import RunningWorker, consume, produce

pytestmark = pytest.mark.broker

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "ingest"


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def with_service(raw: bytes, top: str, service: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(raw)
    data[top][0]["resource"]["attributes"][0]["value"]["stringValue"] = service
    return data


def entries(batches: list[Any], field: str) -> list[dict[str, Any]]:
    return [entry for batch in batches for entry in batch[field]]


async def test_metrics_from_otlp_and_prometheus_become_points(
    start_worker: Callable[..., RunningWorker],
) -> None:
    worker = start_worker()
    topics = worker.topics
    otlp_json = fixture("otlp_metrics.json")
    proto = json_format.ParseDict(
        with_service(otlp_json, "resourceMetrics", "proto.service"), ExportMetricsServiceRequest()
    ).SerializeToString()
    await produce(worker.bootstrap, topics.otlp_metrics, [(None, otlp_json), (None, proto)])
    readme_sample = fixture("prometheus_adapter.json")  # names no job: dead-lettered
    await produce(
        worker.bootstrap,
        topics.prometheus,
        [(None, fixture("prometheus_adapter_legacy.json")), (None, readme_sample)],
    )

    batches = await consume(
        worker.bootstrap, topics.metrics, lambda v: len(entries(v, "points")) >= 9, timeout_s=30
    )
    points = {(p["service"], p["metric"]): p for p in entries(batches, "points")}
    for service in ("my.service", "proto.service"):
        assert points[(service, "my.counter")]["value"] == 5.0
        assert points[(service, "my.gauge")]["labels"] == {"my.gauge.attr": "some value"}
        assert points[(service, "my.histogram_count")]["value"] == 3.0
        assert points[(service, "my.histogram_sum")]["value"] == 3.0
        assert points[(service, "my.counter")]["ts"] == "2018-12-13T14:51:00.300000Z"
    assert points[("federation", "up")]["value"] == 9876543210.0
    assert len(points) == 9

    otlp_letters = await consume(
        worker.bootstrap, topics.dlq(topics.otlp_metrics), lambda v: len(v) >= 2, timeout_s=20
    )
    assert {d["stage"] for d in otlp_letters} == {"ingest_otlp"}
    assert all("no quantile estimates" in d["error"] for d in otlp_letters)
    [prometheus_letter] = await consume(
        worker.bootstrap, topics.dlq(topics.prometheus), lambda v: len(v) >= 1, timeout_s=20
    )
    assert prometheus_letter["error"] == "no service: none of the labels job, service is set"
    assert json.loads(base64.b64decode(prometheus_letter["value_b64"])) == json.loads(readme_sample)


async def test_logs_from_otlp_vector_and_fluent_bit_become_records(
    start_worker: Callable[..., RunningWorker],
) -> None:
    worker = start_worker()
    topics = worker.topics
    await produce(worker.bootstrap, topics.otlp_logs, [(None, fixture("otlp_logs.json"))])
    vector = json.loads(fixture("vector_log.json"))
    bad = {"custom": "field", "host": "my.host.com"}  # no message: dead-lettered alone
    await produce(
        worker.bootstrap,
        topics.json_logs,
        [
            (None, fixture("vector_log.json")),
            (None, fixture("fluentbit_kubernetes.json")),
            (None, json.dumps([vector, bad]).encode()),
        ],
    )

    batches = await consume(
        worker.bootstrap, topics.logs, lambda v: len(entries(v, "records")) >= 4, timeout_s=30
    )
    records = entries(batches, "records")
    by_service: dict[str, list[dict[str, Any]]] = {}
    for record in records:
        by_service.setdefault(record["service"], []).append(record)
    [otel] = by_service["my.service"]
    assert otel["message"] == "Example log record"
    assert otel["level"] == "Information"
    assert otel["attributes"]["trace_id"] == "5b8efff798038103d269b633813fc60c"
    assert [r["message"] for r in by_service["my.host.com"]] == ["Hello world", "Hello world"]
    assert by_service["my.host.com"][0]["ts"] == "2020-11-01T21:15:47Z"
    [fluent] = by_service["fluentbit-xxxx"]
    assert fluent["message"] == "GET /index.html 200"
    assert fluent["ts"] == "2024-04-18T15:24:13.250000Z"
    assert len(records) == 4

    [letter] = await consume(
        worker.bootstrap, topics.dlq(topics.json_logs), lambda v: len(v) >= 1, timeout_s=20
    )
    assert letter["stage"] == "ingest_jsonlogs"
    assert letter["error"] == "1: no message: none of the fields message, msg, log holds text"
    assert json.loads(base64.b64decode(letter["value_b64"])) == bad
