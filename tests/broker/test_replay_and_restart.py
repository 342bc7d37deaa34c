"""Replays do not duplicate incidents; detector state survives a worker restart."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import pytest

from tests.harness import (
    Api,
    RunningWorker,
    consume,
    consumed_all,
    eventually,
    produce,
    read_all,
)

pytestmark = pytest.mark.broker


def detection(det_id: str, at: float, service: str = "auth") -> bytes:
    return json.dumps(
        {
            "id": det_id,
            "ts": at,
            "service": service,
            "signal": "errors",
            "detector": "manual",
            "score": 1.0,
            "severity": "error",
        }
    ).encode()


async def test_replayed_detections_open_one_incident(
    start_worker: Callable[..., RunningWorker],
) -> None:
    worker = start_worker()
    api = Api(worker)
    now = time.time()
    first = detection("d-1", now - 30)
    # The same detection three times (a producer retry, a replay), then a second one.
    await produce(
        worker.bootstrap,
        worker.topics.detections,
        [
            (b"auth", first),
            (b"auth", first),
            (b"auth", detection("d-2", now - 20)),
            (b"auth", first),
        ],
    )

    async def attached() -> list[Any] | None:
        _, body = await api.get("/api/incidents")
        rows = body["incidents"]
        return rows if rows and rows[0]["detection_count"] >= 2 else None

    await eventually(attached, 30, "the second detection to attach")
    await _drained(worker, worker.topics.detections, 20, "all detections consumed")
    _, body = await api.get("/api/incidents")
    [incident] = body["incidents"]
    assert incident["detection_count"] == 2
    assert incident["detection_ids"] == ["d-1", "d-2"]

    # Resolve it; replaying the opening detection afterwards still opens nothing new.
    path = f"/api/incidents/{incident['id']}"
    assert (await api.post(f"{path}/resolve"))[0] == 202

    async def resolved() -> bool | None:
        _, inc = await api.get(path)
        return True if inc["status"] == "resolved" else None

    await eventually(resolved, 15, "resolved")
    await produce(worker.bootstrap, worker.topics.detections, [(b"auth", first)])
    await produce(worker.bootstrap, worker.topics.detections, [(b"auth", detection("d-3", now))])

    async def two() -> list[Any] | None:
        _, body = await api.get("/api/incidents")
        return body["incidents"] if len(body["incidents"]) >= 2 else None

    rows = await eventually(two, 20, "a new incident for a new detection after resolve")
    await _drained(worker, worker.topics.detections, 20, "all detections consumed")
    _, body = await api.get("/api/incidents")
    assert len(body["incidents"]) == 2
    assert {r["detection_ids"][0] for r in rows} == {"d-1", "d-3"}


async def _drained(worker: RunningWorker, topic: str, timeout_s: float, what: str) -> None:
    """Wait until the worker's group has committed every message of ``topic``."""

    async def done() -> bool | None:
        return True if await consumed_all(worker.bootstrap, worker.group_of(topic), topic) else None

    await eventually(done, timeout_s, what)


async def _send_points(worker: RunningWorker, points: list[dict[str, Any]]) -> None:
    """One batch of metric points, keyed by the service they all belong to."""
    batch = json.dumps({"points": points}).encode()
    await produce(worker.bootstrap, worker.topics.metrics, [(b"billing", batch)])


async def test_detector_state_survives_a_restart(
    start_worker: Callable[..., RunningWorker],
) -> None:
    worker = start_worker(detector="median_mad", detector_params={"window": 60, "warmup": 30})
    base = float(int(time.time()) - 600)
    warm = [
        {"ts": base + i, "service": "billing", "metric": "latency_ms", "value": 80.0 + (i % 4)}
        for i in range(40)
    ]
    await _send_points(worker, warm)
    await _drained(worker, worker.topics.metrics, 30, "the warm-up points consumed")
    worker.restart()

    # After the restart: more normal points (no burst of false detections), then a spike
    # that must be detected at once (a re-warmed detector would need 30 points first).
    after = [
        {"ts": base + 40 + i, "service": "billing", "metric": "latency_ms", "value": 80.0 + (i % 4)}
        for i in range(10)
    ] + [
        {"ts": base + 50 + i, "service": "billing", "metric": "latency_ms", "value": 900.0}
        for i in range(3)
    ]
    await _send_points(worker, after)
    detections = await consume(
        worker.bootstrap, worker.topics.detections, lambda v: len(v) >= 1, timeout_s=30
    )
    await _drained(worker, worker.topics.metrics, 30, "all points consumed")
    detections = await read_all(worker.bootstrap, worker.topics.detections)
    assert len(detections) == 1, detections
    [found] = detections
    assert found["context"]["value"] == 900.0
    assert found["impact_started_at"].startswith(
        time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(base + 50))
    )


async def test_detector_rules_watch_their_series_and_survive_a_restart(
    start_worker: Callable[..., RunningWorker],
) -> None:
    rules = [
        {"name": "disk-full", "detector": "static_threshold", "metrics": ["disk_*"],
         "params": {"upper": 0.9}, "policy": {"for_points": 1}},
        {"name": "billing-latency", "detector": "median_mad", "services": ["billing"],
         "metrics": ["latency_ms"], "params": {"window": 60, "warmup": 30}},
    ]  # fmt: skip
    worker = start_worker(detector="surprise", detector_rules=rules)
    base = float(int(time.time()) - 600)

    def point(i: int, metric: str, value: float) -> dict[str, Any]:
        return {"ts": base + i, "service": "billing", "metric": metric, "value": value}

    warm = [point(i, "latency_ms", 80.0 + (i % 4)) for i in range(40)]
    warm += [point(i, "disk_used_ratio", 0.5) for i in range(40)]
    await _send_points(worker, warm)
    await _drained(worker, worker.topics.metrics, 30, "the warm-up points consumed")
    worker.restart()

    # After the restart the rule's median/MAD detector is still warm: one spike is detected at
    # once, and the disk crosses its static bound.
    after = [point(40 + i, "latency_ms", 80.0 + (i % 4)) for i in range(10)]
    after += [point(50 + i, "latency_ms", 900.0) for i in range(3)]
    after += [point(50, "disk_used_ratio", 0.95)]
    await _send_points(worker, after)
    await consume(worker.bootstrap, worker.topics.detections, lambda v: len(v) >= 2, timeout_s=30)
    await _drained(worker, worker.topics.metrics, 30, "all points consumed")
    detections = await read_all(worker.bootstrap, worker.topics.detections)
    found = sorted((d["signal"], d["detector"], d["context"]["value"]) for d in detections)
    assert found == [
        ("disk_used_ratio", "static_threshold", 0.95),
        ("latency_ms", "median_mad", 900.0),
    ], detections
