"""``detect``: metric points in (``metrics.points.v1``), detections out (``detections.v1``).

Points are the one high-volume stream, so ``detect`` reads them with its own aiokafka consumer
(group ``<app_id>-detect``) instead of a Faust agent: Faust hands an agent one message at a time
at a fixed cost of about a hundred microseconds each, more than scoring a hundred points costs.
Here each ``getmany`` batch is decoded into columns and every partition's points of the batch
are scored together by that partition's banks (points are keyed by service, so a series stays
on one partition), in a few vectorized rounds: a ``SeriesBank`` per detector rule and one for
the default detector (``detectors.routing``).

Where a series' episode ends (its policy's ``clear_points`` normal points in a row), the same
signal is sent as a ``resolved`` detection, so its incident learns the signal has recovered
(unless ``detect_resolves`` is off).

Exactly what a changelog-backed table gives, kept by hand because a Faust table can only be
written while a Faust stream is processing an event of the same partition: each partition's bank
is checkpointed in blocks of rows to partition ``p`` of the compacted topic
``<app_id>-detector-blocks`` (key: the block number, after ``<rule>/`` for a rule's bank), and a
partition newly assigned to this worker is rebuilt from that partition of the topic before its
points are read.

Per partition, in this order: the batch's detections are acknowledged by the broker; then the
changed blocks are written (every ``checkpoint_interval_s``); then the partition's offset is
committed. When a policy fired or is deciding, the blocks of its rows are written at once, without
a commit, so a handover never drops a run in progress (and a fleet's state is not written after
every batch in which one of its series is busy).

A checkpoint that took ``d`` seconds puts the next timed one at least
``d / checkpoint_max_share`` away: with a hundred thousand series changing every second, writing
them all every second would cost more than scoring them, and the price of a longer pause is
only a longer replay after a crash. Committed offsets never run ahead of the checkpoint, so after
a crash the points after it are read again and scored from the state before them; a checkpoint
that got ahead of its commit is harmless too: points at or before a series' checkpointed time
are skipped, and a detection's id derives from its series and time, so a replayed detection is
the same one.

A partition whose records fail (anything but the broker being away) goes back to its
checkpoint and takes the records since one at a time; a record that fails
``detect_max_attempts`` times is dead-lettered with the reason and skipped, and the partition's
other records proceed. Failures of the broker itself are retried, never counted against a
record.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from bisect import bisect_right
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import mode
import numpy as np
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.errors import (
    ConsumerStoppedError,
    KafkaConnectionError,
    KafkaError,
    KafkaTimeoutError,
)

from detectors import blocks
from detectors.bank import Rows, detection
from detectors.cardinality import Refusal
from detectors.routing import RoutedBanks
from detectors.silence import Deadlines, SilenceParams, SilenceWatch, Silent
from detectors.silence import detection as silence_detection
from responders.lifecycle import routing_key
from streams import faults
from streams.agents import FirstInput
from streams.codec import PointBatch, decode_points, decode_points_many, encode, warm_up_points
from streams.ingest.publish import batches

if TYPE_CHECKING:
    from streams.app import Pipeline

log = logging.getLogger(__name__)

# Messages per ``getmany``: enough for wide vectorized rounds, few enough that a batch takes a
# fraction of a second.
MAX_RECORDS = 10000
FETCH_BYTES_PER_PARTITION = 16 * 1024 * 1024
#: Messages are decoded this many bytes (or messages) at a time: a few thousand points, whose
#: columns stay in cache while they are checked, admitted and refused.
DECODE_BYTES = 384 * 1024
DECODE_MESSAGES = 2000
# The producer's default largest request, less room for the record's key and headers.
MAX_BLOCK_BYTES = 1_000_000
#: Checkpoint keys of a partition's silence watch (no detector rule's name holds a ``~``),
#: series a block, and seconds between its checkpoints (the first one this long after the
#: partition is assigned): its last-point times may be this much older after a restore, less
#: than the shortest silence a learned cadence flags (``silence_floor_s``), and the points
#: after the committed offset are read again anyway.
WATCH_PREFIX = "~silence/"
WATCH_BLOCK_BYTES = 256 * 1024
WATCH_SAVE_S = 60.0


def attach(p: Pipeline) -> None:
    s = p.settings
    # A bank's first points compile its kernels (about a second): at start, not on live points.
    for bank in s.detector_banks().banks:
        bank.observe(["warm-up|kernels"], np.zeros(1), np.zeros(1))
    warm_up_points()
    detect = Detect(p)
    p.detect = detect

    @p.app.task
    async def start_detect() -> None:
        # Tasks start once the app runs: its producer (dead letters) is up by then.
        await p.app.add_runtime_dependency(detect)


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, detect: Detect) -> None:
        self.detect = detect

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        await self.detect.revoked({tp.partition for tp in revoked})

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        await self.detect.assigned({tp.partition for tp in assigned})


class Detect(mode.Service):
    """The points consumer, its banks (one per assigned partition) and their checkpoints."""

    def __init__(self, p: Pipeline, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.p = p
        s = p.settings
        self.topic = s.topics.metrics
        self.blocks_topic = s.detector_blocks_topic
        self.banks: dict[int, RoutedBanks] = {}
        self._kept: dict[int, RoutedBanks] = {}  # saved and committed at the last revocation
        self._read: dict[int, int] = {}  # partition -> next offset, once processed
        self._committed: dict[int, int] = {}
        self._saved_at: dict[int, float] = {}
        #: The least time between two checkpoints of a partition, from the last one's cost.
        self._pause = 0.0
        self._careful: dict[int, int] = {}  # partition -> last offset to take one at a time
        self._attempts: dict[tuple[int, int], int] = {}  # (partition, offset) -> failures
        self._unrestored: set[int] = set()  # assigned, but their state could not be read yet
        #: Each assigned partition's watch over silent series (``detectors.silence``).
        self.watches: dict[int, SilenceWatch] = {}
        self._deadlines: tuple[Any, Deadlines] | None = None
        self._kept_watches: dict[int, SilenceWatch] = {}
        self._watch_saved: dict[int, float] = {}  # partition -> when its watch was written
        self._watch_blocks: dict[int, int] = {}  # partition -> blocks its watch took
        self._lock = asyncio.Lock()
        self._closing = False
        #: When the current restore of detector state started (None: not restoring).
        self.restoring_since: float | None = None
        #: Wall-clock times: the first batch of points began scoring, the latest one ended;
        #: and the points processed by then (the count moves before its batch ends).
        self.first_batch_at: float | None = None
        self.last_batch_at: float | None = None
        self.processed_by_last_batch = 0
        self._producer: AIOKafkaProducer
        self._consumer: AIOKafkaConsumer
        self._restorer: AIOKafkaConsumer

    async def on_start(self) -> None:
        s = self.p.settings
        # aiokafka clients belong to the running loop: made here, not in __init__.
        kw = s.kafka_client_kwargs()
        self._producer = AIOKafkaProducer(acks="all", **kw)
        self._consumer = AIOKafkaConsumer(
            group_id=s.detect_group,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_partition_fetch_bytes=FETCH_BYTES_PER_PARTITION,
            session_timeout_ms=int(s.session_timeout_s * 1000),
            heartbeat_interval_ms=int(s.session_timeout_s * 100),
            **kw,
        )
        self._restorer = AIOKafkaConsumer(
            group_id=None, enable_auto_commit=False, auto_offset_reset="earliest", **kw
        )
        await self._producer.start()
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
                    # Sending or checkpointing failed (the broker is away, say): the banks may
                    # be ahead of what reached the broker, so every partition goes back to its
                    # checkpoint and last commit and is read again.
                    log.exception("detect: batch failed; rewinding to the last checkpoint")
                    self.p.count("detect_errors")
                    await self._rewind_all()

    async def _batch(self, batch: dict[TopicPartition, list[ConsumerRecord]]) -> None:
        deciding = set()
        for tp, records in batch.items():
            if records and await self._partition(tp.partition, records):
                deciding.add(tp.partition)
        now = time.monotonic()
        interval = max(self.p.settings.checkpoint_interval_s, self._pause)
        due = {
            part
            for part, offset in self._read.items()
            if offset != self._committed.get(part)
            and now - self._saved_at.get(part, -1e18) >= interval
        }
        await self._save(due)
        await self._save_deciding(deciding - due)

    async def _save_deciding(self, partitions: set[int]) -> None:
        """Write at once the blocks of the rows whose policy moved (a run began, an episode is
        on), without a commit: a new owner restores them and reads the points since the last
        commit again, theirs as stale. The partition's other changed rows wait for its timed
        checkpoint, which commits."""
        writes = []
        for part in sorted(partitions & set(self.banks)):
            for block, state in self.banks[part].take_deciding_blocks().items():
                value = self._block_value(block, state)
                if value is not None:
                    key = block.encode()
                    writes.append(
                        await self._producer.send(self.blocks_topic, value, key=key, partition=part)
                    )
        await asyncio.gather(*writes)
        self.p.count("checkpoint_deciding_blocks", len(writes))

    async def _rewind_all(self) -> None:
        while not self.should_stop:
            try:
                for part in list(self.banks):
                    await self._rewind(part)
                return
            except Exception as exc:
                log.warning("detect: rewind failed (%s); trying again", exc)
                await asyncio.sleep(1.0)

    async def _partition(self, partition: int, records: list[ConsumerRecord]) -> bool:
        """Score one partition's records; True when they must be checkpointed at once."""
        if partition not in self.banks:
            if partition not in self._unrestored:
                return False  # given away while these were fetched: the new owner reads them
            try:
                self.banks[partition] = await self._restore(partition)
                self._unrestored.discard(partition)
            except Exception as exc:
                # Not scored without their state, and not skipped either: read again later.
                log.warning("detect: partition %d: state still unreadable (%s)", partition, exc)
                self._consumer.seek(TopicPartition(self.topic, partition), records[0].offset)
                await asyncio.sleep(1.0)
                return False
        if partition in self._careful:
            records = await self._one_by_one(partition, records)
            if not records:
                return False
        try:
            urgent = await self._score(partition, records)
        except Exception as exc:
            if _transient(exc):
                raise  # the broker is away: every partition goes back and is read again
            # The bank may be half-updated: go back to the checkpoint and take the records
            # since the last commit one at a time, to find the one that fails.
            log.error("detect: partition %d: %s; replaying from its checkpoint", partition, exc)
            self.p.count("detect_errors")
            await self._rewind(partition)
            self._careful[partition] = records[-1].offset
            return False
        self._read[partition] = records[-1].offset + 1
        return urgent

    async def _one_by_one(
        self, partition: int, records: list[ConsumerRecord]
    ) -> list[ConsumerRecord]:
        """Score ``records`` one at a time, each checkpointed, up to the last one that was
        in the failed batch; the records after it, to be scored as usual."""
        last = self._careful[partition]
        for i, record in enumerate(records):
            try:
                await self._score(partition, [record])
            except Exception as exc:
                if _transient(exc):
                    raise
                self.p.count("detect_errors")
                if not await self._failed(partition, record, exc):
                    return []  # read again from this record, from the checkpoint before it
            self._attempts.pop((partition, record.offset), None)
            self._read[partition] = record.offset + 1
            await self._save({partition})
            if record.offset >= last:
                del self._careful[partition]
                return records[i + 1 :]
        return []

    async def _failed(self, partition: int, record: ConsumerRecord, exc: Exception) -> bool:
        """Count a failure of ``record`` (its partition's bank goes back to the checkpoint
        before it); True once it is skipped, dead-lettered with the reason."""
        self.banks[partition] = await self._restore(partition)
        at = (partition, record.offset)
        failures = self._attempts.get(at, 0) + 1
        limit = self.p.settings.detect_max_attempts
        reason = f"{type(exc).__name__}: {exc}"
        if failures < limit:
            self._attempts[at] = failures
            log.warning(
                "detect: %s[%d]@%d failed (%d of %d attempts): %s",
                record.topic, partition, record.offset, failures, limit, reason,
            )  # fmt: skip
            await self._seek_committed(partition)
            return False
        self.p.count("detect_records_skipped")
        try:
            await self.p.dead_letters.send(
                record, "detect", f"failed {failures} times, skipped: {reason}"
            )
        except Exception as letter_exc:
            if _transient(letter_exc):
                raise
            log.error(
                "detect: %s[%d]@%d skipped; its dead letter failed too: %s",
                record.topic, partition, record.offset, letter_exc,
            )  # fmt: skip
        return True

    async def _score(self, partition: int, records: list[ConsumerRecord]) -> bool:
        """Decode, score and send the detections of ``records``; True if the policy is busy."""
        p, s = self.p, self.p.settings
        bank = self.banks[partition]
        taken: list[tuple[ConsumerRecord, int]] = []  # record, position of its first point
        rows, values, ts = [], [], []
        # Positions of the points kept, when a detector's domain refused some (else all are).
        kept: list[Any] = []
        at = 0
        for i, chunk in enumerate(_record_chunks(records)):
            decoded = decode_points_many(
                [r.value for r in chunk], [r.timestamp / 1000 for r in chunk], s.max_future_s
            )
            for record, (a, b), rejected in zip(
                chunk, decoded.spans, decoded.rejected, strict=True
            ):
                for bad in rejected:
                    await p.dead_letters.send(record, "decode", bad.reason, bad.payload)
                if b > a:
                    taken.append((record, at + a))
            if i == 0:
                # Only before this call admits anything: a series admitted from an earlier
                # chunk has no point observed yet (scored after the last chunk), so a sweep
                # here would evict it with its points still to be scored on its row.
                self._evict(bank, decoded)
            chunk_rows, over = bank.admit(decoded.series)
            keep = await self._refuse(bank, chunk, decoded, chunk_rows, over)
            if keep is not None:
                kept.append(at + keep)
                rows.append(chunk_rows[keep])
                values.append(decoded.values[keep])
                ts.append(decoded.ts[keep])
            else:
                kept.append(np.arange(at, at + len(decoded.series)))
                rows.append(chunk_rows)
                values.append(decoded.values)
                ts.append(decoded.ts)
            at += len(decoded.series)
        at_rows, t_all = np.concatenate(rows), np.concatenate(ts)
        if not len(t_all):
            return False
        try:
            _, fired = bank.observe_rows(
                at_rows, np.concatenate(values), t_all, ends=s.detect_resolves
            )
        except Exception as exc:
            raise _BankError(f"{type(exc).__name__}: {exc}") from exc
        p.count("points_processed", len(t_all))
        p.counters["last_point_processed_at"] = int(datetime.now(tz=UTC).timestamp())
        ended = self._watch(partition).observe_rows(
            at_rows, t_all, bank.series, max(r.timestamp for r in records) / 1000, time.time(),
            self.deadlines(),
        )  # fmt: skip
        if ended:
            await asyncio.gather(*[await self._send_silence(e) for e in ended])
        if fired:
            position = np.concatenate(kept)
            starts = [start for _, start in taken]
            sent = []
            for f in fired:
                at_point = int(position[f.index])
                record, start = taken[bisect_right(starts, at_point) - 1]
                # Decoded again: only the few points that fire need their names and labels.
                received_s = record.timestamp / 1000
                point = decode_points(record.value, received_s, s.max_future_s).points[
                    at_point - start
                ]
                found = detection(
                    f,
                    detector=bank.detector(int(at_rows[f.index])),
                    series=bank.series(int(at_rows[f.index])),
                    service=point.service,
                    metric=point.metric,
                    labels=point.labels or {},
                    ts=float(t_all[f.index]),
                    value=point.value,
                ).model_copy(update={"received_at": _instant(received_s)})
                key = routing_key(found, s.group_by).encode()
                sent.append(await self._producer.send(s.topics.detections, encode(found), key=key))
                p.count("detections_emitted")
                if f.decision.resolved:
                    p.count("detections_resolved")
            # The checkpoint records these points as seen: their detections reach the broker
            # first, or a crash in between would skip them for good.
            await asyncio.gather(*sent)
        return bool(fired) or bank.deciding

    # -- silent series -----------------------------------------------------------------------

    def deadlines(self) -> Deadlines:
        """The catalog's heartbeats (read again when the catalog object changes)."""
        catalog = self.p.catalog
        if self._deadlines is None or self._deadlines[0] is not catalog:
            self._deadlines = (catalog, Deadlines.of(catalog))
        return self._deadlines[1]

    def _watch(self, partition: int) -> SilenceWatch:
        watch = self.watches.get(partition)
        if watch is None:
            s = self.p.settings
            params = SilenceParams(
                factor=s.silence_factor, floor_s=s.silence_floor_s,
                min_intervals=s.silence_min_intervals, live_lag_s=s.silence_live_lag_s,
                learned=s.silence_learned, forget_s=s.series_idle_s,
            )  # fmt: skip
            watch = self.watches[partition] = SilenceWatch(params)
        return watch

    async def _send_silence(self, silent: Silent) -> Any:
        """Send the detection of a silence beginning or ending; the broker's future."""
        found = silence_detection(silent)
        key = routing_key(found, self.p.settings.group_by).encode()
        self.p.count("silences_resolved" if silent.status == "resolved" else "silences_detected")
        log.info("detect: %s %s (last point %s)", silent.key, silent.status, silent.last_ts)
        return await self._producer.send(self.p.settings.topics.detections, encode(found), key=key)

    @mode.Service.timer(1.0)
    async def _watch_silences(self) -> None:
        """Send a detection for each silence that began by each partition's event time."""
        async with self._lock:
            if self._closing:
                return
            deadlines, wall = self.deadlines(), time.time()
            for partition, watch in list(self.watches.items()):
                begun = watch.check(wall, deadlines)
                try:
                    await asyncio.gather(*[await self._send_silence(b) for b in begun])
                except KafkaError:
                    log.warning("detect: partition %d: silences not sent; tried again", partition)
                    watch.unfire([b.key for b in begun])

    def _evict(self, bank: RoutedBanks, decoded: PointBatch) -> None:
        """Evict the series idle as of the chunk's newest point; never past the wall clock, so
        a point from the far future does not evict every series."""
        if len(decoded.ts):
            now = min(float(decoded.ts.max()), time.time())
            self.p.count("series_evicted", len(bank.evict_idle(now)))

    async def _refuse(
        self,
        bank: RoutedBanks,
        chunk: list[ConsumerRecord],
        decoded: PointBatch,
        rows: Rows,
        over: dict[int, Refusal],
    ) -> Any:
        """Dead-letter the points of new series beyond a series limit (``over``) and those
        outside their detector's domain, each with the reason; the positions in ``decoded`` of
        the points that are left.

        A message's points refused by one limit go in as few dead letters as their size allows
        (a ``{"points": [...]}`` batch each), so a label explosion costs a dead letter per
        message, not per point."""
        refused = bank.refused(rows, decoded.values)
        if over:
            limited = np.zeros(len(rows), dtype=np.bool_)
            limited[list(over)] = True
            refused = limited if refused is None else refused | limited
        if refused is None or not refused.any():
            return None
        starts = [a for a, _ in decoded.spans]
        points: dict[int, Any] = {}  # message -> its points, decoded once
        limited_out: dict[tuple[int, str], list[bytes]] = {}  # (message, reason) -> points
        for i in np.flatnonzero(refused).tolist():
            m = bisect_right(starts, i) - 1
            if m not in points:
                received_s = chunk[m].timestamp / 1000
                points[m] = decode_points(
                    chunk[m].value, received_s, self.p.settings.max_future_s
                ).points
            point = points[m][i - starts[m]]
            value = float(decoded.values[i])
            entry = {
                "ts": datetime.fromtimestamp(float(decoded.ts[i]), tz=UTC).isoformat(),
                "service": point.service,
                "metric": point.metric,
                "value": value,
                "labels": point.labels or {},
            }
            payload = json.dumps(entry, separators=(",", ":")).encode()
            if i in over:
                self.p.count(f"series_refused_{over[i].limit}")
                limited_out.setdefault((m, over[i].reason), []).append(payload)
                continue
            reason = bank.why_refused(int(rows[i]), value)
            await self.p.dead_letters.send(chunk[m], "detect", reason, payload)
        for (m, reason), entries in limited_out.items():
            for letter in batches(entries, "points"):
                await self.p.dead_letters.send(chunk[m], "detect", reason, letter)
        return np.flatnonzero(~refused)

    # -- checkpoints and offsets -------------------------------------------------------------

    async def _save(self, partitions: set[int], final: bool = False) -> None:
        """Write the changed blocks of ``partitions`` (and their silence watches every
        ``WATCH_SAVE_S``, or now if ``final``), then commit what they have processed."""
        partitions = {part for part in partitions if part in self.banks}
        if not partitions:
            return
        began, written = time.monotonic(), 0
        writes: list[asyncio.Future[Any]] = []
        for part in sorted(partitions):
            watch_writes, watch_bytes = await self._save_watch(part, final)
            writes += watch_writes
            written += watch_bytes
            for block, state in self.banks[part].take_dirty_blocks().items():
                value = self._block_value(block, state)
                if value is None:
                    continue
                written += len(value)
                writes.append(
                    await self._producer.send(
                        self.blocks_topic, value, key=block.encode(), partition=part
                    )
                )
                await faults.reached_after("mid-checkpoint", writes)
        await asyncio.gather(*writes)
        now = time.monotonic()
        self._paced(now - began, written)
        offsets = {}
        for part in partitions:
            self._saved_at[part] = now
            read = self._read.get(part)
            if read is not None and read != self._committed.get(part):
                offsets[TopicPartition(self.topic, part)] = read
        if not offsets:
            return
        try:
            await self._consumer.commit(offsets)
        except KafkaError as exc:
            # The group moved on: the partitions' next owner replays from the last commit,
            # and the checkpoint keeps those replayed points from training twice.
            log.warning("detect: commit failed (%s); the next owner replays from the last", exc)
            return
        for tp, offset in offsets.items():
            self._committed[tp.partition] = offset

    def _block_value(self, block: str, state: dict[str, Any]) -> bytes | None:
        """A block part as written; None (logged and counted) if it is too large to write."""
        value = blocks.encode(state)
        if len(value) > MAX_BLOCK_BYTES:
            # One series whose id alone is this long: written, it would fail every time; not
            # written, that series starts afresh after a restore.
            log.error("detect: block %s of %d bytes not checkpointed", block, len(value))
            self.p.count("checkpoint_blocks_too_large")
            return None
        return value

    def _paced(self, took_s: float, written: int) -> None:
        """Count a checkpoint and set the pause before the next from what this one cost."""
        self.p.count("checkpoints_written")
        self.p.count("checkpoint_bytes", written)
        self.p.count("checkpoint_write_ms", round(took_s * 1000))
        self._pause = checkpoint_pause(took_s, self.p.settings.checkpoint_max_share)

    async def _save_watch(self, partition: int, final: bool) -> tuple[list[Any], int]:
        """Write the partition's silence watch in blocks of at most ``WATCH_BLOCK_BYTES`` of
        series (tombstones for blocks it no longer needs); the broker's futures, and the bytes
        written."""
        watch = self.watches.get(partition)
        now = time.monotonic()
        if watch is None or (
            not final and now - self._watch_saved.get(partition, 0.0) < WATCH_SAVE_S
        ):
            return [], 0
        self._watch_saved[partition] = now
        values = watch_blocks(watch.to_state(), WATCH_BLOCK_BYTES)
        sent, written = [], sum(map(len, values))
        for i, value in enumerate(values):
            key = f"{WATCH_PREFIX}{i}".encode()
            sent.append(
                await self._producer.send(self.blocks_topic, value, key=key, partition=partition)
            )
        for i in range(len(values), self._watch_blocks.get(partition, 0)):
            key = f"{WATCH_PREFIX}{i}".encode()
            sent.append(
                await self._producer.send(self.blocks_topic, None, key=key, partition=partition)
            )
        self._watch_blocks[partition] = len(values)
        return sent, written

    def _restore_watch(self, partition: int, found: dict[str, bytes]) -> None:
        """The partition's silence watch from its checkpoint blocks (taken out of ``found``);
        an unreadable or incomplete one starts afresh."""
        raw = {k: found.pop(k) for k in [k for k in found if k.startswith(WATCH_PREFIX)]}
        self._watch_blocks[partition] = len(raw)
        self.watches.pop(partition, None)
        try:
            head = json.loads(raw[f"{WATCH_PREFIX}0"])
            series: dict[str, Any] = {}
            for i in range(int(head["of"])):
                series.update(json.loads(raw[f"{WATCH_PREFIX}{i}"])["series"])
            head["series"] = series
            self.watches[partition] = SilenceWatch.from_state(self._watch(partition).params, head)
        except (KeyError, ValueError, TypeError) as exc:
            if raw:
                log.warning("detect: partition %d: silence watch not restored (%s)", partition, exc)
            self.watches.pop(partition, None)

    async def _restore(self, partition: int) -> RoutedBanks:
        """The bank of ``partition`` as its latest blocks on the checkpoint topic left it."""
        s = self.p.settings
        tp = TopicPartition(self.blocks_topic, partition)
        self._restorer.assign([tp])
        await self._restorer.seek_to_beginning(tp)
        end = (await self._restorer.end_offsets([tp]))[tp]
        found: dict[str, bytes] = {}
        while await self._restorer.position(tp) < end:
            batch = await self._restorer.getmany(tp, timeout_ms=500)
            for record in batch.get(tp, []):
                if record.key is None:
                    continue
                key = record.key.decode(errors="replace")
                if record.value is None:
                    found.pop(key, None)
                else:
                    found[key] = record.value
        self._restore_watch(partition, found)
        bank = s.detector_banks()
        stale = bank.load_blocks(_readable(found, partition))
        if stale:
            log.warning(
                "partition %d: %d detector blocks were written under another detector "
                "configuration; their series start afresh",
                partition,
                stale,
            )
        return bank

    async def _rewind(self, partition: int) -> None:
        """Back to the checkpoint: restored bank, consumer at the last committed offset."""
        self.banks[partition] = await self._restore(partition)
        await self._seek_committed(partition)

    async def _seek_committed(self, partition: int) -> None:
        tp = TopicPartition(self.topic, partition)
        committed = self._committed.get(partition)
        if committed is None:
            committed = await self._consumer.committed(tp)
        if committed is None:
            await self._consumer.seek_to_beginning(tp)
        else:
            self._consumer.seek(tp, committed)
        self._read.pop(partition, None)

    # -- rebalances --------------------------------------------------------------------------

    async def revoked(self, partitions: set[int]) -> None:
        async with self._lock:
            self._kept.clear()
            mine = partitions & set(self.banks)
            try:
                await self._save(mine, final=True)
                committed = all(
                    self._read.get(part) in (None, self._committed.get(part)) for part in mine
                )
            except KafkaError:
                log.exception("detect: checkpoint on revocation failed")
                committed = False
            self._kept_watches.clear()
            for part in mine:
                bank = self.banks.pop(part)
                if committed:
                    # Saved and committed: if the same partition comes straight back, this
                    # bank is what a restore would rebuild.
                    self._kept[part] = bank
                    if part in self.watches:
                        self._kept_watches[part] = self.watches[part]
            for state in (self._read, self._committed, self._saved_at, self._careful):
                for part in partitions:
                    state.pop(part, None)
            for part in partitions:
                self.watches.pop(part, None)
                self._watch_saved.pop(part, None)
            self._attempts = {k: n for k, n in self._attempts.items() if k[0] not in partitions}
            self._unrestored -= partitions

    async def assigned(self, partitions: set[int]) -> None:
        async with self._lock:
            kept, self._kept = self._kept, {}
            self.restoring_since = time.monotonic()
            try:
                for part in sorted(partitions):
                    self._saved_at[part] = time.monotonic()
                    # The watch is on the topic as restored (or empty): written again on the
                    # usual cadence, not at the partition's first checkpoint.
                    self._watch_saved[part] = self._saved_at[part]
                    bank = kept.get(part)
                    if bank is not None:
                        self.banks[part] = bank
                        if part in self._kept_watches:
                            self.watches[part] = self._kept_watches[part]
                        continue
                    try:
                        self.banks[part] = await self._restore(part)
                    except Exception as exc:  # the broker is away, say: tried again on use
                        log.warning("detect: partition %d: cannot read its state (%s)", part, exc)
                        self._unrestored.add(part)
            finally:
                self.restoring_since = None
            log.info("detect: partitions %s assigned", sorted(partitions))

    # -- health ------------------------------------------------------------------------------

    def offsets(self) -> dict[tuple[str, int], tuple[int | None, int]]:
        """(next offset to read, high watermark) of each assigned points partition."""
        out: dict[tuple[str, int], tuple[int | None, int]] = {}
        for part in self.banks:
            high = self._consumer.highwater(TopicPartition(self.topic, part))
            read = self._read.get(part, self._committed.get(part))
            if high is not None and read is not None:
                out[(self.topic, part)] = (read, int(high))
        return out


def watch_blocks(state: dict[str, Any], most: int) -> list[bytes]:
    """A silence watch's state (``SilenceWatch.to_state``) as checkpoint blocks: its series
    in blocks of at most ``most`` bytes of JSON each (at least one, maybe empty; an entry
    larger than that on its own is left out, and its series starts afresh), the first block
    with the rest of the state and ``of``, the number of blocks.

    Each series is written to JSON once, and the blocks are put together from those texts.

    >>> state = {"v": 1, "series": {"a|x": [1.0, None, None], "b|x": [2.0, 3.0, None, 1.5]}}
    >>> [json.loads(b) for b in watch_blocks(state, 30)]
    [{'v': 1, 'part': 0, 'of': 2, 'series': {'a|x': [1.0, None, None]}}, \
{'part': 1, 'series': {'b|x': [2.0, 3.0, None, 1.5]}}]
    """
    head = {k: v for k, v in state.items() if k != "series"}
    chunks = _chunks(state["series"], most)
    out = []
    for i, members in enumerate(chunks):
        first = {**head, "part": i, "of": len(chunks)} if i == 0 else {"part": i}
        text = json.dumps(first, separators=(",", ":"))
        out.append((text[:-1] + ',"series":{' + ",".join(members) + "}}").encode())
    return out


def _chunks(entries: dict[str, Any], most: int) -> list[list[str]]:
    """``entries`` as JSON members (``"key":value``) in groups of at most ``most`` bytes of
    JSON object each (at least one, maybe empty); an entry larger than that on its own is left
    out."""
    chunks: list[list[str]] = [[]]
    size = 0
    for key, value in entries.items():
        member = json.dumps({key: value}, separators=(",", ":"))[1:-1]
        n = len(member) + 2  # as an object of its own
        if n > most:
            continue
        if size + n > most:
            chunks.append([])
            size = 0
        chunks[-1].append(member)
        size += n
    return chunks


#: The longest pause between two checkpoints, however long the last one took (a broker that
#: stalled a write for ten minutes must not leave the next fifty minutes without a checkpoint,
#: all of which a crash would then replay).
CHECKPOINT_PAUSE_MAX_S = 60.0


def checkpoint_pause(took_s: float, share: float) -> float:
    """The pause before the next checkpoint after one that took ``took_s``: its cost over the
    share of time checkpoints may take, at most ``CHECKPOINT_PAUSE_MAX_S``.

    >>> checkpoint_pause(0.1, 0.2), checkpoint_pause(600.0, 0.2)
    (0.5, 60.0)
    """
    return min(took_s / share, CHECKPOINT_PAUSE_MAX_S)


def _record_chunks(records: list[ConsumerRecord]) -> Iterator[list[ConsumerRecord]]:
    """``records`` in runs of at most ``DECODE_BYTES`` of values (or ``DECODE_MESSAGES``
    records; one larger record alone)."""
    chunk: list[ConsumerRecord] = []
    size = 0
    for record in records:
        length = len(record.value or b"")
        if chunk and (size + length > DECODE_BYTES or len(chunk) >= DECODE_MESSAGES):
            yield chunk
            chunk, size = [], 0
        chunk.append(record)
        size += length
    if chunk:
        yield chunk


def _instant(epoch_s: float) -> datetime | None:
    """A record's timestamp as a time; None for a record without one (-1)."""
    return datetime.fromtimestamp(epoch_s, tz=UTC) if epoch_s > 0 else None


class _BankError(Exception):
    """The bank raised while scoring: a bug, not bad input (decoding rejects that)."""


def _readable(found: dict[str, bytes], partition: int) -> dict[str, Any]:
    """The stored blocks that decode; the others are left out (their series start afresh and
    are written again), rather than failing every restore of the partition."""
    out = {}
    for key, value in found.items():
        try:
            out[key] = blocks.decode(value)
        except ValueError as exc:
            log.error("detect: partition %d: block %r does not decode (%s); left out",
                      partition, key[:100], str(exc)[:200])  # fmt: skip
    return out


def _transient(exc: BaseException) -> bool:
    """Whether ``exc`` says the broker is away or slow (retried as long as it takes), rather
    than that this input cannot be processed (counted against the record)."""
    if isinstance(exc, KafkaConnectionError | KafkaTimeoutError | ConnectionError | TimeoutError):
        return True
    return isinstance(exc, KafkaError) and bool(getattr(exc, "retriable", False))
