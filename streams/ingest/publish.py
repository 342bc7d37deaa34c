"""The ingest agents' shared last step: dead-letter rejections, send canonical batches.

Unlike the decoders beside it, this does I/O (it is called from the agents, in the shell).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from schemas import LogRecord, MetricPoint
from streams.codec import Decoded

if TYPE_CHECKING:
    from streams.app import Pipeline


async def publish(
    p: Pipeline,
    message: Any,
    stage: str,
    decoded: Decoded[MetricPoint] | Decoded[LogRecord],
    topic: Any,
    batch_field: str,
) -> None:
    """Dead-letter each rejected entry, then send one ``{batch_field: [...]}`` per service.

    Batches are keyed by service, like every message on the canonical topics.
    """
    for bad in decoded.rejected:
        await p.dead_letters.send(message, stage, bad.reason, bad.payload)
    by_service: dict[str, list[bytes]] = defaultdict(list)
    for item in decoded.items:
        by_service[item.service].append(item.model_dump_json().encode())
    for service, entries in by_service.items():
        value = b'{"' + batch_field.encode() + b'":[' + b",".join(entries) + b"]}"
        await topic.send(key=service.encode(), value=value)
    p.count(f"{stage}_entries", len(decoded.items))
    p.count(f"{stage}_rejected", len(decoded.rejected))


def ingest_agent(
    p: Pipeline,
    source: Any,
    name: str,
    decode: Callable[[Any], Decoded[MetricPoint] | Decoded[LogRecord]],
    topic: Any,
    batch_field: str,
    stage: str | None = None,
) -> None:
    """Register an agent that decodes each message of ``source`` with ``decode`` (given the
    Kafka message) and publishes the canonical batches to ``topic``; a decoder that raises
    dead-letters the whole message with the reason (``stage``, default the agent's name), and
    the agent carries on."""

    @p.app.agent(source, name=name)
    async def ingest(stream: Any) -> None:
        async for event in stream.events():
            message = event.message
            try:
                await publish(p, message, stage or name, decode(message), topic, batch_field)
            except Exception as exc:
                p.count("ingest_errors")
                reason = f"{type(exc).__name__}: {exc}"
                await p.dead_letters.send(message, stage or name, reason)
