"""SIGKILLs while ``detect`` writes a checkpoint behind the scoring, against a real broker: in a
timed checkpoint half sent, and in a deciding policy's blocks written alone (no timed checkpoint
at all). After the restarts, every detection a clean worker writes for the same points is there
under the same id, byte for byte (but for the time the broker appended its point), and no
other: a point trained twice, or one never trained, would change a score or a detection's
recent points."""

from __future__ import annotations

import asyncio
import json
import random
import time
from pathlib import Path

import aiohttp
import pytest
from aiokafka import AIOKafkaProducer

from tests.broker.test_fault_points import arm, kill_in_turn, killed_at
from tests.harness import (
    RunningWorker,
    consumed_all,
    counters,
    eventually,
    every_input_consumed,
    new_worker,
    read_records,
)

pytestmark = [pytest.mark.broker, pytest.mark.faults]

SERVICES = [f"svc{i}" for i in range(4)]
POINTS = 200  # per series; a fault from FAULT_AT on, for a fifth of its series' points
SERIES = 150  # metrics per service: two checkpoint blocks of 256 rows on each partition


def scenario(base: float) -> list[bytes]:
    """Noise around 100 for every series, each service's faults at ten times the level."""
    rng = random.Random(7)
    out = []
    for start in range(0, POINTS, 10):
        for s, service in enumerate(SERVICES):
            points = [
                {"ts": base + i, "service": service, "metric": f"m{m}",
                 "value": 1000.0 if _faulty(s, m, i) else 100.0 + rng.gauss(0.0, 3.0)}
                for i in range(start, start + 10) for m in range(SERIES)
            ]  # fmt: skip
            out.append(json.dumps({"points": points}).encode())
    return out


def _faulty(service: int, metric: int, i: int) -> bool:
    """Whether point ``i`` of a series is a fault: two of each service's first series for
    forty points, and its last series (in the partition's second checkpoint block, for the
    second service a partition holds) for two points at the start of each stage of forty, so
    that the recent points of its detection are the stage before."""
    early = metric < 2 and 60 + 20 * service <= i < 100 + 20 * service
    return early or (metric == SERIES - 1 and i >= 40 and i % 40 < 2)


async def produce(bootstrap: str, topic: str, messages: list[bytes]) -> None:
    """Send the messages keyed by service, in order."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for value in messages:
            key = json.loads(value)["points"][0]["service"].encode()
            await producer.send_and_wait(topic, value, key=key)
    finally:
        await producer.stop()


async def scored_all(worker: RunningWorker, interval_s: float) -> None:
    """Every point scored: committed to the end, or (no timed checkpoint, so nothing is ever
    committed and a restarted worker reads every point again) scored by this process."""
    if interval_s < 60:
        await every_input_consumed(worker, [worker.topics.metrics])
        return

    async def probe() -> bool | None:
        seen = (await counters(worker)).get("warroom_points_processed_total", 0.0)
        return True if seen >= POINTS * SERIES * len(SERVICES) else None

    await eventually(probe, 120, "every point scored")


async def detections_by_id(worker: RunningWorker) -> dict[str, set[bytes]]:
    out: dict[str, set[bytes]] = {}
    for _, value in await read_records(worker.bootstrap, worker.topics.detections):
        if value is not None:
            found = json.loads(value)
            # When the broker appended the point (the topic's own time): not the same records.
            found.pop("received_at")
            out.setdefault(found["id"], set()).add(json.dumps(found).encode())
    return out


@pytest.mark.parametrize("interval_s", [0.0, 3600.0], ids=["timed", "deciding-only"])
async def test_kills_while_a_checkpoint_is_written_behind_change_no_detection(
    kafka_bootstrap: str, tmp_path: Path, request: pytest.FixtureRequest, interval_s: float
) -> None:
    settings = {"checkpoint_interval_s": interval_s}
    made: list[RunningWorker] = []

    def worker() -> RunningWorker:
        made.append(new_worker(kafka_bootstrap, tmp_path, request.node.name, None, settings))
        return made[-1]

    clean, crashed = worker(), worker()
    messages = scenario(time.time() - 3600)
    try:
        await asyncio.to_thread(clean.start)
        await produce(kafka_bootstrap, clean.topics.metrics, messages)
        await scored_all(clean, interval_s)
        want = await detections_by_id(clean)
        assert want, "the faults fire"

        point = "mid-checkpoint"
        specs = [f"{point}:1", f"{point}:2", f"{point}:1"]
        arm(crashed, specs[0])
        await asyncio.to_thread(crashed.start)
        await produce(kafka_bootstrap, crashed.topics.metrics, messages)
        assert await kill_in_turn(crashed, point, specs, 90) == len(specs)
        await scored_all(crashed, interval_s)
        got = await detections_by_id(crashed)
    finally:
        for each in made:
            await asyncio.to_thread(each.stop)
    assert sorted(got) == sorted(want), "the same detections, by id"
    changed = {i: _diff(want[i], v) for i, v in got.items() if v != want[i]}
    assert not changed, f"detections written otherwise after a crash: {changed}"


def _diff(want: set[bytes], got: set[bytes]) -> list[dict[str, tuple[object, object]]]:
    """The fields of each message written otherwise than the clean worker's (its one)."""
    [clean] = [json.loads(w) for w in want]
    out = []
    for g in got - want:
        other = json.loads(g)
        out.append({k: (clean.get(k), other.get(k)) for k in clean.keys() | other.keys()
                    if clean.get(k) != other.get(k)})  # fmt: skip
    return out


@pytest.mark.parametrize("interval_s", [0.0, 3600.0], ids=["timed", "deciding-only"])
async def test_kills_while_later_points_are_scored_behind_a_checkpoint_change_no_detection(
    kafka_bootstrap: str, tmp_path: Path, request: pytest.FixtureRequest, interval_s: float
) -> None:
    # The points come a stage at a time, each scored (and, with timed checkpoints, committed)
    # before the next is sent: the worker dies in a checkpoint taken after some stage, while
    # the next one is scored (its detections sent), and restarts from the commit before it.
    made: list[RunningWorker] = []

    def worker() -> RunningWorker:
        made.append(new_worker(kafka_bootstrap, tmp_path, request.node.name, None,
                               {"checkpoint_interval_s": interval_s}))  # fmt: skip
        return made[-1]

    clean, crashed = worker(), worker()
    messages = scenario(time.time() - 3600)
    stages = [messages[k : k + 16] for k in range(0, len(messages), 16)]
    point = "mid-checkpoint"
    specs = [f"{point}:5", f"{point}:2", f"{point}:7"]
    try:
        await asyncio.to_thread(clean.start)
        await produce(kafka_bootstrap, clean.topics.metrics, messages)
        await scored_all(clean, interval_s)
        want = await detections_by_id(clean)

        arm(crashed, specs[0])
        await asyncio.to_thread(crashed.start)
        kills = 0
        for k, stage in enumerate(stages):
            await produce(kafka_bootstrap, crashed.topics.metrics, stage)
            sent = sum(len(json.loads(m)["points"]) for m in messages[: 16 * (k + 1)])

            async def through() -> str | None:
                return await _through_or_dead(crashed, interval_s, sent)  # noqa: B023

            while await eventually(through, 120, "a stage") == "dead":
                await killed_at(crashed, point, kills, 5)
                kills += 1
                armed = kills < len(specs)
                arm(crashed, specs[kills] if armed else None)
                await asyncio.to_thread(crashed.start, 90.0, not armed)
        got = await detections_by_id(crashed)
    finally:
        for each in made:
            await asyncio.to_thread(each.stop)
    assert kills >= 2, f"only {kills} kills landed in a checkpoint"
    assert sorted(got) == sorted(want), "the same detections, by id"
    changed = {i: _diff(want[i], v) for i, v in got.items() if v != want[i]}
    assert not changed, f"detections written otherwise after a crash: {changed}"


async def _through_or_dead(worker: RunningWorker, interval_s: float, sent: int) -> str | None:
    """``dead`` once the worker has died, ``through`` once it has committed every point sent
    (or, with no timed checkpoint, nothing ever committed, scored as many points as were sent:
    it reads every one again after each restart)."""
    if worker.proc is not None and worker.proc.poll() is not None:
        return "dead"
    if interval_s >= 60:
        try:
            seen = (await counters(worker)).get("warroom_points_processed_total", 0.0)
        except (OSError, aiohttp.ClientError):  # dying, or not serving yet
            return None
        return "through" if seen >= sent else None
    topic = worker.topics.metrics
    done = await consumed_all(worker.bootstrap, worker.group_of(topic), topic)
    return "through" if done else None
