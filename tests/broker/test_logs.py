"""Log records in, templates mined, one detection per burst (not one per line) out."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import pytest

from tests.harness import RunningWorker, consume, consumed_all, eventually, produce, read_all

pytestmark = pytest.mark.broker

SERVICE = "checkout"


def steady(base: float, windows: int) -> list[dict[str, Any]]:
    records = []
    for w in range(windows):
        start = base + 60.0 * w
        for i in range(10):
            records.append(
                {"ts": start + i, "service": SERVICE, "level": "INFO",
                 "message": f"GET /api/items/{w * 10 + i} 200 in {i + 3}ms"}
            )  # fmt: skip
        records.append(
            {"ts": start + 30, "service": SERVICE, "message": f"worker {w % 3} heartbeat"}
        )
    return records


async def test_log_burst_gives_one_detection_with_its_template(
    start_worker: Callable[..., RunningWorker],
) -> None:
    worker = start_worker()
    base = float(int(time.time()) - 7200)
    key = SERVICE.encode()
    warmup = steady(base, 20)
    messages = [
        (key, json.dumps({"records": warmup[i : i + 50]}).encode())
        for i in range(0, len(warmup), 50)
    ]
    burst_start = base + 60.0 * 20
    # The burst arrives one record per message: 200 lines of a known template in one minute.
    messages += [
        (key, json.dumps({"ts": burst_start + i * 0.25, "service": SERVICE,
                          "message": f"worker {i % 3} heartbeat"}).encode())
        for i in range(200)
    ]  # fmt: skip
    messages.append((key, b"not json"))
    await produce(worker.bootstrap, worker.topics.logs, messages)

    def has_burst(values: list[Any]) -> bool:
        return any(v.get("detector") == "log_burst" for v in values)

    await consume(worker.bootstrap, worker.topics.detections, has_burst, timeout_s=60)

    async def all_consumed() -> bool | None:
        return (
            True
            if await consumed_all(
                worker.bootstrap, worker.group_of(worker.topics.logs), worker.topics.logs
            )
            else None
        )

    await eventually(all_consumed, 60, "the worker to consume every log message")
    detections = await read_all(worker.bootstrap, worker.topics.detections)
    assert [d["detector"] for d in detections] == ["log_burst"], detections
    [burst] = detections
    assert burst["service"] == SERVICE
    assert burst["context"]["template"] == "worker <*> heartbeat"
    assert burst["context"]["count"] >= 20 and burst["context"]["examples"]
    dead = await read_all(worker.bootstrap, worker.topics.logs + ".dlq")
    assert len(dead) == 1
