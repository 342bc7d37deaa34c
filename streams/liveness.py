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

import faust

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


class Delivered(faust.Sensor):
    """The events streams are processing now (taken, not yet done)."""

    def __init__(self) -> None:
        super().__init__()
        self.in_hand: dict[tuple[int, Partition], int] = {}

    def on_stream_event_in(self, tp: Any, offset: int, stream: Any, event: Any) -> None:
        self.in_hand[(id(stream), (tp.topic, tp.partition))] = offset

    def on_stream_event_out(
        self, tp: Any, offset: int, stream: Any, event: Any, state: Any = None
    ) -> None:
        self.in_hand.pop((id(stream), (tp.topic, tp.partition)), None)

    def busy(self) -> set[Partition]:
        """The partitions of which a stream is processing an event now."""
        return {tp for _, tp in list(self.in_hand)}


def stream_positions(app: Any, delivered: Delivered) -> dict[Partition, tuple[int, int]]:
    """(committed offset, high watermark) for each input partition of a Faust app (its table
    changelogs left out). Progress is what is committed: a record dropped on the way to the
    stream holds the commit back while the stream goes on with the records after it, and only
    a seek to the committed offset reads it again. A partition whose stream holds a message it
    has not finished (a handler waiting on a slow webhook) is left out: it is busy, not
    stalled, and a seek would only have every stream read again what it already holds."""
    consumer = app.consumer
    changelogs = app.tables.changelog_topics
    in_hand = delivered.busy()
    out: dict[Partition, tuple[int, int]] = {}
    for tp in consumer.assignment():
        high = consumer.highwater(tp)
        key = (tp.topic, tp.partition)
        if high is None or tp.topic in changelogs or key in in_hand:
            continue
        out[key] = (consumer._committed_offset.get(tp) or 0, int(high))
    return out


@dataclass
class StreamWatchdog:
    """Notices an input partition that has unread messages and has not moved for
    ``stall_s``, so the worker can seek its partitions to the committed offsets again.

    Faust 0.15.3 can drop records its consumer has already fetched (around a start or a
    rebalance) and then never fetch them again: the partition's lag stays and nothing reads
    it. A seek to the committed offsets reads them again (handlers are idempotent). A seek that
    did not help doubles the wait before the next, up to ``max_wait_s``; a partition read to
    its end starts again from ``stall_s``. ``check`` is called about once a second.

    >>> dog = StreamWatchdog(stall_s=10, max_wait_s=40)
    >>> dog.check(0, {("in", 0): (5, 9)}), dog.check(11, {("in", 0): (5, 9)})
    ([], [('in', 0)])
    >>> dog.check(25, {("in", 0): (5, 9)}), dog.check(32, {("in", 0): (5, 9)})
    ([], [('in', 0)])
    >>> dog.check(33, {("in", 0): (9, 9)}), dog.check(34, {("in", 0): (9, 12)})
    ([], [])
    >>> dog.check(44, {("in", 0): (9, 12)})
    [('in', 0)]
    """

    stall_s: float
    max_wait_s: float
    _last: dict[Partition, tuple[int, float, float]] = field(default_factory=dict)

    def forget(self) -> None:
        """Start every partition's wait over (the streams were held: a rebalance)."""
        self._last.clear()

    def check(self, now: float, positions: Mapping[Partition, tuple[int, int]]) -> list[Partition]:
        """The partitions stalled now (their wait starts over)."""
        stalled = []
        for tp in [tp for tp in self._last if tp not in positions]:
            del self._last[tp]
        for tp, (position, high) in sorted(positions.items()):
            seen = self._last.get(tp)
            if seen is None or seen[0] != position or high <= position:
                self._last[tp] = (position, now, self.stall_s)
                continue
            if now - seen[1] > seen[2]:
                stalled.append(tp)
                self._last[tp] = (position, now, min(seen[2] * 2, self.max_wait_s))
        return stalled


def stalled_streams(
    app: Any, dog: StreamWatchdog, delivered: Delivered, now: float, ready: bool
) -> list[Partition]:
    """One look of the stream watchdog at a Faust app: the input partitions to seek again.
    None while the worker is not ready, rebalances or has its flow stopped, and the waits
    start over after that: the streams could not move meanwhile."""
    if not ready or app.rebalancing or not app.flow_control.is_active():
        dog.forget()
        return []
    return dog.check(now, stream_positions(app, delivered))
