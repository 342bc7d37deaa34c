"""``detect``'s progress on each assigned ``metrics.points.v1`` partition: the next offset
processed and the one committed, which never runs ahead of the partition's checkpoint."""

from __future__ import annotations

import logging
from collections.abc import Iterable

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

log = logging.getLogger(__name__)


class Offsets:
    """Next offsets of the points partitions: read (processed) and committed."""

    def __init__(self, consumer: AIOKafkaConsumer, topic: str) -> None:
        self.consumer = consumer
        self.topic = topic
        self.read: dict[int, int] = {}  # partition -> next offset, once processed
        self.committed: dict[int, int] = {}

    def processed(self, partition: int, next_offset: int) -> None:
        self.read[partition] = next_offset

    def unsaved(self) -> list[int]:
        """The partitions processed past their committed offset."""
        return [part for part, offset in self.read.items() if offset != self.committed.get(part)]

    def all_committed(self, partitions: Iterable[int]) -> bool:
        return all(self.read.get(part) in (None, self.committed.get(part)) for part in partitions)

    def forget(self, partitions: Iterable[int]) -> None:
        for part in partitions:
            self.read.pop(part, None)
            self.committed.pop(part, None)

    async def commit(self, partitions: Iterable[int]) -> None:
        """Commit what ``partitions`` have processed (their checkpoint is written)."""
        offsets = {}
        for part in partitions:
            read = self.read.get(part)
            if read is not None and read != self.committed.get(part):
                offsets[TopicPartition(self.topic, part)] = read
        if not offsets:
            return
        try:
            await self.consumer.commit(offsets)
        except KafkaError as exc:
            # The group moved on: the partitions' next owner replays from the last commit,
            # and the checkpoint keeps those replayed points from training twice.
            log.warning("detect: commit failed (%s); the next owner replays from the last", exc)
            return
        for tp, offset in offsets.items():
            self.committed[tp.partition] = offset

    async def seek_committed(self, partition: int) -> None:
        """Read the partition again from its last committed offset."""
        tp = TopicPartition(self.topic, partition)
        committed = self.committed.get(partition)
        if committed is None:
            committed = await self.consumer.committed(tp)
        if committed is None:
            await self.consumer.seek_to_beginning(tp)
        else:
            self.consumer.seek(tp, committed)
        self.read.pop(partition, None)

    def lag(self, partitions: Iterable[int]) -> dict[tuple[str, int], tuple[int | None, int]]:
        """(next offset to read, high watermark) of each of ``partitions``."""
        out: dict[tuple[str, int], tuple[int | None, int]] = {}
        for part in partitions:
            high = self.consumer.highwater(TopicPartition(self.topic, part))
            read = self.read.get(part, self.committed.get(part))
            if high is not None and read is not None:
                out[(self.topic, part)] = (read, int(high))
        return out
