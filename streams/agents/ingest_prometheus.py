"""``ingest_prometheus``: prometheus-kafka-adapter samples in (``prometheus.metrics.v1``),
canonical point batches out (``metrics.points.v1``).

Decoding lives in ``streams.ingest.prometheus``; bad samples are dead-lettered one by one to
``<topic>.dlq`` and the good ones in the same message go on.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from streams.ingest import prometheus
from streams.ingest.publish import publish

if TYPE_CHECKING:
    from streams.app import Pipeline


def attach(p: Pipeline) -> None:
    mappings = p.settings.ingest

    @p.app.agent(p.topics.prometheus, name="ingest_prometheus")
    async def ingest_prometheus(stream: Any) -> None:
        async for event in stream.events():
            message = event.message
            try:
                decoded = prometheus.decode(event.value, mappings)
                await publish(p, message, "ingest_prometheus", decoded, p.topics.metrics, "points")
            except Exception as exc:
                p.count("ingest_errors")
                reason = f"{type(exc).__name__}: {exc}"
                await p.dead_letters.send(message, "ingest_prometheus", reason)
