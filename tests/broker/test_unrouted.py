"""An incident for a service nobody owns is never silently unpaged: the timeline says why, the
fallback policy is paged, and ``warroom_incidents_unrouted`` counts it."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.harness import Api, RunningWorker, WebhookServer, eventually, produce

pytestmark = pytest.mark.broker


def catalog(hook_url: str) -> dict[str, Any]:
    return {
        "services": {"api": {"team": "core", "tier": 1}},
        "teams": {"core": {"escalation": [{"targets": ["ann"]}]}},
        "people": {
            "ann": {"contacts": [{"channel": "console"}]},
            "ops": {"contacts": [{"channel": "webhook", "address": hook_url}]},
        },
        "escalation_policies": {"ops-desk": {"steps": [{"targets": [{"person": "ops"}]}]}},
        "fallback_policy": "ops-desk",
    }


async def test_an_unowned_service_pages_the_fallback_and_says_why(
    start_worker: Callable[..., RunningWorker], webhook_server: WebhookServer
) -> None:
    worker = start_worker(catalog(webhook_server.url))
    body = {"id": "d-orphan", "ts": time.time(), "service": "orphan", "signal": "errors",
            "detector": "external", "score": 1.0, "severity": "critical"}  # fmt: skip
    await produce(
        worker.bootstrap, worker.topics.detections, [(b"orphan", json.dumps(body).encode())]
    )

    [hook] = await webhook_server.wait_for(1, timeout_s=30)
    page = hook["json"]
    assert page["recipient"] == "ops"
    api = Api(worker)

    async def timeline() -> list[dict[str, Any]] | None:
        _, found = await api.get(f"/api/incidents/{page['incident_id']}/timeline")
        events = found.get("events") or []
        return events if any(e["kind"] == "paged" for e in events) else None

    events = await eventually(timeline, 20, "the incident's timeline")
    kinds = [e["kind"] for e in events]
    assert kinds[:3] == ["opened", "unrouted", "paged"]
    unrouted = events[1]["data"]
    assert unrouted["reason"] == "no escalation policy pages for service 'orphan'"
    assert unrouted["fallback"] == "ops-desk"
    _, incident = await api.get(f"/api/incidents/{page['incident_id']}")
    assert incident["unrouted"] == unrouted["reason"]

    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{worker.base_url}/metrics") as response,
    ):
        text = await response.text()
    families = {f.name: f for f in text_string_to_metric_families(text)}
    assert families["warroom_incidents_unrouted"].samples[0].value == 1
