"""On a three-broker cluster (replication 3, ``min.insync.replicas`` 2, ``acks=all``): SIGKILL the
broker that leads a points partition, then the one that leads a timeline partition, each while
the worker is busy with them, then SIGKILL the worker and let another of its group take over.

Counted at the end: incidents (each service's fault opens exactly one), pages by dedup key at a
real webhook server that ignores ``Idempotency-Key`` (each delivered exactly once),
acknowledgements (each recorded once), and the MTTR aggregates against a batch recomputation.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from devtools.kafka_local import LocalCluster, partition_states
from tests.broker.test_faults import SERVICES, catalog, points_scenario
from tests.broker.test_mttr_exactness import batch_aggregates, converged
from tests.harness import (
    Api,
    RunningWorker,
    WebhookServer,
    eventually,
    every_input_consumed,
    new_worker,
    produce,
    read_all,
    same_group,
)

# Outside `make test` (see `make test-cluster`): it fails about one run in eight, when a broker
# that was the group coordinator dies and Faust's rebalance then waits on an event no agent
# acknowledges (docs/operations.md, "Running on a cluster").
pytestmark = [pytest.mark.broker, pytest.mark.cluster]


@pytest.fixture
async def cluster(kafka_cluster: LocalCluster) -> AsyncIterator[LocalCluster]:
    """The session's cluster, whole again after the test whatever it killed."""
    yield kafka_cluster
    for node_id in set(kafka_cluster.nodes) - set(kafka_cluster.alive()):
        await asyncio.to_thread(kafka_cluster.restart_node, node_id)


async def kill_leader(cluster: LocalCluster, topic: str, partition: int) -> int:
    """SIGKILL the node that leads ``topic``'s ``partition``; wait until another node leads it
    (a replica that was in sync: unclean election is off). Returns the killed node's id."""
    leader = await cluster.leader_of(topic, partition)
    assert leader in cluster.alive(), (topic, partition, leader)
    await asyncio.to_thread(cluster.kill, leader)

    async def moved() -> int | None:
        now = await cluster.leader_of(topic, partition)
        return now if now not in (-1, leader) else None

    await eventually(moved, 60, f"a new leader of {topic}[{partition}] after killing {leader}")
    return leader


async def rejoin(cluster: LocalCluster, node_id: int, topics: list[str]) -> None:
    """Restart a killed node and wait until it is back in sync on every partition of ``topics``,
    so that the next kill still leaves two in-sync replicas."""
    await asyncio.to_thread(cluster.restart_node, node_id)

    async def in_sync() -> bool | None:
        states = await partition_states(cluster.bootstrap, topics)
        return True if all(len(s.isr) == 3 for s in states.values()) else None

    await eventually(in_sync, 90, f"node {node_id} back in every ISR")


async def settled(worker: RunningWorker) -> None:
    """Wait until the worker's groups have committed every input to its end."""
    topics = worker.topics
    inputs = (topics.metrics, topics.detections, topics.commands, topics.events, topics.pages)
    await every_input_consumed(worker, inputs)


async def acknowledge_open(worker: RunningWorker, services: set[str]) -> set[str]:
    """Acknowledge the open incident of each of ``services`` through the API, as a client
    would: a 503 (the broker has not acknowledged the write yet, as in a leader election) is
    retried with the same ``Idempotency-Key`` until it answers 202. Returns the incidents' ids."""

    async def listed() -> list[dict[str, Any]] | None:
        _, body = await Api(worker).get("/api/incidents")
        found = [i for i in body["incidents"] if i["service"] in services]
        return found if len(found) == len(services) else None

    incidents = await eventually(listed, 60, f"incidents of {sorted(services)} in the API")
    for incident in incidents:
        url = f"{worker.base_url}/api/incidents/{incident['id']}/acknowledge"
        headers = {**worker.headers(), "Idempotency-Key": f"ack-{incident['id']}"}

        async def accepted(url: str = url, headers: dict[str, str] = headers) -> bool | None:
            async with (
                aiohttp.ClientSession() as session,
                session.post(url, json={}, headers=headers) as response,
            ):
                assert response.status in (202, 503), (response.status, await response.text())
                return True if response.status == 202 else None

        await eventually(accepted, 90, f"the acknowledgement of {incident['id']}", 0.5)
    return {i["id"] for i in incidents}


async def test_cluster_leader_and_worker_kills_lose_and_duplicate_nothing(
    cluster: LocalCluster, webhook_server: WebhookServer, tmp_path: Path
) -> None:
    started = time.monotonic()
    worker = new_worker(
        cluster.bootstrap, tmp_path, "cluster", catalog(webhook_server.url),
        {"replication_factor": "3"},
    )  # fmt: skip
    topics = worker.topics
    await asyncio.to_thread(worker.start)
    successor = same_group(worker, tmp_path, "successor")
    broker_kills: list[tuple[str, int]] = []
    try:
        base = time.time() - 3600
        fault_at = {s: 60 + 25 * k for k, s in enumerate(SERVICES)}  # after the warm-up
        stages = points_scenario(base, fault_at, n=240)
        every_topic = [*await worker_topics(cluster, worker), "__consumer_offsets"]
        await produce(cluster.bootstrap, topics.metrics, stages[0])
        await produce(cluster.bootstrap, topics.metrics, stages[1])
        # The first faults are being scored: kill the leader of a points partition.
        killed = await kill_leader(cluster, topics.metrics, 0)
        broker_kills.append((topics.metrics, killed))
        await produce(cluster.bootstrap, topics.metrics, stages[2])
        await webhook_server.wait_for(2, timeout_s=90)
        await rejoin(cluster, killed, every_topic)
        # Incidents are opening: kill the leader of a timeline partition.
        await produce(cluster.bootstrap, topics.metrics, stages[3])
        killed = await kill_leader(cluster, topics.events, 0)
        broker_kills.append((topics.events, killed))
        acked = await acknowledge_open(worker, {SERVICES[0], SERVICES[1]})
        await produce(cluster.bootstrap, topics.metrics, stages[4])
        await webhook_server.wait_for(len(SERVICES), timeout_s=90)
        await rejoin(cluster, killed, every_topic)
        # Acknowledgements accepted (on the broker), then the worker dies before applying them.
        acked |= await acknowledge_open(worker, set(SERVICES[2:]))
        await asyncio.to_thread(worker.kill)
        await asyncio.to_thread(successor.start)
        await settled(successor)

        # Zero lost, zero duplicated: incidents, acknowledgements, detections, pages.
        _, body = await Api(successor).get("/api/incidents")
        assert sorted(i["service"] for i in body["incidents"]) == sorted(SERVICES), body
        assert {i["id"] for i in body["incidents"]} == acked
        assert {i["status"] for i in body["incidents"]} == {"acknowledged"}, body
        events = {e["id"]: e for e in await read_all(cluster.bootstrap, topics.events)}
        kinds = Counter((e["incident_id"], e["kind"]) for e in events.values())
        for incident_id in acked:
            assert (kinds[(incident_id, "opened")], kinds[(incident_id, "acknowledged")]) == (1, 1)
        detections = {d["id"]: d for d in await read_all(cluster.bootstrap, topics.detections)}
        firing = Counter(d["service"] for d in detections.values() if d["status"] == "firing")
        assert firing == dict.fromkeys(SERVICES, 1), firing
        # A fault's episode may end (its values back in range): at most one resolution each.
        ended = Counter(d["service"] for d in detections.values() if d["status"] == "resolved")
        assert set(ended) <= set(SERVICES) and set(ended.values()) <= {1}, ended
        by_key = Counter(r["json"]["dedup_key"] for r in webhook_server.requests)
        assert len(by_key) == len(SERVICES), by_key
        assert set(by_key.values()) == {1}, f"duplicated pages: {by_key}"
        expected = batch_aggregates(list(events.values()))
        await converged(successor, expected)

        # Every topic the worker made, Faust's changelogs included, has three replicas, needs
        # two in sync to accept a write, and never elects a replica that fell behind.
        made = await worker_topics(cluster, worker)
        states = await partition_states(cluster.bootstrap, made)
        assert states and {len(s.replicas) for s in states.values()} == {3}
        assert await durability_of(cluster, made) == {("2", "false")}
        elapsed = time.monotonic() - started
        print(
            f"cluster: {len(broker_kills)} broker SIGKILLs ({broker_kills}), 1 worker SIGKILL; "
            f"incidents expected {len(SERVICES)}, opened {len(body['incidents'])}; pages "
            f"expected {len(SERVICES)}, delivered {len(by_key)}, duplicated "
            f"{sum(by_key.values()) - len(by_key)}; {len(expected)} aggregate keys exact; "
            f"{elapsed:.0f}s"
        )
    finally:
        await asyncio.to_thread(successor.stop)
        await asyncio.to_thread(worker.stop)


async def worker_topics(cluster: LocalCluster, worker: RunningWorker) -> list[str]:
    """Every topic of ``worker``'s app: its own, Faust's changelogs, the detector state."""
    admin = AIOKafkaAdminClient(bootstrap_servers=cluster.bootstrap)
    await admin.start()
    try:
        return [t for t in await admin.list_topics() if t.startswith(worker.app_id)]
    finally:
        await admin.close()


async def durability_of(cluster: LocalCluster, topics: list[str]) -> set[tuple[str, str]]:
    """The distinct (min.insync.replicas, unclean.leader.election.enable) of ``topics``."""
    admin = AIOKafkaAdminClient(bootstrap_servers=cluster.bootstrap)
    await admin.start()
    try:
        resources = [ConfigResource(ConfigResourceType.TOPIC, t) for t in topics]
        found = set()
        for response in await admin.describe_configs(resources):
            for code, message, _type, name, entries in response.resources:
                assert not code, (name, message)
                config = {e[0]: e[1] for e in entries}
                found.add((config["min.insync.replicas"], config["unclean.leader.election.enable"]))
        return found
    finally:
        await admin.close()
