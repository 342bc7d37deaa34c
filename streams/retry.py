"""The one retry loop: capped exponential backoff with jitter, bounded by attempts and a deadline.

Used by the delivery lanes (``deliver_pages``, every notifier) and by runbook webhooks
(``run_automation``). The caller's ``attempt`` turns its own failures into a result (a notifier's
``DeliveryResult``, an HTTP answer) and ``retryable`` says which results are worth another try;
nothing here catches exceptions, so a bug is never retried.

A pause after attempt ``n`` is ``min(base_s * 2**(n - 1), cap_s)`` scaled by a random factor
in [0.5, 1), so destinations that failed together do not retry together:

>>> b = Backoff(attempts=5, base_s=1.0, cap_s=3.0)
>>> [b.pause(n, draw=0.0) for n in (1, 2, 3, 4)]
[0.5, 1.0, 1.5, 1.5]
>>> b.pause(2, draw=0.999)
1.999
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from streams.settings import Settings

R = TypeVar("R")


@dataclass(frozen=True)
class Backoff:
    """How often and how long to retry: ``attempts`` in all (the first included), the first
    pause ``base_s``, doubling up to ``cap_s``, and no pause that would end past ``deadline_s``
    after the first attempt began (None: no deadline)."""

    attempts: int = 1
    base_s: float = 0.5
    cap_s: float = 30.0
    deadline_s: float | None = None

    def pause(self, attempt: int, draw: float) -> float:
        """The pause after failed attempt ``attempt`` (from 1), given ``draw`` in [0, 1)."""
        return min(self.base_s * 2 ** (attempt - 1), self.cap_s) * (0.5 + draw / 2)

    @classmethod
    def for_delivery(cls, s: Settings) -> Backoff:
        """The settings' policy for pages and webhooks (``delivery_*``)."""
        deadline = s.delivery_deadline_s or None
        return cls(s.delivery_attempts, s.delivery_backoff_s, s.delivery_backoff_max_s, deadline)


async def _sleep(seconds: float) -> None:
    await asyncio.sleep(seconds)


def _now() -> float:
    return time.monotonic()


async def retry(
    attempt: Callable[[int], Awaitable[R]],
    retryable: Callable[[R], bool],
    backoff: Backoff,
    draw: Callable[[], float] = random.random,
) -> tuple[R, int]:
    """Await ``attempt(n)`` for n = 1, 2, ... until its result is not ``retryable``, the attempts
    run out or the next pause would end past the deadline; the last result and its ``n``."""
    started = _now()
    n = 1
    while True:
        result = await attempt(n)
        if n >= backoff.attempts or not retryable(result):
            return result, n
        pause = backoff.pause(n, draw())
        if backoff.deadline_s is not None and _now() - started + pause > backoff.deadline_s:
            return result, n
        await _sleep(pause)
        n += 1
