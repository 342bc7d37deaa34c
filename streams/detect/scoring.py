"""``detect``'s scoring of one partition's records: decoded into columns a few dozen messages
at a time (invalid entries dead-lettered), admitted into the partition's banks (points of new
series beyond a limit or outside their detector's domain dead-lettered with the reason), scored
in vectorized rounds, and each firing sent to ``detections.v1``."""

from __future__ import annotations

import asyncio
import json
import time
from bisect import bisect_right
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
from aiokafka import AIOKafkaProducer, ConsumerRecord
from numpy.typing import NDArray

from detectors.bank import Fired, Rows, detection
from detectors.cardinality import Refusal
from detectors.routing import RoutedBanks
from responders.lifecycle import routing_key
from schemas import Detection
from streams.codec import PointBatch, decode_points, decode_points_many, encode
from streams.detect.silences import Silences
from streams.ingest.publish import batches

if TYPE_CHECKING:
    from streams.pipeline import Pipeline

#: Messages are decoded this many bytes (or messages) at a time: a few thousand points, whose
#: columns stay in cache while they are checked, admitted and refused.
DECODE_BYTES = 384 * 1024
DECODE_MESSAGES = 2000


def record_chunks(records: list[ConsumerRecord]) -> Iterator[list[ConsumerRecord]]:
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


class BankError(Exception):
    """The bank raised while scoring: a bug, not bad input (decoding rejects that)."""


@dataclass
class Intake:
    """A partition's records as columns of the points kept for scoring."""

    #: Each record with points, and the position of its first point among those decoded.
    taken: list[tuple[ConsumerRecord, int]] = field(default_factory=list)
    rows: list[Rows] = field(default_factory=list)
    values: list[NDArray[np.float64]] = field(default_factory=list)
    ts: list[NDArray[np.float64]] = field(default_factory=list)
    #: Positions among those decoded of the points kept (a detector's domain may refuse some).
    kept: list[Any] = field(default_factory=list)
    decoded: int = 0

    def add(self, decoded: PointBatch, rows: Rows, keep: Any) -> None:
        """Add a chunk's points, those at ``keep`` only unless it is None."""
        at = self.decoded
        if keep is not None:
            self.kept.append(at + keep)
            self.rows.append(rows[keep])
            self.values.append(decoded.values[keep])
            self.ts.append(decoded.ts[keep])
        else:
            self.kept.append(np.arange(at, at + len(decoded.series)))
            self.rows.append(rows)
            self.values.append(decoded.values)
            self.ts.append(decoded.ts)
        self.decoded += len(decoded.series)


@dataclass(frozen=True)
class Columns:
    """The kept points of an :class:`Intake`, concatenated."""

    rows: Rows
    values: NDArray[np.float64]
    ts: NDArray[np.float64]

    @classmethod
    def of(cls, intake: Intake) -> Columns:
        return cls(
            np.concatenate(intake.rows), np.concatenate(intake.values), np.concatenate(intake.ts)
        )


class Scorer:
    """Scores a partition's records with its banks and sends what fires."""

    def __init__(self, p: Pipeline, producer: AIOKafkaProducer, silences: Silences) -> None:
        self.p = p
        self.producer = producer
        self.silences = silences

    async def score(self, partition: int, bank: RoutedBanks, records: list[ConsumerRecord]) -> bool:
        """Decode, score and send the detections of ``records``; True if the policy is busy."""
        p = self.p
        intake = await self._take(bank, records)
        cols = Columns.of(intake)
        if not len(cols.ts):
            return False
        try:
            _, fired = await asyncio.to_thread(
                bank.observe_rows, cols.rows, cols.values, cols.ts, ends=p.settings.detect_resolves
            )
        except Exception as exc:
            raise BankError(f"{type(exc).__name__}: {exc}") from exc
        p.count("points_processed", len(cols.ts))
        p.counters["last_point_processed_at"] = int(datetime.now(tz=UTC).timestamp())
        received_s = max(r.timestamp for r in records) / 1000
        await self.silences.observe(partition, cols.rows, cols.ts, bank.series, received_s)
        if fired:
            await self._send(bank, intake, cols, fired)
        return bool(fired) or bank.deciding

    async def _take(self, bank: RoutedBanks, records: list[ConsumerRecord]) -> Intake:
        """``records`` decoded and admitted into ``bank``, what is refused dead-lettered,
        ``DECODE_BYTES`` of messages at a time."""
        s = self.p.settings
        intake = Intake()
        for i, chunk in enumerate(record_chunks(records)):
            decoded = decode_points_many(
                [r.value for r in chunk], [r.timestamp / 1000 for r in chunk], s.max_future_s
            )
            await self._rejected(chunk, decoded, intake)
            if i == 0:
                # Only before this call admits anything: a series admitted from an earlier
                # chunk has no point observed yet (scored after the last chunk), so a sweep
                # here would evict it with its points still to be scored on its row.
                evict(self.p, bank, decoded)
            chunk_rows, over = bank.admit(decoded.series)
            keep = await self._refuse(bank, chunk, decoded, chunk_rows, over)
            intake.add(decoded, chunk_rows, keep)
        return intake

    async def _rejected(
        self, chunk: list[ConsumerRecord], decoded: PointBatch, intake: Intake
    ) -> None:
        """Dead-letter the chunk's invalid entries; note the records with points in it."""
        for record, (a, b), rejected in zip(chunk, decoded.spans, decoded.rejected, strict=True):
            for bad in rejected:
                await self.p.dead_letters.send(record, "decode", bad.reason, bad.payload)
            if b > a:
                intake.taken.append((record, intake.decoded + a))

    async def _send(
        self, bank: RoutedBanks, intake: Intake, cols: Columns, fired: list[Fired]
    ) -> None:
        """Send the detection of each firing; return once the broker has them."""
        s, p = self.p.settings, self.p
        position = np.concatenate(intake.kept)
        starts = [start for _, start in intake.taken]
        sent = []
        for f in fired:
            at_point = int(position[f.index])
            record, start = intake.taken[bisect_right(starts, at_point) - 1]
            found = self._detection(bank, cols, f, record, at_point - start)
            key = routing_key(found, s.group_by).encode()
            sent.append(await self.producer.send(s.topics.detections, encode(found), key=key))
            p.count("detections_emitted")
            if f.decision.resolved:
                p.count("detections_resolved")
        # The checkpoint records these points as seen: their detections reach the broker
        # first, or a crash in between would skip them for good.
        await asyncio.gather(*sent)

    def _detection(
        self, bank: RoutedBanks, cols: Columns, f: Fired, record: ConsumerRecord, nth: int
    ) -> Detection:
        """The detection of ``f``, the ``nth`` point of ``record``."""
        # Decoded again: only the few points that fire need their names and labels.
        received_s = record.timestamp / 1000
        point = decode_points(record.value, received_s, self.p.settings.max_future_s).points[nth]
        row = int(cols.rows[f.index])
        return detection(
            f,
            detector=bank.detector(row),
            series=bank.series(row),
            service=point.service,
            metric=point.metric,
            labels=point.labels or {},
            ts=float(cols.ts[f.index]),
            value=point.value,
        ).model_copy(update={"received_at": _instant(received_s)})

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
        the points that are left (None: all of them).

        A message's points refused by one limit go in as few dead letters as their size allows
        (a ``{"points": [...]}`` batch each), so a label explosion costs a dead letter per
        message, not per point."""
        refused = _refused(bank, decoded, rows, over)
        if refused is None:
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
            payload = _entry(points[m][i - starts[m]], decoded, i)
            if i in over:
                self.p.count(f"series_refused_{over[i].limit}")
                limited_out.setdefault((m, over[i].reason), []).append(payload)
                continue
            reason = bank.why_refused(int(rows[i]), float(decoded.values[i]))
            await self.p.dead_letters.send(chunk[m], "detect", reason, payload)
        for (m, reason), entries in limited_out.items():
            for letter in batches(entries, "points"):
                await self.p.dead_letters.send(chunk[m], "detect", reason, letter)
        return np.flatnonzero(~refused)


def _refused(
    bank: RoutedBanks, decoded: PointBatch, rows: Rows, over: dict[int, Refusal]
) -> NDArray[np.bool_] | None:
    """Which points are refused, by their detector's domain or a series limit (None: none)."""
    refused = bank.refused(rows, decoded.values)
    if over:
        limited = np.zeros(len(rows), dtype=np.bool_)
        limited[list(over)] = True
        refused = limited if refused is None else refused | limited
    if refused is None or not refused.any():
        return None
    return refused


def _entry(point: Any, decoded: PointBatch, i: int) -> bytes:
    """The refused point ``i`` of ``decoded`` as a point message of its own."""
    entry = {
        "ts": datetime.fromtimestamp(float(decoded.ts[i]), tz=UTC).isoformat(),
        "service": point.service,
        "metric": point.metric,
        "value": float(decoded.values[i]),
        "labels": point.labels or {},
    }
    return json.dumps(entry, separators=(",", ":")).encode()


class Counting(Protocol):
    """What :func:`evict` uses of the pipeline: its counters."""

    def count(self, name: str, n: int = 1) -> None: ...


def evict(p: Counting, bank: RoutedBanks, decoded: PointBatch) -> None:
    """Evict the series idle as of the chunk's newest point; never past the wall clock, so
    a point from the far future does not evict every series."""
    if len(decoded.ts):
        now = min(float(decoded.ts.max()), time.time())
        p.count("series_evicted", len(bank.evict_idle(now)))


def _instant(epoch_s: float) -> datetime | None:
    """A record's timestamp as a time; None for a record without one (-1)."""
    return datetime.fromtimestamp(epoch_s, tz=UTC) if epoch_s > 0 else None
