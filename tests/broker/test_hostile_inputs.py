"""Valid but hostile input on a real broker: times far ahead, backfills, control characters in
names and wrongly keyed detections neither blind a series, page anyone nor split a group."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

import aiohttp
import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.partitioner import DefaultPartitioner

from streams.topics import _described
from tests.harness import (
    Api,
    RunningWorker,
    consume,
    consumed_all,
    eventually,
    produce,
    read_all,
    read_records,
    read_timed_records,
)

pytestmark = pytest.mark.broker

TEN_YEARS_S = 10 * 365 * 86400.0
HOUR = 3600.0


def catalog(service: str) -> dict[str, Any]:
    return {
        "services": {service: {"team": "core", "tier": 1}},
        "teams": {"core": {"escalation": [{"targets": ["ann"]}]}},
        "people": {"ann": {"contacts": [{"channel": "console"}]}},
    }


def series(service: str, base: float, values: list[float]) -> list[dict[str, Any]]:
    return [
        {"ts": base + i, "service": service, "metric": "latency_ms", "value": v}
        for i, v in enumerate(values)
    ]


def normal(n: int, level: float = 100.0) -> list[float]:
    return [level + (i % 5) - 2 for i in range(n)]


def batch(points: list[dict[str, Any]]) -> bytes:
    return json.dumps({"points": points}).encode()


def at(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


async def metric(worker: RunningWorker, name: str) -> float:
    """A counter of the worker's ``/metrics`` (0 if it is not there)."""
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{worker.base_url}/metrics") as response,
    ):
        text = await response.text()
    found = [line for line in text.splitlines() if line.startswith(f"warroom_{name}_total ")]
    return float(found[0].split()[1]) if found else 0.0


async def settled(worker: RunningWorker, *topics: str) -> None:
    async def probe() -> bool | None:
        for topic in topics:
            if not await consumed_all(worker.bootstrap, worker.group_of(topic), topic):
                return None
        return True

    await eventually(probe, 60, f"the worker to consume every record of {topics}")


async def test_a_far_future_point_is_dead_lettered_and_its_series_still_detects_a_spike(
    start_worker: Callable[..., RunningWorker],
) -> None:
    worker = start_worker(detector="median_mad", policy_params={"for_points": 2})
    base = float(int(time.time()) - 300)
    key = b"checkout"
    warm = series("checkout", base, normal(40))
    future = {**warm[0], "ts": base + TEN_YEARS_S}
    later = series("checkout", base + 40, [*normal(20), 2000.0, 2010.0, 2005.0, *normal(5)])
    await produce(
        worker.bootstrap,
        worker.topics.metrics,
        [(key, batch(warm)), (key, json.dumps(future).encode()), (key, batch(later))],
    )

    # The x20 spike after the far-future point is still detected on the same series.
    spike_at = base + 60
    found = await consume(
        worker.bootstrap,
        worker.topics.detections,
        lambda vs: any(v["status"] == "firing" for v in vs),
        timeout_s=45,
    )
    firing = [d for d in found if d["status"] == "firing"]
    assert [(d["service"], at(d["ts"])) for d in firing] == [("checkout", spike_at + 1)]
    [letter] = await consume(
        worker.bootstrap, f"{worker.topics.metrics}.dlq", lambda v: len(v) >= 1, timeout_s=20
    )
    assert letter["stage"] == "decode"
    assert letter["error"].startswith("ts: timestamp 20"), letter["error"]
    assert "after the message was received" in letter["error"]
    assert "at most 300 s of clock skew is allowed" in letter["error"]
    assert json.loads(base64.b64decode(letter["value_b64"]))["ts"] == future["ts"]
    # The reference is the time the broker appended the record, not one the producer chose.
    admin = AIOKafkaAdminClient(bootstrap_servers=worker.bootstrap)
    await admin.start()
    try:
        inbound = [worker.topics.metrics, worker.topics.detections, worker.topics.commands]
        configs = await _described(admin, inbound)
    finally:
        await admin.close()
    assert {t: c["message.timestamp.type"] for t, c in configs.items()} == dict.fromkeys(
        inbound, "LogAppendTime"
    )


async def test_a_backfilled_spike_trains_the_detector_but_pages_nobody(
    start_worker: Callable[..., RunningWorker],
) -> None:
    worker = start_worker(
        catalog("billing"),
        detector="median_mad",
        detector_params={"window": 40, "warmup": 30},
        policy_params={"for_points": 2},
    )
    api = Api(worker)
    now = float(int(time.time()))
    key = b"billing"
    # Yesterday's data, 20 hours old: warm-up, a x20 spike, recovery.
    old = now - 20 * HOUR
    backfill = series("billing", old, [*normal(35), 2000.0, 2010.0, 2005.0, *normal(10)])
    # Then live data: a few points (fewer than the warm-up) and a live spike. It is detected
    # only because the backfill trained the series.
    live_base = now - 60
    live = series("billing", live_base, [*normal(5), 2000.0, 2010.0, 2005.0, *normal(5)])
    await produce(worker.bootstrap, worker.topics.metrics, [(key, batch(backfill))])
    await produce(worker.bootstrap, worker.topics.metrics, [(key, batch(live))])

    # The live spike opens an incident and pages: processing has passed the backfilled one,
    # which came first on the same partition and the same group.
    pages = await consume(
        worker.bootstrap, worker.topics.pages, lambda vs: len(vs) >= 1, timeout_s=45
    )
    await settled(worker, worker.topics.metrics, worker.topics.detections)
    # One incident, opened by the live spike; every page is for it.
    _, body = await api.get("/api/incidents")
    [incident] = body["incidents"]
    assert at(incident["detected_at"]) == live_base + 6
    assert at(incident["impact_started_at"]) == live_base + 5
    assert incident["detection_count"] == 1
    every_page = await read_all(worker.bootstrap, worker.topics.pages)
    assert {p["incident_id"] for p in [*pages, *every_page]} == {incident["id"]}
    # The backfilled spike was detected and recorded on detections.v1, with when its points
    # were received, and counted as late.
    detections = await read_all(worker.bootstrap, worker.topics.detections)
    firing = sorted(
        (at(d["ts"]), d.get("received_at") is not None)
        for d in detections
        if d["status"] == "firing"
    )
    assert firing == [(old + 36, True), (live_base + 6, True)]
    assert await metric(worker, "detections_late") == 1.0


async def test_control_characters_in_names_are_dead_lettered_or_refused(
    start_worker: Callable[..., RunningWorker],
) -> None:
    worker = start_worker(catalog("api"), detector="median_mad")
    api = Api(worker)
    now = float(int(time.time()))
    forged = "api\r\nBcc: victim@example.com"
    crlf_point = {"ts": now - 10, "service": forged, "metric": "latency_ms", "value": 1.0}
    good = {"ts": now - 10, "service": "api", "metric": "latency_ms", "value": 1.0}
    labelled = {**good, "labels": {"region": "eu\nwest"}}
    await produce(
        worker.bootstrap,
        worker.topics.metrics,
        [(b"api", json.dumps(crlf_point).encode()), (b"api", batch([good, labelled]))],
    )
    detection = {"id": "d-crlf", "ts": now - 10, "service": "api", "signal": "lat\u2028ency",
                 "detector": "x", "score": 1.0}  # fmt: skip
    future = {**detection, "id": "d-future", "signal": "latency", "ts": now + TEN_YEARS_S}
    await produce(
        worker.bootstrap,
        worker.topics.detections,
        [(b"api", json.dumps(detection).encode()), (b"api", json.dumps(future).encode())],
    )

    letters = await consume(
        worker.bootstrap, f"{worker.topics.metrics}.dlq", lambda v: len(v) >= 2, timeout_s=30
    )
    errors = sorted(letter["error"] for letter in letters)
    assert errors[0].startswith("points.1.labels: value of 'region' holds the control character")
    assert errors[1].startswith("service: holds the control character U+000D at 3")
    refused = await consume(
        worker.bootstrap, f"{worker.topics.detections}.dlq", lambda v: len(v) >= 2, timeout_s=30
    )
    reasons = sorted(letter["error"] for letter in refused)
    assert reasons[0].startswith("signal: holds the control character U+2028")
    assert reasons[1].startswith("ts: timestamp 20") and "clock skew" in reasons[1]
    _, body = await api.get("/api/incidents")
    assert body["incidents"] == []

    # The alert endpoints answer 400 with the reason, never 500.
    payload: dict[str, Any] = {"summary": "s", "source": forged, "severity": "error"}

    def trigger(**changes: Any) -> dict[str, Any]:
        return {"event_action": "trigger", "payload": {**payload, **changes}}

    code, answer = await api.post("/api/alerts/pagerduty", trigger())
    assert code == 400 and answer["error"].startswith("payload.source: holds the control")
    details = trigger(source="api", custom_details={"service": forged})
    code, answer = await api.post("/api/alerts/pagerduty", details)
    assert code == 400 and answer["error"].startswith("detection.service: holds the control")
    ahead = trigger(source="api", timestamp="2036-01-01T00:00:00Z")
    code, answer = await api.post("/api/alerts/pagerduty", ahead)
    assert code == 400 and answer["error"].startswith("payload.timestamp: timestamp 2036")
    resolved_ahead = {"status": "resolved", "alerts": [{
        "status": "resolved", "labels": {"alertname": "HighLatency", "service": "api"},
        "startsAt": "2026-01-01T00:00:00Z", "endsAt": "2036-01-01T00:00:00Z"}]}  # fmt: skip
    code, answer = await api.post("/api/alerts/alertmanager", resolved_ahead)
    assert code == 400 and answer["error"].startswith("detection.ts: timestamp 2036"), answer
    assert (await api.get("/readyz"))[0] == 200


def other_partition_key(key: bytes, partitions: list[int]) -> bytes:
    """A key that the default partitioner sends to another partition than ``key``'s."""
    partitioner = DefaultPartitioner()
    home = partitioner(key, partitions, partitions)
    return next(
        k
        for k in (f"wrong-{n}".encode() for n in range(1000))
        if partitioner(k, partitions, partitions) != home
    )


async def test_a_wrongly_keyed_detection_does_not_split_its_group(
    start_worker: Callable[..., RunningWorker],
) -> None:
    worker = start_worker(catalog("checkout"))
    now = float(int(time.time()))

    def detection(n: int) -> bytes:
        return json.dumps(
            {
                "id": f"d{n}",
                "ts": now - 60 + n,
                "service": "checkout",
                "signal": f"signal-{n}",
                "detector": "x",
                "score": 1.0,
            }
        ).encode()

    wrong = other_partition_key(b"checkout", [0, 1])
    await produce(
        worker.bootstrap,
        worker.topics.detections,
        [(b"checkout", detection(1)), (wrong, detection(2)), (None, detection(3))],
    )

    def applied(events: list[Any]) -> bool:
        kinds = ("opened", "detection_attached")
        return {e["cause"] for e in events if e["kind"] in kinds} >= {"d1", "d2", "d3"}

    events = await consume(worker.bootstrap, worker.topics.events, applied, timeout_s=45)
    await settled(worker, worker.topics.detections)
    opened = [e for e in events if e["kind"] == "opened"]
    assert len(opened) == 1, [(e["kind"], e["cause"], e["incident_id"]) for e in events]
    # The group's state was written from one partition only, its key's: on the changelog of
    # open-incidents every version of it is on the partition of ``checkout``.
    changelog = await read_timed_records(
        worker.bootstrap, f"{worker.app_id}-open-incidents-changelog"
    )
    home = DefaultPartitioner()(b"checkout", [0, 1], [0, 1])
    written = {r.partition for r in changelog if r.key == b'"checkout"'}
    assert written == {home}
    # The wrongly keyed and the keyless one were sent again under the group's key.
    records = await read_records(worker.bootstrap, worker.topics.detections)
    ids = sorted((json.loads(v or b"{}")["id"], k or b"") for k, v in records)
    assert ids == [
        ("d1", b"checkout"), ("d2", b"checkout"), ("d2", wrong), ("d3", b""),
        ("d3", b"checkout"),
    ]  # fmt: skip
    # A command keyed wrongly goes to its incident's partition too.
    note = {"id": "c-note", "kind": "note", "incident_id": opened[0]["incident_id"],
            "routing_key": "checkout", "issued_at": now, "text": "looking"}  # fmt: skip
    await produce(worker.bootstrap, worker.topics.commands, [(wrong, json.dumps(note).encode())])
    noted = await consume(
        worker.bootstrap,
        worker.topics.events,
        lambda vs: any(v["kind"] == "note" for v in vs),
        timeout_s=30,
    )
    assert [e["cause"] for e in noted if e["kind"] == "note"] == ["c-note"]
    assert await metric(worker, "inputs_rekeyed") == 3.0
