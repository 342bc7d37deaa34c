"""On-call changes at run time: an override taken through ``POST /api/overrides`` pages the new
person, survives a restart (it lives on ``catalog.v1``), shows in the iCalendar feeds, and is
gone after ``DELETE``; a bad request is refused with the field and writes nothing."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import icalendar
import pytest

from tests.harness import Api, RunningWorker, WebhookServer, eventually, produce, read_records

pytestmark = pytest.mark.broker


def catalog(hook_url: str) -> dict[str, Any]:
    """Service ``api`` pages the on-call of schedule ``primary``, where ann is always on call."""
    return {
        "services": {"api": {"team": "core", "tier": 1}},
        "teams": {"core": {"escalation_policy": "core-policy", "schedule": "primary"}},
        "people": {
            name: {
                "name": name.title(),
                "contacts": [{"channel": "webhook", "address": f"{hook_url}?to={name}"}],
            }
            for name in ("ann", "ben")
        },
        "schedules": {
            "primary": {
                "time_zone": "Europe/Berlin",
                "layers": [
                    {
                        "participants": ["ann"],
                        "rotation": "weekly",
                        "start": "2026-01-05",
                        "handoff": "09:00",
                    }
                ],
            }
        },
        "escalation_policies": {"core-policy": {"steps": [{"targets": [{"schedule": "primary"}]}]}},
        "default_team": "core",
    }


def stamp(at: datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%SZ")


async def first_step(api: Api) -> list[str]:
    status, found = await api.get("/api/oncall?service=api")
    assert status == 200, found
    people: list[str] = found["steps"][0]["people"]
    return people


async def feed(worker: RunningWorker, path: str) -> list[tuple[str, datetime, datetime]]:
    """The (summary, start, end) of each event of an iCalendar feed, parsed by ``icalendar``."""
    async with (
        aiohttp.ClientSession() as session,
        session.get(worker.base_url + path) as response,
    ):
        assert response.status == 200, await response.text()
        assert response.content_type == "text/calendar"
        text = await response.read()
    cal = icalendar.Calendar.from_ical(text)
    return sorted(
        (str(e["SUMMARY"]), e.decoded("DTSTART"), e.decoded("DTEND")) for e in cal.walk("VEVENT")
    )


async def test_an_override_taken_through_the_api_pages_the_new_person(
    start_worker: Callable[..., RunningWorker], webhook_server: WebhookServer
) -> None:
    worker = start_worker(catalog(webhook_server.url))
    api = Api(worker)
    assert await first_step(api) == ["ann"]
    now = datetime.now(tz=UTC).replace(microsecond=0)
    start, end = now - timedelta(minutes=1), now + timedelta(hours=2)
    good: dict[str, Any] = {"person": "ben", "schedule": "primary", "start": stamp(start),
            "end": stamp(end),
            "comment": "covering for ann"}  # fmt: skip

    refusals = [
        ({**good, "person": "zed"}, "person: unknown person 'zed'"),
        ({**good, "schedule": "nope"}, "schedule: unknown schedule 'nope' (one of primary)"),
        ({**good, "end": good["start"]}, "end: must be after start"),
        ({**good, "start": "tomorrow"}, "start: timestamp 'tomorrow' is not RFC 3339"),
        ({**good, "start": 1767225600}, "start: required, an RFC 3339 time"),
        ({**good, "end": stamp(now - timedelta(seconds=30))}, "end: already past"),
    ]
    for body, reason in refusals:
        status, answer = await api.post("/api/overrides", body)
        assert status == 400 and answer["error"].startswith(reason), (body, answer)
    status, answer = await api.post("/api/overrides", good, token=None)
    assert status == 401, answer
    assert await read_records(worker.bootstrap, worker.topics.catalog) == []

    # Written once the broker has it; a retry with the same Idempotency-Key is the same write.
    headers = {**worker.headers(), "Idempotency-Key": "take-ann-shift"}
    answers = []
    async with aiohttp.ClientSession() as session:
        for _ in range(2):
            async with session.post(
                f"{worker.base_url}/api/overrides", json=good, headers=headers
            ) as response:
                answers.append((response.status, await response.json()))
    [(status, created), (again, retried)] = answers
    assert status == again == 201, answers
    assert retried["id"] == created["id"]
    assert {k for k, _ in await read_records(worker.bootstrap, worker.topics.catalog)} == {
        f"override/{created['id']}".encode()
    }
    assert (created["person"], created["schedule"]) == ("ben", "primary")
    assert await first_step(api) == ["ben"]
    _, listed = await api.get("/api/overrides?schedule=primary")
    assert [o["id"] for o in listed["overrides"]] == [created["id"]]

    body = {"id": "d-override", "ts": time.time(), "service": "api", "signal": "errors",
            "detector": "external", "score": 1.0, "severity": "critical"}  # fmt: skip
    await produce(worker.bootstrap, worker.topics.detections, [(b"api", json.dumps(body).encode())])
    [page] = await webhook_server.wait_for(1, timeout_s=30)
    assert page["json"]["recipient"] == "ben"

    for path, reason in [
        ("/api/oncall", "service: required (or schedule)"),
        ("/api/oncall?service=api&at=noon", "at: timestamp 'noon' is not RFC 3339"),
        ("/api/oncall?schedule=nope", "schedule 'nope' not found"),
        ("/api/schedules/nope.ics", "schedule 'nope' not found"),
        ("/api/people/zed.ics", "person 'zed' not found"),
        ("/api/schedules/primary.ics?weeks=99", "weeks: must be between 1 and 52, not 99"),
    ]:
        status, answer = await api.get(path)
        assert status in (400, 404) and answer["error"] == reason, (path, answer)
    _, who = await api.get(f"/api/oncall?schedule=primary&at={stamp(end)}")
    assert who["people"] == ["ann"]  # the override has ended by then

    # The schedule's feed: ann until the override, ben during it, ann after; each person's feed
    # holds their own shifts.
    shifts = await feed(worker, "/api/schedules/primary.ics")
    ben = ("On call: primary (Ben)", start, end)
    assert ben in shifts
    ann = [s for s in shifts if "Ann" in s[0]]
    assert len(ann) == 2 and ann[0][2] == start and ann[1][1] == end
    assert max(s[2] for s in shifts) >= now + timedelta(weeks=8) - timedelta(minutes=1)
    assert await feed(worker, "/api/people/ben.ics") == [ben]
    assert len(await feed(worker, "/api/people/ann.ics")) == 2

    # ``warroom oncall`` reads the overrides from the topic too (the catalog from the file, as
    # no catalog has been applied).
    said = subprocess.run(
        [sys.executable, "-m", "streams.cli", "oncall", "api"],
        env=worker.env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert said.returncode == 0, said.stderr
    assert "using the catalog file with 1 run-time override(s)" in said.stderr
    assert said.stdout.splitlines()[2].endswith("ben"), said.stdout

    # Durable: a restarted worker reads it back from the topic.
    worker.restart()
    assert await first_step(api) == ["ben"]
    status, deleted = await api.delete(f"/api/overrides/{created['id']}")
    assert status == 200, deleted
    assert await first_step(api) == ["ann"]
    records = await read_records(worker.bootstrap, worker.topics.catalog)
    # The retry wrote the same key again (compaction keeps one); the delete is a tombstone.
    assert [value is None for _, value in records] == [False, False, True]
    assert len({key for key, _ in records}) == 1
    status, missing = await api.delete(f"/api/overrides/{created['id']}")
    assert status == 404, missing

    async def ann_again() -> bool | None:
        return True if await first_step(api) == ["ann"] else None

    await eventually(ann_again, 10, "the directory to agree that ann is on call")
