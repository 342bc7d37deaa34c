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

from detectors.routing import RoutedBanks
from tests.unit.test_detect_behind import Scorer, batch, detect, scored, settle


@dataclass
class Failing(Scorer):
    """Fails every record of the ``failing`` partitions (a bad record, not the broker)."""

    failing: set[int] = field(default_factory=set)

    async def score(self, partition: int, bank: RoutedBanks, records: list[Any]) -> bool:
        if partition in self.failing:
            raise ValueError("a record this bank cannot take")
        return await super().score(partition, bank, records)


async def test_a_partition_going_back_waits_for_the_checkpoint_in_flight() -> None:
    d, broker, consumer, _ = await detect(partitions=(0, 1))
    d.scorer = scorer = Failing()  # type: ignore[assignment]
    await scored(d, batch(0, 0, 1) | batch(1, 0, 1))
    in_flight = len(broker.sent)
    assert in_flight and broker.held
    d.failures.begin(0, 2)  # partition 0: one record at a time, each checkpointed
    scorer.failing = {1}  # partition 1: goes back to its checkpoint
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
