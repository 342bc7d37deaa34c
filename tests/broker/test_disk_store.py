"""The rocksdb table store: resolved incidents leave memory and are served from disk, across a
clean restart on the same data directory and a SIGKILL."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.harness import Api, RunningWorker, counters, eventually, produce

pytestmark = pytest.mark.broker

RESOLVED = ("auth", "billing", "search", "cart")
OPEN = "checkout"


def detection(service: str, at: float) -> bytes:
    return json.dumps(
        {
            "id": f"d-{service}",
            "ts": at,
            "service": service,
            "signal": "errors",
            "detector": "manual",
            "score": 1.0,
            "severity": "error",
        }
    ).encode()


async def _incidents(api: Api, count: int, status: str = "") -> list[dict[str, Any]]:
    async def listed() -> list[dict[str, Any]] | None:
        code, body = await api.get(f"/api/incidents{status and f'?status={status}'}")
        rows: list[dict[str, Any]] = body["incidents"] if code == 200 else []
        return rows if len(rows) == count else None

    return await eventually(listed, 60, f"{count} incidents listed ({status or 'any status'})")


async def _served(api: Api, ids: list[str]) -> dict[str, Any]:
    """What the API serves of each incident: the incident, its timeline and its review."""
    out: dict[str, Any] = {}
    for incident_id in ids:
        path = f"/api/incidents/{incident_id}"
        code, incident = await api.get(path)
        assert code == 200, (path, incident)
        code, timeline = await api.get(f"{path}/timeline")
        assert code == 200, timeline
        review = await _text(api.worker, f"{path}/review")
        out[incident_id] = (incident, timeline, review)
    return out


async def _text(worker: RunningWorker, path: str) -> str:
    async with (
        aiohttp.ClientSession() as session,
        session.get(worker.base_url + path, headers=worker.headers()) as response,
    ):
        assert response.status == 200, (path, response.status)
        return await response.text()


async def _in_memory(worker: RunningWorker) -> dict[str, float]:
    samples = await counters(worker)
    prefix = "warroom_table_rows_in_memory{table="
    return {k[len(prefix) : -1]: v for k, v in samples.items() if k.startswith(prefix)}


async def test_resolved_incidents_leave_memory_and_are_served_from_disk_after_restarts(
    start_worker: Callable[..., RunningWorker],
) -> None:
    worker = start_worker(table_store="rocksdb", resolved_in_memory_s=0)
    api = Api(worker)
    now = time.time()
    await produce(
        worker.bootstrap,
        worker.topics.detections,
        [(s.encode(), detection(s, now - 60)) for s in RESOLVED],
    )
    opened = await _incidents(api, len(RESOLVED))
    for row in opened:
        assert (await api.post(f"/api/incidents/{row['id']}/resolve"))[0] == 202
    await _incidents(api, len(RESOLVED), "resolved")
    await produce(worker.bootstrap, worker.topics.detections, [(b"checkout", detection(OPEN, now))])
    [still_open] = await _incidents(api, 1, "open")
    assert still_open["service"] == OPEN

    async def settled() -> dict[str, float] | None:
        rows = await _in_memory(worker)
        return rows if rows.get("incidents") == 1 else None

    # Five incidents, four of them resolved: only the open one is held in memory; no timeline,
    # projection or delivery row is.
    rows = await eventually(settled, 30, "only the open incident in memory")
    assert rows["incident-timelines"] == rows["incident-projection"] == 0, rows
    assert rows["notification-log"] == 0, rows
    assert list(Path(worker.env["WARROOM_DATA_DIR"]).rglob("incidents-*.db")), "no database"
    ids = sorted(row["id"] for row in opened)
    before = await _served(api, ids)
    for incident, timeline, _ in before.values():
        assert incident["status"] == "resolved"
        assert [e["kind"] for e in timeline["events"]][-1] == "resolved"

    worker.restart()  # a clean stop: the databases are reused
    assert "did not stop cleanly" not in worker.log_text()
    assert await _served(api, ids) == before
    assert [r["id"] for r in await _incidents(api, 1, "open")] == [still_open["id"]]
    assert (await _in_memory(worker))["incidents"] == 1
    gauge = {k: v for k, v in (await counters(worker)).items() if "open_incidents_current" in k}
    assert list(gauge.values()) == [1], gauge

    assert worker.kill()
    worker.start()  # a SIGKILL: the databases are deleted and restored from the changelogs
    assert "did not stop cleanly" in worker.log_text()
    assert await _served(api, ids) == before
    assert [r["id"] for r in await _incidents(api, 1, "open")] == [still_open["id"]]
    assert (await _in_memory(worker))["incidents"] == 1
