"""Faust's seek to the committed offsets, as installed by the app (``streams.faust_acks``):
a partition nothing has committed yet goes back to its beginning, so records Faust fetched and
then dropped are read again, as they are on a partition with a committed offset."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from streams import faust_acks
from tests.harness import produce

pytestmark = pytest.mark.broker


class _Thread:
    """What the seek needs of Faust's consumer thread: the client, a way to call it, the app."""

    def __init__(self, consumer: AIOKafkaConsumer, changelogs: set[str]) -> None:
        self._consumer = consumer
        self.app = type("App", (), {"tables": type("Tables", (), {"changelog_topics": changelogs})})

    def _ensure_consumer(self) -> AIOKafkaConsumer:
        return self._consumer

    async def call_thread(self, method: Callable[..., Any], *args: Any) -> Any:
        return await method(*args)


async def _offsets_read(consumer: AIOKafkaConsumer, tp: TopicPartition) -> list[int]:
    batch = await consumer.getmany(tp, timeout_ms=5000)
    return [r.offset for r in batch.get(tp, [])]


async def test_a_partition_never_committed_is_read_again_from_its_beginning(
    kafka_bootstrap: str,
) -> None:
    inputs, changelog = f"t-seek-{uuid.uuid4().hex[:8]}", f"t-seek-{uuid.uuid4().hex[:8]}-changelog"
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(t, 1, 1) for t in (inputs, changelog)])
    finally:
        await admin.close()
    for topic in (inputs, changelog):
        await produce(kafka_bootstrap, topic, [(b"k", b"1"), (b"k", b"2"), (b"k", b"3")])
    consumer = AIOKafkaConsumer(
        bootstrap_servers=kafka_bootstrap, group_id=f"g-{uuid.uuid4().hex[:8]}",
        enable_auto_commit=False, auto_offset_reset="earliest",
    )  # fmt: skip
    await consumer.start()
    try:
        tp, log_tp = TopicPartition(inputs, 0), TopicPartition(changelog, 0)
        consumer.assign([tp, log_tp])
        assert await _offsets_read(consumer, tp) == [0, 1, 2]
        assert await _offsets_read(consumer, log_tp) == [0, 1, 2]
        thread = _Thread(consumer, {changelog})

        # aiokafka's own seek leaves both where they are: nothing was committed.
        committed = await consumer.seek_to_committed()
        assert committed == {tp: None, log_tp: None}
        assert await consumer.position(tp) == 3

        # The installed one takes the input partition back; table recovery owns the changelog.
        assert await faust_acks._seek_to_committed(thread) == committed
        assert await _offsets_read(consumer, tp) == [0, 1, 2]
        assert await consumer.position(log_tp) == 3

        # Once an offset is committed, it is where the seek goes, as before.
        await consumer.commit({tp: 2})
        await faust_acks._seek_to_committed(thread)
        assert await _offsets_read(consumer, tp) == [2]
    finally:
        await consumer.stop()
