"""Killed at the worst moment: a worker SIGKILLed right after ``config apply`` returns, and while
an override POST is under way, comes back with the same catalog version and the same overrides;
a retry of the POST with its ``Idempotency-Key`` neither loses nor doubles the override."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from tests.broker.test_live_catalog import apply, catalog, metrics, paged_by
from tests.harness import Api, RunningWorker, WebhookServer, eventually, read_records

pytestmark = pytest.mark.broker


def stamp(at: datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%SZ")


async def post_override(worker: RunningWorker, body: dict[str, Any], key: str) -> tuple[int, Any]:
    headers = {**worker.headers(), "Idempotency-Key": key}
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{worker.base_url}/api/overrides", json=body, headers=headers) as response,
    ):
        return response.status, await response.json()


async def in_force(worker: RunningWorker, version: int) -> bool | None:
    try:
        found = await metrics(worker)
    except aiohttp.ClientError:
        return None
    return True if found.get("warroom_catalog_version") == version else None


async def test_a_worker_killed_after_apply_and_during_an_override_post_comes_back_whole(
    start_worker: Callable[..., RunningWorker], webhook_server: WebhookServer, tmp_path: Path
) -> None:
    base = catalog(webhook_server.url, "ann")
    base["schedules"] = {
        "primary": {"time_zone": "UTC", "layers": [
            {"participants": ["ann"], "rotation": "weekly", "start": "2026-01-05",
             "handoff": "09:00"}]},
    }  # fmt: skip
    worker = start_worker(base)
    api = Api(worker)

    # Killed the moment ``config apply`` says it is applied: the next start has it in force.
    path = tmp_path / "ben.yaml"
    path.write_text(
        yaml.safe_dump({**base, "teams": {"core": {"escalation": [{"targets": ["ben"]}]}}})
    )
    done = apply(worker, path)
    assert done.returncode == 0, done.stderr
    version = int(done.stdout.split()[2])
    worker.kill()
    worker.start()
    await eventually(lambda: in_force(worker, version), 60, f"version {version} after a kill")
    assert await paged_by(api, "api", "ben")

    # Killed while an override POST is under way: whatever the client heard, a retry with the
    # same key answers 201 with one id, and exactly one override is in force, also after
    # another kill.
    now = datetime.now(tz=UTC).replace(microsecond=0)
    body = {"person": "ben", "schedule": "primary", "start": stamp(now - timedelta(minutes=1)),
            "end": stamp(now + timedelta(hours=2))}  # fmt: skip
    posting = asyncio.create_task(post_override(worker, body, "crash-1"))
    await asyncio.sleep(0)  # let the request start, then kill under it
    await asyncio.to_thread(worker.kill)
    try:
        heard: tuple[int, Any] | None = await posting
    except aiohttp.ClientError:
        heard = None  # the connection died with the worker
    worker.start()
    status, created = await post_override(worker, body, "crash-1")
    assert status == 201, created
    if heard is not None and heard[0] == 201:
        assert heard[1]["id"] == created["id"]
    keys = {k for k, v in await read_records(worker.bootstrap, worker.topics.catalog) if v}
    assert keys == {b"catalog", f"override/{created['id']}".encode()}

    worker.kill()
    worker.start()
    await eventually(lambda: in_force(worker, version), 60, f"version {version} after a 2nd kill")
    _, listed = await api.get("/api/overrides")
    assert [o["id"] for o in listed["overrides"]] == [created["id"]]
    _, who = await api.get("/api/oncall?schedule=primary")
    assert who["people"] == ["ben"] and who["catalog"]["version"] == version
