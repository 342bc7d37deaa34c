"""Retention of the notification log and the automation log on the real broker: an entry is
deleted (a tombstone on its table's changelog) once its retention has run out since it was last
written, never before; an entry stored by an earlier version (no time) is stamped once, in its
own partition, and deleted a retention later; the automation of an open incident is kept
whatever its age; and a replayed timeline does not call a forgotten incident's webhooks again."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

import aiohttp
import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.partitioner import DefaultPartitioner
from prometheus_client.parser import text_string_to_metric_families

from tests.harness import (
    Api,
    Record,
    RunningWorker,
    WebhookServer,
    consumed_all,
    eventually,
    produce,
    read_all,
    read_timed_records,
)

pytestmark = pytest.mark.broker

#: Short retentions; the worker scans for due entries once per retention.
PAGES_RETENTION_S = 3.0
AUTOMATION_RETENTION_S = 5.0
#: Record timestamps are whole milliseconds.
MS = 0.002


def detection(det_id: str, service: str) -> tuple[bytes, bytes]:
    body = {"id": det_id, "ts": time.time(), "service": service, "signal": "latency",
            "detector": "surprise", "score": 0.99, "severity": "error"}  # fmt: skip
    return service.encode(), json.dumps(body).encode()


def rows(records: list[Record], key: str) -> list[Record]:
    """The changelog records of one table key (Faust writes keys as JSON)."""
    return [r for r in records if r.key == json.dumps(key).encode()]


def written_at(record: Record) -> float:
    assert record.value is not None
    return datetime.fromisoformat(json.loads(record.value)["written_at"]).timestamp()


async def forgotten(changelog: str, worker: RunningWorker, key: str) -> list[Record] | None:
    """The key's changelog records once the last one is a tombstone."""
    found = rows(await read_timed_records(worker.bootstrap, changelog), key)
    return found if found and found[-1].value is None else None


async def counter(worker: RunningWorker, name: str) -> float:
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{worker.base_url}/metrics") as response,
    ):
        text = await response.text()
    families = {f.name: f for f in text_string_to_metric_families(text)}
    return float(families[f"warroom_{name}"].samples[0].value)


def pages_catalog(hook: str) -> dict[str, Any]:
    return {
        "services": {svc: {"team": "core", "tier": 1} for svc in ("old", "fresh")},
        "teams": {"core": {"members": ["ann"], "escalation": [{"targets": ["ann"]}]}},
        "people": {"ann": {"contacts": [{"channel": "webhook", "address": hook}]}},
    }


def key_hashing_to(partition: int, partitions: int = 2) -> str:
    """A key that Kafka's default partitioner sends to ``partition``."""
    choose = DefaultPartitioner()
    every = list(range(partitions))
    return next(
        key
        for key in (f"legacy/{n}" for n in range(1000))
        if choose(key.encode(), every, every) == partition
    )


async def test_a_page_is_forgotten_after_the_retention_and_not_before(
    start_worker: Callable[..., RunningWorker], webhook_server: WebhookServer
) -> None:
    worker = start_worker(
        pages_catalog(webhook_server.url), delivery_log_retention_s=str(PAGES_RETENTION_S)
    )
    changelog = f"{worker.app_id}-notification-log-changelog"
    # An entry stored by an earlier version (no time), in partition 1 although its key hashes
    # to partition 0: the notification log is keyed by dedup key but written by a stream keyed
    # by destination, so an entry's partition is where it was written, not its key's hash.
    legacy = key_hashing_to(0)
    before = {"outcome": "delivered", "attempts": 1}
    producer = AIOKafkaProducer(bootstrap_servers=worker.bootstrap, acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(
            changelog, json.dumps(before).encode(), key=json.dumps(legacy).encode(), partition=1
        )
    finally:
        await producer.stop()
    worker.restart()  # restores it from the changelog, as after an upgrade

    await produce(worker.bootstrap, worker.topics.detections, [detection("d-old", "old")])
    [old] = await webhook_server.wait_for(1, timeout_s=15)
    old_rows = await eventually(
        lambda: forgotten(changelog, worker, old["json"]["dedup_key"]), 30, "the old page's delete",
        interval_s=0.5,
    )  # fmt: skip
    # A fresh page, delivered after the old one was forgotten.
    await produce(worker.bootstrap, worker.topics.detections, [detection("d-fresh", "fresh")])
    [_, fresh] = await webhook_server.wait_for(2, timeout_s=15)
    fresh_rows = await eventually(
        lambda: forgotten(changelog, worker, fresh["json"]["dedup_key"]), 30,
        "the fresh page's delete", interval_s=0.5,
    )  # fmt: skip
    legacy_rows = await eventually(
        lambda: forgotten(changelog, worker, legacy), 30, "the legacy entry's delete",
        interval_s=0.5,
    )  # fmt: skip

    for found in (old_rows, fresh_rows):
        # Written pending (handed to its lane), then delivered, deleted once, and not before its
        # retention had run out.
        [pending, entry, tombstone] = found
        assert pending.value is not None and json.loads(pending.value)["outcome"] == "pending"
        assert entry.value is not None and json.loads(entry.value)["outcome"] == "delivered"
        assert pending.partition == entry.partition
        assert tombstone.partition == entry.partition
        assert tombstone.at >= written_at(entry) + PAGES_RETENTION_S - MS, (
            tombstone.at - written_at(entry)
        )
    # The legacy entry: stamped once, in its own partition, and deleted a retention later. It
    # was not looked at again in between: nothing else was written for it.
    [injected, stamped, tombstone] = legacy_rows
    assert {injected.partition, stamped.partition, tombstone.partition} == {1}
    assert stamped.value is not None and json.loads(stamped.value)["outcome"] == "delivered"
    assert tombstone.at >= written_at(stamped) + PAGES_RETENTION_S - MS
    assert await counter(worker, "notification_log_forgotten") == 3
    # Nothing was delivered twice meanwhile.
    assert [r["json"]["dedup_key"] for r in webhook_server.requests] == [
        old["json"]["dedup_key"],
        fresh["json"]["dedup_key"],
    ]


def runbook_catalog(hook: str) -> dict[str, Any]:
    return {
        "services": {svc: {"team": "core", "tier": 1} for svc in ("gone", "kept")},
        "teams": {"core": {"members": ["ann"], "escalation": [{"targets": ["ann"]}]}},
        # Pages go to the console: every request the webhook server sees is the runbook's.
        "people": {"ann": {"contacts": [{"channel": "console"}]}},
        "runbooks": {
            "status": {
                "title": "Status page",
                "applies_to": {"services": ["gone", "kept"]},
                "phases": {
                    "mobilize": [
                        {
                            "id": "status-page",
                            "title": "Post on the status page",
                            "owner_role": "communications",
                            "kind": "automated",
                            "webhook": {"url": hook, "timeout_s": 5},
                        }
                    ]
                },
            }
        },
    }


async def test_a_resolved_incidents_automation_is_forgotten_an_open_ones_is_kept(
    start_worker: Callable[..., RunningWorker], webhook_server: WebhookServer
) -> None:
    worker = start_worker(
        runbook_catalog(webhook_server.url), delivery_log_retention_s=str(AUTOMATION_RETENTION_S)
    )
    api = Api(worker)
    changelog = f"{worker.app_id}-automation-log-changelog"
    await produce(
        worker.bootstrap,
        worker.topics.detections,
        [detection("d-gone", "gone"), detection("d-kept", "kept")],
    )
    await webhook_server.wait_for(2, timeout_s=30)

    async def both_done() -> dict[str, dict[str, Any]] | None:
        _, body = await api.get("/api/incidents")
        found = {i["service"]: i for i in body["incidents"]}
        done = len(found) == 2 and all(
            i["tasks"] == {"mobilize/status-page": "done"} for i in found.values()
        )
        return found if done else None

    incidents = await eventually(both_done, 30, "both automated tasks done")
    gone, kept = incidents["gone"]["id"], incidents["kept"]["id"]

    async def events_handled() -> bool | None:
        topic = worker.topics.events
        return True if await consumed_all(worker.bootstrap, worker.app_id, topic) else None

    # Every event so far is in both entries before the resolve (the open one's last write).
    await eventually(events_handled, 30, "every timeline event handled")
    assert (await api.post(f"/api/incidents/{gone}/resolve", actor="ann"))[0] == 202

    gone_rows = await eventually(
        lambda: forgotten(changelog, worker, gone), 40, "the resolved incident's delete",
        interval_s=0.5,
    )  # fmt: skip

    async def requests_handled() -> bool | None:
        topic = worker.topics.automation_retention
        return True if await consumed_all(worker.bootstrap, worker.app_id, topic) else None

    await eventually(requests_handled, 30, "every retention request handled")
    records = await read_timed_records(worker.bootstrap, changelog)
    *_, last, tombstone = gone_rows
    assert last.value is not None and json.loads(last.value)["incident"]["status"] == "resolved"
    assert tombstone.at >= written_at(last) + AUTOMATION_RETENTION_S - MS
    # The open incident's entry is older than the retention too, and kept.
    kept_rows = rows(records, kept)
    assert kept_rows and all(r.value is not None for r in kept_rows)
    assert written_at(kept_rows[-1]) + AUTOMATION_RETENTION_S <= tombstone.at
    assert json.loads(kept_rows[-1].value or b"")["incident"]["status"] == "triggered"

    # The resolved incident's timeline sent again (a producer retrying everything): its
    # "opened" is older than the retention, so no entry starts and no webhook is called again.
    timeline = [e for e in await read_all(worker.bootstrap, worker.topics.events)
                if e["incident_id"] == gone]  # fmt: skip
    assert [e["kind"] for e in timeline][:2] == ["opened", "runbook_attached"]
    await produce(
        worker.bootstrap,
        worker.topics.events,
        [(e["routing_key"].encode(), json.dumps(e).encode()) for e in timeline],
    )

    await eventually(events_handled, 30, "the replayed timeline handled")
    assert len(webhook_server.requests) == 2
    after = rows(await read_timed_records(worker.bootstrap, changelog), gone)
    assert after == gone_rows  # nothing written for it since its delete
    assert await counter(worker, "automation_log_forgotten") == 1
