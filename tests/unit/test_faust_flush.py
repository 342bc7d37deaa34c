"""The producer's flush waits for every buffered record: with a slow broker, Faust 0.15.3's own
flush returned after 0.1 s with records still queued, and the consumer then committed offsets
past table writes that had not been sent."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

from faust.transport.producer import ProducerBuffer

from streams import faust_flush


class SlowChannel:
    """Stands for a topic whose broker takes ``delay_s`` to take each record."""

    def __init__(self, delay_s: float) -> None:
        self.delay_s = delay_s
        self.published: list[int] = []

    async def publish_message(self, fut: Any, wait: bool = False) -> None:
        await asyncio.sleep(self.delay_s)
        self.published.append(fut.n)


async def flushed_after(records: int, delay_s: float) -> tuple[int, int]:
    """Queue ``records``, flush; how many were handed over when flush returned, of how many."""
    buffer = ProducerBuffer()
    buffer.app = SimpleNamespace(conf=SimpleNamespace(producer_threaded=False))  # type: ignore[assignment]
    channel = SlowChannel(delay_s)
    await buffer.start()
    try:
        for n in range(records):
            buffer.put(SimpleNamespace(n=n, message=SimpleNamespace(channel=channel)))  # type: ignore[arg-type]
        await buffer.flush()
        handed_over = len(channel.published)
        async with asyncio.timeout(10):  # let the rest go before stopping the buffer
            while len(channel.published) < records:
                await asyncio.sleep(0.05)
        return handed_over, records
    finally:
        await buffer.stop()


async def test_flush_returns_only_once_every_record_is_handed_over() -> None:
    faust_flush.install()
    done, total = await flushed_after(records=4, delay_s=0.3)  # each record outlasts 0.1 s
    assert done == total


async def test_faust_s_own_flush_gives_up_with_records_pending() -> None:
    # The behaviour the patch exists for, pinned so a Faust upgrade that fixes it is noticed.
    patched, sending = ProducerBuffer.flush, ProducerBuffer._send_pending
    ProducerBuffer.flush = faust_flush._ORIGINAL_FLUSH  # type: ignore[method-assign]
    ProducerBuffer._send_pending = faust_flush._ORIGINAL_SEND  # type: ignore[method-assign]
    try:
        done, total = await flushed_after(records=4, delay_s=0.3)
    finally:
        ProducerBuffer.flush, ProducerBuffer._send_pending = patched, sending  # type: ignore[method-assign]
    assert done < total
