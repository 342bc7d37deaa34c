"""Every inbound decoder returns items or rejections with a reason for any input; none raises."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schemas import Command, Detection, IncidentEvent, LogRecord, MetricPoint, Page
from streams.codec import Decoded, decode_batchable, decode_one
from streams.ingest import jsonlogs, otlp, prometheus
from streams.settings import IngestMappings

MAPPINGS = IngestMappings()

DECODERS: dict[str, Callable[[bytes | None], Decoded[Any]]] = {
    "points": lambda raw: decode_batchable(raw, MetricPoint, "points"),
    "records": lambda raw: decode_batchable(raw, LogRecord, "records"),
    "detection": lambda raw: decode_one(raw, Detection),
    "command": lambda raw: decode_one(raw, Command),
    "event": lambda raw: decode_one(raw, IncidentEvent),
    "page": lambda raw: decode_one(raw, Page),
    "otlp_metrics": lambda raw: otlp.decode_metrics(raw, MAPPINGS),
    "otlp_logs": lambda raw: otlp.decode_logs(raw, MAPPINGS),
    "prometheus": lambda raw: prometheus.decode(raw, MAPPINGS),
    "json_logs": lambda raw: jsonlogs.decode(raw, MAPPINGS, fallback_ts=1_700_000_000.0),
}

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=40),
    st.sampled_from(["2024-13-45T99:99:99Z", "-1e400", "1e400", "NaN", "", "1970-01-01"]),
)  # fmt: skip
KEYS = [
    "ts",
    "service",
    "metric",
    "value",
    "labels",
    "points",
    "records",
    "level",
    "message",
    "timestamp",
    "resourceMetrics",
    "resourceLogs",
    "resource",
    "attributes",
    "id",
    "kind",
    "incident_id",
    "routing_key",
    "seq",
    "at",
    "dedup_key",
    "timeUnixNano",
    "job",
    "samples",
]
documents = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=5),
        st.dictionaries(st.one_of(st.sampled_from(KEYS), st.text(max_size=8)), inner, max_size=6),
    ),
    max_leaves=30,
)


def check(decoded: Decoded[Any]) -> None:
    assert isinstance(decoded, Decoded)
    for bad in decoded.rejected:
        assert isinstance(bad.reason, str) and bad.reason.strip(), bad
        assert isinstance(bad.payload, bytes)


FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.mark.parametrize("name", list(DECODERS))
@FUZZ
@given(raw=st.binary(max_size=2000))
def test_arbitrary_bytes_never_raise(name: str, raw: bytes) -> None:
    check(DECODERS[name](raw))


@pytest.mark.parametrize("name", list(DECODERS))
@FUZZ
@given(doc=documents)
def test_arbitrary_json_never_raises(name: str, doc: Any) -> None:
    decoded = DECODERS[name](json.dumps(doc).encode())
    check(decoded)
    # Only objects carry items; JSON logs may also come as an array of events (Vector, Fluent Bit).
    if not isinstance(doc, dict) and not (name == "json_logs" and isinstance(doc, list)):
        assert decoded.items == [] and decoded.rejected


@pytest.mark.parametrize("name", list(DECODERS))
@FUZZ
@given(doc=documents, cut=st.integers(min_value=0, max_value=50), junk=st.binary(max_size=4))
def test_truncated_and_invalid_utf8_never_raise(name: str, doc: Any, cut: int, junk: bytes) -> None:
    raw = json.dumps(doc).encode()
    check(DECODERS[name](raw[: max(0, len(raw) - cut)] + b"\xff\xfe" + junk))


@pytest.mark.parametrize("name", list(DECODERS))
def test_none_huge_and_deep_payloads_are_rejected_with_a_reason(name: str) -> None:
    decode = DECODERS[name]
    for raw in (
        None,
        b"",
        b"[" * 100_000 + b"]" * 100_000,
        json.dumps(
            {
                "points": [{"ts": 1, "service": "a", "metric": "m", "value": 1}] * 20_000,
                "records": ["x" * 1000] * 2000,
            }
        ).encode(),
        b'{"ts": 1e400, "service": "a", "metric": "m", "value": 1}',
    ):
        check(decode(raw))


@FUZZ
@given(
    ts=st.one_of(scalars, st.just(-(10**30)), st.just(10**30)),
    value=st.one_of(scalars, st.just("1.0")),
)
def test_points_with_wrong_timestamps_are_items_or_rejections(ts: Any, value: Any) -> None:
    raw = json.dumps({"ts": ts, "service": "api", "metric": "lat", "value": value}).encode()
    decoded = DECODERS["points"](raw)
    check(decoded)
    assert len(decoded.items) + len(decoded.rejected) == 1
