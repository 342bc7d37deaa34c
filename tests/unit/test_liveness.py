"""``/healthz`` liveness: a stalled consumer or a recovery that never finishes answers 503."""

from __future__ import annotations

import time
from types import SimpleNamespace
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from aiokafka import TopicPartition

from streams.http.server import Api
from streams.liveness import Liveness
from streams.settings import Settings

TP = ("metrics.points.v1", 0)

# (name, [(now, recovered, {tp: (read, high)})...], expected reason fragment of the last check)
CASES = [
    ("progress keeps it healthy", [(0, True, {TP: (1, 9)}), (30, True, {TP: (5, 9)}),
                                   (60, True, {TP: (9, 12)})], None),
    ("idle without lag is healthy", [(0, True, {TP: (9, 9)}), (100, True, {TP: (9, 9)})], None),
    ("lag and no progress past the limit", [(0, True, {TP: (3, 9)}), (11, True, {TP: (3, 9)})],
     "consumer stalled: metrics.points.v1[0] has 6 unread"),
    ("lag and no progress within the limit", [(0, True, {TP: (3, 9)}), (9, True, {TP: (3, 9)})],
     None),
    ("new messages after an idle spell restart the clock",
     [(0, True, {TP: (9, 9)}), (100, True, {TP: (9, 9)}), (101, True, {TP: (9, 12)}),
      (105, True, {TP: (9, 12)})], None),
    ("recovery within the timeout", [(59, False, {})], None),
    ("recovery past the timeout", [(61, False, {})], "table recovery has not finished after 61s"),
    ("a revoked partition is forgotten",
     [(0, True, {TP: (3, 9)}), (5, True, {}), (12, True, {TP: (3, 9)})], None),
]  # fmt: skip


@pytest.mark.parametrize(("name", "checks", "expected"), CASES, ids=[c[0] for c in CASES])
def test_liveness_rules(
    name: str, checks: list[tuple[float, bool, dict[Any, Any]]], expected: str | None
) -> None:
    live = Liveness(stall_after_s=10, recovery_timeout_s=60, started_at=0)
    reason = None
    for now, recovered, offsets in checks:
        reason = live.check(now, recovered, offsets)
    if expected is None:
        assert reason is None
    else:
        assert reason is not None and expected in reason


class FakeConsumer:
    def __init__(self, read: int, high: int) -> None:
        self.tp = TopicPartition("metrics.points.v1", 0)
        self._read_offset = {self.tp: read}
        self.high = high

    def assignment(self) -> set[Any]:
        return {self.tp}

    def highwater(self, tp: Any) -> int:
        return self.high


async def test_healthz_answers_503_with_the_reason_when_the_consumer_stalls() -> None:
    settings = Settings(stall_after_s=0.001, recovery_timeout_s=3600)
    consumer = FakeConsumer(read=4, high=50)
    pipeline: Any = SimpleNamespace(
        settings=settings, ready=True, app=SimpleNamespace(consumer=consumer), detect=None
    )
    api = Api(pipeline)
    async with TestClient(TestServer(api.app())) as client:
        first = await client.get("/healthz")
        assert first.status == 200 and (await first.json())["status"] == "ok"
        api.liveness.started_at -= 1  # irrelevant once ready; the stall clock is per partition
        for tp in list(api.liveness._last):
            position, seen = api.liveness._last[tp]
            api.liveness._last[tp] = (position, seen - 1.0)  # a second with no progress
        stalled = await client.get("/healthz")
        body = await stalled.json()
        assert stalled.status == 503
        assert body["status"] == "unhealthy" and "consumer stalled" in body["reason"]
        consumer._read_offset[consumer.tp] = 49  # it moves again, and catches up
        healthy = await client.get("/healthz")
        assert healthy.status == 200


async def test_healthz_answers_503_when_recovery_never_finishes() -> None:
    settings = Settings(recovery_timeout_s=5)
    pipeline: Any = SimpleNamespace(
        settings=settings, ready=False, app=SimpleNamespace(), detect=None
    )
    api = Api(pipeline)
    async with TestClient(TestServer(api.app())) as client:
        assert (await client.get("/healthz")).status == 200
        api.liveness.started_at -= 10  # as if the worker had started ten seconds ago
        response = await client.get("/healthz")
        body = await response.json()
        assert response.status == 503 and "table recovery has not finished" in body["reason"]


async def test_healthz_answers_503_when_detector_state_recovery_never_finishes() -> None:
    settings = Settings(stall_after_s=0.001, recovery_timeout_s=5)
    consumer = FakeConsumer(read=50, high=50)
    detect = SimpleNamespace(offsets=dict, restoring_since=None)
    app = SimpleNamespace(consumer=consumer, rebalancing=False, in_recovery=False)
    pipeline: Any = SimpleNamespace(settings=settings, ready=True, app=app, detect=detect)
    api = Api(pipeline)
    async with TestClient(TestServer(api.app())) as client:
        detect.restoring_since = time.monotonic() - 1  # restoring, within the timeout
        assert (await client.get("/healthz")).status == 200
        detect.restoring_since = time.monotonic() - 10
        response = await client.get("/healthz")
        body = await response.json()
        assert response.status == 503
        assert "detector state recovery has not finished" in body["reason"]
        assert (await client.get("/readyz")).status == 503  # and it is not ready meanwhile


async def test_healthz_judges_the_points_consumer_by_its_own_offsets() -> None:
    settings = Settings(stall_after_s=0.001, recovery_timeout_s=3600)
    consumer = FakeConsumer(read=50, high=50)
    lag = {("points", 0): (4, 50)}
    detect = SimpleNamespace(offsets=lambda: dict(lag), restoring_since=None)
    pipeline: Any = SimpleNamespace(
        settings=settings, ready=True, app=SimpleNamespace(consumer=consumer), detect=detect
    )
    api = Api(pipeline)
    async with TestClient(TestServer(api.app())) as client:
        assert (await client.get("/healthz")).status == 200
        for tp in list(api.liveness._last):
            position, seen = api.liveness._last[tp]
            api.liveness._last[tp] = (position, seen - 1.0)  # a second with no progress
        response = await client.get("/healthz")
        body = await response.json()
        assert response.status == 503 and "points[0]" in body["reason"], body
        lag[("points", 0)] = (50, 50)
        assert (await client.get("/healthz")).status == 200


def test_liveness_settings_have_defaults_and_reject_nonsense() -> None:
    s = Settings()
    assert s.stall_after_s > 0 and s.recovery_timeout_s > 0
    with pytest.raises(ValueError, match="stall_after_s"):
        Settings(stall_after_s=0)
