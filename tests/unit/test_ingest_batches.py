"""Mixed-validity batches: every good entry is kept, every bad one rejected on its own.

Built on the formats' own samples (tests/fixtures/ingest/, sources in SOURCES.md there), with
one entry broken in each way a producer can get it wrong.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from streams.ingest import jsonlogs, otlp, prometheus
from streams.settings import IngestMappings

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "ingest"
MAPPINGS = IngestMappings()


def load(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


def test_an_otlp_request_with_bad_data_points_keeps_the_good_ones() -> None:
    data = load("otlp_metrics.json")
    metrics = data["resourceMetrics"][0]["scopeMetrics"][0]["metrics"]
    gauge_points = metrics[1]["gauge"]["dataPoints"]
    good = gauge_points[0]
    gauge_points.extend(
        [
            {**good, "asDouble": "NaN"},
            {k: v for k, v in good.items() if k != "timeUnixNano"},
            {k: v for k, v in good.items() if k != "asDouble"},
            {**good, "asDouble": "many"},
            {**{k: v for k, v in good.items() if k != "asDouble"}, "asInt": "7"},
        ]
    )
    metrics.append({"name": "", "gauge": {"dataPoints": [good]}})
    # A second resource without service.name: all of its points are rejected together.
    data["resourceMetrics"].append({"scopeMetrics": data["resourceMetrics"][0]["scopeMetrics"]})
    decoded = otlp.decode_metrics(json.dumps(data).encode(), MAPPINGS)
    gauges = [(p.metric, p.value) for p in decoded.items if p.metric == "my.gauge"]
    assert gauges == [("my.gauge", 10.0), ("my.gauge", 7.0)]
    at = "resourceMetrics.0.scopeMetrics.0.metrics"
    assert [r.reason for r in decoded.rejected] == [
        f"{at}.1.gauge.dataPoints.1.value: value must be a finite number",
        f"{at}.1.gauge.dataPoints.2: timeUnixNano missing or zero",
        f"{at}.1.gauge.dataPoints.3: no value (asDouble / asInt)",
        f"{at}.1.gauge.dataPoints.4.value: Input should be a valid number, "
        "unable to parse string as a number",
        f"{at}.2.histogram.dataPoints.0: bucketCounts has 3 entries for 1 explicitBounds "
        "(expected 2): no quantile estimates",
        f"{at}.3: metric without a name",
        "resourceMetrics.1: no service.name resource attribute",
    ]
    # Each rejected data point carries its own bytes, named by its metric.
    assert json.loads(decoded.rejected[0].payload) == {
        "name": "my.gauge",
        "gauge": {"dataPoints": [{**good, "asDouble": "NaN"}]},
    }


def test_an_otlp_logs_request_with_a_bad_record_keeps_the_good_one() -> None:
    data = load("otlp_logs.json")
    records = data["resourceLogs"][0]["scopeLogs"][0]["logRecords"]
    bad = {k: v for k, v in records[0].items() if k not in ("timeUnixNano", "observedTimeUnixNano")}
    records.append(bad)
    decoded = otlp.decode_logs(json.dumps(data).encode(), MAPPINGS)
    assert [r.message for r in decoded.items] == ["Example log record"]
    [rejected] = decoded.rejected
    assert rejected.reason == (
        "resourceLogs.0.scopeLogs.0.logRecords.1: "
        "timeUnixNano and observedTimeUnixNano missing or zero"
    )
    assert json.loads(rejected.payload) == bad


def test_prometheus_samples_one_per_line_with_bad_lines() -> None:
    sample = load("prometheus_adapter_legacy.json")
    lines = [
        json.dumps(sample),
        json.dumps({**sample, "__value__": "NaN"}),
        "{not json",
        json.dumps([1, 2]),
        json.dumps({**sample, "__name__": "down"}),
    ]
    decoded = prometheus.decode("\n".join(lines).encode(), MAPPINGS)
    assert [p.metric for p in decoded.items] == ["up", "down"]
    reasons = [r.reason for r in decoded.rejected]
    assert reasons[0].startswith("line 3: not JSON")
    assert reasons[1:] == [
        "line 2.value: value must be a finite number",
        "line 4: expected a JSON object (one sample)",
    ]
    assert decoded.rejected[0].payload == b"{not json"


def test_json_logs_in_an_array_with_bad_events() -> None:
    vector = load("vector_log.json")
    events = [
        vector,
        {**vector, "message": None, "msg": None},
        {**vector, "timestamp": "last tuesday"},
        "just a string",
        load("fluentbit_kubernetes.json"),
    ]
    decoded = jsonlogs.decode(json.dumps(events).encode(), MAPPINGS)
    assert [r.message for r in decoded.items] == ["Hello world", "GET /index.html 200"]
    assert [r.reason for r in decoded.rejected] == [
        "1: no message: none of the fields message, msg, log holds text",
        "2.ts: timestamp 'last tuesday' is not RFC 3339",
        "3: expected a JSON object (one log event)",
    ]
    assert json.loads(decoded.rejected[1].payload) == events[2]
