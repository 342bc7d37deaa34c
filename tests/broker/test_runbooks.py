"""A runbook attached when an incident opens, its automated task called once through a real
webhook with the result on the timeline, and a manual task completed through the API."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import pytest

from tests.harness import Api, RunningWorker, WebhookServer, consumed_all, eventually, produce

pytestmark = pytest.mark.broker


def catalog(hook_url: str) -> dict[str, Any]:
    return {
        "services": {"checkout": {"team": "payments", "tier": 1}},
        "teams": {"payments": {"members": ["alice"], "escalation": [{"targets": ["alice"]}]}},
        # Pages go to the console: every request the webhook server sees is the runbook's.
        "people": {"alice": {"contacts": [{"channel": "console"}]}},
        "runbooks": {
            "checkout": {
                "title": "Checkout",
                "applies_to": {"services": ["checkout"]},
                "phases": {
                    "mobilize": [
                        {
                            "id": "status-page",
                            "title": "Post on the status page",
                            "owner_role": "communications",
                            "kind": "automated",
                            "webhook": {
                                "url": hook_url,
                                "headers": {"X-Token": "t0ken"},
                                "timeout_s": 5,
                            },
                        }
                    ],
                    "diagnose": [
                        {
                            "id": "check-deploys",
                            "title": "Check recent deploys",
                            "owner_role": "subject_matter_expert",
                        }
                    ],
                },
            }
        },
    }


async def test_runbook_attached_automation_recorded_and_task_completed(
    start_worker: Callable[..., RunningWorker], webhook_server: WebhookServer
) -> None:
    worker = start_worker(catalog(webhook_server.url))
    api = Api(worker)
    detection = {
        "id": "det-1", "ts": time.time() - 5, "service": "checkout", "signal": "latency_ms",
        "detector": "median_mad", "score": 0.999, "severity": "critical",
    }  # fmt: skip
    await produce(
        worker.bootstrap, worker.topics.detections, [(b"checkout", json.dumps(detection).encode())]
    )

    async def one_incident() -> dict[str, Any] | None:
        _, body = await api.get("/api/incidents")
        return body["incidents"][0] if body["incidents"] else None

    incident = await eventually(one_incident, 30, "the incident")
    path = f"/api/incidents/{incident['id']}"

    async def timeline_with(kind: str, n: int = 1) -> list[dict[str, Any]] | None:
        _, tl = await api.get(f"{path}/timeline")
        events: list[dict[str, Any]] = tl["events"]
        return events if sum(e["kind"] == kind for e in events) >= n else None

    # Attached right after opening, with the whole task list.
    events = await eventually(lambda: timeline_with("runbook_attached"), 15, "runbook_attached")
    assert [e["kind"] for e in events[:3]] == ["opened", "runbook_attached", "paged"]
    attached = events[1]["data"]
    assert attached["runbook"] == "checkout"
    assert [(t["phase"], t["id"], t["kind"]) for t in attached["tasks"]] == [
        ("mobilize", "status-page", "automated"),
        ("diagnose", "check-deploys", "manual"),
    ]
    assert attached["tasks"][0]["webhook"]["header_names"] == ["X-Token"]

    # The automated task's webhook is called with the incident, and its result is recorded.
    [call] = await webhook_server.wait_for(1, timeout_s=30)
    assert call["json"]["id"] == incident["id"] and call["json"]["service"] == "checkout"
    assert call["headers"]["Idempotency-Key"] == f"{incident['id']}/status-page"
    assert call["headers"]["X-Token"] == "t0ken"
    events = await eventually(lambda: timeline_with("task_done"), 15, "the automated task_done")
    [auto] = [e for e in events if e["kind"] == "task_done"]
    assert auto["actor"] == "automation"
    assert auto["data"]["task_id"] == "status-page" and auto["data"]["phase"] == "mobilize"
    assert auto["data"]["outcome"] == "done" and auto["data"]["result"] == "HTTP 200: ok"
    assert auto["data"]["duration_s"] >= 0

    # The manual task, completed through the API.
    task_path = f"{path}/tasks/check-deploys"
    assert (await api.post(task_path, token=None))[0] == 401
    code, body = await api.post(f"{path}/tasks/nope", actor="bob")
    assert code == 409 and "unknown task 'nope'" in body["error"], body
    assert (await api.post("/api/incidents/inc-nope/tasks/check-deploys"))[0] == 404
    code, body = await api.post(task_path, {"text": "nothing deployed today"}, actor="bob")
    assert code == 202, body
    events = await eventually(lambda: timeline_with("task_done", 2), 15, "the manual task_done")
    manual = [e for e in events if e["kind"] == "task_done"][-1]
    assert manual["actor"] == "bob" and manual["data"]["task_id"] == "check-deploys"
    assert manual["data"]["text"] == "nothing deployed today"
    assert manual["data"]["outcome"] == "done"

    async def tasks_done() -> dict[str, Any] | None:
        _, current = await api.get(path)
        return current if "pending" not in current["tasks"].values() else None

    current = await eventually(tasks_done, 15, "both tasks done on the incident")
    assert current["tasks"] == {"mobilize/status-page": "done", "diagnose/check-deploys": "done"}
    code, body = await api.post(task_path, actor="bob")
    assert code == 409 and "already done" in body["error"]

    # Later phases begin; what already ran is not called again.
    assert (await api.post(f"{path}/acknowledge", actor="alice"))[0] == 202
    await eventually(lambda: timeline_with("acknowledged"), 15, "acknowledged")
    code, _ = await api.post(f"{path}/resolve", actor="alice")
    assert code == 202
    await eventually(lambda: timeline_with("resolved"), 15, "resolved")

    async def events_consumed() -> bool | None:
        # Offsets are committed once every agent reading the topic has handled the event.
        done = await consumed_all(
            worker.bootstrap, worker.group_of(worker.topics.events), worker.topics.events
        )
        return True if done else None

    await eventually(events_consumed, 30, "every agent to handle every timeline event")
    assert len(webhook_server.requests) == 1
