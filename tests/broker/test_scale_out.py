"""Scale-out: a second worker joins mid-scenario, the first one leaves; no incident lost or twice.

Twenty-four services stream latency points (one a second of event time each) over four
partitions. Worker A starts alone; while the points flow, worker B joins the same consumer group
(same app id and topics), so the partitions are split between them; later A stops gracefully and
B takes over everything. Every service gets one injected fault (three points at nine times the
level), six in each phase, the middle ones timed by the consumer group's own state. Afterwards:
one detection and one incident per fault and none elsewhere, each page delivered exactly once at
a real webhook server, and both workers processed points.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.partitioner import DefaultPartitioner

from responders.lifecycle import incident_id_for
from tests.harness import (
    Api,
    RunningWorker,
    WebhookServer,
    eventually,
    group_state,
    lagging,
    read_all,
    read_timed_records,
    same_group,
)

pytestmark = pytest.mark.broker

PARTITIONS = 4
# One injected fault per service, six in each phase: A alone; B joining (the partitions move
# while points flow); both running, right after the handover (a lost detector state would be a
# blind spot of 30 points); A leaving (B takes over A's partitions).
PHASES = ("a_alone", "b_joining", "both", "a_leaving")
SERVICES = [f"svc{i:02d}" for i in range(6 * len(PHASES))]
WARMUP = 40  # points per series before the scenario (the detector warms up on 30)
ROUND_S = 0.1  # wall-clock pace of the rounds (one point per service, a second of event time)
FAULT_POINTS = 3  # points at nine times the level


def catalog(hook_url: str) -> dict[str, Any]:
    """One team and on-call person per service, so pages spread over the delivery partitions."""
    return {
        "services": {s: {"team": f"team-{s}", "tier": 1} for s in SERVICES},
        "teams": {
            f"team-{s}": {"members": [f"oncall-{s}"], "escalation": [{"targets": [f"oncall-{s}"]}]}
            for s in SERVICES
        },
        "people": {
            f"oncall-{s}": {"contacts": [{"channel": "webhook", "address": hook_url}]}
            for s in SERVICES
        },
    }


class Scenario:
    """Plays the points round by round; a fault is injected into a service when asked, and
    remembered, so the expected detections follow from what was actually sent."""

    def __init__(self, producer: AIOKafkaProducer, topic: str, base: float) -> None:
        self.producer, self.topic, self.base = producer, topic, base
        self.round = 0
        self.faults: dict[str, int] = {}  # service -> index of its first anomalous point
        self.phase_of: dict[str, str] = {}

    def fault_starts(self, service: str) -> float:
        return self.base + self.faults[service]

    def value(self, service: str, i: int) -> float:
        start = self.faults.get(service)
        if start is not None and start <= i < start + FAULT_POINTS:
            return 900.0
        return 100.0 + (i % 5)

    def point(self, service: str, i: int) -> dict[str, Any]:
        return {"ts": self.base + i, "service": service, "metric": "latency_ms",
                "value": self.value(service, i)}  # fmt: skip

    async def warm_up(self) -> None:
        sent = [
            await self.producer.send(
                self.topic,
                json.dumps({"points": [self.point(s, i) for i in range(WARMUP)]}).encode(),
                key=s.encode(),
            )
            for s in SERVICES
        ]
        await asyncio.gather(*sent)

    async def rounds(
        self, n: int, phase: str = "", fault_every: int = 0, faults: int | None = None
    ) -> None:
        """``n`` rounds; with ``fault_every``, a fault in the next service that has had none
        every so many rounds (from the first), up to ``faults`` of them."""
        budget = len(self.waiting()) if faults is None else faults
        for k in range(n):
            i = WARMUP + self.round
            if fault_every and k % fault_every == 0 and budget > 0 and self.waiting():
                service = self.waiting()[0]
                self.faults[service] = i
                self.phase_of[service] = phase
                budget -= 1
            sent = [
                await self.producer.send(
                    self.topic, json.dumps(self.point(s, i)).encode(), key=s.encode()
                )
                for s in SERVICES
            ]
            await asyncio.gather(*sent)
            self.round += 1
            await asyncio.sleep(ROUND_S)  # pacing only; nothing is asserted after it

    async def rounds_until(
        self, done: Callable[[], Awaitable[bool]], what: str, timeout_s: float = 60.0
    ) -> None:
        """Rounds without faults until ``done()`` holds, or fail at the deadline."""
        deadline = time.monotonic() + timeout_s
        while not await done():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")
            await self.rounds(1)

    def waiting(self) -> list[str]:
        return [s for s in SERVICES if s not in self.faults]


def ts(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


async def processed(worker: RunningWorker) -> int:
    """The worker's ``warroom_points_processed_total``."""
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{worker.base_url}/metrics") as response,
    ):
        text = await response.text()
    found = re.search(r"^warroom_points_processed_total (\S+)$", text, re.MULTILINE)
    assert found is not None, text[:500]
    return int(float(found.group(1)))


async def incident_ids(worker: RunningWorker) -> set[str]:
    _, body = await Api(worker).get("/api/incidents")
    return {i["id"] for i in body["incidents"]}


async def play(a: RunningWorker, b: RunningWorker, base: float) -> tuple[Scenario, dict[str, int]]:
    """The scenario: A alone, B joins, both run, A leaves; points flow all the while."""
    producer = AIOKafkaProducer(bootstrap_servers=a.bootstrap, acks="all", linger_ms=5)
    await producer.start()
    marks: dict[str, int] = {}
    try:
        scenario = Scenario(producer, a.topics.metrics, base)
        await scenario.warm_up()
        await scenario.rounds(20, "a_alone", fault_every=3, faults=6)
        marks["b_started"] = scenario.round
        b_ready = asyncio.ensure_future(asyncio.to_thread(b.start))

        async def b_joins() -> bool:
            if b_ready.done():
                return True
            state, members = await group_state(a.bootstrap, a.app_id)
            return state != "Stable" or members > 1

        await scenario.rounds_until(b_joins, "worker B to join the group")
        marks["b_joined"] = scenario.round
        # A fault every other round while the partitions move: A gives up its share (and
        # commits), B recovers that share of the tables and resumes from the committed offsets.
        await scenario.rounds(12, "b_joining", fault_every=2, faults=6)

        async def b_is_ready() -> bool:
            return b_ready.done()

        await scenario.rounds_until(b_is_ready, "worker B to be ready")
        await b_ready
        marks["b_ready"] = scenario.round
        await scenario.rounds(20, "both", fault_every=3, faults=6)

        # Each incident so far is served by exactly one worker, the owner of its partition.
        async def split() -> tuple[set[str], set[str]] | None:
            on_a, on_b = await incident_ids(a), await incident_ids(b)
            whole = not on_a & on_b and len(on_a | on_b) == len(scenario.faults)
            return (on_a, on_b) if whole else None

        on_a, on_b = await eventually(split, 20, "each incident on exactly one worker")
        marks["incidents_on_a"], marks["incidents_on_b"] = len(on_a), len(on_b)
        marks["a_processed"] = await processed(a)
        marks["b_processed_with_a"] = await processed(b)
        marks["a_stopped"] = scenario.round
        a_gone = asyncio.ensure_future(asyncio.to_thread(a.stop))
        # From SIGTERM on: A finishes its current work, commits and leaves; B takes over.
        await scenario.rounds(12, "a_leaving", fault_every=2, faults=6)

        async def a_is_gone() -> bool:
            return a_gone.done()

        await scenario.rounds_until(a_is_gone, "worker A to stop")
        await a_gone
        marks["a_gone"] = scenario.round
        await scenario.rounds(10)
        assert scenario.waiting() == [], "every fault was injected"
        return scenario, marks
    finally:
        await producer.stop()


async def test_a_worker_joins_and_one_leaves_mid_scenario_without_loss_or_duplicates(
    start_worker: Callable[..., RunningWorker], webhook_server: WebhookServer, tmp_path: Path
) -> None:
    partitioner = DefaultPartitioner()
    owners = {partitioner(s.encode(), list(range(PARTITIONS)), list(range(PARTITIONS)))
              for s in SERVICES}  # fmt: skip
    assert owners == set(range(PARTITIONS)), "every partition carries some services"
    started = time.monotonic()
    a = start_worker(
        catalog(webhook_server.url),
        partitions=PARTITIONS,
        detector="median_mad",
        detector_params={"window": 60, "warmup": 30},
        policy_params={"for_points": 2},
    )
    b = same_group(a, tmp_path, "b")
    base = float(int(time.time()) - 3600)
    try:
        scenario, marks = await play(a, b, base)

        # Pages: one per fault.
        try:
            await webhook_server.wait_for(len(SERVICES), timeout_s=30)
        except AssertionError:
            paged = {r["json"]["dedup_key"].split("/")[2] for r in webhook_server.requests}
            found = await read_all(b.bootstrap, b.topics.detections)
            missing = sorted(set(SERVICES) - {p.removeprefix("oncall-") for p in paged})
            detected = {d["service"] for d in found}
            events = await read_all(b.bootstrap, b.topics.events)
            pages = await read_all(b.bootstrap, b.topics.pages)
            trail: list[tuple[Any, ...]] = [
                (e["kind"], e["at"]) for e in events if e["routing_key"] in missing
            ]
            trail += [("page", p.get("dedup_key")) for p in pages
                      if any(s in json.dumps(p) for s in missing)]  # fmt: skip
            trail += [("detection", d["id"], d["ts"]) for d in found
                      if d["service"] in missing]  # fmt: skip
            # Where their detections are, and whether the group committed past them.
            trail += [("at", r.partition, r.offset, r.key)
                      for r in await read_timed_records(b.bootstrap, b.topics.detections)
                      if r.value is not None
                      and json.loads(r.value)["service"] in missing]  # fmt: skip
            inputs = (b.topics.detections, b.topics.commands, b.topics.pages)
            trail += [("lagging", await lagging(b.bootstrap, b.group_of(t), t))
                      for t in inputs]  # fmt: skip
            dump = b.dump_tasks()
            raise AssertionError(
                f"no page for {missing} (detected: {sorted(detected & set(missing))}); "
                f"events and pages of theirs: {trail}; "
                f"phases {scenario.phase_of}; marks {marks}\n"
                f"--- A ---\n{a.log_tail(80)}\n--- B ---\n{b.log_tail(80)}\n"
                f"--- B's tasks ---\n{dump}"
            ) from None

        behind: dict[str, Any] = {}

        async def settled() -> bool | None:
            topics = b.topics
            for topic in (topics.metrics, topics.detections, topics.events, topics.pages,
                          topics.deliveries):  # fmt: skip
                lag = await lagging(b.bootstrap, b.group_of(topic), topic)
                if lag:
                    behind.clear()
                    behind[topic] = lag
                    return None
            return True

        try:
            await eventually(settled, 30, "worker B to consume every input")
        except AssertionError as exc:
            raise AssertionError(
                f"{exc}; committed / end offsets behind: {behind}\n--- B ---\n{b.log_tail(150)}"
            ) from None

        # Detections: one (distinct id) per fault, none elsewhere, each where it was injected.
        # (Each fault's episode also ends: its resolved detections are not counted here.)
        detections = await read_all(b.bootstrap, b.topics.detections)
        by_service: dict[str, set[str]] = {}
        for d in detections:
            if d["status"] == "resolved":
                continue
            by_service.setdefault(d["service"], set()).add(d["id"])
            assert ts(d["impact_started_at"]) == scenario.fault_starts(d["service"]), d
        assert {s: len(ids) for s, ids in by_service.items()} == dict.fromkeys(SERVICES, 1)
        expected = {s: incident_id_for(s, ids.pop()) for s, ids in by_service.items()}

        # Incidents: exactly one opened per fault, on the timeline and in B's incident table
        # (B owns every partition now).
        events = await read_all(b.bootstrap, b.topics.events)
        opened = {e["incident_id"] for e in events if e["kind"] == "opened"}
        assert opened == set(expected.values()), sorted(opened)
        _, body = await Api(b).get("/api/incidents")
        incidents = {i["id"]: i for i in body["incidents"]}
        assert len(incidents) == len(body["incidents"])
        assert set(incidents) == set(expected.values())
        for service, incident_id in expected.items():
            incident = incidents[incident_id]
            assert (incident["service"], incident["status"]) == (service, "triggered")
            assert incident["detection_count"] == 1, incident

        # Pages at the webhook: one per incident and dedup key, none twice.
        by_key = Counter(r["json"]["dedup_key"] for r in webhook_server.requests)
        assert [k for k, n in by_key.items() if n > 1] == [], "a page was delivered twice"
        assert set(by_key) == {f"{expected[s]}/0/oncall-{s}/webhook" for s in SERVICES}

        # Both workers owned partitions: B processed points while A was running, A did not
        # process them all, and B processed more after A left.
        total = len(SERVICES) * (WARMUP + scenario.round)
        b_total = await processed(b)
        assert 0 < marks["a_processed"] < total, marks
        assert 0 < marks["b_processed_with_a"] < b_total, (marks, b_total)
        assert marks["incidents_on_a"] > 0 and marks["incidents_on_b"] > 0, marks
        assert b.proc is not None and b.proc.poll() is None, "worker B died"
        assert a.proc is not None and a.proc.returncode is not None, "worker A did not stop"
        print(
            f"scale-out: {total} points in {scenario.round} rounds; B started at round "
            f"{marks['b_started']}, joined the group at {marks['b_joined']}, ready at "
            f"{marks['b_ready']}; A stopped at {marks['a_stopped']}, gone at {marks['a_gone']}; "
            f"faults by phase {dict(Counter(scenario.phase_of.values()))}; points processed: "
            f"A {marks['a_processed']} before stopping, B {marks['b_processed_with_a']} beside "
            f"A and {b_total} in all; incidents served by A / B while both ran: "
            f"{marks['incidents_on_a']} / {marks['incidents_on_b']}; "
            f"{time.monotonic() - started:.1f}s"
        )
    finally:
        await asyncio.to_thread(b.stop)
