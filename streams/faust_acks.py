"""Acknowledgements that never let a commit pass a message that will be read again, installed
once by the app.

Faust 0.15.3's stream skips a message fetched before the latest rebalance (its generation is not
the consumer's) or handed out while a rebalance has suspended the flow, and acknowledges it as if
it had been processed: "we want to ack the filtered out message, otherwise the lag would
increase". The partition is then read again from its committed offset, but meanwhile the skipped
offset counts as done: the next commit can pass it, and a crash before the message is read again
loses it (a page that was never delivered, after a SIGKILL shortly after a restart). Here such a
message is let go (no longer awaited by the rebalance) without its offset being recorded, so it
is committed only once it has been processed in the current generation; a message whose
processing ends during a rebalance is processed again by the partition's next owner (at least
once, as every handler expects).

Every such "read again" is a seek to the committed offsets, and Faust's seek to the committed
offsets (aiokafka's ``seek_to_committed``) leaves alone a partition that has no committed offset
yet (or 0): records of it that the consumer had fetched and Faust then dropped (during a
rebalance, or while the flow was stopped at start) were never read again, so the first inputs
of a partition that nothing had committed before could wait until the next rebalance (seen: a
resolve command and a detection sent while the only worker was down, on partitions that had
never had a message, not processed after its restart). Here that seek also takes every input
partition without a committed offset back to its beginning, as ``auto_offset_reset=earliest``
would for a fresh consumer.

Two more ways a commit passed a message never processed, both about records fetched before a
seek and handed out after it (a rebalance seeks every input partition to its committed offset,
and so does the stream watchdog):

* Faust's fetch loop counts the offsets between the last one it read and a record further on
  as a gap (offsets a compacted topic no longer holds) and commits them as done. A record of a
  batch fetched before a seek, handed out after it, is such a "further on" record: the offsets
  between the committed one and it, not processed yet, were committed as done (seen: a
  detection of a worker leaving the group committed by it and never handled by anyone). No
  input of an agent here is compacted, so such a gap is logged and not counted (offsets truly
  missing are found by the guard below).
* The rest of such a batch also moved Faust's read offset past the records the seek was to
  read again, which its fetch loop then dropped as already read. Here each input partition's
  records are handed on in order from the offset of the latest seek of the committed offsets:
  a record before the next offset was read already and is let go; a record after it comes from
  a fetch made before the seek, and the partition is sought back to the next offset (once: a
  record after the next offset again means that offset no longer exists, and it is taken).

Three more in how that following was kept:

* A seek of the committed offsets moved the consumer's position (in its own thread) before the
  new next offsets were recorded; a fetch from the new position that reached the guard first
  was let go as read already, and with no later record on the partition, nothing read it
  again. Here the committed offsets are read first, the next offsets recorded, and only then
  is the consumer sought; a partition revoked meanwhile is left alone (aiokafka's seek of it
  raised ``IllegalStateError`` out of the seek of them all, and out of the watchdog's task).
* Faust's fetch loop writes the read offset of a record after handing it to its stream; a
  seek that ended meanwhile (the stream watchdog's) had its read offset overwritten, and the
  loop dropped the records read again as read already while the guard counted them as
  handed on. Here the guard sets the read offset of each record it hands on, so Faust's own
  check never drops one.
* Offsets found missing are kept as runs (several can be found before a commit: a producer
  writing in transactions leaves a marker, never fetched, after each one), and the commit
  moves through every run, not only the latest found.

An abandoned input is remembered as the message itself, not its offset: a message abandoned by
one of two agents reading its topic and never acknowledged by the other would otherwise let
go the next reading of that offset too.

And one in the commit itself: Faust commits the first run of consecutive processed offsets
even when it starts one past the committed offset (it takes the committed offset for the last
one processed; Kafka's is the next one to read). A record dropped on its way to the stream
right after a seek (the flow stops for a rebalance while it is handed over) was committed past
when the next ones were processed (seen: the first detection after a handover, never handled).
Here a commit moves only from the committed offset (or, for a partition nothing has committed,
from where it was sought to): the dropped record holds it back until a seek reads it again.
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from typing import Any, cast

from faust.transport.consumer import Consumer
from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread
from faust.types.tuples import ack_lock
from mode.utils.futures import notify

#: Inputs whose handling was cancelled (a stop, a revocation) before it ended: the messages
#: themselves, not their offsets (a later reading of the same offset is another message).
_ABANDONED: weakref.WeakSet[Any] = weakref.WeakSet()
#: The next offset of each input partition to hand on, from the latest seek of the
#: committed offsets on (changelogs, positioned by table recovery, are not followed).
_NEXT: dict[tuple[str, int], int] = {}
#: Partitions sought back to their next offset, with that offset.
_SOUGHT_BACK: dict[tuple[str, int], int] = {}
#: The offset each input partition was last sought to (its committed one, or its first).
_FROM: dict[tuple[str, int], int] = {}
#: Runs of offsets found missing on the broker (retention passed them, a transaction marker
#: holds one), for each input partition: from the first missing one to the next one there.
_GONE: dict[tuple[str, int], dict[int, int]] = {}


def abandon(message: Any) -> None:
    """Say that ``message``'s handling was cancelled before it ended: Faust's stream still
    acknowledges the message it had in hand when its agent is cancelled, and a stop then
    commits past an input whose events were never sent; this one is let go uncounted instead,
    and read again by the partition's next owner."""
    _ABANDONED.add(message)


def _ack(self: Any, message: Any) -> bool:
    app = self.app
    abandoned = message in _ABANDONED
    _ABANDONED.discard(message)
    if (
        not abandoned
        and message.generation_id == app.consumer_generation_id
        and app.flow_control.is_active()
    ):
        return bool(_ORIGINAL_ACK(self, message))
    log.info(
        "message %s[%d]@%d let go uncounted (generation %s, now %s; flow %s; abandoned %s)",
        message.topic, message.partition, message.offset, message.generation_id,
        app.consumer_generation_id, app.flow_control.is_active(), abandoned,
    )  # fmt: skip
    with ack_lock:
        if not message.acked:
            message.acked = True
            self._unacked_messages.discard(message)
            notify(self._waiting_for_ack)
    return False


async def _seek_to_committed(self: Any) -> Mapping[Any, int]:
    consumer = self._ensure_consumer()
    changelogs = self.app.tables.changelog_topics  # positioned by table recovery
    committed: Mapping[Any, int | None] = await self.call_thread(_committed, consumer)
    uncommitted = [tp for tp, offset in committed.items()
                   if not offset and tp.topic not in changelogs]  # fmt: skip
    first: Mapping[Any, int] = {}
    if uncommitted:
        # To the first offset the broker keeps, by an explicit seek: a reset request
        # (``seek_to_beginning``) leaves the position unset until it is answered, and Faust's
        # livelock check, reading positions from the main thread, then fails the consumer.
        first = await self.call_thread(consumer.beginning_offsets, uncommitted)
    targets = {tp: offset for tp, offset in committed.items() if offset}
    for tp, offset in committed.items():
        if tp.topic not in changelogs:
            key = (tp.topic, tp.partition)
            targets[tp] = _NEXT[key] = _FROM[key] = first.get(tp, offset or 0)
            _SOUGHT_BACK.pop(key, None)
    # Followed from the new offsets before the consumer is at them: a fetch from there can
    # reach the guard before this seek has answered.
    await self.call_thread(_seek, consumer, targets)
    return cast(Mapping[Any, int], committed)


async def _committed(consumer: Any) -> Mapping[Any, int | None]:
    """The committed offset of each partition assigned to ``consumer`` (None: never committed)."""
    return {tp: await consumer.committed(tp) for tp in consumer.assignment()}


async def _seek(consumer: Any, offsets: Mapping[Any, int]) -> None:
    """Seek the partitions of ``offsets`` still assigned (in the consumer's thread)."""
    assigned = consumer.assignment()
    for tp, offset in offsets.items():
        if tp in assigned:
            consumer.seek(tp, offset)


async def _getmany(self: Any, timeout: float) -> AsyncIterator[tuple[Any, Any]]:  # noqa: ASYNC109
    """Faust's batch of fetched records, each input partition's in order from its next
    offset (see the module's documentation)."""
    batch = cast(AsyncGenerator[tuple[Any, Any], None], _ORIGINAL_GETMANY(self, timeout))
    sought: set[tuple[str, int]] = set()
    try:
        async for tp, message in batch:
            key = (tp.topic, tp.partition)
            expected = _NEXT.get(key)
            offset = message.offset
            if expected is not None and offset != expected:
                if key in sought or offset < expected:
                    continue  # read already, or the rest of a fetch being read again
                if _SOUGHT_BACK.get(key) != expected:
                    log.info("%s[%d]@%d fetched before a seek (next is %d): reading from %d "
                             "again", tp.topic, tp.partition, offset, expected,
                             expected)  # fmt: skip
                    sought.add(key)
                    _SOUGHT_BACK[key] = expected
                    try:
                        await self.seek(tp, expected)
                    except Exception as exc:  # revoked meanwhile: its next owner seeks it
                        log.info("%s[%d] not sought back: %r", tp.topic, tp.partition, exc)
                    continue
                log.warning("%s[%d]: offsets %d..%d are not on the broker; going on from %d",
                            tp.topic, tp.partition, expected, offset - 1, offset)  # fmt: skip
                _GONE.setdefault(key, {})[expected] = offset
            if expected is not None:
                _NEXT[key] = offset + 1
                _SOUGHT_BACK.pop(key, None)
                self._read_offset[tp] = offset  # handed on: Faust's own check must not drop it
            yield tp, message
    finally:
        await batch.aclose()


def _new_offset(self: Any, tp: Any) -> int | None:
    """The offset to commit for ``tp``: the end of the run of processed or missing offsets
    that starts at the committed offset (or where the partition was sought to); None while
    that offset itself is not processed."""
    acked = self._acked[tp]
    if not acked:
        return None
    acked.sort()
    key = (tp.topic, tp.partition)
    committed = self._committed_offset[tp]
    start = committed if committed is not None else _FROM.get(key, acked[0])
    gone = _GONE.get(key, {})
    end, taken = start, 0
    while True:
        if taken < len(acked) and acked[taken] <= end:
            end, taken = max(end, acked[taken] + 1), taken + 1
        elif end in gone:
            end = gone[end]  # offsets no longer on the broker
        else:
            break
    self._acked_index[tp].difference_update(acked[:taken])
    acked[:taken] = []
    for offset in [offset for offset in gone if offset < end]:
        del gone[offset]
    return end if end > start else None


async def _add_gap(self: Any, tp: Any, offset_from: int, offset_to: int) -> None:
    log.info("offsets %d..%d of %s[%d] skipped by a fetch: not counted as processed",
             offset_from, offset_to, tp.topic, tp.partition)  # fmt: skip


log = logging.getLogger(__name__)

_ORIGINAL_ACK = Consumer.ack
_ORIGINAL_GETMANY = Consumer.getmany


def install() -> None:
    """Replace Faust's consumer ``ack``, gaps, batches and its seek to the committed offsets
    (idempotent)."""
    Consumer.ack = _ack  # type: ignore[method-assign]
    Consumer.getmany = _getmany  # type: ignore[method-assign]
    Consumer._add_gap = _add_gap  # type: ignore[method-assign]
    Consumer._new_offset = _new_offset  # type: ignore[method-assign]
    AIOKafkaConsumerThread.seek_to_committed = _seek_to_committed  # type: ignore[method-assign]
