"""OTLP decoding, from the samples in opentelemetry-proto's own ``examples/`` folder.

Samples: https://github.com/open-telemetry/opentelemetry-proto/blob/main/examples/metrics.json
and https://github.com/open-telemetry/opentelemetry-proto/blob/main/examples/logs.json
(stored in tests/fixtures/ingest/). The protobuf cases encode the same samples with the official
``opentelemetry-proto`` messages, as the collector's ``otlp_proto`` encoding does.
"""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from google.protobuf import json_format
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)

from streams.ingest import otlp
from streams.settings import IngestMappings

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "ingest"
MAPPINGS = IngestMappings()
TS = datetime(2018, 12, 13, 14, 51, 0, 300000, tzinfo=UTC)  # 1544712660300000000 ns


def sample(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / name).read_text())
    return data


def as_proto_logs(data: dict[str, Any]) -> bytes:
    """OTLP JSON writes trace/span ids as hex; protobuf's JSON mapping expects base64."""
    data = json.loads(json.dumps(data))
    for resource in data["resourceLogs"]:
        for scope in resource["scopeLogs"]:
            for record in scope["logRecords"]:
                for key in ("traceId", "spanId"):
                    if key in record:
                        record[key] = base64.b64encode(bytes.fromhex(record[key])).decode()
    message = json_format.ParseDict(data, ExportLogsServiceRequest())
    return bytes(message.SerializeToString())


def as_proto_metrics(data: dict[str, Any]) -> bytes:
    message = json_format.ParseDict(data, ExportMetricsServiceRequest())
    return bytes(message.SerializeToString())


def summary(points: list[Any]) -> list[tuple[str, float, dict[str, str]]]:
    return [(p.metric, p.value, p.labels) for p in points]


EXPECTED_METRICS = [
    ("my.counter", 5.0, {"my.counter.attr": "some value"}),
    ("my.gauge", 10.0, {"my.gauge.attr": "some value"}),
    ("my.histogram_count", 3.0, {"my.histogram.attr": "some value"}),
    ("my.histogram_sum", 3.0, {"my.histogram.attr": "some value"}),
]


@pytest.mark.parametrize(
    "encode",
    [lambda d: json.dumps(d).encode(), as_proto_metrics],
    ids=["otlp_json", "otlp_proto"],
)
def test_the_specification_metrics_example_decodes_into_points(encode: Any) -> None:
    raw = encode(sample("otlp_metrics.json"))
    decoded = otlp.decode_metrics(raw, MAPPINGS)
    assert summary(decoded.items) == EXPECTED_METRICS
    assert {p.service for p in decoded.items} == {"my.service"}
    assert {p.ts for p in decoded.items} == {TS}
    # The example's histogram has 3 bucket counts for 1 bound (a valid one has 2): its count
    # and sum are kept, and the quantile estimates are dead-lettered with that reason.
    [bad] = decoded.rejected
    assert bad.reason == (
        "resourceMetrics.0.scopeMetrics.0.metrics.2.histogram.dataPoints.0: bucketCounts has 3 "
        "entries for 1 explicitBounds (expected 2): no quantile estimates"
    )
    assert json.loads(bad.payload)["name"] == "my.histogram"


def test_histograms_with_bounds_get_quantile_estimates() -> None:
    data = sample("otlp_metrics.json")
    histogram = data["resourceMetrics"][0]["scopeMetrics"][0]["metrics"][2]["histogram"]
    point = histogram["dataPoints"][0]
    point.update({"count": 10, "sum": 120, "bucketCounts": [2, 6, 2], "explicitBounds": [5, 15]})
    del point["min"], point["max"]
    decoded = otlp.decode_metrics(json.dumps(data).encode(), MAPPINGS)
    assert decoded.rejected == []
    values = {p.metric: p.value for p in decoded.items if p.metric.startswith("my.histogram")}
    assert values == {
        "my.histogram_count": 10.0,
        "my.histogram_sum": 120.0,
        "my.histogram_p50": 10.0,  # rank 5 of 10: halfway through (5, 15]
        "my.histogram_p90": 15.0,  # rank 9: the end of (5, 15]
        "my.histogram_p99": 15.0,  # overflow bucket without max: the last bound
    }


@pytest.mark.parametrize(
    ("q", "bounds", "counts", "low", "high", "expected"),
    [
        (0.5, [10.0, 20.0], [0.0, 10.0, 0.0], None, None, 15.0),
        (0.5, [10.0], [4.0, 0.0], None, None, 5.0),
        (0.5, [10.0], [4.0, 0.0], 2.0, None, 6.0),
        (0.99, [10.0], [1.0, 1.0], None, 40.0, 39.4),
        (0.5, [1.0], [0.0, 0.0], None, None, None),
        (0.5, [1.0], [3.0, 0.0], 1.0, 1.0, 1.0),
    ],
    ids=["middle", "first-from-zero", "first-from-min", "overflow-to-max", "empty", "min-eq-max"],
)
def test_histogram_quantile(
    q: float,
    bounds: list[float],
    counts: list[float],
    low: float | None,
    high: float | None,
    expected: float | None,
) -> None:
    assert otlp.histogram_quantile(q, bounds, counts, low, high) == expected


@pytest.mark.parametrize(
    "encode", [lambda d: json.dumps(d).encode(), as_proto_logs], ids=["otlp_json", "otlp_proto"]
)
def test_the_specification_logs_example_decodes_into_records(encode: Any) -> None:
    decoded = otlp.decode_logs(encode(sample("otlp_logs.json")), MAPPINGS)
    assert decoded.rejected == []
    [record] = decoded.items
    assert record.ts == TS
    assert record.service == "my.service"
    assert record.level == "Information"
    assert record.message == "Example log record"
    assert record.attributes == {
        "string.attribute": "some string",
        "boolean.attribute": True,
        "int.attribute": 10,
        "double.attribute": 637.704,
        "array.attribute": ["many", "values"],
        "map.attribute": {"some.map.key": "some value"},
        "trace_id": "5b8efff798038103d269b633813fc60c",
        "span_id": "eee19b7ec3c1b174",
    }


@pytest.mark.parametrize(
    ("change", "level"),
    [
        ({"severityText": "", "severityNumber": 17}, "ERROR"),
        ({"severityText": "", "severityNumber": 10}, "INFO"),
        ({"severityText": "WARN", "severityNumber": 13}, "WARN"),
        ({"severityText": ""}, None),
    ],
    ids=["number-error", "number-info2", "text-wins", "none"],
)
def test_log_level_from_severity(change: dict[str, Any], level: str | None) -> None:
    data = sample("otlp_logs.json")
    data["resourceLogs"][0]["scopeLogs"][0]["logRecords"][0].update(change)
    [record] = otlp.decode_logs(json.dumps(data).encode(), MAPPINGS).items
    assert record.level == level


def test_severity_number_survives_protobuf() -> None:
    data = sample("otlp_logs.json")
    data["resourceLogs"][0]["scopeLogs"][0]["logRecords"][0].update(
        {"severityText": "", "severityNumber": 21}
    )
    [record] = otlp.decode_logs(as_proto_logs(data), MAPPINGS).items
    assert record.level == "FATAL"


def test_a_resource_without_service_name_is_rejected_unless_a_default_is_set() -> None:
    data = sample("otlp_logs.json")
    data["resourceLogs"][0]["resource"]["attributes"] = []
    raw = json.dumps(data).encode()
    decoded = otlp.decode_logs(raw, MAPPINGS)
    assert [r.reason for r in decoded.rejected] == [
        "resourceLogs.0: no service.name resource attribute"
    ]
    [record] = otlp.decode_logs(raw, IngestMappings(default_service="unknown")).items
    assert record.service == "unknown"


@pytest.mark.parametrize(
    ("value", "plain"),
    [
        ({"arrayValue": True}, []),
        ({"arrayValue": {"values": 3}}, []),
        ({"arrayValue": None}, []),
        ({"kvlistValue": 5}, {}),
        ({"kvlistValue": {"values": "x"}}, {}),
        ({"arrayValue": {"values": [{"intValue": "2"}, 7]}}, [2, None]),
    ],
    ids=["array-bool", "array-values-int", "array-null", "kvlist-int", "kvlist-str", "mixed"],
)
def test_malformed_attribute_values_decode_to_empty_not_raise(value: Any, plain: Any) -> None:
    assert otlp.any_value(value) == plain
    data = sample("otlp_logs.json")
    data["resourceLogs"][0]["scopeLogs"][0]["logRecords"][0]["attributes"] = [
        {"key": "odd", "value": value}
    ]
    decoded = otlp.decode_logs(json.dumps(data).encode(), MAPPINGS)
    assert decoded.items and not decoded.rejected


@pytest.mark.parametrize("resource", [True, "svc", [1], None], ids=["bool", "str", "list", "null"])
@pytest.mark.parametrize("signal", ["resourceLogs", "resourceMetrics"])
def test_a_resource_that_is_not_an_object_is_rejected_not_raised(
    signal: str, resource: Any
) -> None:
    raw = json.dumps({signal: [{"resource": resource}]}).encode()
    decode = otlp.decode_logs if signal == "resourceLogs" else otlp.decode_metrics
    decoded = decode(raw, MAPPINGS)
    assert not decoded.items
    assert [r.reason for r in decoded.rejected] == [
        f"{signal}.0: no service.name resource attribute"
    ]


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"", "empty message (no value)"),
        (b"{not json", "otlp_json: not JSON"),
        (b"\xff\xfe\x00garbage", "otlp_proto: not an OTLP protobuf message"),
        (b'{"resourceSpans": []}', "expected an OTLP request with a non-empty resourceMetrics"),
    ],
    ids=["empty", "bad-json", "bad-proto", "wrong-signal"],
)
def test_undecodable_messages_are_rejected_whole(raw: bytes, reason: str) -> None:
    decoded = otlp.decode_metrics(raw, MAPPINGS)
    assert decoded.items == []
    [bad] = decoded.rejected
    assert bad.reason.startswith(reason)
    assert bad.payload == raw


@pytest.mark.parametrize(
    ("raw", "encoding"),
    [
        (b'{"resourceMetrics": []}', "otlp_json"),
        (b'  \n{"a": 1}', "otlp_json"),
        (b"\n\x05", "otlp_proto"),
    ],
    ids=["json", "json-leading-space", "proto"],
)
def test_encoding_is_detected_per_message(raw: bytes, encoding: str) -> None:
    assert otlp.encoding_of(raw) == encoding
