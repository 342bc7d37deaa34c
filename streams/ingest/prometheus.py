"""prometheus-kafka-adapter's JSON (Prometheus remote write to Kafka) into metric points.

One sample per JSON object, as the adapter writes it::

    {"timestamp": "1970-01-01T00:00:00Z", "value": "9876543210", "name": "up",
     "labels": {"__name__": "up", "job": "node", "instance": "10.0.0.1:9100"}}

The older flat shape (``{"__timestamp__": <ms>, "__value__": ..., "__name__": ..., <labels>}``)
is read too. A message may hold one sample, a JSON array of them, or one per line. The service
is the first of ``IngestMappings.prometheus_service_labels`` present (default ``job``, then
``service``), else ``default_service``; the labels are every label except ``__name__``.
Prometheus' non-finite values (``NaN`` staleness markers, ``+Inf``) are rejected with the reason.
"""

from __future__ import annotations

import math
from functools import partial
from typing import Any

from schemas import MetricPoint
from streams.codec import Decoded
from streams.ingest.common import dump, epoch_seconds, load_entries, reject, scalar_text, validate
from streams.settings import IngestMappings

_LEGACY = ("__timestamp__", "__value__")


def decode(raw: bytes | None, mappings: IngestMappings) -> Decoded[MetricPoint]:
    """The samples of one message as points; bad samples rejected one by one."""
    entries, rejected = load_entries(raw)
    out: Decoded[MetricPoint] = Decoded(rejected=rejected)
    for where, entry in entries:
        if not isinstance(entry, dict):
            reject(out, where, "expected a JSON object (one sample)", dump(entry))
            continue
        point, problem = _point(entry, mappings)
        if problem is not None:
            reject(out, where, problem, dump(entry))
            continue
        validate(out, MetricPoint, point, where, partial(dump, entry))
    return out


def _point(entry: dict[str, Any], mappings: IngestMappings) -> tuple[dict[str, Any], str | None]:
    if all(k in entry for k in _LEGACY):
        labels_in = {k: v for k, v in entry.items() if k not in _LEGACY}
        # Remote write timestamps are milliseconds since the epoch.
        raw_ts: Any = entry["__timestamp__"]
        ts: Any = _millis(raw_ts) if isinstance(raw_ts, int | float) else epoch_seconds(raw_ts)
        value = entry["__value__"]
        name = labels_in.get("__name__")
    else:
        missing = [k for k in ("timestamp", "value") if k not in entry]
        if missing:
            return {}, f"missing {' and '.join(missing)} (not a prometheus-kafka-adapter sample)"
        labels_raw = entry.get("labels", {})
        if not isinstance(labels_raw, dict):
            return {}, "labels: expected an object"
        labels_in = labels_raw
        ts = epoch_seconds(entry["timestamp"])
        value = entry["value"]
        name = entry.get("name") or labels_in.get("__name__")
    if not name:
        return {}, "no metric name (name / __name__)"
    service = next(
        (labels_in[k] for k in mappings.prometheus_service_labels if labels_in.get(k)),
        mappings.default_service,
    )
    if service is None:
        labels_tried = ", ".join(mappings.prometheus_service_labels)
        return {}, f"no service: none of the labels {labels_tried} is set"
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            return {}, f"value {value!r} is not a number"
    labels = {str(k): scalar_text(v) for k, v in labels_in.items() if k != "__name__"}
    return {"ts": ts, "service": service, "metric": name, "value": value, "labels": labels}, None


def _millis(ms: float) -> float:
    """Epoch seconds from milliseconds; infinite (rejected by the schema) if no float holds it."""
    try:
        return ms / 1000
    except OverflowError:
        return math.inf if ms > 0 else -math.inf
