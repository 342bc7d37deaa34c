"""prometheus-kafka-adapter decoding, from the samples in the adapter's own README.

Samples: https://github.com/Telefonica/prometheus-kafka-adapter#json (the ``labels`` shape) and
the same README's earlier flat shape (``__timestamp__`` / ``__value__``), stored in
tests/fixtures/ingest/.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from streams.ingest import prometheus
from streams.settings import IngestMappings

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "ingest"
README = (FIXTURES / "prometheus_adapter.json").read_bytes()
LEGACY = (FIXTURES / "prometheus_adapter_legacy.json").read_bytes()


def test_the_readme_sample_names_no_service_so_it_needs_a_label_or_a_default() -> None:
    decoded = prometheus.decode(README, IngestMappings())
    assert decoded.items == []
    [bad] = decoded.rejected
    assert bad.reason == "no service: none of the labels job, service is set"
    assert json.loads(bad.payload)["name"] == "up"


@pytest.mark.parametrize(
    ("mappings", "service"),
    [
        (IngestMappings(default_service="prometheus"), "prometheus"),
        (IngestMappings(prometheus_service_labels=("job", "label1")), "value1"),
    ],
    ids=["default-service", "configured-label"],
)
def test_the_readme_sample_decodes_into_a_point(mappings: IngestMappings, service: str) -> None:
    decoded = prometheus.decode(README, mappings)
    assert decoded.rejected == []
    [point] = decoded.items
    assert point.ts == datetime(1970, 1, 1, tzinfo=UTC)
    assert point.service == service
    assert point.metric == "up"
    assert point.value == 9876543210.0
    assert point.labels == {"label1": "value1", "label2": "value2"}


def test_the_flat_shape_takes_job_as_service_and_milliseconds() -> None:
    [point] = prometheus.decode(LEGACY, IngestMappings()).items
    assert point.service == "federation"
    assert point.metric == "up"
    assert point.value == 9876543210.0
    assert point.ts.timestamp() == pytest.approx(1234567.89)
    assert point.labels == {"job": "federation", "label1": "value1", "label2": "value2"}


def sample(**change: object) -> dict[str, object]:
    data: dict[str, object] = json.loads(README)
    data["labels"] = {**data["labels"], "job": "node"}  # type: ignore[dict-item]
    data.update(change)
    return data


@pytest.mark.parametrize(
    ("entry", "reason"),
    [
        (sample(value="NaN"), "value: value must be a finite number"),
        (sample(value="+Inf"), "value: value must be a finite number"),
        (sample(value="lots"), "value 'lots' is not a number"),
        (sample(timestamp="yesterday"), "ts: timestamp 'yesterday' is not RFC 3339"),
        (
            {"name": "up", "labels": {"job": "x"}},
            "missing timestamp and value (not a prometheus-kafka-adapter sample)",
        ),
        (sample(name="", labels={"job": "node"}), "no metric name (name / __name__)"),
        (sample(labels=["job"]), "labels: expected an object"),
    ],
    ids=["nan", "inf", "not-a-number", "bad-time", "not-a-sample", "no-name", "labels-list"],
)
def test_bad_samples_are_rejected_with_the_reason(entry: dict[str, object], reason: str) -> None:
    decoded = prometheus.decode(json.dumps(entry).encode(), IngestMappings())
    assert decoded.items == []
    [bad] = decoded.rejected
    assert bad.reason == reason
    assert json.loads(bad.payload) == entry
