"""The terminal: declare an incident, acknowledge it, note, assign, silence and resolve it with
``warroom ...`` commands against a worker's API, as an on-call engineer would."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import pytest

from devtools.kafka_local import free_port
from tests.harness import Api, RunningWorker, WebhookServer, eventually

pytestmark = pytest.mark.broker


def catalog(hook_url: str) -> dict[str, Any]:
    return {
        "services": {"checkout": {"team": "payments", "tier": 2}},
        "teams": {"payments": {"members": ["alice"], "escalation": [{"targets": ["alice"]}]}},
        "people": {"alice": {"contacts": [{"channel": "webhook", "address": hook_url}]}},
    }


def warroom(worker: RunningWorker, *argv: str, token: str | None = None) -> tuple[int, str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WARROOM_")}
    env["WARROOM_TOKEN"] = worker.token if token is None else token
    done = subprocess.run(
        [sys.executable, "-m", "streams.cli", *argv, "--api", worker.base_url, "--as", "alice"],
        capture_output=True, text=True, timeout=60, env=env, check=False,
    )  # fmt: skip
    return done.returncode, done.stdout.strip(), done.stderr.strip()


async def test_an_incident_run_from_the_terminal(
    start_worker: Callable[..., RunningWorker], webhook_server: WebhookServer
) -> None:
    worker = start_worker(catalog(webhook_server.url))
    api = Api(worker)
    code, out, err = warroom(
        worker, "declare", "checkout", "--title", "EU card payments fail", "--severity", "SEV1"
    )
    assert code == 0, err
    assert out.startswith("declared inc-")
    incident_id = out.split()[1]
    # It opens at once, with the given title and severity, and pages the on-call.
    [page] = await webhook_server.wait_for(1, timeout_s=30)
    assert page["json"]["incident_id"] == incident_id
    assert page["json"]["subject"] == "[SEV1] EU card payments fail"

    steps = [
        ("ack", incident_id),
        ("note", incident_id, "rolling back 4.2.1"),
        ("assign", incident_id, "commander", "alice"),
        ("add-responder", incident_id, "--person", "alice", "--text", "a second look"),
        ("silence", "--match", "service=checkout", "--until-resolved", incident_id,
         "--comment", "noise while we roll back"),
        ("mitigate", incident_id, "--text", "rollback done"),
        ("resolve", incident_id),
    ]  # fmt: skip
    expected = ["acknowledged", "note", "role_assigned", "responder_added", "mitigated", "resolved"]
    for n, step in enumerate(steps):
        code, out, err = warroom(worker, *step)
        assert code == 0, (step, err)
        if step[0] == "silence":
            assert out.startswith("silence sil-")
            continue
        kind = expected[sum(1 for s in steps[:n] if s[0] != "silence")]

        async def reached(kind: str = kind) -> list[dict[str, Any]] | None:
            _, timeline = await api.get(f"/api/incidents/{incident_id}/timeline")
            events = timeline.get("events") or []
            return events if any(e["kind"] == kind for e in events) else None

        await eventually(reached, 20, f"the {kind} event")
    _, timeline = await api.get(f"/api/incidents/{incident_id}/timeline")
    mine = [e for e in timeline["events"] if e["kind"] in expected]
    assert [e["kind"] for e in mine] == expected
    assert {e["actor"] for e in mine} == {"alice"}
    _, silences = await api.get("/api/silences")
    assert [s["until_resolved"] for s in silences["silences"]] == [incident_id]

    # A refused transition, a bad token and an unreachable API each say so in one line.
    code, _, err = warroom(worker, "ack", incident_id)
    assert code == 1 and err == (
        "warroom ack: HTTP 409: cannot acknowledge an incident that is resolved"
    )
    code, _, err = warroom(worker, "note", incident_id, "x", token="not-the-token")
    assert code == 1 and err == "warroom note: HTTP 401: invalid token"
    gone = RunningWorker(**{**worker.__dict__, "base_url": f"http://127.0.0.1:{free_port()}"})
    code, _, err = warroom(gone, "ack", incident_id)
    assert code == 2 and err.startswith("warroom ack: cannot reach the API at http://127.0.0.1:")
    assert "Traceback" not in err
