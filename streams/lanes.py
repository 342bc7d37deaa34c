"""Delivery lanes: one queue and one task per destination, so a slow or dead endpoint holds up
only its own messages.

A stream hands a job to :meth:`Lanes.submit` and moves on at once; the lane of the job's
destination runs its jobs one after another (a destination sees its messages in order), and
lanes run side by side. A job's key stays *busy* from submission until the stream has recorded
its outcome (:meth:`Lanes.settled`), so a scan for unfinished work never starts the same job
twice in one process.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

log = logging.getLogger(__name__)


@dataclass
class Lanes:
    """Per-destination queues of jobs (coroutine factories), each drained by its own task."""

    queues: dict[str, list[tuple[str, Callable[[], Awaitable[None]]]]] = field(default_factory=dict)
    tasks: dict[str, asyncio.Task[None]] = field(default_factory=dict)
    busy: set[str] = field(default_factory=set)

    def submit(self, destination: str, key: str, job: Callable[[], Awaitable[None]]) -> bool:
        """Queue ``job`` on ``destination``'s lane; False (nothing queued) if ``key`` is busy."""
        if key in self.busy:
            return False
        self.busy.add(key)
        self.queues.setdefault(destination, []).append((key, job))
        if destination not in self.tasks:
            self.tasks[destination] = asyncio.ensure_future(self._drain(destination))
        return True

    def settled(self, key: str) -> None:
        """The outcome of ``key`` is recorded: it may be submitted again."""
        self.busy.discard(key)

    def pending(self, destination: str) -> int:
        """Jobs queued or running on ``destination``'s lane."""
        return len(self.queues.get(destination, ())) + (destination in self.tasks)

    async def _drain(self, destination: str) -> None:
        queue = self.queues[destination]
        try:
            while queue:
                key, job = queue.pop(0)
                try:
                    await job()
                except asyncio.CancelledError:
                    raise
                except Exception:
                    # The job could not report an outcome: its key stays busy in this process,
                    # and a restarted worker finds the job unfinished and runs it again.
                    log.exception("delivery lane %s: job %s failed", destination, key)
        finally:
            self.tasks.pop(destination, None)
            if not queue:
                self.queues.pop(destination, None)

    async def close(self) -> None:
        """Cancel every lane (their jobs stay unfinished, for the next owner to run)."""
        tasks = list(self.tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
