"""``detect``'s checkpoints: each points partition's detector banks and silence watch, in
blocks on partition ``p`` of the compacted topic ``<app_id>-detector-blocks`` (key: the block
number, after ``<rule>/`` for a rule's bank, or ``~silence/`` for the watch), written and read
back; and the pause between two checkpoints, from what the last one cost."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from detectors import blocks
from detectors.routing import RoutedBanks
from detectors.silence import SilenceWatch
from streams import faults
from streams.detect.silences import Silences

if TYPE_CHECKING:
    from streams.pipeline import Pipeline

log = logging.getLogger(__name__)

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
#: The longest pause between two checkpoints, however long the last one took (a broker that
#: stalled a write for ten minutes must not leave the next fifty minutes without a checkpoint,
#: all of which a crash would then replay).
CHECKPOINT_PAUSE_MAX_S = 60.0


@dataclass
class Written:
    """A checkpoint as taken: its records (partition, key, value; None deletes the key) and
    their size in bytes, for :meth:`Checkpoints.send`."""

    #: The partitions checkpointed whole (their offsets committed once it is written).
    partitions: list[int]
    records: list[tuple[int, bytes, bytes | None]] = field(default_factory=list)
    size: int = 0
    #: Block parts of deciding policies, written without a commit.
    deciding: int = 0

    def add(self, partition: int, key: bytes, value: bytes | None) -> None:
        self.records.append((partition, key, value))
        self.size += len(value) if value is not None else 0


class Checkpoints:
    """Writes the changed blocks of the partitions' banks (and their silence watches every
    ``WATCH_SAVE_S``), reads them back, and paces the timed checkpoints."""

    def __init__(
        self,
        p: Pipeline,
        producer: AIOKafkaProducer,
        restorer: AIOKafkaConsumer,
        silences: Silences,
    ) -> None:
        self.p = p
        self.producer = producer
        self.restorer = restorer
        self.silences = silences
        self.topic = p.settings.detector_blocks_topic
        self.saved_at: dict[int, float] = {}
        #: The least time between two checkpoints of a partition, from the last one's cost.
        self.pause = 0.0
        self._watch_saved: dict[int, float] = {}  # partition -> when its watch was written
        self._watch_blocks: dict[int, int] = {}  # partition -> blocks its watch took
        self._reading = asyncio.Lock()

    def due(self, unsaved: Iterable[int], now: float) -> set[int]:
        """Those of the ``unsaved`` partitions whose timed checkpoint is due by ``now``."""
        interval = max(self.p.settings.checkpoint_interval_s, self.pause)
        return {part for part in unsaved if now - self.saved_at.get(part, -1e18) >= interval}

    def assigned(self, partition: int) -> None:
        """The partition's state is on the topic as restored (or empty): its watch is written
        again on the usual cadence, not at the partition's first checkpoint."""
        self.saved_at[partition] = time.monotonic()
        self._watch_saved[partition] = self.saved_at[partition]

    def forget(self, partitions: Iterable[int]) -> None:
        for part in partitions:
            self.saved_at.pop(part, None)
            self._watch_saved.pop(part, None)

    def take(
        self,
        banks: Mapping[int, RoutedBanks],
        final: bool = False,
        deciding: Mapping[int, RoutedBanks] | None = None,
    ) -> Written:
        """The changed blocks of ``banks`` (partition -> bank), and their silence watches every
        ``WATCH_SAVE_S`` (or now if ``final``), encoded now: the banks may go on changing while
        :meth:`send` writes them. Of the ``deciding`` banks, only the blocks of the rows whose
        policy moved (a run began, an episode is on; ``take_deciding_blocks``): a new owner
        restores them and reads the points since the last commit again, theirs as stale, and
        the other changed rows wait for the partition's timed checkpoint."""
        out = Written(partitions=sorted(banks))
        for part in out.partitions:
            self._take_watch(part, final, out)
            self._take_bank(part, banks[part].take_dirty_blocks(), out)
        for part, bank in sorted((deciding or {}).items()):
            out.deciding += self._take_bank(part, bank.take_deciding_blocks(), out)
        return out

    async def send(self, written: Written) -> None:
        """Write ``written`` (from :meth:`take`); return once the broker has it all."""
        began = time.monotonic()
        writes: list[asyncio.Future[Any]] = []
        for part, key, value in written.records:
            writes.append(await self.producer.send(self.topic, value, key=key, partition=part))
            await faults.reached_after("mid-checkpoint", writes)
        await asyncio.gather(*writes)
        now = time.monotonic()
        self.p.count("checkpoint_deciding_blocks", written.deciding)
        if not written.partitions:  # a deciding policy's blocks alone: not paced
            self.p.count("checkpoint_bytes", written.size)
            return
        self._paced(now - began, written.size)
        for part in written.partitions:
            self.saved_at[part] = now

    async def write(self, banks: Mapping[int, RoutedBanks], final: bool = False) -> None:
        """:meth:`take` and :meth:`send`."""
        await self.send(self.take(banks, final))

    def _take_bank(self, partition: int, parts: dict[str, dict[str, Any]], out: Written) -> int:
        """Add a bank's block ``parts`` (``take_dirty_blocks``) to ``out``; how many."""
        added = 0
        for block, state in parts.items():
            value = self._value(block, state)
            if value is not None:
                out.add(partition, block.encode(), value)
                added += 1
        return added

    def _value(self, block: str, state: dict[str, Any]) -> bytes | None:
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
        self.pause = checkpoint_pause(took_s, self.p.settings.checkpoint_max_share)

    def _take_watch(self, partition: int, final: bool, out: Written) -> None:
        """Add the partition's silence watch to ``out`` if due, in blocks of at most
        ``WATCH_BLOCK_BYTES`` of series (tombstones for blocks it no longer needs)."""
        watch = self.silences.watches.get(partition)
        now = time.monotonic()
        if watch is None or (
            not final and now - self._watch_saved.get(partition, 0.0) < WATCH_SAVE_S
        ):
            return
        self._watch_saved[partition] = now
        values: list[bytes | None] = list(watch_blocks(watch.to_state(), WATCH_BLOCK_BYTES))
        stale = self._watch_blocks.get(partition, 0) - len(values)
        for i, value in enumerate(values + [None] * stale):
            out.add(partition, f"{WATCH_PREFIX}{i}".encode(), value)
        self._watch_blocks[partition] = len(values)

    async def restore(self, partition: int) -> RoutedBanks:
        """The bank of ``partition`` as its latest blocks on the checkpoint topic left it; its
        silence watch is restored too."""
        found = await self._read(partition)
        self._restore_watch(partition, found)
        bank = self.p.settings.detector_banks()
        stale = bank.load_blocks(_readable(found, partition))
        if stale:
            log.warning(
                "partition %d: %d detector blocks were written under another detector "
                "configuration; their series start afresh",
                partition,
                stale,
            )
        return bank

    async def _read(self, partition: int) -> dict[str, bytes]:
        """The latest value of each key of the partition's checkpoint blocks (one partition at
        a time: the restorer reads one)."""
        async with self._reading:
            return await self._read_one(partition)

    async def _read_one(self, partition: int) -> dict[str, bytes]:
        tp = TopicPartition(self.topic, partition)
        self.restorer.assign([tp])
        await self.restorer.seek_to_beginning(tp)
        end = (await self.restorer.end_offsets([tp]))[tp]
        found: dict[str, bytes] = {}
        while await self.restorer.position(tp) < end:
            batch = await self.restorer.getmany(tp, timeout_ms=500)
            for record in batch.get(tp, []):
                if record.key is None:
                    continue
                key = record.key.decode(errors="replace")
                if record.value is None:
                    found.pop(key, None)
                else:
                    found[key] = record.value
        return found

    def _restore_watch(self, partition: int, found: dict[str, bytes]) -> None:
        """The partition's silence watch from its checkpoint blocks (taken out of ``found``);
        an unreadable or incomplete one starts afresh."""
        raw = {k: found.pop(k) for k in [k for k in found if k.startswith(WATCH_PREFIX)]}
        self._watch_blocks[partition] = len(raw)
        self.silences.forget([partition])
        try:
            head = json.loads(raw[f"{WATCH_PREFIX}0"])
            series: dict[str, Any] = {}
            for i in range(int(head["of"])):
                series.update(json.loads(raw[f"{WATCH_PREFIX}{i}"])["series"])
            head["series"] = series
            watch = SilenceWatch.from_state(self.silences.params(), head)
        except (KeyError, ValueError, TypeError) as exc:
            if raw:
                log.warning("detect: partition %d: silence watch not restored (%s)", partition, exc)
            return
        self.silences.watches[partition] = watch


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


def checkpoint_pause(took_s: float, share: float) -> float:
    """The pause before the next checkpoint after one that took ``took_s``: its cost over the
    share of time checkpoints may take, at most ``CHECKPOINT_PAUSE_MAX_S``.

    >>> checkpoint_pause(0.1, 0.2), checkpoint_pause(600.0, 0.2)
    (0.5, 60.0)
    """
    return min(took_s / share, CHECKPOINT_PAUSE_MAX_S)


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
