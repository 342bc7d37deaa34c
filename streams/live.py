"""Live updates for the dashboard: agents publish, each server-sent-events client gets a queue."""

from __future__ import annotations

import asyncio
import json
from typing import Any

_QUEUE = 256


class Live:
    """A fan-out of small JSON messages to subscribers; a slow subscriber loses old messages."""

    def __init__(self) -> None:
        self._subscribers: set[asyncio.Queue[str]] = set()

    def subscribe(self) -> asyncio.Queue[str]:
        queue: asyncio.Queue[str] = asyncio.Queue(maxsize=_QUEUE)
        self._subscribers.add(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue[str]) -> None:
        self._subscribers.discard(queue)

    def publish(self, kind: str, data: Any) -> None:
        if not self._subscribers:
            return
        message = json.dumps({"kind": kind, "data": data}, default=str)
        for queue in self._subscribers:
            if queue.full():
                queue.get_nowait()
            queue.put_nowait(message)

    def close_all(self, sentinel: str) -> None:
        """Tell every subscriber to finish (the server is stopping)."""
        for queue in self._subscribers:
            if queue.full():
                queue.get_nowait()
            queue.put_nowait(sentinel)

    @property
    def subscribers(self) -> int:
        return len(self._subscribers)
