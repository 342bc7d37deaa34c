"""The ingest agents' shared last step: dead-letter rejections, send canonical batches.

Unlike the decoders beside it, ``publish`` does I/O (it is called from the agents, in the shell).
Batches are split by encoded size: one foreign message (an OTLP export of thousands of data
points, re-encoded as JSON about 2.4 times larger than its protobuf) becomes as many records
as it takes to keep each one under ``MAX_BATCH_BYTES``, far below Kafka's 1 MB record limit.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from schemas import LogRecord, MetricPoint
from streams.agents import each_input
from streams.codec import Decoded

if TYPE_CHECKING:
    from streams.pipeline import Pipeline


#: The most bytes one canonical batch record holds (its JSON value).
MAX_BATCH_BYTES = 256 * 1024


def batches(entries: Sequence[bytes], field: str, limit: int = MAX_BATCH_BYTES) -> Iterator[bytes]:
    """``{field: [...]}`` values of consecutive ``entries`` (JSON objects), each at most
    ``limit`` bytes, in order; an entry too large for any batch is the caller's to refuse
    (``oversized``).

    >>> [v.decode() for v in batches([b'{"a":1}', b'{"b":2}', b'{"c":3}'], "p", 24)]
    ['{"p":[{"a":1},{"b":2}]}', '{"p":[{"c":3}]}']
    """
    head = b'{"' + field.encode() + b'":['
    empty = len(head) + 2  # the closing "]}"
    chunk: list[bytes] = []
    size = empty
    for entry in entries:
        extra = len(entry) + (1 if chunk else 0)  # the comma before it
        if chunk and size + extra > limit:
            yield head + b",".join(chunk) + b"]}"
            chunk, size, extra = [], empty, len(entry)
        chunk.append(entry)
        size += extra
    if chunk:
        yield head + b",".join(chunk) + b"]}"


def oversized(entry: bytes, field: str, limit: int = MAX_BATCH_BYTES) -> str | None:
    """Why ``entry`` cannot be sent even in a batch of its own (None: it can).

    >>> oversized(b'{"a":1}', "points", 20)
    >>> oversized(b'{"a":"' + b"x" * 20 + b'"}', "points", 20)
    'entry is 28 bytes as JSON; a points record holds at most 20'
    """
    if len(field) + 7 + len(entry) <= limit:
        return None
    return f"entry is {len(entry)} bytes as JSON; a {field} record holds at most {limit}"


async def publish(
    p: Pipeline,
    message: Any,
    stage: str,
    decoded: Decoded[MetricPoint] | Decoded[LogRecord],
    topic: Any,
    batch_field: str,
) -> None:
    """Dead-letter each rejected entry, then send ``{batch_field: [...]}`` records per service,
    split by encoded size (``batches``); an entry too large for a record of its own is
    dead-lettered with the reason.

    Batches are keyed by service, like every message on the canonical topics.
    """
    for bad in decoded.rejected:
        await p.dead_letters.send(message, stage, bad.reason, bad.payload)
    by_service: dict[str, list[bytes]] = defaultdict(list)
    refused = 0
    for item in decoded.items:
        entry = item.model_dump_json().encode()
        too_big = oversized(entry, batch_field)
        if too_big is not None:
            refused += 1
            await p.dead_letters.send(message, stage, too_big, entry)
            continue
        by_service[item.service].append(entry)
    for service, entries in by_service.items():
        for value in batches(entries, batch_field):
            await topic.send(key=service.encode(), value=value)
    p.count(f"{stage}_entries", len(decoded.items) - refused)
    p.count(f"{stage}_rejected", len(decoded.rejected) + refused)


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

    async def on_message(event: Any) -> None:
        await publish(p, event.message, stage or name, decode(event.message), topic, batch_field)

    @p.app.agent(source, name=name)
    async def ingest(stream: Any) -> None:
        await each_input(p, stream, name, on_message, stage=stage or name, errors="ingest_errors")
