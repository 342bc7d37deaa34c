"""A checkpoint topic that refuses detect's blocks (its ``max.message.bytes`` lowered below
them), against a real broker: nothing is committed past what the topic holds, the worker does
not spin on the refusal (each one in a row waits longer, and is counted), and once the topic
takes blocks again every point is committed."""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Callable

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from tests.harness import RunningWorker, consumed_all, counters, eventually, lagging, produce

pytestmark = pytest.mark.broker

SERIES = 600  # three checkpoint blocks of 256 rows, each far above the lowered limit


def _points(t: float) -> list[tuple[bytes, bytes]]:
    points = [{"ts": t, "service": "api", "metric": f"m{i}", "value": 1.0} for i in range(SERIES)]
    return [(b"api", json.dumps({"points": points[j : j + 100]}).encode())
            for j in range(0, len(points), 100)]  # fmt: skip


async def _set_max_bytes(worker: RunningWorker, value: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=worker.bootstrap)
    await admin.start()
    try:
        topic = f"{worker.app_id}-detector-blocks"
        resource = ConfigResource(ConfigResourceType.TOPIC, topic, {"max.message.bytes": value})
        for response in await admin.alter_configs([resource]):
            for code, message, *_ in response.resources:
                assert not code, message
    finally:
        await admin.close()


async def _count(worker: RunningWorker, name: str) -> float:
    return (await counters(worker)).get(f"warroom_{name}_total", 0.0)


async def test_a_refused_checkpoint_commits_nothing_and_is_retried_ever_less_often(
    start_worker: Callable[..., RunningWorker],
) -> None:
    worker = start_worker()
    await _set_max_bytes(worker, "2000")
    await produce(worker.bootstrap, worker.topics.metrics, _points(time.time() - 60))

    async def lost(n: int) -> float | None:
        # Each refusal fails the batch after it too: two errors a refusal.
        return time.monotonic() if await _count(worker, "detect_errors") >= 2 * n else None

    at = [await eventually(lambda n=n: lost(n), 90, f"{n} checkpoints refused")  # type: ignore[misc]
          for n in range(1, 6)]  # fmt: skip
    # After four refusals in a row the worker waits 4 s before reading again (it read, scored
    # and was refused again every 2 s or so here, for as long as the topic refused).
    assert at[4] - at[3] >= 3.5, [round(b - a, 1) for a, b in itertools.pairwise(at)]
    assert await _count(worker, "checkpoints_lost") >= 5
    assert await _count(worker, "checkpoints_written") == 0
    group = f"{worker.app_id}-detect"
    behind = await lagging(worker.bootstrap, group, worker.topics.metrics)
    assert behind and all(done == 0 for done, _ in behind.values()), "nothing committed"

    await _set_max_bytes(worker, "1048588")  # the broker's default again

    async def committed() -> bool | None:
        return await consumed_all(worker.bootstrap, group, worker.topics.metrics) or None

    await eventually(committed, 90, "every point committed once the topic takes the blocks")
    assert await _count(worker, "checkpoints_written") >= 1
