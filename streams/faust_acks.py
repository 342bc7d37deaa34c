"""Acknowledgements that never let a commit pass a message that will be read again, installed
once by the app.

Faust 0.15.3's stream skips a message fetched before the latest rebalance (its generation is not
the consumer's) or handed out while a rebalance has suspended the flow, and acknowledges it as if
it had been processed: "we want to ack the filtered out message, otherwise the lag would
increase". The partition is then read again from its committed offset, but meanwhile the skipped
offset counts as done: the next commit can pass it, and a crash before the message is read again
loses it (a page that was never delivered, after a SIGKILL shortly after a restart). Here such a
message is let go (no longer awaited by the rebalance) without its offset being recorded, so it
is committed only once it has been processed in the current generation; a message whose
processing ends during a rebalance is processed again by the partition's next owner (at least
once, as every handler expects).
"""

from __future__ import annotations

import logging
from typing import Any

from faust.transport.consumer import Consumer
from faust.types.tuples import ack_lock
from mode.utils.futures import notify


def _ack(self: Any, message: Any) -> bool:
    app = self.app
    if message.generation_id == app.consumer_generation_id and app.flow_control.is_active():
        return bool(_ORIGINAL_ACK(self, message))
    log.info(
        "message %s[%d]@%d let go uncounted (generation %s, now %s; flow %s)",
        message.topic, message.partition, message.offset, message.generation_id,
        app.consumer_generation_id, app.flow_control.is_active(),
    )  # fmt: skip
    with ack_lock:
        if not message.acked:
            message.acked = True
            self._unacked_messages.discard(message)
            notify(self._waiting_for_ack)
    return False


log = logging.getLogger(__name__)

_ORIGINAL_ACK = Consumer.ack


def install() -> None:
    """Replace Faust's consumer ``ack`` (idempotent)."""
    Consumer.ack = _ack  # type: ignore[method-assign]
