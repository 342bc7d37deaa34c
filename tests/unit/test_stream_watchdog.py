"""The stream watchdog's view of a worker's input partitions (``streams.liveness``): a
partition whose stream holds a message it has not finished is busy, not stalled, however long
its handler takes, so a slow handler does not make the worker seek every partition back to
its committed offsets (and read again every message already in the streams' buffers)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from aiokafka import TopicPartition

from streams.liveness import Delivered, StreamWatchdog, stalled_streams, stream_positions

INPUT, OTHER, CHANGELOG = "incidents.events.v1", "pages.v1", "w-incidents-changelog"


class _Message:
    def __init__(self, tp: TopicPartition, offset: int) -> None:
        self.tp, self.topic, self.partition, self.offset = tp, tp.topic, tp.partition, offset


def _app(high: dict[TopicPartition, int], committed: dict[TopicPartition, int]) -> Any:
    consumer = SimpleNamespace(
        assignment=lambda: set(high), highwater=high.get,
        _committed_offset=committed, _unacked_messages=set(),
    )  # fmt: skip
    return SimpleNamespace(consumer=consumer, tables=SimpleNamespace(changelog_topics={CHANGELOG}))


STREAM = object()


def _take(app: Any, delivered: Delivered, tp: TopicPartition, offset: int) -> _Message:
    """What a stream does when it takes a message: the sensors see it, it is not yet acked."""
    message = _Message(tp, offset)
    delivered.on_stream_event_in(tp, offset, STREAM, message)
    app.consumer._unacked_messages.add(message)
    return message


def _done(app: Any, delivered: Delivered, message: _Message) -> None:
    delivered.on_stream_event_out(message.tp, message.offset, STREAM, message)
    app.consumer._unacked_messages.discard(message)


def test_a_slow_handler_is_not_a_stalled_partition() -> None:
    busy, other = TopicPartition(INPUT, 0), TopicPartition(OTHER, 0)
    app = _app({busy: 9, other: 4, TopicPartition(CHANGELOG, 0): 7}, {busy: 3, other: 4})
    delivered, dog = Delivered(), StreamWatchdog(stall_s=10, max_wait_s=300)
    in_hand = _take(app, delivered, busy, 3)  # a webhook that takes a minute to answer
    for now in range(0, 60):
        assert dog.check(now, stream_positions(app, delivered)) == [], now
    # Once the handler is done, the partition is judged again, with a whole wait before it.
    _done(app, delivered, in_hand)
    assert dog.check(60, stream_positions(app, delivered)) == []
    assert dog.check(70, stream_positions(app, delivered)) == []
    assert dog.check(71, stream_positions(app, delivered)) == [(INPUT, 0)]


def test_a_partition_with_nothing_in_hand_and_unread_messages_is_stalled() -> None:
    tp = TopicPartition(INPUT, 1)
    app = _app({tp: 9}, {tp: 5})
    delivered, dog = Delivered(), StreamWatchdog(stall_s=10, max_wait_s=300)
    positions = stream_positions(app, delivered)
    assert positions == {(INPUT, 1): (5, 9)}
    assert dog.check(0, positions) == []
    assert dog.check(11, stream_positions(app, delivered)) == [(INPUT, 1)]


def test_a_message_in_hand_on_one_partition_leaves_the_others_judged() -> None:
    busy, idle = TopicPartition(INPUT, 0), TopicPartition(INPUT, 1)
    app = _app({busy: 9, idle: 6}, {busy: 3, idle: 2})
    delivered = Delivered()
    _take(app, delivered, busy, 3)
    assert stream_positions(app, delivered) == {(INPUT, 1): (2, 6)}


def test_a_rebalance_longer_than_the_wait_does_not_make_the_worker_seek_as_it_ends() -> None:
    tp = TopicPartition(INPUT, 0)
    app = _app({tp: 9}, {tp: 5})
    app.rebalancing, active = False, [True]
    app.flow_control = SimpleNamespace(is_active=lambda: active[0])
    delivered, dog = Delivered(), StreamWatchdog(stall_s=10, max_wait_s=300)
    assert stalled_streams(app, dog, delivered, 0, ready=True) == []
    # A rebalance: the flow stops, the tables are restored for 15 s, the streams wait.
    app.rebalancing, active[0] = True, False
    for now in range(1, 16):
        assert stalled_streams(app, dog, delivered, now, ready=True) == []
    app.rebalancing, active[0] = False, True
    # The streams get their whole wait to move again before the partition counts as stalled.
    assert stalled_streams(app, dog, delivered, 16, ready=True) == []
    assert stalled_streams(app, dog, delivered, 26, ready=True) == []
    assert stalled_streams(app, dog, delivered, 27, ready=True) == [(INPUT, 0)]


def test_a_message_the_consumer_never_saw_acknowledged_does_not_hide_a_stall() -> None:
    # Faust can leave a message unacknowledged for good (seen on incidents.events.v1) with no
    # stream processing it: the partition is judged as any other.
    tp = TopicPartition(INPUT, 0)
    app = _app({tp: 9}, {tp: 3})
    delivered, dog = Delivered(), StreamWatchdog(stall_s=10, max_wait_s=300)
    _done(app, delivered, _take(app, delivered, tp, 3))
    app.consumer._unacked_messages.add(_Message(tp, 3))
    assert dog.check(0, stream_positions(app, delivered)) == []
    assert dog.check(11, stream_positions(app, delivered)) == [(INPUT, 0)]


def test_a_commit_held_behind_a_message_never_processed_is_a_stall() -> None:
    # A record dropped by the fetch loop (read offset moved past it) holds the commit back
    # while the stream goes on with the records after it: the stream moves, the partition does
    # not. Progress is what is committed, not what was handed to the stream.
    tp = TopicPartition(INPUT, 0)
    app = _app({tp: 9}, {tp: 5})
    delivered, dog = Delivered(), StreamWatchdog(stall_s=10, max_wait_s=300)
    for offset in (6, 7, 8):  # 5 never comes
        _done(app, delivered, _take(app, delivered, tp, offset))
    assert stream_positions(app, delivered) == {(INPUT, 0): (5, 9)}
    assert dog.check(0, stream_positions(app, delivered)) == []
    assert dog.check(11, stream_positions(app, delivered)) == [(INPUT, 0)]
