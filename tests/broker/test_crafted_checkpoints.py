"""Crafted records on the detector-blocks topic (written by anything but the detect service: a
deeply nested header, an object dtype, a block placed a million rows out) are left out of the
restore with an error in the log; the worker starts, and the good blocks beside them restore
warm."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer

from detectors import blocks
from tests.broker.test_poison_and_bounds import _detections
from tests.harness import Api, RunningWorker, consumed_all, eventually, produce

pytestmark = pytest.mark.broker


def _part(header: bytes) -> bytes:
    return blocks.MAGIC + len(header).to_bytes(4, "big") + header


CRAFTED: dict[str, bytes] = {
    # RecursionError out of the restore before: not a ValueError, so not left out.
    "7": _part(b"[" * 100_000 + b"]" * 100_000),
    "8": _part(
        json.dumps(
            {
                "ids": ["x|y"],
                "version": 2,
                "detector": {"arrays": {"a": {"dtype": "|O", "shape": [1], "data": [0, 0]}}},
            }
        ).encode()
    ),
    # Placed at row 1,024,000: the bank reserved a million rows for it.
    "4000": _part(json.dumps({"ids": ["x|z"], "start": 4000 * 256}).encode()),
}


async def _send(bootstrap: str, topic: str, partition: int, items: dict[str, bytes]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for key, value in items.items():
            await producer.send_and_wait(topic, value, key=key.encode(), partition=partition)
    finally:
        await producer.stop()


def _points(base: float, values: list[float], start: int = 0) -> bytes:
    points = [{"ts": base + 60 * (start + i), "service": "checkout", "metric": "latency_ms",
               "value": v} for i, v in enumerate(values)]  # fmt: skip
    return json.dumps({"points": points}).encode()


async def test_crafted_checkpoint_records_are_left_out_and_the_good_ones_restore_warm(
    start_worker: Callable[..., RunningWorker],
) -> None:
    worker = start_worker()
    base = float(int(time.time()) - 3 * 3600)
    calm = [100.0 + (i % 5) for i in range(40)]
    await produce(worker.bootstrap, worker.topics.metrics, [(b"checkout", _points(base, calm))])

    async def committed() -> bool | None:
        group = worker.group_of(worker.topics.metrics)
        return True if await consumed_all(worker.bootstrap, group, worker.topics.metrics) else None

    await eventually(committed, 60, "the calm points checkpointed and committed")
    worker.stop()
    for partition in (0, 1):
        await _send(worker.bootstrap, f"{worker.app_id}-detector-blocks", partition, CRAFTED)
    worker.start()
    assert (await Api(worker).get("/readyz"))[0] == 200

    # A fresh detector has no history (no score): a detection proves the restored state.
    spike: Any = _points(base, [900.0, 950.0], start=40)
    await produce(worker.bootstrap, worker.topics.metrics, [(b"checkout", spike)])
    [found, *_] = await _detections(worker, lambda d: d["status"] == "firing")
    assert found["service"] == "checkout"
    log = worker.log_text()
    assert "does not decode" in log and "RecursionError" not in log and "MemoryError" not in log
