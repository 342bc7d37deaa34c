"""Large fan-outs and many series through the real broker.

- An OpenTelemetry Collector's default batch (8,192 data points, ~690 KB of protobuf) and a
  20,000-point export are forwarded to ``metrics.points.v1`` in records split by encoded size,
  every point arrives and is scored, nothing is dead-lettered; so is a batch of 8,192 log
  records to ``logs.records.v1``, in order.
- A new series beyond a service's series limit is dead-lettered with the reason, counted on
  ``/metrics``, and the service's existing series are still scored.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable
from typing import Any

import pytest

from streams.ingest.publish import MAX_BATCH_BYTES
from tests.fixtures.otlp_export import logs_export, metrics_export
from tests.harness import RunningWorker, consume, counters, eventually, produce, read_all

pytestmark = pytest.mark.broker


def points_of(batch: dict[str, Any]) -> list[dict[str, Any]]:
    return list(batch["points"]) if "points" in batch else [batch]


async def test_collector_batches_are_split_forwarded_and_scored(
    start_worker: Callable[..., RunningWorker],
) -> None:
    worker = start_worker()
    topics = worker.topics
    exports = {"collector-8k": metrics_export(8192, "collector-8k", attributes=3),
               "collector-20k": metrics_export(20_000, "collector-20k", attributes=1)}  # fmt: skip
    assert all(600_000 < len(raw) < 1_000_000 for raw in exports.values())
    await produce(worker.bootstrap, topics.otlp_metrics, [(None, v) for v in exports.values()])

    total = 8192 + 20_000
    raw_records = await consume(
        worker.bootstrap, topics.metrics,
        lambda v: sum(len(points_of(json.loads(b))) for b in v) >= total,
        timeout_s=90, decode=lambda b: b,
    )  # fmt: skip
    assert max(len(r) for r in raw_records) <= MAX_BATCH_BYTES
    assert len(raw_records) > 2  # each export went out in several records
    points = [p for r in raw_records for p in points_of(json.loads(r))]
    by_service: dict[str, int] = {}
    for p in points:
        by_service[p["service"]] = by_service.get(p["service"], 0) + 1
    assert by_service == {"collector-8k": 8192, "collector-20k": 20_000}

    async def scored() -> float | None:
        done = (await counters(worker)).get("warroom_points_processed_total", 0.0)
        return done if done >= total else None

    assert await eventually(scored, timeout_s=60, what="every point scored") == total
    assert await read_all(worker.bootstrap, topics.dlq(topics.otlp_metrics)) == []
    assert await read_all(worker.bootstrap, topics.dlq(topics.metrics)) == []

    # Logs: a Collector's default batch of 8,192 log records (~875 KB) the same way.
    logs = logs_export(8192, "collector-logs")
    assert 600_000 < len(logs) < 1_000_000
    await produce(worker.bootstrap, topics.otlp_logs, [(None, logs)])
    log_records = await consume(
        worker.bootstrap, topics.logs,
        lambda v: sum(len(json.loads(b)["records"]) for b in v) >= 8192,
        timeout_s=90, decode=lambda b: b,
    )  # fmt: skip
    assert max(len(r) for r in log_records) <= MAX_BATCH_BYTES
    messages = [e["message"] for r in log_records for e in json.loads(r)["records"]]
    assert messages == [f"GET /api/v1/items/{i} 200 {i % 97} ms" for i in range(8192)]
    assert await read_all(worker.bootstrap, topics.dlq(topics.otlp_logs)) == []


def batch(service: str, keys: list[int], ts: float) -> tuple[bytes, bytes]:
    points = [{"ts": ts, "service": service, "metric": "m", "value": 1.0 + k,
               "labels": {"k": str(k)}} for k in keys]  # fmt: skip
    return service.encode(), json.dumps({"points": points}).encode()


async def counted(worker: RunningWorker, name: str, at_least: float) -> float:
    async def probe() -> float | None:
        value = (await counters(worker)).get(f"warroom_{name}", 0.0)
        return value if value >= at_least else None

    return await eventually(probe, timeout_s=60, what=f"{name} >= {at_least}")


async def test_new_series_beyond_the_limit_are_dead_lettered_and_evicted_ones_stay_gone(
    start_worker: Callable[..., RunningWorker],
) -> None:
    worker = start_worker(max_series_per_service=3, series_idle_s=3600)
    topics, bootstrap = worker.topics, worker.bootstrap
    now = time.time()

    # Three series of "wide" are watched; the fourth and fifth are refused.
    await produce(bootstrap, topics.metrics, [batch("wide", [0, 1, 2, 3, 4], now - 7200),
                                              batch("narrow", [0], now - 7200)])  # fmt: skip
    assert await counted(worker, "points_processed_total", 4) == 4
    assert await counted(worker, "series_refused_per_service_total", 2) == 2
    # One dead letter for the message's refused points, a batch that can be sent again.
    [letter] = await consume(bootstrap, topics.dlq(topics.metrics), lambda v: len(v) >= 1, 30)
    assert letter["stage"] == "detect"
    assert letter["error"] == (
        "series limit: service 'wide' already has 3 series, the most one service may have "
        "(max_series_per_service=3)"
    )
    refused = json.loads(base64.b64decode(letter["value_b64"]))["points"]
    assert [(p["service"], p["labels"]) for p in refused] == [
        ("wide", {"k": "3"}),
        ("wide", {"k": "4"}),
    ]

    # Two hours later every series is idle past the hour: evicted, and three new ones fit.
    await produce(bootstrap, topics.metrics, [batch("wide", [1, 2, 5], now - 60)])
    assert await counted(worker, "points_processed_total", 7) == 7
    assert await counted(worker, "series_evicted_total", 4) == 4  # wide 0, 1, 2 and narrow 0
    assert (await counters(worker))["warroom_series"] == 3

    # After a restart, series 0 (evicted) is a new series again, and the service is full.
    worker.restart()
    await produce(bootstrap, topics.metrics, [batch("wide", [0, 1], now - 30)])
    assert await counted(worker, "points_processed_total", 1) == 1
    assert await counted(worker, "series_refused_per_service_total", 1) == 1
    letters = await consume(bootstrap, topics.dlq(topics.metrics), lambda v: len(v) >= 2, 30)
    [again] = json.loads(base64.b64decode(letters[-1]["value_b64"]))["points"]
    assert again["labels"] == {"k": "0"}

    # A label explosion: 20 messages of 500 new series each, all refused, a dead letter per
    # message (not per point), each point in one; the watched series are still scored.
    flood = [batch("wide", list(range(1000 + 500 * m, 1500 + 500 * m)), now - 20)
             for m in range(20)]  # fmt: skip
    await produce(bootstrap, topics.metrics, [*flood, batch("wide", [1, 2, 5], now - 10)])
    assert await counted(worker, "series_refused_per_service_total", 10_001) == 10_001
    assert await counted(worker, "points_processed_total", 4) == 4
    letters = await consume(bootstrap, topics.dlq(topics.metrics), lambda v: len(v) >= 22, 30)
    flooded = [
        p for d in letters[2:] for p in json.loads(base64.b64decode(d["value_b64"]))["points"]
    ]
    assert len(letters) == 22
    assert sorted(int(p["labels"]["k"]) for p in flooded) == list(range(1000, 11_000))
