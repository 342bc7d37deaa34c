"""What ``detect`` does when a partition's records fail (anything but the broker being away):
the partition goes back to its checkpoint and takes the records since one at a time; a record
that fails ``detect_max_attempts`` times is dead-lettered with the reason and skipped, and the
partition's other records proceed. Failures of the broker itself are retried, never counted
against a record (:func:`transient`)."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING, Protocol

from aiokafka import ConsumerRecord
from aiokafka.errors import KafkaConnectionError, KafkaError, KafkaTimeoutError

if TYPE_CHECKING:
    from streams.pipeline import Pipeline

log = logging.getLogger(__name__)


class Flow(Protocol):
    """The steps of a partition's flow that a one-by-one replay takes."""

    async def score(self, partition: int, records: list[ConsumerRecord]) -> bool:
        """Decode, score and send the detections of ``records``."""

    async def reload(self, partition: int) -> None:
        """Put the partition's bank back as its checkpoint left it."""

    async def seek_committed(self, partition: int) -> None:
        """Read the partition again from its last committed offset."""

    async def processed(self, partition: int, record: ConsumerRecord) -> None:
        """Record ``record`` as processed and checkpoint the partition."""


class Failures:
    """The partitions taken one record at a time, and how often each of their records failed."""

    def __init__(self, p: Pipeline) -> None:
        self.p = p
        self._careful: dict[int, int] = {}  # partition -> last offset to take one at a time
        self._attempts: dict[tuple[int, int], int] = {}  # (partition, offset) -> failures

    def careful(self, partition: int) -> bool:
        return partition in self._careful

    def begin(self, partition: int, last: int) -> None:
        """Take the partition's records one at a time, up to offset ``last``."""
        self._careful[partition] = last

    def forget(self, partitions: Iterable[int]) -> None:
        gone = set(partitions)
        for part in gone:
            self._careful.pop(part, None)
        self._attempts = {k: n for k, n in self._attempts.items() if k[0] not in gone}

    async def one_by_one(
        self, partition: int, records: list[ConsumerRecord], flow: Flow
    ) -> list[ConsumerRecord]:
        """Score ``records`` one at a time, each checkpointed, up to the last one that was
        in the failed batch; the records after it, to be scored as usual."""
        last = self._careful[partition]
        for i, record in enumerate(records):
            try:
                await flow.score(partition, [record])
            except Exception as exc:
                if transient(exc):
                    raise
                self.p.count("detect_errors")
                if not await self._failed(partition, record, exc, flow):
                    return []  # read again from this record, from the checkpoint before it
            self._attempts.pop((partition, record.offset), None)
            await flow.processed(partition, record)
            if record.offset >= last:
                del self._careful[partition]
                return records[i + 1 :]
        return []

    async def _failed(
        self, partition: int, record: ConsumerRecord, exc: Exception, flow: Flow
    ) -> bool:
        """Count a failure of ``record`` (its partition's bank goes back to the checkpoint
        before it); True once it is skipped, dead-lettered with the reason."""
        await flow.reload(partition)
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
            await flow.seek_committed(partition)
            return False
        self.p.count("detect_records_skipped")
        await self._skip(record, f"failed {failures} times, skipped: {reason}")
        return True

    async def _skip(self, record: ConsumerRecord, reason: str) -> None:
        """Dead-letter ``record`` with ``reason``; a dead letter that fails for anything but
        the broker being away is logged, and the record skipped all the same."""
        try:
            await self.p.dead_letters.send(record, "detect", reason)
        except Exception as letter_exc:
            if transient(letter_exc):
                raise
            log.error(
                "detect: %s[%d]@%d skipped; its dead letter failed too: %s",
                record.topic, record.partition, record.offset, letter_exc,
            )  # fmt: skip


def transient(exc: BaseException) -> bool:
    """Whether ``exc`` says the broker is away or slow (retried as long as it takes), rather
    than that this input cannot be processed (counted against the record)."""
    if isinstance(exc, KafkaConnectionError | KafkaTimeoutError | ConnectionError | TimeoutError):
        return True
    return isinstance(exc, KafkaError) and bool(getattr(exc, "retriable", False))
