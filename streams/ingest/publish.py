"""The ingest agents' shared last step: dead-letter rejections, send canonical batches.

Unlike the decoders beside it, this does I/O (it is called from the agents, in the shell).
"""

from __future__ import annotations

from collections import defaultdict
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
