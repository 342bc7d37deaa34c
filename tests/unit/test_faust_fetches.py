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


def _batch(offsets: list[int], during: dict[int, Any]) -> Any:
    """A stand-in for Faust's ``Consumer.getmany``: yields the offsets, running ``during[o]``
    while the fetch loop handles offset ``o`` (before it asks for the next record)."""

    async def getmany(self: Any, timeout: float) -> AsyncIterator[tuple[Any, Any]]:
        for offset in offsets:
            yield TP, SimpleNamespace(offset=offset)
            if offset in during:
                during[offset]()

    return getmany


async def _drain(consumer: Any) -> list[int]:
    return [m.offset async for _, m in faust_acks._getmany(consumer, 1.0)]


async def test_the_rest_of_a_fetch_from_before_a_seek_is_let_go(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def seek() -> None:  # a rebalance, or the watchdog, seeks to the committed offsets
        faust_acks._SEEKS[0] += 2

    monkeypatch.setattr(faust_acks, "_ORIGINAL_GETMANY", _batch([10, 11, 12, 13], {11: seek}))
    assert await _drain(object()) == [10, 11]
    # The next fetch, after the seek, is delivered whole.
    monkeypatch.setattr(faust_acks, "_ORIGINAL_GETMANY", _batch([10, 11, 12, 13], {}))
    assert await _drain(object()) == [10, 11, 12, 13]


async def test_a_fetch_that_skips_offsets_does_not_count_them_as_processed() -> None:
    # Faust's fetch loop calls _add_gap(tp, last read + 1, offset) when a record comes after
    # offsets it has not seen; counted as processed, they let a commit pass unread records.
    faust_acks.install()
    gaps: defaultdict[Any, IntervalTree] = defaultdict(IntervalTree)
    consumer: Any = SimpleNamespace(_gap=gaps, _committed_offset={TP: 5})
    await Consumer._add_gap(consumer, TP, 6, 9)
    assert not gaps[TP]
