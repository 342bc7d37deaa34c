"""Bad input lands on ``<topic>.dlq`` with its reason and bytes; valid input is still processed."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable
from typing import Any

import pytest

from tests.harness import Api, RunningWorker, consume, eventually, produce

pytestmark = pytest.mark.broker


async def test_invalid_messages_are_dead_lettered_and_the_stream_carries_on(
    start_worker: Callable[..., RunningWorker],
) -> None:
    worker = start_worker(detector="median_mad")
    api = Api(worker)
    base = float(int(time.time()) - 300)
    not_json = b"{not json"
    bad_entry = {"ts": base, "service": "search", "metric": "qps", "value": "lots"}
    mixed = {"points": [{"ts": base, "service": "search", "metric": "qps", "value": 5}, bad_entry]}
    invalid_utf8 = b'{"ts": 1, "service": "\xff"}'
    await produce(
        worker.bootstrap,
        worker.topics.metrics,
        [
            (b"search", not_json),
            (b"search", json.dumps(mixed).encode()),
            (b"search", invalid_utf8),
            (b"search", json.dumps({"ts": "yesterday", "service": "x"}).encode()),
        ],
    )
    await produce(worker.bootstrap, worker.topics.detections, [(b"search", b'{"id": 1}')])
    # Then a valid series with an anomaly: it must still open an incident.
    values = [50.0 + (i % 3) for i in range(30)] + [500.0, 510.0, 505.0]
    series = [
        {"ts": base + 1 + i, "service": "search", "metric": "qps", "value": v}
        for i, v in enumerate(values)
    ]
    await produce(
        worker.bootstrap,
        worker.topics.metrics,
        [(b"search", json.dumps({"points": series}).encode())],
    )

    async def opened() -> list[Any] | None:
        _, body = await api.get("/api/incidents")
        return body["incidents"] or None

    [incident] = await eventually(opened, 30, "an incident after the bad input")
    assert incident["service"] == "search"

    letters = await consume(
        worker.bootstrap, f"{worker.topics.metrics}.dlq", lambda v: len(v) >= 4, timeout_s=20
    )
    by_value = {base64.b64decode(d["value_b64"]): d for d in letters}
    assert by_value[not_json]["error"].startswith("not JSON")
    assert by_value[invalid_utf8]["error"].startswith("not UTF-8")
    entry = by_value[json.dumps(bad_entry, separators=(",", ":")).encode()]
    assert entry["error"].startswith("points.1.value:")
    assert any("ts:" in d["error"] and "RFC 3339" in d["error"] for d in letters)
    for letter in letters:
        assert letter["source_topic"] == worker.topics.metrics
        assert letter["stage"] == "decode"
        assert letter["offset"] is not None and letter["partition"] is not None
        assert base64.b64decode(letter["key_b64"]) == b"search"

    [detection_letter] = await consume(
        worker.bootstrap, f"{worker.topics.detections}.dlq", lambda v: len(v) >= 1, timeout_s=20
    )
    assert "id: Input should be a valid string" in detection_letter["error"]
    # Nothing crashed: the worker still answers and is ready.
    assert (await api.get("/readyz"))[0] == 200


async def test_a_point_outside_its_detectors_domain_is_dead_lettered_and_its_message_goes_on(
    start_worker: Callable[..., RunningWorker],
) -> None:
    rules = [
        {"name": "checkout-slo", "detector": "slo_burn_rate", "services": ["checkout"],
         "metrics": ["error_ratio"], "policy": {"for_points": 1}},
    ]  # fmt: skip
    worker = start_worker(detector="surprise", detector_rules=rules)
    base = float(int(time.time()) - 300)

    def point(i: int, metric: str, value: float) -> dict[str, Any]:
        return {"ts": base + 60 * i, "service": "checkout", "metric": metric, "value": value,
                "labels": {"region": "eu"}}  # fmt: skip

    # A percentage sent where the rule expects a ratio, amid valid points of the same message:
    # it is refused alone, and the burning error ratio after it is still detected.
    points = [point(0, "cpu", 50.0), point(1, "error_ratio", 12.5)]
    points += [point(2, "error_ratio", 0.05), point(3, "error_ratio", 0.06)]
    await produce(
        worker.bootstrap,
        worker.topics.metrics,
        [(b"checkout", json.dumps({"points": points}).encode())],
    )
    [letter] = await consume(
        worker.bootstrap, f"{worker.topics.metrics}.dlq", lambda v: len(v) >= 1, timeout_s=30
    )
    assert letter["stage"] == "detect"
    assert letter["error"] == (
        "value 12.5 is outside [0, 1], the values detector 'slo_burn_rate' "
        "(rule 'checkout-slo') accepts"
    )
    refused = json.loads(base64.b64decode(letter["value_b64"]))
    assert (refused["service"], refused["metric"], refused["value"]) == (
        "checkout", "error_ratio", 12.5
    )  # fmt: skip
    assert refused["labels"] == {"region": "eu"}
    assert base64.b64decode(letter["key_b64"]) == b"checkout"

    detections = await consume(
        worker.bootstrap, worker.topics.detections, lambda v: len(v) >= 1, timeout_s=30
    )
    # The series' first point is learned, not scored; the second fires.
    first = detections[0]
    assert (first["signal"], first["detector"], first["context"]["value"]) == (
        "error_ratio", "slo_burn_rate", 0.06
    ), detections  # fmt: skip
