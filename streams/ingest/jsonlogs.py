"""JSON log events, as Vector's and Fluent Bit's kafka outputs write them, into log records.

Vector (``encoding.codec = "json"``) writes each log event as an object such as
``{"host": "my.host.com", "message": "Hello world", "timestamp": "2020-11-01T21:15:47+00:00"}``;
Fluent Bit (``format json``) writes each record with its time under ``@timestamp`` (a float of
epoch seconds by default, or ISO 8601), e.g. ``{"@timestamp": 1713453853.25, "log": "..."}``.

Field names come from ``IngestMappings`` (each list tried in order; dotted names match flat or
nested keys):

- time: ``timestamp``, ``@timestamp``, ``time``, ``date``; numbers are epoch seconds (or ms,
  us, ns by magnitude), strings RFC 3339. Without one, the Kafka message's own timestamp.
- message: ``message``, ``msg``, ``log``; level: ``level``, ``severity``, ``log.level``.
- service: ``service``, ``service.name``, ``kubernetes.labels.app``, ... ``host``, else
  ``default_service``.

Every other field is kept in ``attributes``. A message may hold one event, a JSON array of them
or one per line.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from schemas import LogRecord
from streams.codec import Decoded
from streams.ingest.common import dump, epoch_seconds, first, load_entries, reject, validate
from streams.settings import IngestMappings


def decode(
    raw: bytes | None, mappings: IngestMappings, fallback_ts: float | None = None
) -> Decoded[LogRecord]:
    """The events of one message as records; bad events rejected one by one.

    ``fallback_ts`` (the Kafka message timestamp, epoch seconds) is used for events that carry
    no time field.
    """
    entries, rejected = load_entries(raw)
    out: Decoded[LogRecord] = Decoded(rejected=rejected)
    for where, entry in entries:
        if not isinstance(entry, dict):
            reject(out, where, "expected a JSON object (one log event)", dump(entry))
            continue
        record, problem = _record(entry, mappings, fallback_ts)
        if problem is not None:
            reject(out, where, problem, dump(entry))
            continue
        validate(out, LogRecord, record, where, partial(dump, entry))
    return out


def _record(
    entry: dict[str, Any], mappings: IngestMappings, fallback_ts: float | None
) -> tuple[dict[str, Any], str | None]:
    time_field = first(entry, mappings.json_time_fields)
    if time_field is None and fallback_ts is None:
        return {}, f"no time: none of the fields {', '.join(mappings.json_time_fields)} is set"
    message_field = first(entry, mappings.json_message_fields)
    if message_field is None:
        fields = ", ".join(mappings.json_message_fields)
        return {}, f"no message: none of the fields {fields} holds text"
    service_field = first(entry, mappings.json_service_fields)
    service = service_field[1] if service_field is not None else mappings.default_service
    if service is None:
        fields = ", ".join(mappings.json_service_fields)
        return {}, f"no service: none of the fields {fields} is set"
    level_field = first(entry, mappings.json_level_fields)
    consumed = {message_field[0]} | ({time_field[0]} if time_field is not None else set())
    return {
        "ts": epoch_seconds(time_field[1]) if time_field is not None else fallback_ts,
        "service": str(service),
        "message": str(message_field[1]),
        "level": str(level_field[1]) if level_field is not None else None,
        "attributes": {k: v for k, v in entry.items() if k not in consumed},
    }, None
