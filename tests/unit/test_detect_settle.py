"""``streams.detect.service``: while a checkpoint written behind the scoring waits for the
broker, no partition of the batch being scored sends newer blocks of its own or reads its
blocks back (over the fake broker of ``test_detect_behind``, no Kafka).

A partition taken one record at a time checkpoints after each record, and a partition that
fails goes back to its checkpoint: both wait for the checkpoint in flight. Newer blocks sent
while older ones are still being sent can land first and be overwritten on the compacted topic
by the older ones (the offsets committed after them then run ahead of what the topic holds),
and a bank read back while its blocks are written is half old, half new."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from aiokafka import TopicPartition

from detectors.routing import RoutedBanks
from tests.unit.test_detect_behind import Poisoned as PoisonedPartitions
from tests.unit.test_detect_behind import Scorer, batch, detect, scored, settle


async def test_a_partition_going_back_waits_for_the_checkpoint_in_flight() -> None:
    d, broker, consumer, _ = await detect(partitions=(0, 1))
    d.scorer = scorer = PoisonedPartitions()  # type: ignore[assignment]
    await scored(d, batch(0, 0, 1) | batch(1, 0, 1))
    in_flight = len(broker.sent)
    assert in_flight and broker.held
    d.failures.begin(0, 2)  # partition 0: one record at a time, each checkpointed
    scorer.poisoned = {1}  # partition 1: goes back to its checkpoint
    handling = asyncio.ensure_future(d._batch(batch(0, 2) | batch(1, 2)))
    await settle()
    assert len(broker.sent) == in_flight, "newer blocks sent while older ones are in flight"
    restored: list[int] = d.restored  # type: ignore[attr-defined]
    assert restored == [], "a bank read back while its checkpoint is being written"
    broker.ack()  # the checkpoint in flight: its offsets are committed
    await settle()
    broker.ack()  # partition 0's own, after its record
    await handling
    assert consumer.commits[:2] == [{0: 2, 1: 2}, {0: 3}]
    assert restored == [1]


async def test_two_partitions_taken_one_at_a_time_wait_for_the_checkpoint_in_flight() -> None:
    d, broker, consumer, _ = await detect(partitions=(0, 1))
    await scored(d, batch(0, 0) | batch(1, 0))
    in_flight = len(broker.sent)
    d.failures.begin(0, 1)
    d.failures.begin(1, 1)
    handling = asyncio.ensure_future(d._batch(batch(0, 1) | batch(1, 1)))
    await settle()
    assert len(broker.sent) == in_flight, "newer blocks sent while older ones are in flight"
    assert consumer.commits == []
    while not handling.done():
        broker.ack()
        await settle()
    await handling
    assert consumer.commits[0] == {0: 1, 1: 1}
    assert sorted(c for commit in consumer.commits[1:] for c in commit.items()) == [(0, 2), (1, 2)]


@dataclass
class Poisoned(Scorer):
    """Fails any batch that holds the ``poison`` record (partition, offset)."""

    poison: tuple[int, int] = (1, 1)

    async def score(self, partition: int, bank: RoutedBanks, records: list[Any]) -> bool:
        if any((partition, r.offset) == self.poison for r in records):
            raise ValueError("a bank bug this record sets off")
        return await super().score(partition, bank, records)


@dataclass
class Letters:
    sent: list[tuple[int, int, str]] = field(default_factory=list)

    async def send(self, record: Any, stage: str, reason: str) -> None:
        self.sent.append((record.partition, record.offset, reason))


async def test_a_poison_record_beside_a_partition_scored_side_by_side_leaves_it_alone() -> None:
    d, broker, consumer, _ = await detect(partitions=(0, 1))
    d.scorer = scorer = Poisoned()  # type: ignore[assignment]
    letters = Letters()
    d.p.dead_letters = letters  # type: ignore[assignment]
    end = 6
    position = {0: 0, 1: 0}
    for _ in range(40):  # the consumer: two records a partition a fetch, from its position
        for part, at in consumer.seeks:
            position[part] = at
        consumer.seeks.clear()
        fetched: dict[TopicPartition, list[Any]] = {}
        for part in (0, 1):
            offsets = list(range(position[part], min(position[part] + 2, end)))
            if offsets:
                fetched |= batch(part, *offsets)
                position[part] = offsets[-1] + 1
        if not fetched and d.progress.committed == {0: end, 1: end}:
            break
        await asyncio.sleep(d.checkpoints.pause)  # checkpoints are paced by what they cost
        handling = asyncio.ensure_future(d._handle(fetched))
        while not handling.done():
            broker.ack()
            await settle()
        await handling
    # Partition 0 was scored once, in order, and committed to its end; partition 1 every
    # record but the poison, which is dead-lettered with the reason, and committed too.
    assert [o for p, o in scorer.scored if p == 0] == list(range(end))
    assert sorted({o for p, o in scorer.scored if p == 1}) == [0, 2, 3, 4, 5]
    assert [(p, o) for p, o, _ in letters.sent] == [(1, 1)]
    assert "failed 3 times" in letters.sent[0][2] and "a bank bug" in letters.sent[0][2]
    assert d.progress.committed == {0: end, 1: end}
