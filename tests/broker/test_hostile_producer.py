"""A hostile producer mixes oversized, far-future, malformed and control-character records into
a valid stream: the valid part's incidents and pages are exactly those of the same stream alone,
every hostile record is in a dead-letter topic with its reason, and the worker stays ready.

Hypothesis draws which hostile records are sent, their sizes and where they fall among the valid
messages; each example runs on a worker of its own (fresh topics and group) against the session's
real broker, and is compared with a control run of the valid stream alone.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from tests.harness import (
    Api,
    RunningWorker,
    WebhookServer,
    consumed_all,
    eventually,
    new_worker,
    produce,
    read_all,
)

pytestmark = pytest.mark.broker

T = TypeVar("T")
#: The control run: (incident id, service, severity) of each incident, and the pages' dedup keys.
Control = tuple[list[tuple[str, str, str]], list[str]]

TEN_YEARS_S = 10 * 365 * 86400.0


def catalog(hook_url: str) -> dict[str, Any]:
    return {
        "services": {
            "checkout": {"team": "payments", "tier": 1},
            "search": {"team": "payments", "tier": 2},
        },
        "teams": {"payments": {"members": ["alice"], "escalation": [{"targets": ["alice"]}]}},
        "people": {"alice": {"contacts": [{"channel": "webhook", "address": hook_url}]}},
    }


@dataclass(frozen=True)
class Hostile:
    """One hostile record: the topic it goes to, its key and bytes, and the marker its dead
    letter must show (in the kept prefix of the value, or the whole value)."""

    name: str
    topic: str  # "metrics" or "detections"
    key: bytes
    value: bytes
    marker: str


def valid_messages(base: float) -> list[tuple[bytes, bytes]]:
    """Two services: ``search`` steady, ``checkout`` with a spike that opens one incident."""
    rng = random.Random(11)

    def point(service: str, i: int, value: float) -> dict[str, Any]:
        return {"ts": base + i, "service": service, "metric": "latency_ms", "value": value}

    messages = []
    for service in ("checkout", "search"):
        warm = [point(service, i, 100.0 + rng.gauss(0, 2)) for i in range(40)]
        messages.append((service.encode(), json.dumps({"points": warm}).encode()))
    after = [400.0, 410.0, 405.0, 100.0, 101.0, 99.0]
    for i, value in enumerate(after):
        messages.append((b"checkout", json.dumps(point("checkout", 40 + i, value)).encode()))
        calm = point("search", 40 + i, 100.0 + rng.gauss(0, 2))
        messages.append((b"search", json.dumps(calm).encode()))
    return messages


def hostile_records(base: float, now: float, oversized_bytes: int) -> dict[str, Hostile]:
    def point(marker: str, **fields: Any) -> dict[str, Any]:
        entry = {"ts": base + 20, "service": "checkout", "metric": "latency_ms", "value": 100.0}
        entry["labels"] = {"marker": marker}
        entry.update(fields)
        return entry

    def as_point(name: str, **fields: Any) -> Hostile:
        marker = f"hostile-{name}"
        body = json.dumps(point(marker, **fields)).encode()
        return Hostile(name, "metrics", b"checkout", body, marker)

    oversized_marker = "hostile-oversized"
    filler = random.Random(5).randbytes(oversized_bytes)
    records = [
        # Not UTF-8 from its first byte, and close to Kafka's record limit.
        Hostile(
            "oversized",
            "metrics",
            b"checkout",
            b"\xff\xfe" + oversized_marker.encode() + filler,
            oversized_marker,
        ),
        as_point("far-future", ts=now + TEN_YEARS_S),
        as_point("crlf-service", service="check\r\nout"),
        as_point("nul-in-label", labels={"marker": "hostile-nul-in-label", "zone": "a\x00b"}),
        as_point(
            "many-labels",
            labels={"marker": "hostile-many-labels", **{f"k{i}": "v" for i in range(200)}},
        ),
        as_point("long-label", labels={"marker": "hostile-long-label", "path": "x" * 20_000}),
        Hostile(
            "nan-value",
            "metrics",
            b"checkout",
            b'{"ts": %f, "service": "checkout", "metric": "latency_ms", "value": NaN, '
            b'"labels": {"marker": "hostile-nan-value"}}' % (base + 21),
            "hostile-nan-value",
        ),
        Hostile(
            "not-json", "metrics", b"checkout", b"{not json hostile-not-json", "hostile-not-json"
        ),
        Hostile(
            "wrong-fields",
            "metrics",
            b"checkout",
            json.dumps({"when": base, "what": "hostile-wrong-fields"}).encode(),
            "hostile-wrong-fields",
        ),
        Hostile(
            "future-detection",
            "detections",
            b"checkout",
            json.dumps(
                {
                    "id": "hostile-future-detection",
                    "ts": now + TEN_YEARS_S,
                    "service": "checkout",
                    "signal": "latency_ms",
                    "detector": "external",
                    "score": 1.0,
                    "severity": "critical",
                }
            ).encode(),
            "hostile-future-detection",
        ),
    ]
    return {r.name: r for r in records}


def letter_shows(letter: dict[str, Any], marker: str) -> bool:
    """The dead letter carries ``marker``: in the value it kept, or in its preview."""
    kept = base64.b64decode(letter.get("value_b64") or "")
    return marker.encode() in kept or marker in (letter.get("value_preview") or "")


async def run_stream(
    worker: RunningWorker,
    hook: WebhookServer,
    messages: Sequence[tuple[str, bytes | None, bytes]],
    expected_incidents: int,
) -> tuple[list[tuple[str, str, str]], list[str]]:
    """Send ``messages`` in order; once everything is consumed: incidents and page keys."""
    api = Api(worker)
    for topic, key, value in messages:
        await produce(worker.bootstrap, getattr(worker.topics, topic), [(key, value)])

    async def incidents() -> list[dict[str, Any]] | None:
        _, body = await api.get("/api/incidents")
        found = body["incidents"]
        return found if len(found) >= expected_incidents else None

    await eventually(incidents, 60, f"{expected_incidents} incident(s)")
    await hook.wait_for(expected_incidents, timeout_s=60)

    async def all_consumed() -> bool | None:
        for topic in (worker.topics.metrics, worker.topics.detections, worker.topics.pages):
            if not await consumed_all(worker.bootstrap, worker.group_of(topic), topic):
                return None
        return True

    await eventually(all_consumed, 60, "every input consumed")
    _, body = await api.get("/api/incidents")
    found = sorted((i["id"], i["service"], i["severity"]) for i in body["incidents"])
    keys = sorted(r["json"]["dedup_key"] for r in hook.requests)
    return found, keys


async def on_fresh_worker(
    bootstrap: str,
    home: Path,
    name: str,
    body: Callable[[RunningWorker, WebhookServer], Awaitable[T]],
) -> T:
    """``body`` run against a worker of its own (fresh topics and group) and a webhook server."""
    hook = WebhookServer()
    await hook.start()
    worker = new_worker(
        bootstrap, home, name, catalog(hook.url),
        {"detector": "median_mad", "policy_params": {"for_points": 2}},
    )  # fmt: skip
    worker.start()
    try:
        return await body(worker, hook)
    finally:
        worker.stop()
        await hook.stop()


@pytest.fixture(scope="module")
def stream_times() -> tuple[float, float]:
    """One base time for the control and every example, so ids derived from it agree."""
    now = float(int(time.time()))
    return now - 600.0, now


@pytest.fixture(scope="module")
def control(
    kafka_bootstrap: str,
    tmp_path_factory: pytest.TempPathFactory,
    stream_times: tuple[float, float],
) -> Control:
    """The valid stream alone, on a worker of its own."""
    base, _ = stream_times
    messages = [("metrics", k, v) for k, v in valid_messages(base)]

    async def go(worker: RunningWorker, hook: WebhookServer) -> Control:
        return await run_stream(worker, hook, messages, expected_incidents=1)

    home = tmp_path_factory.mktemp("control")
    return asyncio.run(on_fresh_worker(kafka_bootstrap, home, "hostile-control", go))


@settings(
    max_examples=2,
    deadline=None,
    derandomize=True,
    database=None,
    # Each example is a worker's whole run: report the failing draw as it is, without shrinking.
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_hostile_records_change_nothing_valid_and_each_is_dead_lettered(
    data: st.DataObject,
    kafka_bootstrap: str,
    tmp_path_factory: pytest.TempPathFactory,
    stream_times: tuple[float, float],
    control: Control,
) -> None:
    base, now = stream_times
    oversized = data.draw(st.integers(min_value=700_000, max_value=950_000), label="oversized")
    every = hostile_records(base, now, oversized)
    names = data.draw(
        st.lists(st.sampled_from(sorted(every)), min_size=4, unique=True), label="hostile"
    )
    # The far-future point always comes before the spike: it must not blind its series.
    names = ["far-future", *[n for n in names if n != "far-future"]]
    valid = [("metrics", k, v) for k, v in valid_messages(base)]
    spike_at = 2  # after the two warm-up batches
    mixed: list[tuple[str, bytes | None, bytes]] = list(valid)
    for name in names:
        record = every[name]
        limit = spike_at if name == "far-future" else len(mixed)
        at = data.draw(st.integers(min_value=0, max_value=limit), label=f"position of {name}")
        mixed.insert(at, (record.topic, record.key, record.value))

    async def go(worker: RunningWorker, hook: WebhookServer) -> None:
        incidents, pages = await run_stream(worker, hook, mixed, expected_incidents=1)
        # Exactly the control's incidents and pages: same ids, same dedup keys.
        assert (incidents, pages) == control

        letters: list[dict[str, Any]] = []
        for topic in (worker.topics.metrics, worker.topics.detections):
            letters += await read_all(worker.bootstrap, f"{topic}.dlq")
        for name in names:
            marker = every[name].marker
            found = [letter for letter in letters if letter_shows(letter, marker)]
            assert found, f"{name}: no dead letter carries {marker!r}"
            assert all(letter["error"] for letter in found), f"{name}: a letter without reason"
            # Whatever the input's size, its dead letter fits a default Kafka record.
            assert all(len(json.dumps(letter)) < 1_000_000 for letter in found)
        if "oversized" in names:
            [letter] = [x for x in letters if letter_shows(x, "hostile-oversized")]
            original = every["oversized"].value
            assert letter["value_sha256"] == hashlib.sha256(original).hexdigest()
            assert letter["value_length"] == len(original)
        status, _ = await Api(worker).get("/readyz")
        assert status == 200

    home = tmp_path_factory.mktemp("hostile")
    asyncio.run(on_fresh_worker(kafka_bootstrap, home, "hostile-example", go))


def test_the_control_run_opens_one_incident_and_pages_once(control: Control) -> None:
    incidents, pages = control
    assert [service for _, service, _ in incidents] == ["checkout"]
    assert len(pages) == 1
