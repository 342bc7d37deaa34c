"""Faults: SIGKILLed workers, a restarted broker and a flapping webhook lose and duplicate nothing.

Counted after each scenario: incidents (none lost, none twice), pages by dedup key at a real
webhook server (each exactly once), and the MTTR aggregates against a batch recomputation.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from devtools.kafka_local import LocalBroker, free_port
from responders.lifecycle import incident_id_for
from tests.broker.test_mttr_exactness import batch_aggregates, converged
from tests.harness import (
    Api,
    RunningWorker,
    WebhookServer,
    consumed_all,
    eventually,
    new_worker,
    produce,
    read_all,
)

pytestmark = pytest.mark.broker

SERVICES = [f"svc{i}" for i in range(6)]


def catalog(hook_url: str) -> dict[str, Any]:
    return {
        "services": {s: {"team": "ops", "tier": 1} for s in SERVICES},
        "teams": {"ops": {"members": ["alice"], "escalation": [{"targets": ["alice"]}]}},
        "people": {"alice": {"contacts": [{"channel": "webhook", "address": hook_url}]}},
    }


def detection(det_id: str, service: str, at: float) -> tuple[bytes, bytes]:
    body = {"id": det_id, "ts": at, "service": service, "signal": "errors",
            "detector": "manual", "score": 1.0, "severity": "error"}  # fmt: skip
    return service.encode(), json.dumps(body).encode()


def command(kind: str, service: str, at: float) -> tuple[bytes, bytes]:
    body = {"id": f"cmd-{kind}-{service}", "kind": kind, "routing_key": service,
            "incident_id": incident_id_for(service, f"d-{service}-1"), "actor": "alice",
            "issued_at": at, "at": at}  # fmt: skip
    return service.encode(), json.dumps(body).encode()


def scenario(base: float) -> list[tuple[str, list[tuple[bytes, bytes]]]]:
    """Five stages: detections open and grow incidents, commands drive them to resolved."""
    return [
        ("detections", [detection(f"d-{s}-1", s, base + i) for i, s in enumerate(SERVICES)]),
        ("detections", [detection(f"d-{s}-2", s, base + 10 + i) for i, s in enumerate(SERVICES)]),
        ("commands", [command("acknowledge", s, base + 60 + i) for i, s in enumerate(SERVICES)]),
        ("commands", [command("mitigate", s, base + 120 + i) for i, s in enumerate(SERVICES)]),
        ("commands", [command("resolve", s, base + 300 + i) for i, s in enumerate(SERVICES)]),
    ]


async def settled(worker: RunningWorker) -> None:
    topics = worker.topics

    async def probe() -> bool | None:
        for topic in (topics.detections, topics.commands, topics.events, topics.pages):
            if not await consumed_all(worker.bootstrap, worker.group_of(topic), topic):
                return None
        return True

    await eventually(probe, 90, "the worker to consume every input")


def delivered_keys(webhook: WebhookServer, kills: int) -> Counter[str]:
    """Webhook requests per page key: every page arrives, and again only after a crash.

    A kill between a webhook's answer and the notification log reaching the broker sends that
    page once more on recovery, under the same ``Idempotency-Key`` (at least once, never a new
    key); so each extra copy needs a kill of its own.
    """
    by_key = Counter(r["json"]["dedup_key"] for r in webhook.requests)
    for r in webhook.requests:
        assert r["headers"]["Idempotency-Key"] == r["json"]["dedup_key"], r["headers"]
    extra = sum(n - 1 for n in by_key.values())
    assert extra <= kills, f"{extra} repeated deliveries after {kills} kills: {by_key}"
    return by_key


async def check_outcome(
    worker: RunningWorker, webhook: WebhookServer, resolved: bool, kills: int
) -> str:
    """No lost or duplicate incident, each page delivered (again only after a crash),
    aggregates = batch recomputation; returns a one-line summary of what was compared."""
    expected_ids = {incident_id_for(s, f"d-{s}-1") for s in SERVICES}
    await webhook.wait_for(len(SERVICES), timeout_s=60)
    await settled(worker)
    _, body = await Api(worker).get("/api/incidents")
    ids = [i["id"] for i in body["incidents"]]
    assert sorted(ids) == sorted(expected_ids), [
        (i["id"], i["detection_ids"], i["status"]) for i in body["incidents"]
    ]
    for incident in body["incidents"]:
        assert incident["detection_count"] == 2
        assert incident["status"] == ("resolved" if resolved else "triggered")
    events = {e["id"]: e for e in await read_all(worker.bootstrap, worker.topics.events)}
    opened = Counter(e["incident_id"] for e in events.values() if e["kind"] == "opened")
    assert set(opened) == expected_ids and set(opened.values()) == {1}
    by_key = delivered_keys(webhook, kills)
    assert len(by_key) == len(SERVICES), by_key
    expected_aggregates = batch_aggregates(list(events.values()))
    await converged(worker, expected_aggregates)
    return (
        f"{len(ids)} incidents (expected {len(expected_ids)}, each opened once), "
        f"{sum(i['detection_count'] for i in body['incidents'])} detections attached, "
        f"{len(by_key)} page keys delivered ({sum(by_key.values())} requests), "
        f"{len(expected_aggregates)} aggregate keys equal to a batch recomputation"
    )


async def test_five_sigkills_lose_nothing_and_duplicate_no_incident(
    start_worker: Callable[..., RunningWorker], webhook_server: WebhookServer
) -> None:
    worker = start_worker(catalog(webhook_server.url))
    rng = random.Random(20240909)
    base = time.time() - 3600
    kills = 0
    for topic_name, messages in scenario(base):
        topic = getattr(worker.topics, topic_name)
        await produce(worker.bootstrap, topic, messages)
        # SIGKILL at a random point of this stage's processing (seeded), then restart.
        await asyncio.sleep(rng.uniform(0.0, 1.5))
        # Counted only when it ended a running worker (one that died by itself is not a kill).
        kills += worker.kill()
        worker.start()
    assert kills == 5, f"{5 - kills} of 5 SIGKILLs found the worker already dead"
    summary = await check_outcome(worker, webhook_server, resolved=True, kills=kills)
    assert worker.proc is not None and worker.proc.poll() is None
    print(f"fault suite: {kills} SIGKILLs and restarts; {summary}")


@pytest.fixture
async def own_broker(tmp_path: Path) -> AsyncIterator[LocalBroker]:
    """A broker for this test alone, so restarting it leaves the session's broker untouched."""
    broker = LocalBroker(tmp_path / "kafka")
    await asyncio.to_thread(broker.start, 180)
    try:
        yield broker
    finally:
        await asyncio.to_thread(broker.stop)


async def test_worker_recovers_without_loss_when_the_broker_restarts(
    own_broker: LocalBroker, webhook_server: WebhookServer, tmp_path: Path
) -> None:
    bootstrap = own_broker.bootstrap
    worker = new_worker(bootstrap, tmp_path, "broker-restart", catalog(webhook_server.url), {})
    await asyncio.to_thread(worker.start)
    try:
        stages = scenario(time.time() - 3600)[:2]
        await produce(bootstrap, worker.topics.detections, stages[0][1])
        await webhook_server.wait_for(len(SERVICES), timeout_s=60)
        assert await asyncio.to_thread(own_broker.restart) == bootstrap  # same port, same data
        await produce(bootstrap, worker.topics.detections, stages[1][1])
        summary = await check_outcome(worker, webhook_server, resolved=False, kills=0)
        assert worker.proc is not None and worker.proc.poll() is None, "the worker died"
        print(f"broker restart: 1 restart mid-stream; {summary}")
        status, health = await Api(worker).get("/healthz")
        assert (status, health["status"]) == (200, "ok")
    finally:
        await asyncio.to_thread(worker.stop)


async def test_flapping_webhook_gets_each_page_once_and_receipts_show_failures(
    start_worker: Callable[..., RunningWorker],
) -> None:
    attempts: Counter[str] = Counter()
    accepted: Counter[str] = Counter()

    async def flapping(request: web.Request) -> web.Response:
        key = request.headers["Idempotency-Key"]
        attempts[key] += 1
        if attempts[key] <= 2:  # the first two attempts of every page fail
            return web.Response(status=500, text="down")
        accepted[key] += 1
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/hook", flapping)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        worker = start_worker(catalog(f"http://127.0.0.1:{port}/hook"))
        stage = scenario(time.time() - 3600)[0]
        await produce(worker.bootstrap, worker.topics.detections, stage[1])

        async def all_delivered() -> bool | None:
            return True if len(accepted) == len(SERVICES) else None

        await eventually(all_delivered, 60, "every page to get through")
        receipts = await read_all(worker.bootstrap, worker.topics.receipts)

        async def receipts_done() -> list[Any] | None:
            got = await read_all(worker.bootstrap, worker.topics.receipts)
            return got if sum(r["outcome"] == "delivered" for r in got) >= len(SERVICES) else None

        receipts = await eventually(receipts_done, 30, "the delivered receipts")
        assert set(accepted.values()) == {1}, "a page was accepted twice"
        for key in accepted:
            mine = sorted((r["attempt"], r["outcome"]) for r in receipts if r["dedup_key"] == key)
            assert mine == [(1, "failed"), (2, "failed"), (3, "delivered")], mine
    finally:
        await runner.cleanup()


def points_scenario(
    base: float, fault_at: dict[str, int], n: int
) -> list[list[tuple[bytes, bytes]]]:
    """Five stages of metric points (noise around 100), 10 per message per service; each
    service's fault is three points at nine times its level."""
    rng = random.Random(5)
    level = {s: [100.0 + rng.gauss(0.0, 3.0) for _ in range(n)] for s in SERVICES}
    messages: list[tuple[bytes, bytes]] = []
    for start in range(0, n, 10):
        for s in SERVICES:
            pts = [
                {"ts": base + i, "service": s, "metric": "latency_ms",
                 "value": 900.0 if fault_at[s] <= i < fault_at[s] + 3 else level[s][i]}
                for i in range(start, min(n, start + 10))
            ]  # fmt: skip
            messages.append((s.encode(), json.dumps({"points": pts}).encode()))
    size = -(-len(messages) // 5)
    return [messages[k : k + size] for k in range(0, len(messages), size)]


async def test_sigkills_while_points_are_scored_lose_and_duplicate_no_detection(
    start_worker: Callable[..., RunningWorker], webhook_server: WebhookServer
) -> None:
    worker = start_worker(catalog(webhook_server.url))
    rng = random.Random(20261127)
    base = time.time() - 3600
    fault_at = {s: 60 + 25 * k for k, s in enumerate(SERVICES)}  # after the 20-point warm-up
    kills = 0
    for stage in points_scenario(base, fault_at, n=240):
        await produce(worker.bootstrap, worker.topics.metrics, stage)
        await asyncio.sleep(rng.uniform(0.0, 1.5))
        # Counted only when it ended a running worker (one that died by itself is not a kill).
        kills += worker.kill()
        worker.start()
    assert kills == 5, f"{5 - kills} of 5 SIGKILLs found the worker already dead"

    async def every_incident_paged() -> bool | None:
        # By key: a kill may deliver one page twice before another is delivered at all.
        keys = {r["json"]["dedup_key"] for r in webhook_server.requests}
        return True if len(keys) >= len(SERVICES) else None

    await eventually(every_incident_paged, 60, "a page for every incident")

    async def probe() -> bool | None:
        for topic in (worker.topics.metrics, worker.topics.detections, worker.topics.events):
            if not await consumed_all(worker.bootstrap, worker.group_of(topic), topic):
                return None
        return True

    await eventually(probe, 90, "the worker to consume every input")
    detections = await read_all(worker.bootstrap, worker.topics.detections)
    ids: dict[str, set[str]] = {}
    ended: dict[str, set[str]] = {}
    for d in detections:
        if d["status"] == "resolved":  # each fault's episode ends three points after it
            ended.setdefault(d["service"], set()).add(d["id"])
            continue
        ids.setdefault(d["service"], set()).add(d["id"])
        started = datetime.fromisoformat(d["impact_started_at"].replace("Z", "+00:00"))
        assert abs(started.timestamp() - (base + fault_at[d["service"]])) < 1e-3, d
    assert {s: len(v) for s, v in ids.items()} == dict.fromkeys(SERVICES, 1)
    assert {s: len(v) for s, v in ended.items()} == dict.fromkeys(SERVICES, 1)
    # By event id, as the projection reads them: a crash between sending an input's events and
    # writing its tables sends the same events again on replay (same ids), by design.
    events = {e["id"]: e for e in await read_all(worker.bootstrap, worker.topics.events)}
    opened = Counter(
        e["data"]["incident"]["service"] for e in events.values() if e["kind"] == "opened"
    )
    assert opened == dict.fromkeys(SERVICES, 1)
    by_key = delivered_keys(webhook_server, kills)
    assert len(by_key) == len(SERVICES), by_key
    print(
        f"points under SIGKILL: {kills} kills; {len(detections)} detection messages, "
        f"{sum(len(v) for v in ids.values())} distinct detections for {len(SERVICES)} faults, "
        f"{sum(opened.values())} incidents opened, {len(by_key)} page keys delivered "
        f"({sum(by_key.values())} requests)"
    )
