"""One agent per module; each exposes ``attach(pipeline)``.

Every agent reads its stream with :func:`each_input`, which holds the one error policy: one bad
input never stops the stream. An input that raises is dead-lettered with the agent's stage and
the reason, counted, and the next one is read.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from faust.exceptions import PartitionsMismatch

from streams import faust_acks

if TYPE_CHECKING:
    from streams.pipeline import Pipeline

log = logging.getLogger(__name__)

#: Seconds before an input is handled again after a table refused to write for a partition
#: count the consumer's metadata does not confirm yet (:class:`PartitionsMismatch`).
METADATA_RETRY_S = 1.0


class FirstInput:
    """Logs an agent's first input after the worker started (topic, partition, offset), once:
    after a crash and restart the worker log then says which stages have resumed and which
    still wait for input.

    >>> import types
    >>> first = FirstInput("open_incidents")
    >>> message = types.SimpleNamespace(topic="detections.v1", partition=1, offset=7)
    >>> first(message), first(message)
    (True, False)
    """

    def __init__(self, agent: str) -> None:
        self.agent = agent
        self.seen = False

    def __call__(self, message: Any) -> bool:
        """Whether this was the first input (and so was logged)."""
        if self.seen:
            return False
        self.seen = True
        log.info(
            "%s: first input since start: %s[%s]@%s",
            self.agent, message.topic, message.partition, message.offset,
        )  # fmt: skip
        return True


async def each_input(
    p: Pipeline, stream: Any, agent: str, handle: Callable[[Any], Awaitable[None]], *,
    stage: str, errors: str,
) -> None:  # fmt: skip
    """Await ``handle(event)`` for each event of ``stream``, in order. An event whose handling
    raises is dead-lettered (``stage``, ``<type>: <message>``), counted under ``errors``, and
    the stream goes on (what ``handle`` sent or wrote before it raised stays). The first input
    is logged (:class:`FirstInput`).

    A table that refuses a write because the consumer's metadata does not yet show its
    changelog with the source topic's partition count (``PartitionsMismatch``: a topic created
    moments ago) says nothing about the input: it is handled again, every
    ``METADATA_RETRY_S``, until the metadata catches up (handlers are idempotent: a second pass
    sends the same records). Dead-lettering it would lose a page for a few seconds of metadata.
    """
    first = FirstInput(agent)
    async for event in stream.events():
        first(event.message)
        for attempt in itertools.count(1):
            try:
                await handle(event)
            except asyncio.CancelledError:  # a stop or a revocation: this input was not handled
                faust_acks.abandon(event.message)
                raise
            except PartitionsMismatch as exc:  # the cluster's metadata, not the input
                m = event.message
                log.warning("%s: %s[%s]@%s handled again in %.1fs (attempt %d): %s", agent,
                            m.topic, m.partition, m.offset, METADATA_RETRY_S, attempt,
                            exc)  # fmt: skip
                await asyncio.sleep(METADATA_RETRY_S)
                continue
            except Exception as exc:
                p.count(errors)
                await p.dead_letters.send(event.message, stage, f"{type(exc).__name__}: {exc}")
            break
