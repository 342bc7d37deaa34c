"""``streams.detect.service``: a checkpoint is written behind the scoring, over a fake broker
(no Kafka). The batches after it are scored while its blocks wait for the broker; its offsets
(those it was taken at, not later ones) are committed only once every block is acknowledged; a
partition whose policy is deciding meanwhile is written right after; and a checkpoint that fails
sends every partition back to its last checkpoint and commit."""

from __future__ import annotations

import asyncio
import itertools
import time
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from aiokafka import TopicPartition
from aiokafka.errors import KafkaTimeoutError, MessageSizeTooLargeError

from detectors.routing import RoutedBanks
from streams.detect import service
from streams.detect.checkpoints import Checkpoints
from streams.detect.offsets import Offsets
from streams.detect.service import Detect
from streams.settings import Settings

TOPIC = "metrics.points.v1"


@dataclass
class Broker:
    """A producer whose sends are acknowledged when the test says (``ack``) or fail."""

    held: list[asyncio.Future[None]] = field(default_factory=list)
    sent: list[tuple[int, bytes]] = field(default_factory=list)

    async def send(self, topic: str, value: Any, key: bytes, partition: int) -> Any:
        self.sent.append((partition, key))
        ack: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.held.append(ack)
        return ack

    def ack(self, error: Exception | None = None) -> None:
        for ack in self.held:
            if error is None:
                ack.set_result(None)
            else:
                ack.set_exception(error)
        self.held.clear()


@dataclass
class Consumer:
    commits: list[dict[int, int]] = field(default_factory=list)
    seeks: list[tuple[int, int]] = field(default_factory=list)

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        self.commits.append({tp.partition: at for tp, at in offsets.items()})

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self.seeks.append((tp.partition, offset))

    async def committed(self, tp: TopicPartition) -> None:
        return None

    async def seek_to_beginning(self, tp: TopicPartition) -> None:
        self.seeks.append((tp.partition, 0))


@dataclass
class Scorer:
    """Learns one point of a series of its own per record; ``deciding`` partitions say so."""

    deciding: set[int] = field(default_factory=set)
    scored: list[tuple[int, int]] = field(default_factory=list)

    async def score(self, partition: int, bank: RoutedBanks, records: list[Any]) -> bool:
        for r in records:
            self.scored.append((partition, r.offset))
            bank.observe([f"svc|m{r.offset}"], np.array([1.0]), np.array([1e9 + r.offset]))
        return partition in self.deciding


def record(partition: int, offset: int) -> Any:
    return SimpleNamespace(topic=TOPIC, partition=partition, offset=offset)


def batch(partition: int, *offsets: int) -> dict[TopicPartition, list[Any]]:
    return {TopicPartition(TOPIC, partition): [record(partition, o) for o in offsets]}


async def detect(partitions: tuple[int, ...] = (0,)) -> tuple[Detect, Broker, Consumer, Scorer]:
    counters: dict[str, int] = {}

    def count(name: str, n: int = 1) -> None:
        counters[name] = counters.get(name, 0) + n

    settings = Settings(checkpoint_interval_s=0.0)
    p: Any = SimpleNamespace(settings=settings, counters=counters, count=count)
    d = Detect(p)
    broker, consumer, scorer = Broker(), Consumer(), Scorer()
    silences: Any = SimpleNamespace(watches={}, forget=lambda partitions: None)
    d.silences = silences
    d.checkpoints = Checkpoints(p, broker, restorer=None, silences=silences)
    d.progress = Offsets(consumer, TOPIC)
    d.scorer = scorer  # type: ignore[assignment]
    restored: list[int] = []

    async def restore(partition: int) -> RoutedBanks:
        restored.append(partition)
        return settings.detector_banks()

    d.checkpoints.restore = restore  # type: ignore[method-assign]
    d.restored = restored  # type: ignore[attr-defined]
    for part in partitions:
        d.banks[part] = settings.detector_banks()
    return d, broker, consumer, scorer


async def settle() -> None:
    """Let the checkpoint written behind run as far as it can (as the loop's next fetch does)."""
    for _ in range(5):
        await asyncio.sleep(0)


async def scored(d: Detect, records: dict[TopicPartition, list[Any]]) -> None:
    await d._batch(records)
    await settle()


async def test_batches_are_scored_while_a_checkpoint_waits_and_its_own_offsets_commit() -> None:
    d, broker, consumer, scorer = await detect()
    await scored(d, batch(0, 0, 1))
    assert broker.sent and broker.held, "the checkpoint's blocks were sent"
    # The broker has not acknowledged them: the next batches are scored all the same.
    await scored(d, batch(0, 2))
    await scored(d, batch(0, 3))
    assert [o for _, o in scorer.scored] == [0, 1, 2, 3]
    assert consumer.commits == []
    broker.ack()
    await settle()
    # The checkpoint held offsets 0 and 1: offset 2, not 4, is committed.
    assert consumer.commits == [{0: 2}]
    await asyncio.sleep(d.checkpoints.pause)  # paced by what the first one took
    await scored(d, batch(0, 4))
    assert broker.held, "the next checkpoint is taken once the first is written"
    broker.ack()
    await settle()
    assert consumer.commits == [{0: 2}, {0: 5}]


async def test_a_deciding_partition_is_written_as_soon_as_the_one_in_flight_is() -> None:
    d, broker, consumer, scorer = await detect(partitions=(0, 1))
    await scored(d, batch(0, 0))
    first = len(broker.sent)
    scorer.deciding = {1}
    await scored(d, batch(1, 0))
    assert len(broker.sent) == first, "one checkpoint at a time"
    broker.ack()
    await settle()
    scorer.deciding = set()
    await scored(d, {})
    assert {part for part, _ in broker.sent[first:]} == {1}
    broker.ack()
    await settle()
    assert consumer.commits == [{0: 1}, {1: 1}]


@pytest.mark.parametrize("error", [KafkaTimeoutError(), ValueError("refused")])
async def test_a_checkpoint_that_fails_sends_every_partition_back(error: Exception) -> None:
    d, broker, consumer, scorer = await detect(partitions=(0, 1))
    await scored(d, batch(0, 0, 1) | batch(1, 0))
    await scored(d, batch(0, 2))
    broker.ack(error)
    await settle()
    await d._handle(batch(0, 3))
    # Nothing committed; both banks restored from the topic, both partitions read again
    # from their last commit (none: the beginning), and offset 3 was not scored.
    assert consumer.commits == []
    assert sorted(d.restored) == [0, 1]  # type: ignore[attr-defined]
    assert sorted(consumer.seeks) == [(0, 0), (1, 0)]
    assert (0, 3) not in scorer.scored
    assert d.p.counters["detect_errors"] >= 1
    # And it goes on: the next batch is scored and checkpointed.
    await scored(d, batch(0, 0))
    broker.ack()
    await settle()
    assert consumer.commits == [{0: 1}]


async def test_a_revocation_waits_for_the_checkpoint_in_flight_then_writes_the_rest() -> None:
    d, broker, consumer, _ = await detect()
    await scored(d, batch(0, 0))
    await d._batch(batch(0, 1))  # scored while the first checkpoint waits
    revoking = asyncio.ensure_future(d.revoked({0}))
    await settle()
    assert not revoking.done()
    broker.ack()  # the first checkpoint
    await settle()
    broker.ack()  # the final one, with offset 1
    await revoking
    assert consumer.commits == [{0: 1}, {0: 2}]
    assert 0 in d._kept, "saved and committed: kept for a quick return"


@dataclass
class SideBySide(Scorer):
    """Partition 0 waits until partition 1 has begun (scored one after the other, it never
    would); partition 1 then fails as ``error`` says."""

    began: asyncio.Event = field(default_factory=asyncio.Event)
    error: Exception | None = None
    finished: list[int] = field(default_factory=list)

    async def score(self, partition: int, bank: RoutedBanks, records: list[Any]) -> bool:
        if partition == 1:
            self.began.set()
            await asyncio.sleep(0)
            if self.error is not None:
                raise self.error
        else:
            await asyncio.wait_for(self.began.wait(), timeout=5)
        await super().score(partition, bank, records)
        self.finished.append(partition)
        return False


async def test_partitions_are_scored_side_by_side() -> None:
    d, broker, consumer, _ = await detect(partitions=(0, 1))
    d.scorer = scorer = SideBySide()  # type: ignore[assignment]
    await scored(d, batch(0, 0) | batch(1, 0))
    assert sorted(scorer.finished) == [0, 1]
    broker.ack()
    await settle()
    assert consumer.commits == [{0: 1, 1: 1}]


async def test_a_partition_whose_broker_is_away_fails_the_batch_once_the_others_are_done() -> None:
    d, broker, consumer, _ = await detect(partitions=(0, 1))
    d.scorer = scorer = SideBySide(error=KafkaTimeoutError())  # type: ignore[assignment]
    with pytest.raises(KafkaTimeoutError):
        await d._batch(batch(0, 0) | batch(1, 0))
    assert scorer.finished == [0], "partition 0 was not left half-scored"
    assert broker.sent == [] and consumer.commits == []


@dataclass
class Refusing(Broker):
    """A broker whose checkpoint topic refuses every block (its ``max.message.bytes`` is below
    them): each send fails as soon as it is made."""

    def __post_init__(self) -> None:
        self.refused = 0

    async def send(self, topic: str, value: Any, key: bytes, partition: int) -> Any:
        self.refused += 1
        ack = await super().send(topic, value, key, partition)
        self.held.remove(ack)
        ack.set_exception(MessageSizeTooLargeError())
        return ack


@dataclass
class Polled(Consumer):
    """Hands the same record of partition 0 to every poll, and notes when it was polled."""

    polls: list[float] = field(default_factory=list)

    async def getmany(self, timeout_ms: int, max_records: int) -> dict[TopicPartition, list[Any]]:
        self.polls.append(time.monotonic())
        await asyncio.sleep(0)
        return batch(0, 0)


def waits(polls: list[float]) -> list[float]:
    """The gaps between two polls long enough to be a pause (polls back to back take less
    than a millisecond here)."""
    return [b - a for a, b in itertools.pairwise(polls) if b - a >= 0.04]


async def test_a_checkpoint_the_topic_refuses_every_time_is_retried_ever_less_often(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # A deterministic refusal: read again from the commit, scored, refused again. Nothing is
    # committed past what the topic holds, and the worker does not spin on it: each failure in
    # a row waits twice as long before the partitions are read again, and says why.
    monkeypatch.setattr(service, "CHECKPOINT_RETRY_S", 0.05)
    d, _, _, _ = await detect()
    d.checkpoints.producer = refusing = Refusing()
    d._consumer = d.progress.consumer = consumer = Polled()
    run = asyncio.ensure_future(d._run(d))  # a mode task, called with its service
    try:
        deadline = time.monotonic() + 10
        while len(waits(consumer.polls)) < 3 and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
    finally:
        run.cancel()
    assert refusing.refused >= 3 and consumer.commits == []
    # The poll after each refusal waits 0.05, 0.1, then 0.2 s; the others do not wait.
    assert [round(w, 2) >= least for w, least in zip(waits(consumer.polls), (0.05, 0.1, 0.2),
                                                     strict=False)] == [True] * 3  # fmt: skip
    assert d.p.counters["checkpoints_lost"] >= 3
    said = [r.getMessage() for r in caplog.records if "not written" in r.getMessage()]
    assert said and "MessageSizeTooLargeError" in said[-1] and "3 in a row" in said[2]
    assert d.p.settings.detector_blocks_topic in said[-1]


@dataclass
class Poisoned(Scorer):
    """Fails every record of the ``poisoned`` partitions (a bad record, not the broker)."""

    poisoned: set[int] = field(default_factory=set)

    async def score(self, partition: int, bank: RoutedBanks, records: list[Any]) -> bool:
        if partition in self.poisoned:
            raise ValueError("a record this bank cannot take")
        return await super().score(partition, bank, records)


async def test_two_partitions_going_back_at_once_both_wait_for_the_checkpoint_in_flight() -> None:
    # A checkpoint of both partitions waits for the broker; in the next batch both fail on a
    # bad record and go back to their checkpoints side by side. The second must not read its
    # blocks back (half of them written, its commit not yet moved) before the broker has them.
    d, broker, consumer, _ = await detect(partitions=(0, 1))
    d.scorer = scorer = Poisoned()  # type: ignore[assignment]
    await scored(d, batch(0, 0, 1) | batch(1, 0, 1))
    assert broker.held
    scorer.poisoned = {0, 1}
    going_back = asyncio.ensure_future(d._batch(batch(0, 2) | batch(1, 2)))
    await settle()
    assert d.restored == [], "a bank read back while its checkpoint is being written"  # type: ignore[attr-defined]
    broker.ack()
    await going_back
    assert consumer.commits == [{0: 2, 1: 2}]
    assert sorted(d.restored) == [0, 1]  # type: ignore[attr-defined]
    assert sorted(consumer.seeks) == [(0, 2), (1, 2)], "each from the commit just made"


async def test_a_partition_revoked_with_its_deciding_blocks_owed_is_written_and_committed() -> None:
    # Partition 1's policy starts deciding while partition 0's checkpoint is in flight: its
    # blocks are owed. It is revoked before they are written: the revocation waits for the one
    # in flight, then writes partition 1's blocks and commits its offset; nothing of it is
    # written afterwards (its next owner has it).
    d, broker, consumer, scorer = await detect(partitions=(0, 1))
    await scored(d, batch(0, 0))
    scorer.deciding = {1}
    await scored(d, batch(1, 0))
    assert d._owed == {1}
    revoking = asyncio.ensure_future(d.revoked({1}))
    await settle()
    assert not revoking.done() and consumer.commits == []
    broker.ack()
    await settle()
    broker.ack()
    await revoking
    assert consumer.commits == [{0: 1}, {1: 1}]
    sent = len(broker.sent)
    assert {part for part, _ in broker.sent} == {0, 1}
    scorer.deciding = set()
    await scored(d, {})
    assert all(part != 1 for part, _ in broker.sent[sent:]), "nothing of a partition given away"
    broker.ack()
    await settle()
    assert 1 not in d.banks and d.progress.unsaved() == []


async def test_a_bad_record_in_one_partition_leaves_the_others_scored_and_committed() -> None:
    # Partition 1 fails on a bad record while partition 0 is scored beside it, a checkpoint of
    # both in flight: partition 0's records are scored once and its offsets go on; partition 1
    # goes back to its checkpoint and takes its records one at a time from its last commit.
    d, broker, consumer, _ = await detect(partitions=(0, 1))
    d.scorer = scorer = Poisoned()  # type: ignore[assignment]
    await scored(d, batch(0, 0) | batch(1, 0))
    scorer.poisoned = {1}
    handling = asyncio.ensure_future(d._batch(batch(0, 1) | batch(1, 1)))
    await settle()
    broker.ack()
    await handling
    assert consumer.commits == [{0: 1, 1: 1}]
    assert d.failures.careful(1) and not d.failures.careful(0)
    assert consumer.seeks == [(1, 1)]
    assert d.restored == [1]  # type: ignore[attr-defined]
    assert [o for p, o in scorer.scored if p == 0] == [0, 1]
    await asyncio.sleep(d.checkpoints.pause)
    await scored(d, {})
    broker.ack()
    await settle()
    assert consumer.commits[-1] == {0: 2}, "partition 0 goes on"


async def test_a_checkpoint_refused_while_records_go_one_at_a_time_is_counted_and_paced() -> None:
    # A partition taken one record at a time writes a checkpoint after each, not behind the
    # scoring: refused there, it is lost all the same, and the worker waits as after any other.
    d, _, consumer, _ = await detect()
    d.checkpoints.producer = Refusing()
    d.failures.begin(0, 5)
    await d._handle(batch(0, 0, 1))
    assert consumer.commits == []
    assert d.p.counters["checkpoints_lost"] == 1
    assert d._lost == 1 and d._resume_at > time.monotonic()
