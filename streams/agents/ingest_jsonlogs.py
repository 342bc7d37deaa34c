"""``ingest_jsonlogs``: JSON log events from Vector or Fluent Bit in (``logs.json.v1``),
canonical record batches out (``logs.records.v1``).

Decoding lives in ``streams.ingest.jsonlogs`` (field names from ``Settings.ingest``); an event
without a time field takes the Kafka message's timestamp. Bad events are dead-lettered one by
one to ``<topic>.dlq`` and the good ones in the same message go on.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from streams.ingest import jsonlogs
from streams.ingest.publish import ingest_agent

if TYPE_CHECKING:
    from streams.pipeline import Pipeline


def attach(p: Pipeline) -> None:
    mappings = p.settings.ingest
    ingest_agent(
        p, p.topics.json_logs, "ingest_jsonlogs",
        lambda m: jsonlogs.decode(m.value, mappings, fallback_ts=m.timestamp),
        p.topics.logs, "records",
    )  # fmt: skip
