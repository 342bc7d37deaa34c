"""HTTP writes are acknowledged by the broker before the 2xx, and a client's retry with the same
``Idempotency-Key`` writes nothing twice: not a note, not an acknowledgement, not a PagerDuty
trigger without a timestamp, not a silence."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import aiohttp
import pytest

from tests.harness import Api, RunningWorker, eventually, produce, read_all

pytestmark = pytest.mark.broker


def catalog() -> dict[str, Any]:
    return {
        "services": {"api": {"team": "core", "tier": 1}},
        "teams": {"core": {"escalation": [{"targets": ["ann"]}]}},
        "people": {"ann": {"contacts": [{"channel": "console"}]}},
        "default_team": "core",
    }


async def post(
    worker: RunningWorker, path: str, body: dict[str, Any], key: str | None
) -> tuple[int, Any]:
    headers = worker.headers()
    if key is not None:
        headers["Idempotency-Key"] = key
    async with (
        aiohttp.ClientSession() as session,
        session.post(worker.base_url + path, json=body, headers=headers) as response,
    ):
        return response.status, await response.json()


async def test_retries_with_the_same_idempotency_key_write_once(
    start_worker: Callable[..., RunningWorker],
) -> None:
    worker = start_worker(catalog())
    api = Api(worker)
    body = {"id": "d-1", "ts": time.time(), "service": "api", "signal": "errors",
            "detector": "external", "score": 1.0, "severity": "critical"}  # fmt: skip
    await produce(worker.bootstrap, worker.topics.detections, [(b"api", json.dumps(body).encode())])

    async def opened() -> dict[str, Any] | None:
        _, found = await api.get("/api/incidents")
        return found["incidents"][0] if found["incidents"] else None

    incident = await eventually(opened, 30, "the incident")
    path = f"/api/incidents/{incident['id']}"

    # A note and an acknowledgement, each sent three times as a client's retries would be.
    answers = [await post(worker, f"{path}/notes", {"text": "looking"}, "note-1") for _ in "abc"]
    assert {code for code, _ in answers} == {202}
    assert len({a["command_id"] for _, a in answers}) == 1
    # Acknowledged by the broker before the 202: the command is on the topic already.
    commands = await read_all(worker.bootstrap, worker.topics.commands)
    assert answers[0][1]["command_id"] in {c["id"] for c in commands}
    acks = [await post(worker, f"{path}/acknowledge", {}, "ack-1") for _ in "ab"]
    assert [code for code, _ in acks] == [202, 202]

    async def acknowledged() -> list[dict[str, Any]] | None:
        _, timeline = await api.get(f"{path}/timeline")
        kinds = [e["kind"] for e in timeline["events"]]
        return timeline["events"] if "acknowledged" in kinds else None

    events = await eventually(acknowledged, 20, "the acknowledgement")
    # The ack retry after the ack was applied still answers 202, not 409.
    code, again = await post(worker, f"{path}/acknowledge", {}, "ack-1")
    assert code == 202 and again["command_id"] == acks[0][1]["command_id"]
    # Without the key, a second acknowledgement is the illegal transition it is.
    assert (await post(worker, f"{path}/acknowledge", {}, None))[0] == 409

    # A different key is a different note.
    assert (await post(worker, f"{path}/notes", {"text": "still looking"}, "note-2"))[0] == 202

    async def two_notes() -> list[dict[str, Any]] | None:
        _, timeline = await api.get(f"{path}/timeline")
        notes = [e for e in timeline["events"] if e["kind"] == "note"]
        return timeline["events"] if len(notes) >= 2 else None

    events = await eventually(two_notes, 20, "the second note")
    kinds = [e["kind"] for e in events]
    assert kinds.count("note") == 2 and kinds.count("acknowledged") == 1

    # A PagerDuty trigger without payload.timestamp, retried: one detection.
    payload = {"summary": "disk full", "source": "db-7", "severity": "critical"}
    event = {"routing_key": worker.token, "event_action": "trigger", "dedup_key": "disk-7",
             "payload": payload}  # fmt: skip
    for _ in "abc":
        assert (await post(worker, "/api/alerts/pagerduty", event, "pd-1"))[0] == 202
    detections = await read_all(worker.bootstrap, worker.topics.detections)
    assert len([d for d in detections if d["detector"] == "pagerduty"]) == 3  # three records...
    assert len({d["id"] for d in detections if d["detector"] == "pagerduty"}) == 1  # ...one id

    # A silence, retried: one silence.
    silence = {"matchers": {"service": "batch"}, "duration_s": 600, "comment": "maintenance"}
    made = [await post(worker, "/api/silences", silence, "sil-1") for _ in "ab"]
    assert [code for code, _ in made] == [201, 201]
    assert made[0][1]["id"] == made[1][1]["id"]
    _, listed = await api.get("/api/silences")
    assert [s["id"] for s in listed["silences"]] == [made[0][1]["id"]]

    # A key that is not printable ASCII, or too long, is refused with the header's name.
    for bad in ("x" * 256, "caf\u00e9"):
        code, refused = await post(worker, f"{path}/notes", {"text": "x"}, bad)
        assert code == 400 and refused["error"].startswith("Idempotency-Key:")
