"""Delivery lanes: one destination's stuck job holds up only that destination."""

from __future__ import annotations

import asyncio

from streams.lanes import Lanes


async def test_a_stuck_lane_does_not_hold_up_another() -> None:
    lanes = Lanes()
    stuck = asyncio.Event()
    done: list[str] = []

    async def never() -> None:
        await stuck.wait()

    async def quick(name: str) -> None:
        done.append(name)

    lanes.submit("dead/webhook", "p0", never)
    for n in range(3):
        lanes.submit("alice/webhook", f"a{n}", lambda n=n: quick(f"a{n}"))  # type: ignore[misc]
    async with asyncio.timeout(5):
        while len(done) < 3:
            await asyncio.sleep(0)
    assert done == ["a0", "a1", "a2"]  # in order, while the dead lane is still stuck
    assert lanes.pending("dead/webhook") == 1
    await lanes.close()
    assert lanes.tasks == {}


async def test_a_busy_key_is_not_queued_twice_until_settled() -> None:
    lanes = Lanes()
    ran: list[str] = []

    async def job() -> None:
        ran.append("x")

    assert lanes.submit("d", "k", job)
    assert not lanes.submit("d", "k", job)  # still busy: its outcome is not recorded yet
    async with asyncio.timeout(5):
        while lanes.pending("d"):
            await asyncio.sleep(0)
    assert not lanes.submit("d", "k", job)  # ran, but not settled: a scan must not rerun it
    lanes.settled("k")
    assert lanes.submit("d", "k", job)
    async with asyncio.timeout(5):
        while lanes.pending("d"):
            await asyncio.sleep(0)
    assert ran == ["x", "x"]


async def test_a_failing_job_does_not_stop_its_lane() -> None:
    lanes = Lanes()
    ran: list[str] = []

    async def boom() -> None:
        raise RuntimeError("notifier bug")

    async def fine() -> None:
        ran.append("fine")

    lanes.submit("d", "k1", boom)
    lanes.submit("d", "k2", fine)
    async with asyncio.timeout(5):
        while lanes.pending("d"):
            await asyncio.sleep(0)
    assert ran == ["fine"]
    assert "k1" in lanes.busy  # never settled: a restarted worker resumes it
