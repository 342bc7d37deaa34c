"""A partition's records taken in one batch: no series is evicted between being admitted and
having its points scored, however much event time the batch spans."""

from __future__ import annotations

import json
import time
from collections.abc import Callable

from tests.harness import RunningWorker, counters, eventually, produce


async def test_series_admitted_in_a_batch_are_not_evicted_before_their_points_are_scored(
    start_worker: Callable[..., RunningWorker],
) -> None:
    worker = start_worker(series_idle_s=3600)
    worker.stop()
    # 120 messages on one partition, each a new series, 25 s of event time apart (50 min in
    # all, less than the idle time): read by the restarted worker in one batch of several
    # chunks, past several of the eviction's 60 s sweeps. None of these series is idle.
    now = time.time()
    points = [
        {"ts": now - 3100 + 25 * m, "service": "svc", "metric": f"m{m}", "value": 1.0}
        for m in range(120)
    ]
    messages = [(b"svc", json.dumps(point).encode()) for point in points]
    await produce(worker.bootstrap, worker.topics.metrics, messages)
    worker.start()

    async def scored() -> dict[str, float] | None:
        found = await counters(worker)
        return found if found.get("warroom_points_processed_total", 0) >= 120 else None

    found = await eventually(scored, 60, "the 120 points scored")
    assert found.get("warroom_series_evicted_total", 0) == 0
    assert found["warroom_series"] == 120
