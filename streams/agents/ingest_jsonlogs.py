"""``ingest_jsonlogs``: JSON log events from Vector or Fluent Bit in (``logs.json.v1``),
canonical record batches out (``logs.records.v1``).

Decoding lives in ``streams.ingest.jsonlogs`` (field names from ``Settings.ingest``); an event
without a time field takes the Kafka message's timestamp. Bad events are dead-lettered one by
one to ``<topic>.dlq`` and the good ones in the same message go on.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from streams.ingest import jsonlogs
from streams.ingest.publish import publish

if TYPE_CHECKING:
    from streams.app import Pipeline


def attach(p: Pipeline) -> None:
    mappings = p.settings.ingest

    @p.app.agent(p.topics.json_logs, name="ingest_jsonlogs")
    async def ingest_jsonlogs(stream: Any) -> None:
        async for event in stream.events():
            message = event.message
            try:
                decoded = jsonlogs.decode(event.value, mappings, fallback_ts=message.timestamp)
                await publish(p, message, "ingest_jsonlogs", decoded, p.topics.logs, "records")
            except Exception as exc:
                p.count("ingest_errors")
                reason = f"{type(exc).__name__}: {exc}"
                await p.dead_letters.send(message, "ingest_jsonlogs", reason)
