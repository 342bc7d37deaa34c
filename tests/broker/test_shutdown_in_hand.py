"""A worker stopped (SIGTERM) while a stream is in the middle of an input does not count that
input as done: after the restart it is handled again. Here the input is the timeline event
that starts a runbook's automated task, whose webhook keeps answering 503 (retried) when the
worker is told to stop; once restarted, the worker calls it again and records the result."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import pytest

from tests.broker.test_runbooks import catalog
from tests.harness import Api, RunningWorker, WebhookServer, eventually, produce

pytestmark = pytest.mark.broker


async def test_an_input_in_hand_at_shutdown_is_handled_after_the_restart(
    start_worker: Callable[..., RunningWorker], webhook_server: WebhookServer
) -> None:
    webhook_server.status = 503
    worker = start_worker(
        catalog(webhook_server.url),
        delivery_attempts=50, delivery_backoff_s=0.5, delivery_backoff_max_s=1,
        delivery_deadline_s=600,
    )  # fmt: skip
    api = Api(worker)
    detection = {
        "id": "det-1", "ts": time.time() - 5, "service": "checkout", "signal": "latency_ms",
        "detector": "median_mad", "score": 0.999, "severity": "critical",
    }  # fmt: skip
    await produce(
        worker.bootstrap, worker.topics.detections, [(b"checkout", json.dumps(detection).encode())]
    )
    # The webhook is being retried: the automation stream holds the event.
    await webhook_server.wait_for(3, timeout_s=60)
    worker.stop()
    calls_before_restart = len(webhook_server.requests)

    webhook_server.status = 200
    worker.start()

    async def task_done() -> list[dict[str, Any]] | None:
        _, body = await api.get("/api/incidents")
        if not body["incidents"]:
            return None
        _, tl = await api.get(f"/api/incidents/{body['incidents'][0]['id']}/timeline")
        done = [e for e in tl["events"] if e["kind"] == "task_done"]
        return done or None

    [done] = await eventually(task_done, 60, "the automated task done after the restart")
    assert done["actor"] == "automation" and done["data"]["result"] == "HTTP 200: ok"
    assert len(webhook_server.requests) > calls_before_restart
