"""The directory (silences and incident states every worker reads whole) says it has caught up
only once it knows everything written before it started: the incident stream waits for that, so
a silence set before a restart holds from the first input after it."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from datetime import UTC, datetime

import pytest

from responders.silences import SilenceState
from streams.directory import Directory
from streams.live import Live
from streams.settings import Settings, TopicNames
from streams.topics import ensure_topics
from tests.harness import eventually, produce, read_records

pytestmark = pytest.mark.broker

#: About 5 MB: more than one fetch, so "caught up" after the first batch would be too early.
SILENCES = 20_000


async def _fresh_topics(bootstrap: str, silence_retention_s: float = 120 * 3600.0) -> Settings:
    """Settings naming a fresh set of topics, created on the broker."""
    prefix = f"t-directory-{uuid.uuid4().hex[:8]}"
    names = {f: f"{prefix}.{v}" for f, v in TopicNames().model_dump().items()}
    settings = Settings(
        bootstrap_servers=bootstrap, app_id=prefix, partitions=2, topics=TopicNames(**names),
        silence_retention_s=silence_retention_s,
    )  # fmt: skip
    await ensure_topics(settings)
    return settings


def _silence(n: int, now: float) -> tuple[bytes, bytes]:
    body: dict[str, object] = {
        "id": f"sil-{n}", "matchers": [{"name": "service", "value": f"svc-{n}"}],
        "starts_at": now - 60, "ends_at": now + 3600, "created_by": "ann",
        "comment": "planned work", "created_at": now - 60,
    }  # fmt: skip
    return f"sil-{n}".encode(), json.dumps(body).encode()


async def test_caught_up_means_every_earlier_silence_and_resolution_is_known(
    kafka_bootstrap: str,
) -> None:
    settings = await _fresh_topics(kafka_bootstrap)
    now = time.time()
    await produce(
        kafka_bootstrap, settings.topics.silences, [_silence(n, now) for n in range(SILENCES)]
    )
    opened = {"kind": "opened", "incident_id": "inc-1", "data": {"incident": {"service": "db"}}}
    resolved = {"kind": "resolved", "incident_id": "inc-1", "data": {}}
    events = [(b"db", json.dumps(e).encode()) for e in (opened, resolved)]
    await produce(kafka_bootstrap, settings.topics.events, events)

    directory = Directory(settings, Live())
    assert not directory.caught_up.is_set()
    seen_when_caught_up: list[int] = []

    async def watch() -> None:
        await directory.caught_up.wait()
        seen_when_caught_up.append(len(directory.silences))

    watcher = asyncio.create_task(watch())
    await directory.start()
    try:
        await asyncio.wait_for(watcher, 60)
        # At the moment it said so, it knew every silence and the resolution written before.
        assert seen_when_caught_up == [SILENCES]
        assert "inc-1" in directory.resolved and "inc-1" not in directory.open_incidents
    finally:
        await directory.stop()


async def test_silences_expired_before_the_start_are_not_announced(kafka_bootstrap: str) -> None:
    settings = await _fresh_topics(kafka_bootstrap)
    now = time.time()
    active = _silence(1, now)
    key, value = _silence(2, now)
    expired = {**json.loads(value), "ends_at": now - 30}
    await produce(
        kafka_bootstrap, settings.topics.silences, [active, (key, json.dumps(expired).encode())]
    )
    live = Live()
    queue = live.subscribe()
    directory = Directory(settings, live)
    await directory.start()
    try:
        await asyncio.wait_for(directory.caught_up.wait(), 60)

        async def both_judged() -> bool | None:
            # The announcing pass that records a silence's state is the one that would announce
            # it: once both are known, whatever it announced is on the queue.
            known = directory.known
            return True if {"sil-1", "sil-2"} <= set(known) else None

        await eventually(both_judged, 30, "the announcer to judge both silences")
        assert directory.known["sil-2"] is SilenceState.EXPIRED
        announced = []
        while not queue.empty():
            message = json.loads(queue.get_nowait())
            announced.append((message["data"]["id"], message["data"]["state"]))
        # The active one is news to this worker's dashboard; the one that ended before is not.
        assert announced == [("sil-1", "active")]
    finally:
        await directory.stop()


async def test_silences_are_deleted_a_retention_after_they_ended(kafka_bootstrap: str) -> None:
    settings = await _fresh_topics(kafka_bootstrap, silence_retention_s=2.0)
    now = time.time()

    def body(n: int, **changes: object) -> tuple[bytes, bytes]:
        key, value = _silence(n, now)
        return key, json.dumps({**json.loads(value), **changes}).encode()

    await produce(
        kafka_bootstrap,
        settings.topics.silences,
        [
            body(1, ends_at=now - 10),  # ended 10 s ago
            body(2),  # ends in an hour
            body(3, ends_at=None, until_resolved="inc-9"),  # its incident resolved 10 s ago
            body(4, ends_at=None, until_resolved="inc-8"),  # its incident is still open
        ],
    )
    at = datetime.fromtimestamp(now - 10, tz=UTC).isoformat()
    resolved = {"kind": "resolved", "incident_id": "inc-9", "at": at, "data": {}}
    await produce(kafka_bootstrap, settings.topics.events, [(b"db", json.dumps(resolved).encode())])

    directory = Directory(settings, Live())
    await directory.start()
    try:

        async def forgotten() -> bool | None:
            return True if set(directory.silences) == {"sil-2", "sil-4"} else None

        await eventually(forgotten, 30, "the two ended silences to be forgotten")
    finally:
        await directory.stop()

    async def tombstones() -> set[str] | None:
        records = await read_records(kafka_bootstrap, settings.topics.silences)
        gone = {key.decode() for key, value in records if key and value is None}
        return gone or None

    assert await eventually(tombstones, 30, "tombstones on silences.v1") == {"sil-1", "sil-3"}
