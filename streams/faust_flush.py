"""A producer flush that waits for every buffered record, installed once by the app.

Faust 0.15.3's ``ProducerBuffer.flush()`` gives up after 0.1 s without a record sent
(``flush_atmost``), with records still queued. The consumer flushes before it commits offsets,
so a slow broker let offsets run ahead of table changelog records still in the buffer: after a
crash, those inputs were not read again and their table writes were lost. Here ``flush`` waits
until the buffer is empty and the record being handed to the client has been handed over (the
Kafka client's own flush, which Faust's producer calls next, then waits for the broker), logging
while it waits. A stopped producer still refuses to flush, as Faust's does.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from faust.transport.producer import ProducerBuffer

log = logging.getLogger(__name__)

#: How long flush waits for one record before it logs that it is still waiting.
WAIT_LOG_S = 5.0
_INFLIGHT = "_warroom_inflight"


async def _send_pending(self: Any, fut: Any) -> None:
    setattr(self, _INFLIGHT, getattr(self, _INFLIGHT, 0) + 1)
    try:
        await _ORIGINAL_SEND(self, fut)
    finally:
        setattr(self, _INFLIGHT, getattr(self, _INFLIGHT, 0) - 1)


async def _flush(self: Any) -> None:
    """Wait until every buffered record has been handed to the Kafka client."""
    waited = 0.0
    while self.size or getattr(self, _INFLIGHT, 0):
        if self.state != "running" and self.size:
            raise RuntimeError("Cannot flush: Producer not Running")
        self.message_sent.clear()
        try:
            await asyncio.wait_for(self.message_sent.wait(), timeout=WAIT_LOG_S)
        except TimeoutError:
            waited += WAIT_LOG_S
            log.warning("producer flush: %d records still buffered after %.0f s; waiting",
                        self.size, waited)  # fmt: skip


_ORIGINAL_SEND = ProducerBuffer._send_pending
_ORIGINAL_FLUSH = ProducerBuffer.flush


def install() -> None:
    """Replace Faust's flush (idempotent)."""
    ProducerBuffer._send_pending = _send_pending  # type: ignore[method-assign]
    ProducerBuffer.flush = _flush  # type: ignore[method-assign]
