"""Metric in, incident opened, page delivered, lifecycle through the API, timeline and MTTR out."""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

import pytest

from tests.harness import (
    Api,
    RunningWorker,
    WebhookServer,
    consume,
    consumed_all,
    eventually,
    produce,
)

pytestmark = pytest.mark.broker


def catalog(hook_url: str) -> dict[str, Any]:
    return {
        "services": {"checkout": {"team": "payments", "tier": 1}},
        "teams": {"payments": {"members": ["alice"], "escalation": [{"targets": ["alice"]}]}},
        "people": {"alice": {"contacts": [{"channel": "webhook", "address": hook_url}]}},
    }


def points(base: float, values: list[float], service: str = "checkout") -> list[dict[str, Any]]:
    return [
        {"ts": base + i, "service": service, "metric": "latency_ms", "value": v}
        for i, v in enumerate(values)
    ]


def ts(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


async def test_metric_to_incident_page_lifecycle_and_mttr(
    start_worker: Callable[..., RunningWorker], webhook_server: WebhookServer
) -> None:
    worker = start_worker(
        catalog(webhook_server.url), detector="median_mad", policy_params={"for_points": 2}
    )
    api = Api(worker)
    rng = random.Random(7)
    base = float(int(time.time()) - 300)
    normal = [100.0 + rng.gauss(0, 2) for _ in range(40)]
    series = points(base, [*normal, 400.0, 410.0, 405.0, 100.0, 101.0, 99.0])
    impact_start, detected = base + 40, base + 41
    # The warm-up part as one batch message, the rest one point per message.
    messages = [(b"checkout", json.dumps({"points": series[:40]}).encode())]
    messages += [(b"checkout", json.dumps(p).encode()) for p in series[40:]]
    await produce(worker.bootstrap, worker.topics.metrics, messages)

    # The page reaches a real HTTP server, with its dedup key.
    [hook] = await webhook_server.wait_for(1, timeout_s=30)
    page = hook["json"]
    assert hook["headers"]["X-Warroom-Dedup-Key"] == page["dedup_key"]
    assert page["recipient"] == "alice" and page["step"] == 0

    async def all_points_consumed() -> bool | None:
        done = await consumed_all(
            worker.bootstrap, worker.group_of(worker.topics.metrics), worker.topics.metrics
        )
        return True if done else None

    await eventually(all_points_consumed, 30, "the worker to consume every point")
    status, body = await api.get("/api/incidents")
    assert status == 200
    [incident] = body["incidents"]
    assert incident["id"] == page["incident_id"]
    assert incident["service"] == "checkout" and incident["status"] == "triggered"
    assert incident["severity"] == "SEV1"
    assert ts(incident["impact_started_at"]) == impact_start
    assert ts(incident["detected_at"]) == detected
    path = f"/api/incidents/{incident['id']}"

    # Writes need the token; lifecycle commands go through the API as responders would.
    assert (await api.post(f"{path}/acknowledge", token=None))[0] == 401
    assert (await api.post(f"{path}/acknowledge", token="wrong"))[0] == 401
    for action, status_after in [
        ("acknowledge", "acknowledged"),
        ("mitigate", "mitigated"),
        ("resolve", "resolved"),
    ]:
        code, accepted = await api.post(f"{path}/{action}", actor="alice")
        assert code == 202, accepted

        async def reached(status_after: str = status_after) -> dict[str, Any] | None:
            _, current = await api.get(path)
            return current if current["status"] == status_after else None

        incident = await eventually(reached, 15, f"status {status_after}")
    code, rejected = await api.post(f"{path}/acknowledge")
    assert code == 409 and "resolved" in rejected["error"]
    assert (await api.get("/api/incidents/inc-nope"))[0] == 404

    # The timeline, in order: the latency came back (three normal points after the spike), so
    # the detector's resolved detection recovered the signal before anyone acknowledged.
    async def full_timeline() -> list[dict[str, Any]] | None:
        _, tl = await api.get(f"{path}/timeline")
        return tl["events"] if len(tl["events"]) >= 6 else None

    events = await eventually(full_timeline, 15, "six timeline events")
    assert [e["kind"] for e in events] == [
        "opened",
        "paged",
        "signals_recovered",
        "acknowledged",
        "mitigated",
        "resolved",
    ]
    assert [e["seq"] for e in events] == [1, 2, 3, 4, 5, 6]
    assert events[3]["actor"] == "alice"

    # The aggregate on aggregates.mttr.v1 equals the durations the test knows.
    aggregates = await consume(
        worker.bootstrap,
        worker.topics.aggregates,
        lambda vs: any(
            v["key"] == "service=checkout|24h" and v["time_to_resolve"]["count"] == 1 for v in vs
        ),
        timeout_s=20,
    )
    [final] = [v for v in aggregates if v["key"] == "service=checkout|24h"][-1:]
    assert final["incidents"] == 1 and final["open_incidents"] == 0
    opened, acked = ts(incident["opened_at"]), ts(incident["acknowledged_at"])
    mitigated, resolved = ts(incident["mitigated_at"]), ts(incident["resolved_at"])
    expected = {
        "time_to_detect": detected - impact_start,
        "time_to_acknowledge": acked - opened,
        "time_to_restore": mitigated - impact_start,
        "time_to_resolve": resolved - impact_start,
    }
    for name, seconds in expected.items():
        assert final[name]["count"] == 1, name
        assert final[name]["mean_s"] == pytest.approx(seconds, abs=1e-6), name
        assert final[name]["p99_s"] == pytest.approx(seconds, abs=1e-6), name
    assert expected["time_to_detect"] == 1.0
    _, mttr = await api.get("/api/mttr?service=checkout&window=24h")
    assert mttr["aggregates"][0]["time_to_resolve"]["mean_s"] == pytest.approx(
        expected["time_to_resolve"], abs=1e-6
    )
    # Exactly one page, exactly one incident.
    assert len(webhook_server.requests) == 1
