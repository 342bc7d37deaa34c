"""The codec: raw bytes to models, with every rejection carrying its reason and bytes."""

from __future__ import annotations

import json

import pytest

from schemas import MetricPoint
from streams.codec import decode_batchable, decode_one

GOOD = {"ts": 1, "service": "a", "metric": "m", "value": 1.0}


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (None, "empty message"),
        (b"\xff\xfe", "not UTF-8"),
        (b"{", "not JSON"),
        (b"[1, 2]", "expected a JSON object"),
        (b'"text"', "expected a JSON object"),
        (b"[" * 100_000, "not JSON"),
        (json.dumps({"points": []}).encode(), "points: expected a non-empty list"),
        (json.dumps({"points": "x"}).encode(), "points: expected a non-empty list"),
        (json.dumps({**GOOD, "value": None}).encode(), "value: Input should be a valid number"),
    ],
    ids=["none", "utf8", "json", "array", "string", "deep", "empty-batch", "batch-type", "null"],
)
def test_rejections(raw: bytes | None, reason: str) -> None:
    decoded = decode_batchable(raw, MetricPoint, "points")
    assert decoded.items == []
    [rejected] = decoded.rejected
    assert rejected.reason.startswith(reason) or reason in rejected.reason
    assert rejected.payload == (raw or b"")


def test_batch_keeps_good_entries_and_splits_bad_ones() -> None:
    bad = {**GOOD, "value": "lots"}
    raw = json.dumps({"points": [GOOD, bad, 7, GOOD]}).encode()
    decoded = decode_batchable(raw, MetricPoint, "points")
    assert len(decoded.items) == 2
    reasons = [r.reason for r in decoded.rejected]
    assert reasons[0].startswith("points.1.value:")
    assert reasons[1] == "points.2: expected an object"
    assert json.loads(decoded.rejected[0].payload) == bad


def test_single_object() -> None:
    decoded = decode_one(json.dumps(GOOD).encode(), MetricPoint)
    assert [p.value for p in decoded.items] == [1.0] and decoded.rejected == []
