"""A second worker joins while detect's checkpoints of a large fleet are being written behind the
scoring, against a real broker: the partitions it takes are restored whole (no series starts its
warm-up again: a blind spot), and no series fires without cause (a burst of false detections)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.harness import (
    RunningWorker,
    consumed_all,
    counters,
    eventually,
    produce,
    read_all,
    same_group,
)

pytestmark = pytest.mark.broker

SERVICES = [f"svc{k}" for k in range(8)]  # keys on both partitions
METRICS = 400  # 3,200 series: checkpoints of a few megabytes, many round trips each
WARM = 40  # points per series before the second worker joins and while it does (warm-up 30)


def _wave(base: float, at: range, spike: set[str] | None = None) -> list[tuple[bytes, bytes]]:
    """Points of every series at times ``base + i`` for ``i`` in ``at``, 100 to a message; the
    metric ``m7`` of the ``spike`` services at 900."""
    out = []
    for service in SERVICES:
        points: list[dict[str, Any]] = [
            {"ts": base + i, "service": service, "metric": f"m{m}",
             "value": 900.0 if spike and service in spike and m == 7 else 80.0 + (i % 4)}
            for i in at
            for m in range(METRICS)
        ]  # fmt: skip
        out += [(service.encode(), json.dumps({"points": points[j : j + 100]}).encode())
                for j in range(0, len(points), 100)]  # fmt: skip
    return out


async def test_a_worker_joining_while_checkpoints_are_written_leaves_no_blind_spot(
    start_worker: Callable[..., RunningWorker], tmp_path: Path
) -> None:
    a = start_worker(detector="median_mad", detector_params={"window": 60, "warmup": 30})
    base = float(int(time.time()) - 3600)
    await produce(a.bootstrap, a.topics.metrics, _wave(base, range(0, 20)))
    b = same_group(a, tmp_path, "b")
    try:
        joining = asyncio.create_task(asyncio.to_thread(b.start))
        for first in range(20, WARM, 2):  # the rest of the warm-up while b joins
            await produce(a.bootstrap, a.topics.metrics, _wave(base, range(first, first + 2)))
        await joining
        group = f"{a.app_id}-detect"

        async def drained() -> bool | None:
            return await consumed_all(a.bootstrap, group, a.topics.metrics) or None

        await eventually(drained, 180, "the warm-up scored and committed")
        # Past the warm-up on whichever worker holds each partition now: normal points, then
        # one series of each service far off. Exactly those fire, each at once.
        await produce(a.bootstrap, a.topics.metrics, _wave(base, range(WARM, WARM + 5)))
        spikes = _wave(base, range(WARM + 5, WARM + 8), spike=set(SERVICES))  # a run of three
        await produce(a.bootstrap, a.topics.metrics, spikes)
        await eventually(drained, 120, "every point scored and committed")

        async def fired() -> list[dict[str, Any]] | None:
            found = await read_all(a.bootstrap, a.topics.detections)
            return found if len({d["service"] for d in found}) == len(SERVICES) else None

        try:
            found = await eventually(fired, 60, "a detection of each service's spike")
        except AssertionError:
            found = await read_all(a.bootstrap, a.topics.detections)
            raise AssertionError(f"{sorted(d['service'] for d in found)}") from None
        assert sorted((d["service"], d["signal"]) for d in found) == [
            (s, "m7") for s in SERVICES
        ], "one detection per spike, none elsewhere"
        assert len({d["id"] for d in found}) == len(found)
        processed = [(await counters(w)).get("warroom_points_processed_total", 0.0) for w in (a, b)]
        assert all(processed), f"both workers scored points: {processed}"
    finally:
        b.stop()
