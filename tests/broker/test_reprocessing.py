"""Processing the same inputs again, later, writes the same bytes (invariant 7), on the broker.

A first worker processes a detection: it holds it for the group wait, opens an incident, pages
the first step and the stakeholders, and escalates. A second worker, with state and output topics
of its own, then reads the same detections topic (the same records, with the times the broker
stamped them with) well after the first one has finished, as a worker that re-processes after a
crash does. Its own timer sends it the ticks. Every timeline event, page and tick it writes must
be the first worker's, byte for byte.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.harness import RunningWorker, eventually, new_worker, produce, read_records

pytestmark = pytest.mark.broker

STEP_DELAY_S = 3
CATALOG: dict[str, Any] = {
    "services": {"api": {"team": "core", "tier": 1, "stakeholders": ["cto"]}},
    "teams": {
        "core": {
            "escalation": [
                {"targets": ["ann"]},
                {"delay_s": STEP_DELAY_S, "targets": ["bob"]},
            ]
        }
    },
    "people": {p: {"contacts": [{"channel": "console"}]} for p in ("ann", "bob", "cto")},
}


def detection(n: int, at: float) -> bytes:
    body = {
        "id": f"det-api-{n}", "ts": at, "service": "api", "signal": "latency",
        "detector": "surprise", "score": 0.99, "severity": "critical",
    }  # fmt: skip
    return json.dumps(body).encode()


async def escalated(worker: RunningWorker) -> list[bytes] | None:
    """The worker's timeline once it holds the escalation, else None."""
    values = [v for _, v in await read_records(worker.bootstrap, worker.topics.events) if v]
    kinds = [json.loads(v)["kind"] for v in values]
    return values if "escalated" in kinds else None


async def outputs(worker: RunningWorker) -> dict[str, list[bytes]]:
    """Everything the worker wrote: events, pages and ticks, each list sorted."""
    topics = worker.topics
    found = {}
    for name, topic in (("events", topics.events), ("pages", topics.pages),
                        ("ticks", topics.commands)):  # fmt: skip
        found[name] = sorted(v for _, v in await read_records(worker.bootstrap, topic) if v)
    return found


async def test_the_same_inputs_processed_later_write_the_same_bytes(
    start_worker: Callable[..., RunningWorker], tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    first = start_worker(CATALOG, group_wait_s="2")
    now = time.time()
    # One input on the detections topic: the order between the two topics a worker reads
    # (detections, and the ticks on the commands topic) is not fixed, and is not under test.
    await produce(first.bootstrap, first.topics.detections, [(b"api", detection(1, now))])
    await eventually(lambda: escalated(first), 60, "the first worker's escalation")

    again = new_worker(first.bootstrap, tmp_path, f"{request.node.name}-again", CATALOG,
                       {"group_wait_s": "2"})  # fmt: skip
    again.topics = again.topics.model_copy(update={"detections": first.topics.detections})
    again.env["WARROOM_TOPICS"] = again.topics.model_dump_json()
    try:
        again.start()
        assert time.time() - now > STEP_DELAY_S + 2  # well after the first worker processed
        await eventually(lambda: escalated(again), 60, "the second worker's escalation")
        await same_outputs(first, again)
    finally:
        again.stop()


async def same_outputs(first: RunningWorker, again: RunningWorker) -> None:
    expected = await outputs(first)
    kinds = sorted(json.loads(v)["kind"] for v in expected["events"])
    assert kinds == ["escalated", "opened", "paged"]
    recipients = sorted(json.loads(v)["recipient"] for v in expected["pages"])
    assert recipients == ["ann", "bob", "cto"] and len(expected["ticks"]) == 2

    async def complete() -> dict[str, list[bytes]] | None:
        found = await outputs(again)
        return found if all(len(found[k]) >= len(v) for k, v in expected.items()) else None

    found = await eventually(complete, 30, "the second worker's outputs")
    for name, values in expected.items():
        only_first = [v for v in values if v not in found[name]]
        only_again = [v for v in found[name] if v not in values]
        assert found[name] == values, (name, only_first, only_again)
