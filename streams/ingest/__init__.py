"""Decoders for the formats observability pipelines already write to Kafka.

Each decoder turns the bytes of one Kafka message into canonical ``schemas.MetricPoint`` or
``schemas.LogRecord`` objects plus the entries it rejected, each with its own bytes and reason
(``streams.codec.Decoded``). They do no I/O and never read the clock: the ingest agents in
``streams/agents/ingest_*.py`` send the results on to ``metrics.points.v1`` / ``logs.records.v1``
and dead-letter the rejections.

- ``otlp``: OTLP metrics and logs, JSON (``otlp_json``) or protobuf (``otlp_proto``), as the
  OpenTelemetry Collector's kafka exporter writes them.
- ``prometheus``: prometheus-kafka-adapter's JSON samples (Prometheus remote write).
- ``jsonlogs``: JSON log events as Vector's and Fluent Bit's kafka outputs write them.
"""
