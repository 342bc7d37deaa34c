"""``ingest_otlp_metrics`` / ``ingest_otlp_logs``: OTLP in (the collector's kafka exporter
topics, ``otlp_metrics`` and ``otlp_logs``), canonical batches out (``metrics.points.v1``,
``logs.records.v1``).

JSON or protobuf, detected per message (``streams.ingest.otlp``). Entries that do not decode
are dead-lettered one by one to ``<topic>.dlq``; the good ones in the same message go on.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from streams.ingest import otlp
from streams.ingest.publish import ingest_agent

if TYPE_CHECKING:
    from streams.pipeline import Pipeline


def attach(p: Pipeline) -> None:
    mappings = p.settings.ingest
    ingest_agent(
        p, p.topics.otlp_metrics, "ingest_otlp_metrics",
        lambda m: otlp.decode_metrics(m.value, mappings), p.topics.metrics, "points",
        stage="ingest_otlp",
    )  # fmt: skip
    ingest_agent(
        p, p.topics.otlp_logs, "ingest_otlp_logs",
        lambda m: otlp.decode_logs(m.value, mappings), p.topics.logs, "records",
        stage="ingest_otlp",
    )  # fmt: skip
