"""Faust's start and stop without their fixed pauses.

Faust 0.15.3's table manager sleeps one second before it registers the tables' changelogs, so
that tables an agent declares lazily can still join; every table of this app is declared in
:func:`streams.app.build`, before the worker starts. Mode's worker waits one second more after
the loop has stopped, before it closes it, for callbacks still scheduled; a tenth of a second
does that. Each pause is paid on every start and stop of every worker (a rolling restart, a
rebalance test), and nothing here needs them.
"""

from __future__ import annotations

import asyncio
import gc
import inspect
import sys
from collections.abc import Iterator
from types import FrameType
from typing import Any

import faust
from faust.tables import TableManager

#: How long the stopped loop runs on for callbacks still scheduled, before it is closed.
CLOSE_GRACE_S = 0.1


class PromptTableManager(TableManager):
    """Registers the changelogs and starts recovery as soon as the manager starts."""

    async def on_start(self) -> None:
        if not self.should_stop:
            await self._update_channels()
            await self.recovery.start()


class PromptWorker(faust.Worker):
    """Closes the loop a moment after it has stopped; on SIGUSR1, writes where every task is
    waiting (each task's whole chain of awaits, not only its outer frame) to stderr."""

    async def _sentinel_task(self) -> None:
        await asyncio.sleep(CLOSE_GRACE_S)

    async def _cry(self) -> None:
        print(consumer_state(self.app), task_dump(), sep="\n", file=sys.stderr, flush=True)


def consumer_state(app: Any) -> str:
    """What Faust's consumer fetches from and why it might not: its assignment, the
    partitions it has paused or holds back for a full buffer, its flow and its offsets."""
    try:
        c = app.consumer
        fields = {
            "generation": app.consumer_generation_id,
            "rebalancing": app.rebalancing,
            "in_recovery": app.in_recovery,
            "flow_control_active": app.flow_control.is_active(),
            "consumer_flow_active": c.flow_active,
            "assignment": sorted(map(str, c.assignment())),
            "active": sorted(map(str, c._active_partitions or ())),
            "paused": sorted(map(str, c._paused_partitions)),
            "buffered": sorted(map(str, c._buffered_partitions)),
            "read_offset": {str(k): v for k, v in c._read_offset.items()},
            "committed_offset": {str(k): v for k, v in c._committed_offset.items()},
        }
    except Exception as exc:  # a dump never fails the worker
        return f"CONSUMER state unavailable: {exc!r}"
    return "CONSUMER " + "\n  ".join(f"{k}: {v}" for k, v in fields.items())


def task_dump() -> str:
    """Every pending task of the running loop with the chain of awaits it is suspended in."""
    out = []
    for task in asyncio.all_tasks():
        if task.done():
            continue
        out.append(f"TASK {task.get_name()}")
        out.extend(_where(task.get_coro()))
    # A task awaiting an object that is not a coroutine (Faust's agents) hides the chain
    # below it: every suspended coroutine of this project's code is listed as well.
    for obj in gc.get_objects():
        if inspect.iscoroutine(obj) or inspect.isasyncgen(obj):
            frame = getattr(obj, "cr_frame", None) or getattr(obj, "ag_frame", None)
            if frame is not None and "/streams/" in frame.f_code.co_filename:
                out.append(f"SUSPENDED {frame.f_code.co_name}")
                out.extend(_where(obj))
    return "\n".join(out)


def _where(coro: Any) -> list[str]:
    return [f"  {f.f_code.co_filename}:{f.f_lineno} in {f.f_code.co_name}" for f in _awaiting(coro)]


def _awaiting(coro: Any) -> Iterator[FrameType]:
    """The frames of a coroutine and of everything it awaits, outermost first."""
    while coro is not None:
        frame = getattr(coro, "cr_frame", None) or getattr(coro, "ag_frame", None)
        frame = frame or getattr(coro, "gi_frame", None)
        if frame is not None:
            yield frame
        coro = (getattr(coro, "cr_await", None) or getattr(coro, "ag_await", None)
                or getattr(coro, "gi_yieldfrom", None))  # fmt: skip
