"""Silences through the API: a silenced service opens nothing until the silence expires."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import pytest

from tests.harness import Api, RunningWorker, consumed_all, eventually, produce

pytestmark = pytest.mark.broker


def detection(det_id: str, service: str) -> tuple[bytes, bytes]:
    body = {"id": det_id, "ts": time.time(), "service": service, "signal": "latency",
            "detector": "surprise", "score": 0.99, "severity": "error"}  # fmt: skip
    return service.encode(), json.dumps(body).encode()


async def test_silence_mutes_matching_detections_until_expired(
    start_worker: Callable[..., RunningWorker],
) -> None:
    worker = start_worker()
    api = Api(worker)
    body = {"matchers": {"service": "batch"}, "duration_s": 3600, "comment": "nightly reindex"}
    assert (await api.post("/api/silences", body, token=None))[0] == 401
    code, bad = await api.post("/api/silences", {**body, "comment": ""})
    assert code == 400 and "comment" in bad["error"]
    code, created = await api.post("/api/silences", {**body, "created_by": "mallory"}, actor="ann")
    assert code == 201 and created["state"] == "active" and created["created_by"] == "ann"

    await produce(worker.bootstrap, worker.topics.detections,
                  [detection("d1", "batch"), detection("d2", "web")])  # fmt: skip

    async def only_web() -> list[dict[str, Any]] | None:
        if not await consumed_all(
            worker.bootstrap, worker.group_of(worker.topics.detections), worker.topics.detections
        ):
            return None
        _, listed = await api.get("/api/incidents")
        return listed["incidents"] or None

    rows = await eventually(only_web, 30, "the unsilenced incident")
    assert [r["service"] for r in rows] == ["web"]

    code, expired = await Api(worker).delete(f"/api/silences/{created['id']}")
    assert code == 200 and expired["state"] == "expired"
    _, listed = await api.get("/api/silences?state=expired")
    assert [s["id"] for s in listed["silences"]] == [created["id"]]
    await produce(worker.bootstrap, worker.topics.detections, [detection("d3", "batch")])

    async def both() -> list[dict[str, Any]] | None:
        _, listed = await api.get("/api/incidents")
        return listed["incidents"] if len(listed["incidents"]) == 2 else None

    rows = await eventually(both, 30, "an incident once the silence expired")
    assert sorted(r["service"] for r in rows) == ["batch", "web"]

    async def noticed() -> bool | None:
        text = worker.log_text()
        started = f"silence {created['id']} started" in text
        return True if started and f"silence {created['id']} expired" in text else None

    await eventually(noticed, 10, "notices that the silence started and expired")


#: (case, changes to a good silence, status, what the error starts with)
BAD_SILENCES: list[tuple[str, dict[str, Any], int, str | None]] = [
    ("lookahead", {"value": "(?=batch)batch"}, 400,
     "matchers.0: value is not a regular expression RE2 accepts"),
    ("too-costly", {"value": "[^x]{1000}"}, 400,
     "matchers.0: value is too costly a regular expression"),
    ("linear", {"value": "ba(t|tc)+h"}, 201, None),
    ("nan-duration", {"duration_s": float("nan")}, 400, "duration_s: must be a positive"),
    ("infinite-duration", {"duration_s": float("inf")}, 400, "duration_s: must be a positive"),
    ("endless-duration", {"duration_s": 1e300}, 400, "duration_s: ends after the year 9999"),
    ("huge-integer", {"duration_s": 10**400}, 400, "duration_s: must be a positive"),
    ("maintenance-string", {"maintenance": "false"}, 400, "maintenance: must be true or false"),
    ("end-past-9999", {"starts_at": "9999-12-31T00:00:00Z", "duration_s": 172800}, 400,
     "starts_at: timestamp '9999-12-31T00:00:00Z' is out of range"),
]  # fmt: skip


async def test_a_bad_pattern_or_duration_is_a_400_naming_the_field(
    start_worker: Callable[..., RunningWorker],
) -> None:
    worker = start_worker()
    for case, change, status, said in BAD_SILENCES:
        matcher = {"name": "service", "value": change.get("value", "batch"), "regex": True}
        body = {"matchers": [matcher], "duration_s": 600, "comment": "reindex"}
        body |= {k: v for k, v in change.items() if k != "value"}
        code, answer = await Api(worker).post("/api/silences", body)
        assert code == status, (case, answer)
        if said is not None:
            assert answer["error"].startswith(said), (case, answer)
        else:
            assert answer["matchers"][0]["value"] == matcher["value"], case
