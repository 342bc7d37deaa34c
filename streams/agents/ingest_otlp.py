"""``ingest_otlp_metrics`` / ``ingest_otlp_logs``: OTLP in (the collector's kafka exporter
topics, ``otlp_metrics`` and ``otlp_logs``), canonical batches out (``metrics.points.v1``,
``logs.records.v1``).

JSON or protobuf, detected per message (``streams.ingest.otlp``). Entries that do not decode
are dead-lettered one by one to ``<topic>.dlq``; the good ones in the same message go on.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from streams.ingest import otlp
from streams.ingest.publish import publish

if TYPE_CHECKING:
    from streams.app import Pipeline


def attach(p: Pipeline) -> None:
    mappings = p.settings.ingest

    @p.app.agent(p.topics.otlp_metrics, name="ingest_otlp_metrics")
    async def ingest_otlp_metrics(stream: Any) -> None:
        async for event in stream.events():
            message = event.message
            try:
                decoded = otlp.decode_metrics(event.value, mappings)
                await publish(p, message, "ingest_otlp", decoded, p.topics.metrics, "points")
            except Exception as exc:
                p.count("ingest_errors")
                await p.dead_letters.send(message, "ingest_otlp", f"{type(exc).__name__}: {exc}")

    @p.app.agent(p.topics.otlp_logs, name="ingest_otlp_logs")
    async def ingest_otlp_logs(stream: Any) -> None:
        async for event in stream.events():
            message = event.message
            try:
                decoded = otlp.decode_logs(event.value, mappings)
                await publish(p, message, "ingest_otlp", decoded, p.topics.logs, "records")
            except Exception as exc:
                p.count("ingest_errors")
                await p.dead_letters.send(message, "ingest_otlp", f"{type(exc).__name__}: {exc}")
