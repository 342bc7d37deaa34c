"""The ``detect`` service: its points consumer, the run loop and each partition's flow through
a batch (score, then checkpoint, then commit), and what a rebalance does to its partitions.

Per partition, in this order: the batch's detections are acknowledged by the broker; then the
changed blocks are written (every ``checkpoint_interval_s``); then the partition's offset is
committed (:mod:`streams.detect.checkpoints`, :mod:`streams.detect.offsets`). When a policy
fired or is deciding, the blocks of its rows are written at once, without a commit, so a
handover never drops a run in progress (and a fleet's whole state is not written after every
batch in which one of its series is busy).

A checkpoint is taken (its blocks encoded, its offsets noted) between two batches, and written
while the next batches are scored: one at a time, its offsets committed once the broker has all
of it. Writing a fleet's blocks takes a round trip to the broker per megabyte; scoring does not
wait for them. A checkpoint that fails to be written leaves the banks ahead of what the topic
holds, so every partition goes back to its checkpoint and last commit, as when a batch fails.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import mode
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.errors import ConsumerStoppedError, KafkaError

from detectors.routing import RoutedBanks
from detectors.silence import SilenceWatch
from streams.agents import FirstInput
from streams.detect.checkpoints import Checkpoints, Written
from streams.detect.failures import Failures, transient
from streams.detect.offsets import Offsets
from streams.detect.scoring import Scorer
from streams.detect.silences import Silences

if TYPE_CHECKING:
    from streams.pipeline import Pipeline
    from streams.settings import Settings

log = logging.getLogger(__name__)

# Messages per ``getmany``: enough for wide vectorized rounds, few enough that a batch takes a
# fraction of a second.
MAX_RECORDS = 10000
FETCH_BYTES_PER_PARTITION = 16 * 1024 * 1024


class CheckpointLost(Exception):
    """A checkpoint written behind the scoring failed: the banks are ahead of the topic."""


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, detect: Detect) -> None:
        self.detect = detect

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        await self.detect.revoked({tp.partition for tp in revoked})

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        await self.detect.assigned({tp.partition for tp in assigned})


def _points_consumer(s: Settings) -> AIOKafkaConsumer:
    return AIOKafkaConsumer(
        group_id=s.detect_group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_partition_fetch_bytes=FETCH_BYTES_PER_PARTITION,
        session_timeout_ms=int(s.session_timeout_s * 1000),
        heartbeat_interval_ms=int(s.session_timeout_s * 100),
        **s.kafka_client_kwargs(),
    )


class Detect(mode.Service):
    """The points consumer, its banks (one per assigned partition) and their checkpoints."""

    def __init__(self, p: Pipeline, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.p = p
        self.topic = p.settings.topics.metrics
        self.banks: dict[int, RoutedBanks] = {}
        self._kept: dict[int, RoutedBanks] = {}  # saved and committed at the last revocation
        self._kept_watches: dict[int, SilenceWatch] = {}
        self._unrestored: set[int] = set()  # assigned, but their state could not be read yet
        self.failures = Failures(p)
        self._lock = asyncio.Lock()
        #: The checkpoint being written behind the scoring, and partitions owed one at once
        #: (a policy fired or is deciding while it was written).
        self._behind: asyncio.Task[None] | None = None
        self._owed: set[int] = set()
        #: A checkpoint written behind failed: every partition must go back before going on.
        self._stale = False
        self._closing = False
        #: When the current restore of detector state started (None: not restoring).
        self.restoring_since: float | None = None
        #: Wall-clock times: the first batch of points began scoring, the latest one ended;
        #: and the points processed by then (the count moves before its batch ends).
        self.first_batch_at: float | None = None
        self.last_batch_at: float | None = None
        self.processed_by_last_batch = 0
        # aiokafka clients belong to the running loop: made in on_start, with what uses them.
        self._producer: AIOKafkaProducer
        self._blocks_producer: AIOKafkaProducer  # checkpoints: detections never queue behind
        self._consumer: AIOKafkaConsumer
        self._restorer: AIOKafkaConsumer
        self.silences: Silences
        self.checkpoints: Checkpoints
        self.progress: Offsets
        self.scorer: Scorer

    async def on_start(self) -> None:
        s = self.p.settings
        kw = s.kafka_client_kwargs()
        self._producer = AIOKafkaProducer(acks="all", **kw)
        self._blocks_producer = AIOKafkaProducer(acks="all", **kw)
        self._consumer = _points_consumer(s)
        self._restorer = AIOKafkaConsumer(
            group_id=None, enable_auto_commit=False, auto_offset_reset="earliest", **kw
        )
        self.silences = Silences(self.p, self._producer)
        self.checkpoints = Checkpoints(self.p, self._blocks_producer, self._restorer, self.silences)
        self.progress = Offsets(self._consumer, self.topic)
        self.scorer = Scorer(self.p, self._producer, self.silences)
        await self._producer.start()
        await self._blocks_producer.start()
        await self._restorer.start()
        await self._consumer.start()
        self._consumer.subscribe([self.topic], listener=_Rebalance(self))

    async def on_stop(self) -> None:
        async with self._lock:
            self._closing = True
            try:
                await self._save(set(self.banks), final=True)
            except Exception:  # the broker may be gone; the next owner replays from the commit
                log.exception("detect: final checkpoint failed")
        await self._consumer.stop()
        await self._restorer.stop()
        await self._blocks_producer.stop()
        await self._producer.stop()

    # -- the loop ----------------------------------------------------------------------------

    @mode.Service.task
    async def _run(self) -> None:
        while not self.should_stop:
            try:
                batch = await self._consumer.getmany(timeout_ms=200, max_records=MAX_RECORDS)
            except ConsumerStoppedError:
                return
            # Let the fetcher ask for more before this batch takes the loop: the broker reads
            # the next records (on another core) while these are scored.
            await asyncio.sleep(0)
            async with self._lock:
                if self._closing:
                    return
                await self._handle(batch)

    async def _handle(self, batch: dict[TopicPartition, list[ConsumerRecord]]) -> None:
        if batch and self.first_batch_at is None:
            self.first_batch_at = time.time()
            heads = [r[0] for r in batch.values() if r]
            if heads:
                FirstInput("detect")(min(heads, key=lambda c: (c.partition, c.offset)))
        try:
            await self._batch(batch)
            if batch:
                self.last_batch_at = time.time()
                self.processed_by_last_batch = self.p.counters.get("points_processed", 0)
        except Exception:
            # Sending or checkpointing failed (the broker is away, say): the banks may be
            # ahead of what reached the broker, so every partition goes back to its
            # checkpoint and last commit and is read again.
            log.exception("detect: batch failed; rewinding to the last checkpoint")
            self.p.count("detect_errors")
            await self._rewind_all()

    async def _batch(self, batch: dict[TopicPartition, list[ConsumerRecord]]) -> None:
        if self._behind is not None and self._behind.done():
            await self._settle()
        if self._stale:
            raise CheckpointLost("a checkpoint was not written")
        deciding = self._owed
        # The partitions side by side: one's detector runs (compiled, in a thread) while the
        # next one's records are decoded. Each waits for all before the first failure is raised.
        work = [(tp.partition, records) for tp, records in batch.items() if records]
        outcomes = await asyncio.gather(
            *(self._partition(part, records) for part, records in work), return_exceptions=True
        )
        for (part, _), outcome in zip(work, outcomes, strict=True):
            if isinstance(outcome, BaseException):
                raise outcome
            if outcome:
                deciding.add(part)
        if self._behind is not None:
            self._owed = deciding  # written once the one being written is
            return
        self._owed = set()
        due = self.checkpoints.due(self.progress.unsaved(), time.monotonic())
        banks = {part: self.banks[part] for part in due if part in self.banks}
        # A policy that fired or is deciding: the blocks of its rows now, the rest on its pace.
        busy = {part: self.banks[part] for part in deciding - due if part in self.banks}
        if banks or busy:
            taken = self.checkpoints.take(banks, deciding=busy)
            self._behind = asyncio.ensure_future(
                self._written(taken, self.progress.to_commit(banks))
            )

    async def _written(self, taken: Written, offsets: dict[int, int]) -> None:
        """Write a checkpoint taken between two batches, then commit its offsets."""
        await self.checkpoints.send(taken)
        await self.progress.commit(offsets)

    async def _settle(self) -> None:
        """Wait for the checkpoint being written behind the scoring, if any; one that failed
        leaves every partition to go back (``_stale``).

        Every caller waits until it is written, not only the first: partitions scored side by
        side may each checkpoint (taken one record at a time) or go back to their checkpoint,
        and neither may happen while older blocks of theirs are still on their way."""
        behind = self._behind
        if behind is None:
            return
        await asyncio.wait([behind])  # a caller cancelled does not cancel the write
        if self._behind is not behind:
            return  # another caller took its outcome
        self._behind = None
        failed = asyncio.CancelledError() if behind.cancelled() else behind.exception()
        if failed is not None:
            log.error("detect: checkpoint not written; every partition goes back to its last",
                      exc_info=failed)  # fmt: skip
            self.p.count("detect_errors")
            self._stale = True

    async def _rewind_all(self) -> None:
        while not self.should_stop:
            try:
                await self._settle()
                self._stale = False
                for part in list(self.banks):
                    await self._rewind(part)
                return
            except Exception as exc:
                log.warning("detect: rewind failed (%s); trying again", exc)
                await asyncio.sleep(1.0)

    async def _partition(self, partition: int, records: list[ConsumerRecord]) -> bool:
        """Score one partition's records; True when they must be checkpointed at once."""
        if partition not in self.banks and not await self._restored(partition, records):
            return False
        if self.failures.careful(partition):
            records = await self.failures.one_by_one(partition, records, self)
            if not records:
                return False
        try:
            urgent = await self.score(partition, records)
        except Exception as exc:
            if transient(exc):
                raise  # the broker is away: every partition goes back and is read again
            # The bank may be half-updated: go back to the checkpoint and take the records
            # since the last commit one at a time, to find the one that fails.
            log.error("detect: partition %d: %s; replaying from its checkpoint", partition, exc)
            self.p.count("detect_errors")
            await self._rewind(partition)
            self.failures.begin(partition, records[-1].offset)
            return False
        self.progress.processed(partition, records[-1].offset + 1)
        return urgent

    async def _restored(self, partition: int, records: list[ConsumerRecord]) -> bool:
        """Whether the partition, assigned but not restored yet, is restored now."""
        if partition not in self._unrestored:
            return False  # given away while these were fetched: the new owner reads them
        try:
            self.banks[partition] = await self.checkpoints.restore(partition)
            self._unrestored.discard(partition)
        except Exception as exc:
            # Not scored without their state, and not skipped either: read again later.
            log.warning("detect: partition %d: state still unreadable (%s)", partition, exc)
            self._consumer.seek(TopicPartition(self.topic, partition), records[0].offset)
            await asyncio.sleep(1.0)
            return False
        return True

    # -- the steps a one-by-one replay takes (failures.Flow) ---------------------------------

    async def score(self, partition: int, records: list[ConsumerRecord]) -> bool:
        return await self.scorer.score(partition, self.banks[partition], records)

    async def reload(self, partition: int) -> None:
        await self._settle()
        if self._stale:
            raise CheckpointLost("a checkpoint was not written")
        self.banks[partition] = await self.checkpoints.restore(partition)

    async def seek_committed(self, partition: int) -> None:
        await self.progress.seek_committed(partition)

    async def processed(self, partition: int, record: ConsumerRecord) -> None:
        self.progress.processed(partition, record.offset + 1)
        await self._save({partition})

    # -- checkpoints and offsets -------------------------------------------------------------

    async def _save(self, partitions: set[int], final: bool = False) -> None:
        """Write the changed blocks of ``partitions`` (and their silence watches every
        ``WATCH_SAVE_S``, or now if ``final``), then commit what they have processed."""
        await self._settle()
        if self._stale:
            raise CheckpointLost("a checkpoint was not written")
        banks = {part: self.banks[part] for part in partitions if part in self.banks}
        if not banks:
            return
        offsets = self.progress.to_commit(banks)
        await self.checkpoints.write(banks, final)
        await self.progress.commit(offsets)

    async def _rewind(self, partition: int) -> None:
        """Back to the checkpoint: restored bank, consumer at the last committed offset."""
        await self.reload(partition)
        await self.seek_committed(partition)

    # -- rebalances --------------------------------------------------------------------------

    async def revoked(self, partitions: set[int]) -> None:
        async with self._lock:
            self._kept.clear()
            mine = partitions & set(self.banks)
            try:
                await self._save(mine, final=True)
                committed = self.progress.all_committed(mine)
            except (KafkaError, CheckpointLost):
                log.exception("detect: checkpoint on revocation failed")
                committed = False
            self._keep(mine, committed)
            self.progress.forget(partitions)
            self.checkpoints.forget(partitions)
            self.failures.forget(partitions)
            self.silences.forget(partitions)
            self._unrestored -= partitions

    def _keep(self, partitions: Iterable[int], committed: bool) -> None:
        """Take the partitions' banks out; keep them (and their watches) if they were saved
        and committed: if the same partition comes straight back, they are what a restore
        would rebuild."""
        self._kept_watches.clear()
        for part in partitions:
            bank = self.banks.pop(part)
            if committed:
                self._kept[part] = bank
                if part in self.silences.watches:
                    self._kept_watches[part] = self.silences.watches[part]

    async def assigned(self, partitions: set[int]) -> None:
        async with self._lock:
            kept, self._kept = self._kept, {}
            self.restoring_since = time.monotonic()
            try:
                for part in sorted(partitions):
                    await self._take_over(part, kept.get(part))
            finally:
                self.restoring_since = None
            log.info("detect: partitions %s assigned", sorted(partitions))

    async def _take_over(self, partition: int, kept: RoutedBanks | None) -> None:
        """The partition's bank: the one kept at the last revocation, else its checkpoint's."""
        self.checkpoints.assigned(partition)
        if kept is not None:
            self.banks[partition] = kept
            if partition in self._kept_watches:
                self.silences.watches[partition] = self._kept_watches[partition]
            return
        try:
            self.banks[partition] = await self.checkpoints.restore(partition)
        except Exception as exc:  # the broker is away, say: tried again on use
            log.warning("detect: partition %d: cannot read its state (%s)", partition, exc)
            self._unrestored.add(partition)

    # -- silent series -----------------------------------------------------------------------

    @mode.Service.timer(1.0)
    async def _watch_silences(self) -> None:
        """Send a detection for each silence that began by each partition's event time."""
        async with self._lock:
            if self._closing:
                return
            await self.silences.check()

    # -- health ------------------------------------------------------------------------------

    def offsets(self) -> dict[tuple[str, int], tuple[int | None, int]]:
        """(next offset to read, high watermark) of each assigned points partition."""
        if not self.banks:  # none assigned (and, before the service starts, no consumer)
            return {}
        return self.progress.lag(list(self.banks))
