"""OTLP metrics and logs, as the OpenTelemetry Collector's kafka exporter writes them.

Each Kafka message is one ``ExportMetricsServiceRequest`` or ``ExportLogsServiceRequest``,
encoded as OTLP JSON (``otlp_json``) or protobuf (``otlp_proto``); the encoding is detected per
message (JSON starts with ``{``). Protobuf is mapped to the JSON shape with
``google.protobuf.json_format``, so one walk serves both.

Metrics (``service.name`` resource attribute → service, data point attributes → labels,
``timeUnixNano`` → ts):

- gauge and sum data points: one point each, named after the metric, ``asDouble``/``asInt``
  as value (sums as sent: cumulative or delta).
- histogram data points: ``<name>_count``, ``<name>_sum`` (if sent), and when explicit bounds
  are present ``<name>_p50``, ``<name>_p90``, ``<name>_p99``: estimated by linear
  interpolation inside the bucket holding the rank (the first bucket starts at ``min`` if sent,
  else at 0; the overflow bucket ends at ``max`` if sent, else at the last bound).
- exponential histogram data points: ``<name>_count`` and ``<name>_sum``.
- summary data points: ``<name>_count``, ``<name>_sum`` and ``<name>_p<q*100>`` per quantile.

Logs: ``timeUnixNano`` (else ``observedTimeUnixNano``) → ts, ``severityText`` (else the
``severityNumber`` range's name: TRACE, DEBUG, INFO, WARN, ERROR, FATAL) → level, ``body`` →
message (non-string bodies as JSON), attributes plus ``trace_id`` / ``span_id`` → attributes.

A resource without ``service.name`` uses ``IngestMappings.default_service`` or is rejected;
every data point and log record is validated on its own.
"""

from __future__ import annotations

import base64
import contextlib
import json
import math
from collections.abc import Callable, Iterator
from typing import Any

from google.protobuf import json_format
from google.protobuf.message import DecodeError
from google.protobuf.message import Message as ProtoMessage
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)

from schemas import LogRecord, MetricPoint
from streams.codec import Decoded, Rejected
from streams.ingest.common import dump, reject, unix_nano, validate
from streams.settings import IngestMappings

HISTOGRAM_QUANTILES = (0.5, 0.9, 0.99)

_SEVERITY_RANGES = ((1, "TRACE"), (5, "DEBUG"), (9, "INFO"), (13, "WARN"), (17, "ERROR"),
                    (21, "FATAL"))  # fmt: skip


def encoding_of(raw: bytes) -> str:
    """``otlp_json`` if the message is JSON (starts with ``{``), else ``otlp_proto``."""
    return "otlp_json" if raw.lstrip()[:1] == b"{" else "otlp_proto"


def decode_metrics(raw: bytes | None, mappings: IngestMappings) -> Decoded[MetricPoint]:
    """The data points of one OTLP metrics message as canonical points."""
    out: Decoded[MetricPoint] = Decoded()
    request = _request(raw, ExportMetricsServiceRequest, "resourceMetrics", out.rejected)
    if request is not None:
        for service, metric, where in _leaves(request, out, mappings, _METRICS):
            _metric(out, service, metric, where)
    return out


def decode_logs(raw: bytes | None, mappings: IngestMappings) -> Decoded[LogRecord]:
    """The log records of one OTLP logs message as canonical records."""
    out: Decoded[LogRecord] = Decoded()
    request = _request(raw, ExportLogsServiceRequest, "resourceLogs", out.rejected)
    if request is not None:
        for service, record, where in _leaves(request, out, mappings, _LOGS):
            _log(out, service, record, where)
    return out


#: The nesting of each signal: resources, their scopes (and the name OTLP before 0.15 used),
#: and the items of each scope.
_METRICS = ("resourceMetrics", "scopeMetrics", "instrumentationLibraryMetrics", "metrics")
_LOGS = ("resourceLogs", "scopeLogs", "instrumentationLibraryLogs", "logRecords")


def _leaves(
    request: dict[str, Any],
    out: Decoded[Any],
    mappings: IngestMappings,
    nesting: tuple[str, str, str, str],
) -> Iterator[tuple[str, dict[str, Any], str]]:
    """(service, item, path) of every item of every scope of every resource; a resource without
    a service is rejected whole."""
    resources, scopes, old_scopes, items = nesting
    for ri, resource in _items(request.get(resources)):
        where = f"{resources}.{ri}"
        service = _service(resource, mappings)
        if service is None:
            reject(out, where, "no service.name resource attribute", dump(resource))
            continue
        for si, scope in _items(resource.get(scopes) or resource.get(old_scopes)):
            for ii, item in _items(scope.get(items)):
                yield service, item, f"{where}.{scopes}.{si}.{items}.{ii}"


# --- the request -----------------------------------------------------------------------------


def _request(
    raw: bytes | None, proto: type[ProtoMessage], top: str, rejected: list[Rejected]
) -> dict[str, Any] | None:
    if not raw or not raw.strip():
        rejected.append(Rejected(raw or b"", "empty message (no value)"))
        return None
    if encoding_of(raw) == "otlp_json":
        try:
            data = json.loads(raw.decode("utf-8"))
        except UnicodeDecodeError as exc:
            rejected.append(Rejected(raw, f"otlp_json: not UTF-8: {exc.reason} at {exc.start}"))
            return None
        except json.JSONDecodeError as exc:
            rejected.append(Rejected(raw, f"otlp_json: not JSON: {exc.msg} at {exc.colno}"))
            return None
        except ValueError:  # an integer of more digits than Python converts
            rejected.append(Rejected(raw, "otlp_json: not JSON: a number with too many digits"))
            return None
        except RecursionError:
            rejected.append(Rejected(raw, "otlp_json: nested too deeply"))
            return None
    else:
        try:
            message = proto.FromString(raw)
        except (DecodeError, RecursionError) as exc:
            rejected.append(Rejected(raw, f"otlp_proto: not an OTLP protobuf message: {exc}"))
            return None
        data = json_format.MessageToDict(message, use_integers_for_enums=True)
        _hex_ids(data)
    if not isinstance(data, dict) or not isinstance(data.get(top), list) or not data[top]:
        rejected.append(Rejected(raw, f"expected an OTLP request with a non-empty {top} list"))
        return None
    return data


def _hex_ids(node: Any) -> None:
    """Trace and span ids as hex, as OTLP JSON has them (protobuf's JSON mapping: base64)."""
    if isinstance(node, dict):
        for key in ("traceId", "spanId"):
            value = node.get(key)
            if isinstance(value, str):
                node[key] = base64.b64decode(value).hex()
        for value in node.values():
            _hex_ids(value)
    elif isinstance(node, list):
        for value in node:
            _hex_ids(value)


def _items(value: Any) -> list[tuple[int, dict[str, Any]]]:
    if not isinstance(value, list):
        return []
    return [(i, v) for i, v in enumerate(value) if isinstance(v, dict)]


def any_value(value: Any) -> Any:
    """An OTLP ``AnyValue`` as plain data.

    >>> any_value({"intValue": "10"}), any_value({"arrayValue": {"values": [{"boolValue": True}]}})
    (10, [True])
    """
    if not isinstance(value, dict):
        return None
    if "stringValue" in value:
        return value["stringValue"]
    if "boolValue" in value:
        return bool(value["boolValue"])
    if "intValue" in value:
        try:
            return int(value["intValue"])
        except (TypeError, ValueError):
            return value["intValue"]
    if "doubleValue" in value:
        try:
            return float(value["doubleValue"])
        except (TypeError, ValueError, OverflowError):
            return value["doubleValue"]
    if "arrayValue" in value:
        values = _field(value["arrayValue"], "values")
        return [any_value(v) for v in values] if isinstance(values, list) else []
    if "kvlistValue" in value:
        return attributes(_field(value["kvlistValue"], "values"))
    if "bytesValue" in value:
        return value["bytesValue"]
    return None


def _field(node: Any, key: str) -> Any:
    """``node[key]`` of a JSON object; None when it is absent or ``node`` is not an object."""
    return node.get(key) if isinstance(node, dict) else None


def attributes(pairs: Any) -> dict[str, Any]:
    """OTLP ``KeyValue`` list as a dict."""
    if not isinstance(pairs, list):
        return {}
    return {
        str(kv["key"]): any_value(kv.get("value"))
        for kv in pairs
        if isinstance(kv, dict) and "key" in kv
    }


def _service(resource_entry: dict[str, Any], mappings: IngestMappings) -> str | None:
    name = attributes(_field(resource_entry.get("resource"), "attributes")).get("service.name")
    if isinstance(name, str) and name.strip():
        return name
    return mappings.default_service


def _labels(point: dict[str, Any]) -> dict[str, str]:
    return {
        k: v if isinstance(v, str) else json.dumps(v, separators=(",", ":"))
        for k, v in attributes(point.get("attributes")).items()
    }


# --- metrics ---------------------------------------------------------------------------------


def _metric(out: Decoded[MetricPoint], service: str, metric: dict[str, Any], where: str) -> None:
    name = metric.get("name")
    if not isinstance(name, str) or not name.strip():
        reject(out, where, "metric without a name", dump(metric))
        return
    kinds = [k for k in ("gauge", "sum", "histogram", "exponentialHistogram", "summary")
             if isinstance(metric.get(k), dict)]  # fmt: skip
    if not kinds:
        reject(out, where, "no gauge, sum, histogram or summary data", dump(metric))
        return
    kind = kinds[0]
    for di, point in _items(metric[kind].get("dataPoints")):
        at = f"{where}.{kind}.dataPoints.{di}"

        def payload(point: dict[str, Any] = point) -> bytes:
            return dump({"name": name, kind: {"dataPoints": [point]}})

        ts = unix_nano(point.get("timeUnixNano"))
        if ts is None:
            reject(out, at, "timeUnixNano missing or zero", payload())
            continue
        base = {"ts": ts, "service": service, "labels": _labels(point)}
        if kind in ("gauge", "sum"):
            value = point.get("asDouble")
            if value is None:
                value = point.get("asInt")
            if value is None:
                reject(out, at, "no value (asDouble / asInt)", payload())
                continue
            _emit(out, base, name, value, at, payload)
        else:
            _distribution(out, base, name, kind, point, at, payload)


def _distribution(
    out: Decoded[MetricPoint],
    base: dict[str, Any],
    name: str,
    kind: str,
    point: dict[str, Any],
    at: str,
    payload: Callable[[], bytes],
) -> None:
    count = _number(point.get("count", 0))
    _emit(out, base, f"{name}_count", count, at, payload)
    if "sum" in point:
        _emit(out, base, f"{name}_sum", point["sum"], at, payload)
    if kind == "summary":
        for quantile in _items(point.get("quantileValues")):
            q = _number(quantile[1].get("quantile", 0))
            value = quantile[1].get("value", 0)
            _emit(out, base, f"{name}_p{_percent(q)}", value, at, payload)
        return
    if kind != "histogram" or not point.get("explicitBounds"):
        return
    bounds = [_number(b) for b in point["explicitBounds"]]
    counts = [_number(c) for c in point.get("bucketCounts", [])]
    if len(counts) != len(bounds) + 1:
        problem = (
            f"bucketCounts has {len(counts)} entries for {len(bounds)} explicitBounds "
            f"(expected {len(bounds) + 1}): no quantile estimates"
        )
        reject(out, at, problem, payload())
        return
    low, high = point.get("min"), point.get("max")
    for q in HISTOGRAM_QUANTILES:
        estimate = histogram_quantile(
            q, bounds, counts,
            _number(low) if low is not None else None,
            _number(high) if high is not None else None,
        )  # fmt: skip
        if estimate is not None:
            _emit(out, base, f"{name}_p{_percent(q)}", estimate, at, payload)


def histogram_quantile(
    q: float, bounds: list[float], counts: list[float], low: float | None, high: float | None
) -> float | None:
    """Estimate the ``q`` quantile of an explicit-bounds histogram (None if it is empty).

    Bucket ``i`` holds values in ``(bounds[i-1], bounds[i]]``; the estimate interpolates
    linearly inside the bucket that holds the rank.

    >>> histogram_quantile(0.5, [10.0, 20.0], [0.0, 10.0, 0.0], None, None)
    15.0
    >>> histogram_quantile(0.99, [10.0], [1.0, 1.0], None, 40.0)
    39.4
    """
    total = sum(counts)
    if total <= 0:
        return None
    rank = q * total
    cumulative = 0.0
    for i, count in enumerate(counts):
        if count > 0 and cumulative + count >= rank:
            first_lower = low if low is not None else min(0.0, bounds[0])
            lower = first_lower if i == 0 else bounds[i - 1]
            upper = bounds[i] if i < len(bounds) else (high if high is not None else bounds[-1])
            if low is not None:
                lower = max(lower, low)
            if high is not None:
                upper = min(upper, high)
            if upper <= lower:
                return upper
            return round(lower + (upper - lower) * (rank - cumulative) / count, 9)
        cumulative += count
    return bounds[-1] if high is None else high


def _percent(q: float) -> str:
    text = f"{q * 100:.6g}"
    return text.replace(".", "_")


def _number(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError, OverflowError):
        return math.nan


def _emit(
    out: Decoded[MetricPoint],
    base: dict[str, Any],
    metric: str,
    value: Any,
    at: str,
    payload: Callable[[], bytes],
) -> None:
    if isinstance(value, str):
        with contextlib.suppress(ValueError):  # else the schema names the problem
            value = float(value)
    validate(out, MetricPoint, {**base, "metric": metric, "value": value}, at, payload)


# --- logs ------------------------------------------------------------------------------------


def severity_name(number: Any) -> str | None:
    """The short name of an OTLP severity number (1-24), or None.

    >>> severity_name(9), severity_name(17), severity_name(0)
    ('INFO', 'ERROR', None)
    """
    try:
        n = int(number)
    except (TypeError, ValueError, OverflowError):
        return None
    if not 1 <= n <= 24:
        return None
    return [label for start, label in _SEVERITY_RANGES if n >= start][-1]


def _log(out: Decoded[LogRecord], service: str, record: dict[str, Any], where: str) -> None:
    def payload() -> bytes:
        return dump(record)

    ts = unix_nano(record.get("timeUnixNano")) or unix_nano(record.get("observedTimeUnixNano"))
    if ts is None:
        reject(out, where, "timeUnixNano and observedTimeUnixNano missing or zero", payload())
        return
    body = any_value(record.get("body"))
    if body is None:
        body = record.get("eventName")
    if body is None:
        reject(out, where, "no body", payload())
        return
    message = body if isinstance(body, str) else json.dumps(body, separators=(",", ":"))
    level = record.get("severityText") or severity_name(record.get("severityNumber"))
    attrs = attributes(record.get("attributes"))
    for key, name in (("traceId", "trace_id"), ("spanId", "span_id")):
        if record.get(key):
            attrs[name] = str(record[key]).lower()
    data = {"ts": ts, "service": service, "message": message, "level": level, "attributes": attrs}
    validate(out, LogRecord, data, where, payload)
