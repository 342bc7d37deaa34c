"""Canonical batches are split by encoded size: every record under the bound, every entry kept,
in order; an entry too large for a record of its own is refused with the reason."""

from __future__ import annotations

import json
from typing import Any

import pytest

from schemas import MetricPoint
from streams.codec import Decoded
from streams.ingest import otlp
from streams.ingest.publish import MAX_BATCH_BYTES, batches, oversized, publish
from streams.settings import IngestMappings
from tests.fixtures.otlp_export import metrics_export


def entry(n: int, width: int) -> bytes:
    return json.dumps({"i": n, "pad": "x" * width}, separators=(",", ":")).encode()


CASES = {
    "one small entry": ([entry(0, 1)], 1000, 1),
    "all fit in one record": ([entry(i, 10) for i in range(20)], 10_000, 1),
    "exactly at the bound": ([entry(0, 3), entry(1, 3)], 2 * len(entry(0, 3)) + 1 + 13, 1),
    "one byte over the bound": ([entry(0, 3), entry(1, 3)], 2 * len(entry(0, 3)) + 13, 2),
    "many records": ([entry(i, 100) for i in range(1000)], 4096, 30),
    "an entry as large as the bound alone": ([entry(0, 5), entry(1, 100), entry(2, 5)], 129, 3),
}


@pytest.mark.parametrize(("entries", "limit", "records"), CASES.values(), ids=CASES.keys())
def test_batches_stay_under_the_bound_and_keep_every_entry(
    entries: list[bytes], limit: int, records: int
) -> None:
    values = list(batches(entries, "points", limit))
    assert all(len(v) <= limit for v in values)
    assert len(values) == records
    kept = [json.dumps(e, separators=(",", ":")).encode() for v in values
            for e in json.loads(v)["points"]]  # fmt: skip
    assert kept == entries


def test_no_entries_no_records() -> None:
    assert list(batches([], "records")) == []


def test_an_entry_too_large_for_any_record_is_refused_with_its_size() -> None:
    big = entry(0, MAX_BATCH_BYTES)
    assert oversized(big, "points") == (
        f"entry is {len(big)} bytes as JSON; a points record holds at most {MAX_BATCH_BYTES}"
    )
    assert oversized(entry(0, MAX_BATCH_BYTES - 100), "points") is None


@pytest.mark.parametrize(
    ("points", "attributes"), [(8192, 3), (20_000, 1)], ids=["collector default", "20k points"]
)
def test_a_collector_export_is_forwarded_in_records_under_the_bound(
    points: int, attributes: int
) -> None:
    raw = metrics_export(points, "api", attributes=attributes)
    decoded = otlp.decode_metrics(raw, IngestMappings())
    entries = [p.model_dump_json().encode() for p in decoded.items]
    values = list(batches(entries, "points"))
    assert len(b",".join(entries)) > 1_000_000  # as JSON, more than any one record holds
    assert all(len(v) <= MAX_BATCH_BYTES for v in values)
    assert sum(len(json.loads(v)["points"]) for v in values) == points


class Sent:
    """What ``publish`` sends: records to the canonical topic, dead letters, counters."""

    def __init__(self) -> None:
        self.records: list[tuple[bytes, bytes]] = []
        self.letters: list[tuple[str, bytes | None]] = []
        self.counters: dict[str, int] = {}
        self.dead_letters = self

    async def send(
        self,
        message: Any = None,
        stage: str = "",
        error: str = "",
        payload: bytes | None = None,
        *,
        key: bytes = b"",
        value: bytes = b"",
    ) -> None:
        if value:
            self.records.append((key, value))
        else:
            self.letters.append((error, payload))

    def count(self, name: str, n: int = 1) -> None:
        self.counters[name] = self.counters.get(name, 0) + n


def point(service: str, i: int, label: str = "") -> MetricPoint:
    """A point; its label set without validation, so this holds whatever the schema's own
    label limits are."""
    valid = MetricPoint.model_validate(
        {"ts": 1.7e9 + i, "service": service, "metric": "m", "value": float(i)}
    )
    return valid.model_copy(update={"labels": {"l": label}} if label else {})


async def test_publish_splits_per_service_and_dead_letters_an_entry_too_large_alone() -> None:
    sent = Sent()
    huge = point("api", 0, "x" * MAX_BATCH_BYTES)
    items = [huge, *(point("api", i, "y" * 1000) for i in range(1, 600)), point("web", 0)]
    pipeline: Any = sent
    await publish(pipeline, object(), "ingest_otlp", Decoded(items=items), sent, "points")
    assert [reason for reason, _ in sent.letters] == [
        f"entry is {len(huge.model_dump_json())} bytes as JSON; a points record holds at most "
        f"{MAX_BATCH_BYTES}"
    ]
    assert sent.letters[0][1] == huge.model_dump_json().encode()
    assert all(len(value) <= MAX_BATCH_BYTES for _, value in sent.records)
    by_key: dict[bytes, list[float]] = {}
    for key, value in sent.records:
        by_key.setdefault(key, []).extend(p["value"] for p in json.loads(value)["points"])
    assert by_key == {b"api": [float(i) for i in range(1, 600)], b"web": [0.0]}
    assert len(sent.records) == 4  # api's 599 entries of ~1.1 KB in three records, web's in one
    assert sent.counters == {"ingest_otlp_entries": 600, "ingest_otlp_rejected": 1}
