"""``streams.faust_acks`` under interleavings its first tests did not try: runs of offsets the
broker does not have, a seek of the committed offsets overlapping a fetch, Faust's fetch loop
writing its read offset after a seek, and an input abandoned by one of two agents reading it."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any

import pytest
from aiokafka.errors import IllegalStateError
from faust.transport.consumer import Consumer
from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread
from faust.types import TP as FaustTP

from streams import faust_acks
from tests.unit.test_faust_fetches import consumer_with

TP = FaustTP("incidents.events.v1", 0)
KEY = (TP.topic, TP.partition)


@pytest.fixture(autouse=True)
def fresh_state(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test starts with nothing followed, sought back, gone or abandoned."""
    for name in ("_NEXT", "_SOUGHT_BACK", "_FROM", "_GONE"):
        monkeypatch.setattr(faust_acks, name, {})
    monkeypatch.setattr(faust_acks, "_ABANDONED", type(faust_acks._ABANDONED)())
    faust_acks.install()


class _Log:
    """One partition of a topic on the broker and a consumer's fetch position in it:
    ``offsets`` are the offsets it holds (a transaction marker or a deleted record leaves a
    hole), ``position`` the next offset a fetch starts from."""

    def __init__(self, offsets: list[int]) -> None:
        self.offsets = offsets
        self.position = 0

    async def fetch(self, consumer: Any, timeout: float) -> AsyncIterator[tuple[Any, Any]]:
        """Faust's ``getmany`` over this log: the records from the position on."""
        records = [o for o in self.offsets if o >= self.position]
        if records:
            self.position = records[-1] + 1
        for offset in records:
            yield TP, SimpleNamespace(offset=offset, topic=TP.topic, partition=TP.partition,
                                      key=None, value=None)  # fmt: skip


class _FaustConsumer:
    """What the fetch guard uses of Faust's consumer: ``seek`` moves the log's position and
    Faust's read offset, as ``Consumer.seek`` does."""

    def __init__(self, log: _Log) -> None:
        self.log = log
        self.sought: list[int] = []
        self._read_offset: dict[Any, int | None] = {}

    async def seek(self, tp: Any, offset: int) -> None:
        self.sought.append(offset)
        self.log.position = offset
        self._read_offset[tp] = offset or None


async def _hand_on(monkeypatch: pytest.MonkeyPatch, consumer: _FaustConsumer) -> list[int]:
    """The offsets the guard hands on from one fetch."""
    monkeypatch.setattr(faust_acks, "_ORIGINAL_GETMANY", consumer.log.fetch)
    return [m.offset async for _, m in faust_acks._getmany(consumer, 1.0)]


def _acked(offsets: list[int], committed: int | None) -> Any:
    return consumer_with(offsets, committed, TP)


async def test_two_holes_found_before_a_commit_do_not_hold_the_commit_back_for_good(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A producer that writes in transactions leaves a marker after each one, an offset no
    # consumer is given: committed 10, the broker has 11 and 13 (markers at 10 and 12). Both
    # holes are found (one seek back each) before the commit timer runs; the commit must then
    # move to 14. Only the last hole was remembered: the commit waited for offset 10 for good,
    # and every seek of the watchdog found the same two holes again.
    log = _Log([11, 13])
    log.position = 10
    faust_acks._NEXT[KEY] = faust_acks._FROM[KEY] = 10
    consumer = _FaustConsumer(log)
    handed: list[int] = []
    for _ in range(4):
        handed += await _hand_on(monkeypatch, consumer)
    assert handed == [11, 13]
    assert Consumer._new_offset(_acked(handed, 10), TP) == 14


async def test_holes_already_committed_past_are_forgotten(monkeypatch: pytest.MonkeyPatch) -> None:
    log = _Log([11, 13])
    log.position = 10
    faust_acks._NEXT[KEY] = faust_acks._FROM[KEY] = 10
    consumer = _FaustConsumer(log)
    for _ in range(4):
        await _hand_on(monkeypatch, consumer)
    assert Consumer._new_offset(_acked([11, 13], 10), TP) == 14
    assert not faust_acks._GONE.get(KEY)


class _Kafka:
    """aiokafka's consumer over ``log``, in its own thread: a seek moves the position at once,
    and the seek's caller hears of it only later (the answer crosses back to the main thread,
    and aiokafka asks the broker for the next partitions' committed offsets first): ``moved``
    is set when the position moved, ``release`` lets the answer through."""

    def __init__(self, log: _Log, committed: int) -> None:
        self.log, self.committed_offset = log, committed
        self.moved, self.release = asyncio.Event(), asyncio.Event()

    def assignment(self) -> set[Any]:
        return {TP}

    async def committed(self, tp: Any) -> int:
        return self.committed_offset

    def seek(self, tp: Any, offset: int) -> None:
        self.log.position = offset
        self.moved.set()

    async def seek_to_committed(self) -> dict[Any, int]:
        self.seek(TP, self.committed_offset)
        return {TP: self.committed_offset}

    async def beginning_offsets(self, tps: list[Any]) -> dict[Any, int]:
        return dict.fromkeys(tps, 0)


class _Thread:
    """Faust's consumer thread: ``call_thread`` runs a call on the aiokafka consumer, and an
    answer given after the position moved waits for ``release``."""

    def __init__(self, kafka: _Kafka) -> None:
        self.kafka = kafka
        self.app = SimpleNamespace(tables=SimpleNamespace(changelog_topics=set()))

    def _ensure_consumer(self) -> _Kafka:
        return self.kafka

    async def call_thread(self, fn: Any, *args: Any) -> Any:
        result = fn(*args)
        if asyncio.iscoroutine(result):
            result = await result
        if self.kafka.moved.is_set():
            await self.kafka.release.wait()
        return result


async def test_records_fetched_while_the_seek_of_the_committed_offsets_answers_are_not_lost(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Read through 22, committed 10 (10 was dropped on its way to the stream); the watchdog
    # seeks to the committed offsets. aiokafka moves the position to 10 at once, and a fetch
    # from there (10..22) reaches the guard before the seek has answered: with the next offset
    # still 23, 10..22 were let go as read already, the position was then 23, and nothing
    # ever read 10 again (no later record to show the fetch was from before the seek).
    log = _Log(list(range(23)))
    log.position = 23
    kafka = _Kafka(log, committed=10)
    faust_acks._NEXT[KEY] = faust_acks._FROM[KEY] = 23
    consumer = _FaustConsumer(log)
    seek = asyncio.ensure_future(_seek_to_committed(_Thread(kafka)))
    await asyncio.wait_for(kafka.moved.wait(), 5)
    handed = await _hand_on(monkeypatch, consumer)
    kafka.release.set()
    await asyncio.wait_for(seek, 5)
    for _ in range(3):
        handed += await _hand_on(monkeypatch, consumer)
    assert 10 in handed
    assert sorted(set(handed)) == list(range(10, 23))
    assert len(handed) == len(set(handed))  # and none twice without a seek between


async def _seek_to_committed(thread: Any) -> Any:
    """The installed seek of Faust's consumer thread, run over ``thread``."""
    return await AIOKafkaConsumerThread.seek_to_committed(thread)


class _Drain:
    """What Faust's fetch loop (``Consumer._drain_messages``) uses of its consumer, with the
    guard as its ``getmany``; it runs ``fetches`` fetches, then stops."""

    consumer_stopped_errors = ()

    def __init__(self, log: _Log, fetches: int, callback: Any) -> None:
        self.log_ = log
        self.fetches = fetches
        self.callback = callback
        self._read_offset: defaultdict[Any, int | None] = defaultdict(lambda: None)
        self._commit_every = None
        self._n_acked = 0
        self.app = SimpleNamespace(topics=SimpleNamespace(acks_enabled_for=lambda t: True))
        self.diag = SimpleNamespace(set_flag=lambda f: None, unset_flag=lambda f: None)
        self._stopped = SimpleNamespace(is_set=lambda: self.fetches <= 0)
        self.suspend_flow = asyncio.Event()
        self.should_stop = False
        self.transport = SimpleNamespace(app=SimpleNamespace(should_stop=False))
        self.sought: list[int] = []
        self.log = SimpleNamespace(dev=lambda *a: None, info=lambda *a: None,
                                   exception=lambda *a: None)  # fmt: skip

    def getmany(self, timeout: float) -> AsyncIterator[tuple[Any, Any]]:
        self.fetches -= 1
        return faust_acks._getmany(self, timeout)

    async def seek(self, tp: Any, offset: int) -> None:
        self.sought.append(offset)
        self.log_.position = offset
        self._read_offset[tp] = offset or None

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(0)

    async def wait_first(self, *coros: Any) -> None:
        coros[1].close()  # the flow is not suspended here
        await coros[0]

    async def _add_gap(self, tp: Any, offset_from: int, offset_to: int) -> None:
        await faust_acks._add_gap(self, tp, offset_from, offset_to)


async def test_a_seek_that_ends_while_a_record_is_handed_to_its_stream_is_not_undone(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Committed 10 (10 dropped on its way to its stream), read through 20; 21 is fetched.
    # While Faust's fetch loop hands 21 to its stream (a full buffer, a producer to ebb), the
    # watchdog's seek to the committed offsets ends: next offset 10, read offset 10. The loop
    # then wrote its read offset, 21, over the seek's, and dropped 10..20 of the next fetch as
    # read already while the guard took them as handed on: 10 was never read again.
    log = _Log(list(range(22)))
    log.position = 21
    faust_acks._NEXT[KEY] = faust_acks._FROM[KEY] = 21
    processed: list[int] = []
    drain: _Drain

    async def callback(message: Any) -> None:
        processed.append(message.offset)
        if message.offset == 21 and processed.count(21) == 1:  # the seek ends meanwhile
            await asyncio.sleep(0)
            log.position = 10
            faust_acks._NEXT[KEY] = faust_acks._FROM[KEY] = 10
            drain._read_offset[TP] = 10

    drain = _Drain(log, fetches=3, callback=callback)
    drain._read_offset[TP] = 20
    monkeypatch.setattr(faust_acks, "_ORIGINAL_GETMANY", log.fetch)
    await asyncio.wait_for(Consumer._drain_messages(drain, drain), 5)  # type: ignore[arg-type]
    assert processed == [21, *range(10, 22)]


class _Message:
    def __init__(self, offset: int) -> None:
        self.topic, self.partition, self.offset, self.tp = TP.topic, TP.partition, offset, TP
        self.generation_id, self.acked = 1, False


def _ack_consumer() -> Any:
    app = SimpleNamespace(
        consumer_generation_id=1, flow_control=SimpleNamespace(is_active=lambda: True),
        topics=SimpleNamespace(acks_enabled_for=lambda topic: True),
    )  # fmt: skip
    return SimpleNamespace(
        app=app, _unacked_messages=set(), _waiting_for_ack=None, _n_acked=0,
        _acked=defaultdict(list), _acked_index=defaultdict(set),
        _committed_offset=defaultdict(lambda: None),
    )  # fmt: skip


async def test_an_input_abandoned_by_one_of_two_agents_does_not_hold_back_its_next_reading() -> (
    None
):
    # incidents.events.v1 is read by two agents. One is cancelled with an input in hand
    # (abandoned); the other's buffer is cleared by a rebalance before it takes it, so that
    # message is never finally acknowledged. The partition stays here and is read again from
    # its committed offset: the new reading of that offset, handled to its end by both agents,
    # must count. The abandoned mark was kept by offset, so it was let go again, and the
    # commit waited for the watchdog's next seek (and the mark never went away otherwise).
    consumer = _ack_consumer()
    first = _Message(7)
    faust_acks.abandon(first)  # and its other agent never acknowledges it
    again = _Message(7)  # read again after the seek: a new message for the same offset
    ack: Any = Consumer.ack  # as installed
    assert ack(consumer, again) is True
    assert consumer._acked[TP] == [7]


@pytest.mark.xfail(
    strict=True,
    reason="The stream watchdog measures progress as the committed offset against the high "
    "watermark. Offsets no consumer is ever given (the commit marker a transactional producer "
    "writes last on a partition; every record of a never-committed partition deleted by "
    "retention) count as unread for good: nothing can move the commit, so the watchdog seeks "
    "every partition to its committed offsets every max_wait_s (300 s) for ever, and every "
    "stall_s again once new traffic moves the commit, reading again each uncommitted record "
    "of every partition. Telling these offsets apart needs the consumer's fetch position "
    "(aiokafka's moves past control records) or the guard's word that a seek found nothing "
    "left to read, without hiding records Faust dropped after aiokafka fetched them, which is "
    "what the watchdog is for.",
)
def test_a_partition_ending_in_a_transaction_marker_is_not_sought_again_for_ever() -> None:
    from streams.liveness import Delivered, StreamWatchdog, stalled_streams

    # Records 0..9 written in one transaction, its commit marker at 10: all processed,
    # committed 10, high watermark 11. Offset 10 is never fetched by anyone.
    consumer = SimpleNamespace(
        assignment=lambda: {TP}, highwater={TP: 11}.get, _committed_offset={TP: 10}
    )
    app = SimpleNamespace(
        consumer=consumer, tables=SimpleNamespace(changelog_topics=set()), rebalancing=False,
        flow_control=SimpleNamespace(is_active=lambda: True),
    )  # fmt: skip
    dog, delivered = StreamWatchdog(stall_s=10, max_wait_s=300), Delivered()
    seeks = [now for now in range(2 * 3600) if stalled_streams(app, dog, delivered, now, True)]
    assert len(seeks) <= 1, f"{len(seeks)} seeks of every partition in two idle hours"


class _Revoking:
    """aiokafka's consumer over two partitions, the second revoked (a rebalance) while the
    committed offset of the first is being asked; ``seek_to_committed`` and ``seek`` do what
    aiokafka's do (a seek of a partition not assigned raises ``IllegalStateError``)."""

    def __init__(self) -> None:
        self.assigned = {TP, OTHER}
        self.sought: list[tuple[Any, int]] = []

    def assignment(self) -> set[Any]:
        return set(self.assigned)

    async def committed(self, tp: Any) -> int:
        self.assigned.discard(OTHER)  # the rebalance revokes it meanwhile
        await asyncio.sleep(0)
        return 5

    def seek(self, tp: Any, offset: int) -> None:
        if tp not in self.assigned:
            raise IllegalStateError(f"No current assignment for partition {tp}")
        self.sought.append((tp, offset))

    async def seek_to_committed(self) -> dict[Any, int]:
        committed = {}
        for tp in sorted(self.assignment()):
            committed[tp] = offset = await self.committed(tp)
            self.seek(tp, offset)
        return committed


OTHER = FaustTP("incidents.events.v1", 1)


async def test_a_partition_revoked_during_the_seek_of_the_committed_offsets_does_not_fail_it() -> (
    None
):
    # The stream watchdog's seek (an app task: an exception out of it crashes the worker) or
    # the recovery's, while a rebalance takes a partition away: aiokafka's seek of that
    # partition raised IllegalStateError out of the seek of all of them.
    kafka: Any = _Revoking()
    thread = SimpleNamespace(
        _ensure_consumer=lambda: kafka,
        call_thread=lambda fn, *args: fn(*args),
        app=SimpleNamespace(tables=SimpleNamespace(changelog_topics=set())),
    )
    await _seek_to_committed(thread)
    assert kafka.sought == [(TP, 5)]
    assert faust_acks._NEXT[KEY] == 5
