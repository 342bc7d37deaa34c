"""``ingest_prometheus``: prometheus-kafka-adapter samples in (``prometheus.metrics.v1``),
canonical point batches out (``metrics.points.v1``).

Decoding lives in ``streams.ingest.prometheus``; bad samples are dead-lettered one by one to
``<topic>.dlq`` and the good ones in the same message go on.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from streams.ingest import prometheus
from streams.ingest.publish import ingest_agent

if TYPE_CHECKING:
    from streams.pipeline import Pipeline


def attach(p: Pipeline) -> None:
    mappings = p.settings.ingest
    ingest_agent(
        p, p.topics.prometheus, "ingest_prometheus",
        lambda m: prometheus.decode(m.value, mappings), p.topics.metrics, "points",
    )  # fmt: skip
