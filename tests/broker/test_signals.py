"""Silent streams and heartbeats, and change events joined to incidents, against a real broker."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from tests.harness import Api, RunningWorker, eventually, produce, read_all

pytestmark = pytest.mark.broker


def _catalog(**extra: Any) -> dict[str, Any]:
    return {
        "services": {
            "api": {"team": "core", "heartbeat": {"within_s": 4}, "depends_on": ["db"]},
            "web": {"team": "core", "heartbeat": {"within_s": 9}},
            "db": {"team": "core", "routing_keys": ["R-DB"]},
            "batch": {"team": "core"},
        },
        "teams": {"core": {"members": ["ann"], "escalation": [{"targets": ["ann"]}]}},
        "people": {"ann": {"contacts": [{"channel": "console"}]}},
        **extra,
    }


def _point(service: str, metric: str, value: float) -> bytes:
    body = {"ts": time.time(), "service": service, "metric": metric, "value": value}
    return json.dumps(body).encode()


async def _silences(worker: RunningWorker) -> list[dict[str, Any]]:
    return [
        d
        for d in await read_all(worker.bootstrap, worker.topics.detections)
        if d.get("detector") == "silence"
    ]


async def test_a_service_whose_points_stop_gets_one_silence_detection_within_its_window(
    start_worker: Callable[..., RunningWorker],
) -> None:
    worker = start_worker(_catalog())
    # Points flow for three windows of api's heartbeat: no silence while they do.
    flowing_until = time.monotonic() + 12.0
    while time.monotonic() < flowing_until:
        await produce(
            worker.bootstrap,
            worker.topics.metrics,
            [(b"api", _point("api", "rps", 100.0)), (b"web", _point("web", "rps", 50.0))],
        )
        await asyncio.sleep(0.25)  # the producer's cadence, not a wait for the worker
    assert await _silences(worker) == []
    stopped = time.time()

    async def silent(service: str) -> dict[str, Any] | None:
        found = [d for d in await _silences(worker) if d["service"] == service]
        return found[0] if found else None

    api = await eventually(lambda: silent("api"), 30, "api's silence detection")
    assert time.time() - stopped < 4 + 8, "flagged within its window (and the timer's tick)"
    assert api["status"] == "firing" and api["signal"] == "heartbeat"
    assert api["context"]["expected_within_s"] == 4
    silent_for = datetime.fromisoformat(api["ts"]).timestamp() - stopped
    assert -1.0 < silent_for - 4 < 2.0, "the detection's time is the end of the window"
    # web stops at the same moment with a 9 s window: once its silence is in, api has had
    # five more seconds of timer ticks to repeat itself, and must not have.
    await eventually(lambda: silent("web"), 30, "web's silence detection")
    assert [d["service"] for d in await _silences(worker)].count("api") == 1

    # Points return: one resolved detection, and still one firing.
    await produce(worker.bootstrap, worker.topics.metrics, [(b"api", _point("api", "rps", 1.0))])

    async def resolved() -> list[dict[str, Any]] | None:
        found = [d for d in await _silences(worker) if d["service"] == "api"]
        return found if any(d["status"] == "resolved" for d in found) else None

    found = await eventually(resolved, 30, "api's silence resolved")
    assert sorted(d["status"] for d in found) == ["firing", "resolved"]

    api_client = Api(worker)

    async def incident() -> dict[str, Any] | None:
        _, body = await api_client.get("/api/incidents?service=api")
        return body["incidents"][0] if body["incidents"] else None

    opened = await eventually(incident, 30, "api's incident")
    assert "heartbeat" in opened["signals"]


async def test_a_named_heartbeat_that_stops_raises_a_detection_for_its_service(
    start_worker: Callable[..., RunningWorker],
) -> None:
    catalog = _catalog(heartbeats={"nightly-export": {"service": "batch", "within_s": 3}})
    worker = start_worker(catalog)
    api = Api(worker)
    status, body = await api.post("/api/heartbeats/nightly-export")
    assert status == 202 and body["service"] == "batch"
    status, body = await api.post("/api/heartbeats/nightly-export", token=None)
    assert status == 401 and "bearer" in body["error"]
    status, body = await api.post("/api/heartbeats/unknown-job")
    assert status == 404 and "'unknown-job'" in body["error"], body

    async def silent() -> dict[str, Any] | None:
        found = [d for d in await _silences(worker) if d["service"] == "batch"]
        return found[0] if found else None

    found = await eventually(silent, 30, "the missed heartbeat's detection")
    assert found["signal"] == "heartbeat nightly-export"
    assert found["labels"] == {"heartbeat": "nightly-export"}
    assert found["severity"] == "error"


async def test_a_change_event_appears_in_the_review_and_on_an_open_incidents_timeline(
    start_worker: Callable[..., RunningWorker],
) -> None:
    worker = start_worker(_catalog())
    api = Api(worker)
    ten_minutes_ago = datetime.fromtimestamp(time.time() - 600, tz=UTC).isoformat()
    # As PagerDuty's Change Events API v2 takes it; the routing key maps to db, which api
    # depends on.
    change = {
        "routing_key": "R-DB",
        "payload": {
            "summary": "db: max_connections from 200 to 50",
            "timestamp": ten_minutes_ago,
            "source": "terraform",
            "custom_details": {"plan": 7},
        },
        "links": [{"href": "https://ci.example.com/plan/7", "text": "plan 7"}],
    }
    status, body = await api.post("/api/changes", change, token=None)
    assert status == 401, body
    status, body = await api.post("/api/changes", change)
    assert status == 202 and body["service"] == "db", body
    # The API token as routing key stands in for the bearer token, as for PagerDuty events.
    keyed = {"routing_key": worker.token, "service": "batch", "payload": {"summary": "cron"}}
    status, body = await api.post("/api/changes", keyed, token=None)
    assert status == 202 and body["service"] == "batch", body
    # Refused, naming the problem: no summary; no service to be told.
    status, body = await api.post("/api/changes", {"routing_key": "R-DB", "payload": {}})
    assert status == 400 and "payload.summary" in body["error"]
    status, body = await api.post("/api/changes", {"payload": {"summary": "x"}})
    assert status == 400 and body["error"].startswith("service:")
    # Garbage on the topic itself is dead-lettered with the reason.
    await produce(worker.bootstrap, worker.topics.changes, [(b"db", b"not json")])

    detection = {"id": "d-api-1", "ts": time.time(), "service": "api", "signal": "errors",
                 "detector": "external", "score": 1.0, "severity": "critical"}  # fmt: skip
    await produce(
        worker.bootstrap, worker.topics.detections, [(b"api", json.dumps(detection).encode())]
    )

    async def opened() -> dict[str, Any] | None:
        _, listing = await api.get("/api/incidents?service=api")
        return listing["incidents"][0] if listing["incidents"] else None

    incident = await eventually(opened, 30, "api's incident")

    async def review() -> str | None:
        import aiohttp

        url = f"{worker.base_url}/api/incidents/{incident['id']}/review"
        async with aiohttp.ClientSession() as session, session.get(url) as response:
            text = await response.text()
        return text if "max_connections" in text else None

    text = await eventually(review, 30, "the change in the review")
    section = text.split("## Changes in the hour before impact", 1)[1].split("\n## ", 1)[0]
    assert "db: max_connections from 200 to 50" in section
    assert "terraform" in section and "(https://ci.example.com/plan/7)" in section

    # A change to api while its incident is open goes on the timeline.
    status, _ = await api.post(
        "/api/changes", {"service": "api", "payload": {"summary": "rollback api to 1.4.2"}}
    )
    assert status == 202

    async def recorded() -> dict[str, Any] | None:
        _, timeline = await api.get(f"/api/incidents/{incident['id']}/timeline")
        found = [e for e in timeline["events"] if e["kind"] == "change_recorded"]
        return found[0] if found else None

    event = await eventually(recorded, 30, "the change on the timeline")
    assert event["data"]["summary"] == "rollback api to 1.4.2"
    assert event["data"]["service"] == "api"

    async def dead_letter() -> list[Any] | None:
        found = await read_all(worker.bootstrap, f"{worker.topics.changes}.dlq")
        return found or None

    [letter] = await eventually(dead_letter, 30, "the invalid change's dead letter")
    assert letter["stage"] == "decode" and letter["source_topic"] == worker.topics.changes


async def test_a_silence_that_began_before_a_restart_ends_once_after_it(
    start_worker: Callable[..., RunningWorker],
) -> None:
    worker = start_worker(_catalog())
    for _ in range(12):
        await produce(worker.bootstrap, worker.topics.metrics, [(b"api", _point("api", "rps", 1))])
        await asyncio.sleep(0.25)  # the producer's cadence, not a wait for the worker

    async def api_silences(status: str) -> list[dict[str, Any]] | None:
        found = [d for d in await _silences(worker) if d["service"] == "api"]
        return found if any(d["status"] == status for d in found) else None

    await eventually(lambda: api_silences("firing"), 30, "api's silence")
    # SIGTERM: the watch is checkpointed with the detector state on the way out.
    await asyncio.to_thread(worker.restart)
    await produce(worker.bootstrap, worker.topics.metrics, [(b"api", _point("api", "rps", 1))])
    found = await eventually(lambda: api_silences("resolved"), 60, "the silence's end")
    assert sorted(d["status"] for d in found) == ["firing", "resolved"], found
