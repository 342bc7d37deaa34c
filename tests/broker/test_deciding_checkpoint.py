"""A run in progress is checkpointed by its own blocks alone, and survives a crash, against a
real broker."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

import pytest

from tests.harness import RunningWorker, counters, eventually, produce, read_all

pytestmark = pytest.mark.broker

SERIES = 600  # three checkpoint blocks of 256 rows


def _points(t: float, hot: int | None = None) -> list[tuple[bytes, bytes]]:
    points = [
        {"ts": t, "service": "api", "metric": f"m{i}", "value": 50.0 if i == hot else 1.0}
        for i in range(SERIES)
        if hot is None or i == hot
    ]
    return [(b"api", json.dumps({"points": points[j : j + 100]}).encode())
            for j in range(0, len(points), 100)]  # fmt: skip


async def _count(worker: RunningWorker, name: str) -> float:
    return (await counters(worker)).get(f"warroom_{name}_total", 0.0)


async def _firing(worker: RunningWorker) -> list[dict[str, Any]]:
    found = await read_all(worker.bootstrap, worker.topics.detections)
    return [d for d in found if d.get("detector") == "static_threshold"]


async def test_a_run_begun_before_a_crash_is_written_alone_and_fires_once_after_it(
    start_worker: Callable[..., RunningWorker],
) -> None:
    worker = start_worker(
        detector="static_threshold",
        detector_params={"upper": 10.0},
        policy_params={"for_points": 2},
        checkpoint_interval_s=3600,  # no timed checkpoint: only what deciding writes
    )
    t0 = time.time() - 60
    await produce(worker.bootstrap, worker.topics.metrics, _points(t0))

    async def processed(n: int) -> bool | None:
        return True if await _count(worker, "points_processed") >= n else None

    await eventually(lambda: processed(SERIES), 60, "the fleet's first points")
    # One series' first hot point: its run begins (two are needed to fire).
    await produce(worker.bootstrap, worker.topics.metrics, _points(t0 + 1, hot=7))

    async def deciding() -> float | None:
        return await _count(worker, "checkpoint_deciding_blocks") or None

    assert await eventually(deciding, 60, "the run's block written") == 1, "its block alone"
    seen = await counters(worker)
    assert seen.get("warroom_checkpoints_written_total", 0.0) == 0, "no whole checkpoint"
    assert await _firing(worker) == []

    assert worker.kill()
    worker.start()  # the same app: it restores the run's block, replays what was not committed
    await produce(worker.bootstrap, worker.topics.metrics, _points(t0 + 2, hot=7))

    async def fired() -> list[dict[str, Any]] | None:
        found = await _firing(worker)
        return found or None

    found = await eventually(fired, 90, "the run's detection after the crash")
    # Nothing was committed: every point is read again (those of the run's block as stale).
    await eventually(lambda: processed(SERIES + 2), 60, "every point read again")
    assert await _firing(worker) == found
    assert [(d["signal"], d["status"]) for d in found] == [("m7", "firing")]
    assert datetime.fromisoformat(found[0]["ts"]).timestamp() == pytest.approx(t0 + 2)
