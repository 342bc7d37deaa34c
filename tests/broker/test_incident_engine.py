"""The incident engine on the real broker: bursts, replays, a SIGKILL mid-burst, alerts from
Alertmanager and PagerDuty opening and closing incidents, and idle groups forgotten after their
retention."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import pytest

from tests.harness import (
    Api,
    RunningWorker,
    WebhookServer,
    consumed_all,
    eventually,
    produce,
    read_all,
    read_records,
)

pytestmark = pytest.mark.broker


def detection(n: int, service: str, at: float) -> tuple[bytes, bytes]:
    body = {
        "id": f"det-{service}-{n}", "ts": at, "service": service, "signal": f"sig-{n % 7}",
        "detector": "surprise", "score": 0.99, "severity": "error",
    }  # fmt: skip
    return service.encode(), json.dumps(body).encode()


async def incidents(api: Api) -> list[dict[str, Any]]:
    _, body = await api.get("/api/incidents")
    rows: list[dict[str, Any]] = body["incidents"]
    return rows


async def test_burst_across_two_services_with_replay_and_a_kill(
    start_worker: Callable[..., RunningWorker],
) -> None:
    worker = start_worker(group_wait_s="1")
    api = Api(worker)
    now = time.time() - 120
    burst = [detection(n, svc, now + n * 0.1) for n in range(60) for svc in ("cart", "pay")]
    await produce(worker.bootstrap, worker.topics.detections, burst[:50])

    async def some_opened() -> bool | None:
        return True if await incidents(api) else None

    await eventually(some_opened, 30, "an incident from the first part of the burst")
    worker.kill()  # mid-burst
    worker.start()
    # The rest, then the whole burst again (a producer retrying everything).
    await produce(worker.bootstrap, worker.topics.detections, burst[50:] + burst)

    async def settled() -> list[dict[str, Any]] | None:
        if not await consumed_all(
            worker.bootstrap, worker.group_of(worker.topics.detections), worker.topics.detections
        ):
            return None
        rows = await incidents(api)
        done = len(rows) >= 2 and all(r["detection_count"] >= 60 for r in rows)
        return rows if done else None

    rows = await eventually(settled, 60, "both incidents with every detection")
    assert sorted(r["service"] for r in rows) == ["cart", "pay"]  # no duplicate, none lost
    for r in rows:
        assert r["detection_count"] == 60, r  # every detection attached exactly once
    events = await read_all(worker.bootstrap, worker.topics.events)
    opened = {e["incident_id"] for e in events if e["kind"] == "opened"}
    assert opened == {r["id"] for r in rows}
    attached = [e["data"]["detection_id"] for e in events if e["kind"] == "detection_attached"]
    # Re-sent events after the kill carry the same ids; the distinct ones are exactly 59 each.
    assert len(set(attached)) == 2 * 59


ALERT = {
    "status": "firing",
    "labels": {"alertname": "HighErrorRate", "service": "checkout", "severity": "critical"},
    "annotations": {"summary": "5xx above 5%"},
    "startsAt": "2026-11-27T10:00:00Z",
    "endsAt": "0001-01-01T00:00:00Z",
    "generatorURL": "http://prometheus/graph",
    "fingerprint": "c0ffee",
}


async def test_alertmanager_webhook_opens_and_resolves(
    start_worker: Callable[..., RunningWorker],
) -> None:
    worker = start_worker()
    api = Api(worker)
    firing = {"version": "4", "status": "firing", "receiver": "warroom", "alerts": [ALERT]}
    assert (await api.post("/api/alerts/alertmanager", firing, token=None))[0] == 401
    code, body = await api.post("/api/alerts/alertmanager", firing)
    assert (code, body) == (202, {"accepted": 1})
    assert (await api.post("/api/alerts/alertmanager", firing))[0] == 202  # redelivered

    async def one(status: str) -> dict[str, Any] | None:
        rows = await incidents(api)
        return rows[0] if len(rows) == 1 and rows[0]["status"] == status else None

    incident = await eventually(lambda: one("triggered"), 20, "an incident from the alert")
    assert incident["service"] == "checkout" and incident["severity"] == "SEV2"
    resolved_alert = {**ALERT, "status": "resolved", "endsAt": "2026-11-27T10:20:00Z"}
    resolved = {**firing, "status": "resolved", "alerts": [resolved_alert]}
    assert (await api.post("/api/alerts/alertmanager", resolved))[0] == 202
    incident = await eventually(lambda: one("resolved"), 20, "the incident resolved by the alert")
    assert incident["resolved_at"].startswith("2026-11-27T10:20:00")
    code, body = await api.post("/api/alerts/alertmanager", {"status": "firing", "alerts": []})
    assert code == 400 and "alerts" in body["error"]


async def test_pagerduty_trigger_acknowledge_resolve(
    start_worker: Callable[..., RunningWorker],
) -> None:
    worker = start_worker()
    api = Api(worker)
    trigger: dict[str, Any] = {
        "routing_key": "integration-key", "event_action": "trigger", "dedup_key": "disk-full-db1",
        "payload": {"summary": "Disk full on db1", "source": "db1", "severity": "critical",
                    "component": "postgres"},
    }  # fmt: skip
    ack = {"event_action": "acknowledge", "dedup_key": "disk-full-db1"}
    code, body = await api.post("/api/alerts/pagerduty", ack)
    assert code == 202 and "dropped" in body["message"]  # nothing open yet
    code, body = await api.post("/api/alerts/pagerduty", trigger)
    assert code == 202 and body["dedup_key"] == "disk-full-db1"

    async def one(status: str) -> dict[str, Any] | None:
        rows = await incidents(api)
        return rows[0] if len(rows) == 1 and rows[0]["status"] == status else None

    incident = await eventually(lambda: one("triggered"), 20, "an incident from the trigger")
    assert incident["routing_key"] == "dedup:disk-full-db1" and incident["service"] == "postgres"
    assert (await api.post("/api/alerts/pagerduty", trigger))[0] == 202  # joins, opens nothing
    assert (await api.post("/api/alerts/pagerduty", ack))[0] == 202
    await eventually(lambda: one("acknowledged"), 20, "acknowledged through PagerDuty's event")
    resolve = {"event_action": "resolve", "dedup_key": "disk-full-db1"}
    assert (await api.post("/api/alerts/pagerduty", resolve))[0] == 202
    await eventually(lambda: one("resolved"), 20, "resolved through PagerDuty's event")
    # After resolve, a new trigger with the same key opens a new incident.
    later = {**trigger, "payload": {**trigger["payload"], "summary": "Disk full again"}}
    assert (await api.post("/api/alerts/pagerduty", later))[0] == 202

    async def two() -> list[dict[str, Any]] | None:
        rows = await incidents(api)
        return rows if len(rows) == 2 else None

    rows = await eventually(two, 20, "a second incident for the same dedup_key")
    assert sorted(r["status"] for r in rows) == ["resolved", "triggered"]
    code, body = await api.post("/api/alerts/pagerduty", {"event_action": "resolve"})
    assert code == 400 and "dedup_key" in body["error"]
    code, body = await api.post("/api/alerts/pagerduty", {"event_action": "explode"})
    assert code == 400 and "event_action" in body["error"]


async def test_an_incident_on_a_dependency_inhibits_its_dependents(
    start_worker: Callable[..., RunningWorker], webhook_server: WebhookServer
) -> None:
    people = {"ann": {"contacts": [{"channel": "webhook", "address": webhook_server.url}]}}
    catalog = {
        "services": {
            "db": {"team": "core", "tier": 1},
            "api": {"team": "core", "tier": 1, "depends_on": ["db"]},
        },
        "teams": {"core": {"escalation": [{"targets": ["ann"]}]}},
        "people": people,
    }
    worker = start_worker(catalog)
    api = Api(worker)
    now = time.time()
    await produce(worker.bootstrap, worker.topics.detections, [detection(1, "db", now)])
    [db_page] = await webhook_server.wait_for(1, timeout_s=20)
    db_incident = db_page["json"]["incident_id"]
    await produce(worker.bootstrap, worker.topics.detections, [detection(2, "api", now + 1)])

    async def inhibited() -> dict[str, Any] | None:
        rows = [r for r in await incidents(api) if r["service"] == "api"]
        return rows[0] if rows and rows[0]["inhibited_by"] == db_incident else None

    dependent = await eventually(inhibited, 20, "the dependent incident, inhibited")

    async def kinds(n: int) -> list[str] | None:
        _, timeline = await api.get(f"/api/incidents/{dependent['id']}/timeline")
        got = [e["kind"] for e in timeline["events"]]
        return got if len(got) >= n else None

    assert await eventually(lambda: kinds(2), 20, "the timeline") == ["opened", "inhibited"]
    assert len(webhook_server.requests) == 1  # nobody paged for the dependent yet
    assert (await api.post(f"/api/incidents/{db_incident}/resolve"))[0] == 202
    pages = await webhook_server.wait_for(2, timeout_s=30)
    assert pages[1]["json"]["incident_id"] == dependent["id"]
    assert await eventually(lambda: kinds(3), 20, "the release") == [
        "opened", "inhibited", "inhibition_released",
    ]  # fmt: skip


async def test_a_services_own_timing_overrides_the_workers(
    start_worker: Callable[..., RunningWorker],
) -> None:
    # The worker never auto-resolves; the batch service's incidents resolve after 3 s without
    # a detection (PagerDuty's per-service auto-resolve).
    catalog = {
        "services": {
            "batch": {"team": "core", "timing": {"auto_resolve_s": 3}},
            "api": {"team": "core"},
        },
        "teams": {"core": {"escalation": [{"targets": ["ann"]}]}},
        "people": {"ann": {"contacts": [{"channel": "console"}]}},
    }
    worker = start_worker(catalog)
    api = Api(worker)
    now = time.time()
    await produce(
        worker.bootstrap,
        worker.topics.detections,
        [detection(1, "batch", now), detection(2, "batch", now + 0.5), detection(3, "api", now)],
    )

    async def resolved() -> dict[str, dict[str, Any]] | None:
        rows = {r["service"]: r for r in await incidents(api)}
        batch = rows.get("batch")
        return rows if batch is not None and batch["status"] == "resolved" else None

    rows = await eventually(resolved, 30, "the batch incident auto-resolved")
    assert rows["api"]["status"] == "triggered"
    assert rows["batch"]["detection_count"] == 2
    _, timeline = await api.get(f"/api/incidents/{rows['batch']['id']}/timeline")
    kinds = [e["kind"] for e in timeline["events"]]
    assert kinds[0] == "opened" and kinds[-1] == "resolved", kinds


async def test_an_idle_group_is_forgotten_and_its_key_starts_afresh(
    start_worker: Callable[..., RunningWorker],
) -> None:
    worker = start_worker(group_retention_s="2")
    api = Api(worker)
    now = time.time()
    await produce(
        worker.bootstrap,
        worker.topics.detections,
        [detection(1, "gone", now), detection(2, "kept", now)],
    )

    async def by_service(n: int) -> dict[str, list[dict[str, Any]]] | None:
        rows = await incidents(api)
        if len(rows) < n:
            return None
        found: dict[str, list[dict[str, Any]]] = {}
        for r in sorted(rows, key=lambda r: r["opened_at"]):
            found.setdefault(r["service"], []).append(r)
        return found

    opened = await eventually(lambda: by_service(2), 30, "an incident for each service")
    [gone], [kept] = opened["gone"], opened["kept"]
    assert (await api.post(f"/api/incidents/{gone['id']}/resolve"))[0] == 202
    changelog = f"{worker.app_id}-open-incidents-changelog"

    def values(records: list[tuple[bytes | None, bytes | None]], key: str) -> list[Any]:
        return [v and json.loads(v) for k, v in records if k == json.dumps(key).encode()]

    async def forgotten() -> list[tuple[bytes | None, bytes | None]] | None:
        records = await read_records(worker.bootstrap, changelog)
        rows = values(records, "gone")
        return records if rows and rows[-1] is None else None

    # The resolved incident's group is idle: deleted 2 s after its last write, at the latest
    # at the rebuild of the deadline index that follows (every 10 s).
    records = await eventually(forgotten, 40, "a tombstone for the idle group")
    gone_rows = values(records, "gone")
    assert gone_rows.count(None) == 1 and gone_rows[-2]["incident_id"] is None  # resolved first
    # The open incident's group was written before the resolved one and is never deleted.
    kept_rows = values(records, "kept")
    assert kept_rows and None not in kept_rows
    assert kept_rows[-1]["incident_id"] == kept["id"]
    # A detection for the forgotten key opens a fresh incident, not the resolved one again.
    await produce(worker.bootstrap, worker.topics.detections, [detection(3, "gone", time.time())])
    later = await eventually(lambda: by_service(3), 30, "a fresh incident for the forgotten key")
    assert [r["status"] for r in later["gone"]] == ["resolved", "triggered"]
    fresh = later["gone"][1]
    assert fresh["id"] != gone["id"] and fresh["detection_count"] == 1
    assert [r["status"] for r in later["kept"]] == ["triggered"]

    async def regrouped() -> list[Any] | None:
        rows = values(await read_records(worker.bootstrap, changelog), "gone")
        after = rows[rows.index(None) + 1 :]
        return after if after else None

    after = await eventually(regrouped, 20, "the fresh group on the changelog")
    assert after[0]["incident_id"] == fresh["id"]  # nothing rewrote the old group in between
