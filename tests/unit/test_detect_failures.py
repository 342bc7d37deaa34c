"""``streams.detect.failures``: a failing partition's records taken one at a time, over a fake
flow (no broker): a record that fails ``detect_max_attempts`` times is dead-lettered and
skipped, the others proceed, and a failure of the broker itself is never counted."""

from __future__ import annotations

from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import pytest
from aiokafka.errors import KafkaConnectionError

from streams.detect.failures import Failures, transient
from streams.settings import Settings

PARTITION = 0


@dataclass
class Letters:
    sent: list[tuple[int, str, str]] = field(default_factory=list)

    async def send(self, record: Any, stage: str, reason: str) -> None:
        self.sent.append((record.offset, stage, reason))


@dataclass
class Flow:
    """Records ``bad`` raise ``error`` when scored; every step is logged."""

    bad: set[int]
    error: Exception = field(default_factory=lambda: ValueError("bank raised"))
    steps: list[tuple[str, int | None]] = field(default_factory=list)

    async def score(self, partition: int, records: list[Any]) -> bool:
        (record,) = records
        self.steps.append(("score", record.offset))
        if record.offset in self.bad:
            raise self.error
        return False

    async def reload(self, partition: int) -> None:
        self.steps.append(("reload", None))

    async def seek_committed(self, partition: int) -> None:
        self.steps.append(("seek", None))

    async def processed(self, partition: int, record: Any) -> None:
        self.steps.append(("processed", record.offset))


def pipeline(attempts: int) -> Any:
    counters: dict[str, int] = {}

    def count(name: str, n: int = 1) -> None:
        counters[name] = counters.get(name, 0) + n

    return SimpleNamespace(
        settings=Settings(detect_max_attempts=attempts),
        counters=counters,
        count=count,
        dead_letters=Letters(),
    )


def records(*offsets: int) -> list[Any]:
    return [
        SimpleNamespace(topic="metrics.points.v1", partition=PARTITION, offset=o) for o in offsets
    ]


async def test_a_record_that_keeps_failing_is_dead_lettered_and_the_others_proceed() -> None:
    p = pipeline(attempts=2)
    failures, flow = Failures(p), Flow(bad={1})
    failures.begin(PARTITION, last=2)  # offsets up to 2 were in the batch that failed

    # First pass: record 1 fails once; back to the checkpoint, read again from the commit.
    assert await failures.one_by_one(PARTITION, records(0, 1, 2, 3), flow) == []
    assert flow.steps == [("score", 0), ("processed", 0), ("score", 1), ("reload", None),
                          ("seek", None)]  # fmt: skip
    assert failures.careful(PARTITION)

    # Second pass: its second failure is the last allowed: dead-lettered, skipped.
    flow.steps.clear()
    rest = await failures.one_by_one(PARTITION, records(1, 2, 3), flow)
    assert [r.offset for r in rest] == [3]
    assert flow.steps == [("score", 1), ("reload", None), ("processed", 1), ("score", 2),
                          ("processed", 2)]  # fmt: skip
    assert not failures.careful(PARTITION)
    assert p.dead_letters.sent == [
        (1, "detect", "failed 2 times, skipped: ValueError: bank raised")
    ]
    assert p.counters == {"detect_errors": 2, "detect_records_skipped": 1}


async def test_the_broker_being_away_is_raised_and_counted_against_no_record() -> None:
    p = pipeline(attempts=1)
    failures, flow = Failures(p), Flow(bad={0}, error=KafkaConnectionError())
    failures.begin(PARTITION, last=0)
    with pytest.raises(KafkaConnectionError):
        await failures.one_by_one(PARTITION, records(0), flow)
    assert p.counters == {}
    assert p.dead_letters.sent == []
    assert failures.careful(PARTITION)


async def test_a_revoked_partition_forgets_its_failures() -> None:
    p = pipeline(attempts=2)
    failures, flow = Failures(p), Flow(bad={5})
    failures.begin(PARTITION, last=5)
    await failures.one_by_one(PARTITION, records(5), flow)  # one failure of two counted
    failures.forget({PARTITION})
    assert not failures.careful(PARTITION)
    # Back on this worker: the record's earlier failure is not counted again.
    failures.begin(PARTITION, last=5)
    await failures.one_by_one(PARTITION, records(5), flow)
    assert p.dead_letters.sent == []


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (KafkaConnectionError(), True),
        (ConnectionResetError(), True),
        (TimeoutError(), True),
        (ValueError("bad point"), False),
    ],
    ids=["kafka-connection", "connection-reset", "timeout", "bad-input"],
)
def test_transient(error: Exception, expected: bool) -> None:
    assert transient(error) is expected
