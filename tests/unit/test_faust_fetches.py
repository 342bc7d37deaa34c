"""``streams.faust_acks``: records fetched before a seek of the committed offsets are let go,
and offsets a fetch skipped are never counted as processed."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any

import pytest
from faust.transport.consumer import Consumer
from faust.types import TP as FaustTP
from intervaltree import IntervalTree

from streams import faust_acks

TP = FaustTP("detections.v1", 2)


def _batch(offsets: list[int]) -> Any:
    """A stand-in for Faust's ``Consumer.getmany``: one fetch of these offsets of ``TP``."""

    async def getmany(self: Any, timeout: float) -> AsyncIterator[tuple[Any, Any]]:
        for offset in offsets:
            yield TP, SimpleNamespace(offset=offset)

    return getmany


class _Consumer:
    def __init__(self) -> None:
        self.sought: list[tuple[Any, int]] = []
        self._read_offset: dict[Any, int | None] = {}  # Faust's, set for each record handed on

    async def seek(self, tp: Any, offset: int) -> None:
        self.sought.append((tp, offset))


async def _drain(
    monkeypatch: pytest.MonkeyPatch, consumer: _Consumer, offsets: list[int]
) -> list[int]:
    monkeypatch.setattr(faust_acks, "_ORIGINAL_GETMANY", _batch(offsets))
    return [m.offset async for _, m in faust_acks._getmany(consumer, 1.0)]


@pytest.fixture
def following(monkeypatch: pytest.MonkeyPatch) -> dict[tuple[str, int], int]:
    """The partition followed from offset 10, as after a seek to its committed offset 10."""
    monkeypatch.setattr(faust_acks, "_SOUGHT_BACK", {})
    monkeypatch.setattr(faust_acks, "_GONE", {})
    followed = {(TP.topic, TP.partition): 10}
    monkeypatch.setattr(faust_acks, "_NEXT", followed)
    return followed


async def test_records_in_order_from_the_committed_offset_are_handed_on(
    monkeypatch: pytest.MonkeyPatch, following: dict[tuple[str, int], int]
) -> None:
    consumer = _Consumer()
    assert await _drain(monkeypatch, consumer, [10, 11, 12]) == [10, 11, 12]
    assert await _drain(monkeypatch, consumer, [13]) == [13]
    assert consumer.sought == []


async def test_a_fetch_from_before_a_seek_is_read_again_from_the_committed_offset(
    monkeypatch: pytest.MonkeyPatch, following: dict[tuple[str, int], int]
) -> None:
    # Fetched at offset 14 before the seek to 10: handed on, 14 would move Faust's read offset
    # past 10..13 (dropped as read when they came) and count them as a gap, committed as done.
    consumer = _Consumer()
    assert await _drain(monkeypatch, consumer, [14, 15, 16]) == []
    assert consumer.sought == [(TP, 10)]
    assert await _drain(monkeypatch, consumer, [10, 11, 12, 13, 14]) == [10, 11, 12, 13, 14]


async def test_records_read_already_are_let_go(
    monkeypatch: pytest.MonkeyPatch, following: dict[tuple[str, int], int]
) -> None:
    consumer = _Consumer()
    assert await _drain(monkeypatch, consumer, [8, 9, 10, 11]) == [10, 11]
    assert consumer.sought == []


async def test_offsets_the_broker_no_longer_has_are_passed_after_one_seek_back(
    monkeypatch: pytest.MonkeyPatch, following: dict[tuple[str, int], int]
) -> None:
    consumer = _Consumer()
    assert await _drain(monkeypatch, consumer, [30, 31]) == []
    # Read again from 10, the broker answers from 30: 10..29 are gone (retention).
    assert await _drain(monkeypatch, consumer, [30, 31]) == [30, 31]
    assert consumer.sought == [(TP, 10)]


async def test_a_partition_not_followed_is_handed_on_as_fetched(
    monkeypatch: pytest.MonkeyPatch, following: dict[tuple[str, int], int]
) -> None:
    following.clear()  # a table's changelog: table recovery positions it
    assert await _drain(monkeypatch, _Consumer(), [3, 7, 5]) == [3, 7, 5]


async def test_a_fetch_that_skips_offsets_does_not_count_them_as_processed() -> None:
    # Faust's fetch loop calls _add_gap(tp, last read + 1, offset) when a record comes after
    # offsets it has not seen; counted as processed, they let a commit pass unread records.
    faust_acks.install()
    gaps: defaultdict[Any, IntervalTree] = defaultdict(IntervalTree)
    consumer: Any = SimpleNamespace(_gap=gaps, _committed_offset={TP: 5})
    await Consumer._add_gap(consumer, TP, 6, 9)
    assert not gaps[TP]


def consumer_with(acked: list[int], committed: int | None, tp: Any = TP) -> Any:
    """Faust consumer state for a commit: ``acked`` offsets of ``tp`` processed, ``committed``
    its committed offset."""
    consumer: Any = SimpleNamespace(
        _acked=defaultdict(list), _acked_index=defaultdict(set),
        _committed_offset=defaultdict(lambda: None),
    )  # fmt: skip
    consumer._acked[tp].extend(acked)
    consumer._acked_index[tp].update(acked)
    consumer._committed_offset[tp] = committed
    return consumer


@pytest.mark.parametrize(
    ("acked", "committed", "sought_to", "commit"),
    [
        ([5, 6, 7], 4, 4, None),  # 4, the next to read, never processed: no commit past it
        ([4, 5, 6, 8], 4, 4, 7),
        ([11, 12], None, 10, None),  # nothing committed yet: from where it was sought to
        ([10, 11], None, 10, 12),
        ([1, 2], 0, 0, None),  # offset 0 is an offset like any other
    ],
    ids=["first-missing", "run-from-committed", "first-missing-uncommitted", "uncommitted",
         "zero-missing"],
)  # fmt: skip
def test_a_commit_moves_only_from_the_committed_offset(
    monkeypatch: pytest.MonkeyPatch,
    acked: list[int], committed: int | None, sought_to: int, commit: int | None,
) -> None:  # fmt: skip
    # Faust's own rule took the committed offset for the last one processed: with 4 committed
    # (Kafka: 4 is the next to read) and 5, 6, 7 processed, it committed 8, past 4 unread.
    monkeypatch.setattr(faust_acks, "_FROM", {(TP.topic, TP.partition): sought_to})
    monkeypatch.setattr(faust_acks, "_GONE", {})
    faust_acks.install()
    assert Consumer._new_offset(consumer_with(acked, committed), TP) == commit


async def test_a_commit_passes_offsets_the_broker_no_longer_has(
    monkeypatch: pytest.MonkeyPatch, following: dict[tuple[str, int], int]
) -> None:
    # Committed 10, retention deleted up to 29: the fetch found 30 first (after one seek back),
    # and the commit must not wait for offsets that will never come.
    monkeypatch.setattr(faust_acks, "_FROM", {(TP.topic, TP.partition): 10})
    consumer = _Consumer()
    assert await _drain(monkeypatch, consumer, [30]) == []
    assert await _drain(monkeypatch, consumer, [30, 31]) == [30, 31]
    faust_acks.install()
    assert Consumer._new_offset(consumer_with([30, 31], 10), TP) == 32


async def test_a_partition_revoked_before_it_is_sought_back_does_not_stop_the_fetch(
    monkeypatch: pytest.MonkeyPatch, following: dict[tuple[str, int], int]
) -> None:
    class Revoked(_Consumer):
        async def seek(self, tp: Any, offset: int) -> None:
            raise RuntimeError(f"{tp} is not assigned")

    assert await _drain(monkeypatch, Revoked(), [14, 15]) == []
