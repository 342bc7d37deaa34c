"""``GET /healthz``: is the worker alive, or stuck in a way a restart would fix?

Two ways a Faust worker can hang while its process looks fine: table recovery that never
finishes (it waits without a timeout), and a consumer that stops making progress on a partition
that still has messages to read. :class:`Liveness` notices both from offsets it is shown; the
clock is passed in, so the rules are testable without a broker.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

Partition = tuple[str, int]


@dataclass
class Liveness:
    """Remembers when each partition last moved; :meth:`check` says what is wrong, if anything."""

    stall_after_s: float
    recovery_timeout_s: float
    started_at: float
    _last: dict[Partition, tuple[int | None, float]] = field(default_factory=dict)

    def check(
        self, now: float, recovered: bool, offsets: Mapping[Partition, tuple[int | None, int]]
    ) -> str | None:
        """The reason the worker is unhealthy, or None.

        ``offsets`` maps each assigned partition to (next offset to read or None, high
        watermark). A partition is stalled when it has lag and its read offset has not moved
        for longer than ``stall_after_s``.

        >>> live = Liveness(stall_after_s=10, recovery_timeout_s=60, started_at=0)
        >>> live.check(1, True, {("points", 0): (5, 9)}) is None
        True
        >>> live.check(20, True, {("points", 0): (5, 9)})
        'consumer stalled: points[0] has 4 unread message(s) and made no progress for 19s'
        >>> live.check(21, True, {("points", 0): (9, 9)}) is None
        True
        >>> Liveness(10, 60, started_at=0).check(61, False, {})
        'table recovery has not finished after 61s (recovery_timeout_s=60)'
        """
        if not recovered:
            waited = now - self.started_at
            if waited > self.recovery_timeout_s:
                return (
                    f"table recovery has not finished after {waited:.0f}s "
                    f"(recovery_timeout_s={self.recovery_timeout_s:g})"
                )
            self._last.clear()
            return None
        for tp in [tp for tp in self._last if tp not in offsets]:
            del self._last[tp]
        problems = []
        for tp, (position, high) in sorted(offsets.items()):
            seen = self._last.get(tp)
            if seen is None or seen[0] != position:
                self._last[tp] = (position, now)
                continue
            lag = high - (position or 0)
            idle = now - seen[1]
            if lag > 0 and idle > self.stall_after_s:
                problems.append(
                    f"{tp[0]}[{tp[1]}] has {lag} unread message(s) and made no progress "
                    f"for {idle:.0f}s"
                )
            elif lag <= 0:
                self._last[tp] = (position, now)
        return "consumer stalled: " + "; ".join(problems) if problems else None


def consumer_offsets(app: Any) -> dict[Partition, tuple[int | None, int]]:
    """(next offset to read, high watermark) for each partition assigned to a Faust app."""
    consumer = app.consumer
    out: dict[Partition, tuple[int | None, int]] = {}
    for tp in consumer.assignment():
        high = consumer.highwater(tp)
        if high is None:
            continue
        read = consumer._read_offset.get(tp)
        if read is None:
            continue  # nothing read since assignment: no position to judge by
        out[(tp.topic, tp.partition)] = (read + 1, int(high))
    return out
