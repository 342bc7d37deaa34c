"""Operator commands: ``warroom review``, ``warroom incidents`` and ``warroom replay``.

``review`` and ``incidents`` read a running worker's HTTP API. ``replay --input`` sends a
JSON-lines file to a topic; ``replay --rebuild`` reads ``incidents.events.v1`` from offset zero
and folds it with :func:`responders.lifecycle.replay`, the same fold the worker applies, so the
incidents it prints equal the worker's (``--compare-api`` checks that against ``/api/incidents``).
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import defaultdict
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaConnectionError
from pydantic import ValidationError

from responders.lifecycle import replay
from responders.runbooks import progress
from schemas import Incident, IncidentEvent
from streams.settings import Settings

DEFAULT_API = "http://127.0.0.1:8080"


class ToolError(Exception):
    """A failure to report on one line (unreachable API, unknown topic, bad input file)."""


@dataclass
class Rebuilt:
    """Incidents folded from the timeline, and what could not be used."""

    incidents: dict[str, Incident] = field(default_factory=dict)
    events: int = 0
    undecodable: int = 0
    problems: list[str] = field(default_factory=list)


def _get(api: str, path: str) -> tuple[int, bytes]:
    url = api.rstrip("/") + path
    if not url.startswith(("http://", "https://")):
        raise ToolError(f"the API address must be an http(s) URL, not {api!r}")
    try:
        with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 (checked above)
            return int(response.status), bytes(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise ToolError(f"cannot reach the API at {api}: {reason}") from None


def _error_text(body: bytes) -> str:
    try:
        return str(json.loads(body)["error"])
    except (ValueError, KeyError, TypeError):
        return body.decode("utf-8", "replace")[:200]


def review(api: str, incident_id: str, output: Path | None) -> int:
    """Print the review, or write it to ``output`` with the chart as ``<stem>-chart.svg``."""
    path = f"/api/incidents/{urllib.parse.quote(incident_id, safe='')}/review"
    chart = f"{output.stem}-chart.svg" if output is not None else None
    query = f"?chart={urllib.parse.quote(chart)}" if chart else ""
    status, body = _get(api, path + query)
    if status != 200:
        print(f"warroom review: HTTP {status}: {_error_text(body)}", file=sys.stderr)
        return 1
    if output is None or chart is None:
        sys.stdout.write(body.decode())
        return 0
    svg_status, svg = _get(api, path + ".svg")
    if svg_status != 200:  # no chart: drop the image link rather than leave it broken
        status, body = _get(api, path)
    output.write_bytes(body)
    print(f"wrote {output}", file=sys.stderr)
    if svg_status == 200:
        (output.parent / chart).write_bytes(svg)
        print(f"wrote {output.parent / chart}", file=sys.stderr)
    return 0


def _when(value: str | None) -> str:
    if not value:
        return "-"
    return datetime.fromisoformat(value.replace("Z", "+00:00")).strftime("%Y-%m-%d %H:%M:%S")


def incidents(
    api: str, status: str | None, service: str | None, limit: int = 100, offset: int = 0
) -> int:
    """Print one page of the worker's incidents as a table, newest first; a note on standard
    error says how to ask for the next page."""
    query = urllib.parse.urlencode(
        {k: v for k, v in (("status", status), ("service", service)) if v}
        | {"limit": limit, "offset": offset}
    )
    code, body = _get(api, f"/api/incidents?{query}")
    if code != 200:
        print(f"warroom incidents: HTTP {code}: {_error_text(body)}", file=sys.stderr)
        return 1
    page = json.loads(body)
    for line in incident_table(page["incidents"]):
        print(line)
    if page.get("more"):
        shown = offset + len(page["incidents"])
        print(f"{shown} of {page['total']} shown; the next page: --offset {shown}", file=sys.stderr)
    return 0


def all_incidents(api: str) -> list[dict[str, Any]]:
    """Every incident the worker has, read a page at a time."""
    out: list[dict[str, Any]] = []
    while True:
        code, body = _get(api, f"/api/incidents?limit=1000&offset={len(out)}")
        if code != 200:
            raise ToolError(f"{api}/api/incidents: HTTP {code}: {_error_text(body)}")
        page = json.loads(body)
        out += page["incidents"]
        if not page.get("more") or not page["incidents"]:
            return out


def incident_table(incidents: list[dict[str, Any]]) -> list[str]:
    """Aligned lines for ``warroom incidents``, the title last; TASKS is the runbook's
    progress (``done/total``, the failed count when there is one, ``-`` without a runbook)."""
    head = ("ID", "STATUS", "SEV", "SERVICE", "OPENED (UTC)", "RESOLVED (UTC)", "TASKS", "TITLE")
    rows = [head]
    for i in incidents:
        rows.append(
            (i["id"], i["status"], i["severity"], i["service"], _when(i["opened_at"]),
             _when(i.get("resolved_at")), _tasks(i.get("tasks") or {}), i["title"])
        )  # fmt: skip
    widths = [max(len(r[c]) for r in rows) for c in range(len(head) - 1)]
    return [
        "  ".join(v.ljust(w) for v, w in zip(r, widths, strict=False)) + "  " + r[-1] for r in rows
    ]


def _tasks(tasks: dict[str, str]) -> str:
    """``done/total``, with the failed count when there is one; ``-`` without a runbook."""
    count = progress(tasks)
    if not count["total"]:
        return "-"
    failed = f", {count['failed']} failed" if count["failed"] else ""
    return f"{count['done']}/{count['total']}{failed}"


def _topic_name(settings: Settings, topic: str) -> str:
    """A topic name, or the configured name of a logical one (``metrics``, ``events``, ...)."""
    return str(settings.topics.model_dump().get(topic, topic))


def read_lines(path: Path, key_field: str | None) -> list[tuple[bytes | None, bytes]]:
    """(key, value) pairs from a JSON-lines file; blank lines skipped, any bad line refused."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ToolError(f"cannot read {path}: {exc}") from None
    out: list[tuple[bytes | None, bytes]] = []
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ToolError(f"{path}:{n}: not JSON: {exc.msg}") from None
        key: bytes | None = None
        if key_field is not None:
            if not isinstance(value, dict) or value.get(key_field) is None:
                raise ToolError(f"{path}:{n}: no field {key_field!r} for the key")
            key = str(value[key_field]).encode()
        out.append((key, json.dumps(value, separators=(",", ":")).encode()))
    return out


async def send_lines(
    settings: Settings, topic: str, messages: list[tuple[bytes | None, bytes]]
) -> None:
    """Send ``messages`` to ``topic`` and wait for the broker; ``ToolError`` names an
    unreachable broker or a topic it does not have."""
    kwargs = settings.kafka_client_kwargs()
    try:
        admin = AIOKafkaAdminClient(**kwargs)
        await admin.start()
    except KafkaConnectionError:
        raise ToolError(
            f"no Kafka broker answered at {settings.bootstrap_servers} "
            "(WARROOM_BOOTSTRAP_SERVERS); start one with `warroom kafka start`"
        ) from None
    try:
        [described] = await admin.describe_topics([topic])
    finally:
        await admin.close()
    if described.get("error_code") or not described.get("partitions"):
        raise ToolError(
            f"topic {topic!r} not found on {settings.bootstrap_servers}; give a topic's name, "
            f"or one of {', '.join(sorted(settings.topics.model_dump()))}"
        )
    producer = AIOKafkaProducer(**kwargs, acks="all")
    await producer.start()
    try:
        for key, value in messages:
            await producer.send(topic, value, key=key)
        await producer.flush()
    finally:
        await producer.stop()


async def read_to_end(
    consumer: AIOKafkaConsumer, tps: list[TopicPartition], timeout_s: float
) -> AsyncIterator[ConsumerRecord]:
    """Every record of ``tps`` from offset zero to the end offsets seen when reading starts;
    ``TimeoutError`` when the end is not reached within ``timeout_s``."""
    consumer.assign(tps)
    await consumer.seek_to_beginning(*tps)
    ends = await consumer.end_offsets(tps)
    deadline = time.monotonic() + timeout_s
    while [tp for tp in tps if await consumer.position(tp) < ends[tp]]:
        if time.monotonic() > deadline:
            topics = ", ".join(sorted({tp.topic for tp in tps}))
            raise TimeoutError(f"could not read {topics} to its end within {timeout_s:g}s")
        batch = await consumer.getmany(timeout_ms=200)
        for records in batch.values():
            for record in records:
                yield record


async def read_topic(settings: Settings, topic: str, timeout_s: float = 60.0) -> list[bytes]:
    """Every value on ``topic`` from offset zero to the end offsets seen when reading starts."""
    kwargs = settings.kafka_client_kwargs()
    admin = AIOKafkaAdminClient(**kwargs)
    await admin.start()
    try:
        [described] = await admin.describe_topics([topic])
    finally:
        await admin.close()
    if described.get("error_code") or not described.get("partitions"):
        raise ToolError(f"topic {topic!r} not found on {settings.bootstrap_servers}")
    tps = [TopicPartition(topic, p["partition"]) for p in described["partitions"]]
    consumer = AIOKafkaConsumer(**kwargs, group_id=None, enable_auto_commit=False)
    await consumer.start()
    values: list[bytes] = []
    try:
        async for record in read_to_end(consumer, tps, timeout_s):
            if record.value is not None:
                values.append(record.value)
        return values
    except TimeoutError as exc:
        raise ToolError(str(exc)) from None
    finally:
        await consumer.stop()


def fold(values: list[bytes]) -> Rebuilt:
    """Decode timeline events and fold each incident's with :func:`responders.lifecycle.replay`."""
    out = Rebuilt()
    by_incident: dict[str, list[IncidentEvent]] = defaultdict(list)
    for value in values:
        try:
            event = IncidentEvent.model_validate_json(value)
        except ValidationError:
            out.undecodable += 1
            continue
        out.events += 1
        by_incident[event.incident_id].append(event)
    for incident_id, events in sorted(by_incident.items()):
        try:
            out.incidents.update(replay(events))
        except ValueError as exc:  # e.g. the opening event is no longer on the topic
            out.problems.append(f"{incident_id}: {exc}")
    return out


async def rebuild(settings: Settings, events_topic: str | None = None) -> Rebuilt:
    """Incident state rebuilt from the timeline topic alone."""
    topic = _topic_name(settings, events_topic or "events")
    return fold(await read_topic(settings, topic))


def differences(rebuilt: dict[str, Incident], live: list[dict[str, Any]]) -> list[str]:
    """What differs between rebuilt incidents and the API's (``[]`` when they are equal)."""
    api = {i["id"]: Incident.model_validate(i).model_dump(mode="json") for i in live}
    mine = {k: v.model_dump(mode="json") for k, v in rebuilt.items()}
    out = [f"{k}: only in the rebuild" for k in sorted(mine.keys() - api.keys())]
    out += [f"{k}: only in the API" for k in sorted(api.keys() - mine.keys())]
    for k in sorted(mine.keys() & api.keys()):
        for name in sorted(mine[k].keys() | api[k].keys()):
            if mine[k].get(name) != api[k].get(name):
                out.append(f"{k}: {name}: rebuilt {mine[k].get(name)!r}, API {api[k].get(name)!r}")
    return out


def replay_command(
    settings: Settings,
    *,
    input_path: Path | None,
    topic: str | None,
    key_field: str | None,
    rebuild_state: bool,
    events_topic: str | None,
    compare_api: str | None,
) -> int:
    """``warroom replay``: send a JSON-lines file, or rebuild incidents from the timeline."""
    quiet = logging.getLogger("aiokafka")
    level = quiet.level
    quiet.setLevel(logging.CRITICAL)  # its connection errors: said once, below
    try:
        if not rebuild_state:
            if input_path is None or topic is None:
                raise ToolError("--input and --topic are needed (or --rebuild)")
            name = _topic_name(settings, topic)
            messages = read_lines(input_path, key_field)
            asyncio.run(send_lines(settings, name, messages))
            print(f"sent {len(messages)} messages to {name}", file=sys.stderr)
            return 0
        result = asyncio.run(rebuild(settings, events_topic))
        for incident in sorted(result.incidents.values(), key=lambda i: i.id):
            print(incident.model_dump_json())
        print(
            f"rebuilt {len(result.incidents)} incidents from {result.events} events"
            + (f"; {result.undecodable} undecodable" if result.undecodable else ""),
            file=sys.stderr,
        )
        for problem in result.problems:
            print(f"warroom replay: {problem}", file=sys.stderr)
        if compare_api is None:
            return 1 if result.problems else 0
        diffs = differences(result.incidents, all_incidents(compare_api))
        for diff in diffs:
            print(f"differs: {diff}", file=sys.stderr)
        print(
            f"compared with {compare_api}: " + ("equal" if not diffs else f"{len(diffs)} differ"),
            file=sys.stderr,
        )
        return 1 if diffs or result.problems else 0
    except KafkaConnectionError:
        print(
            f"warroom replay: no Kafka broker answered at {settings.bootstrap_servers} "
            "(WARROOM_BOOTSTRAP_SERVERS); start one with `warroom kafka start`",
            file=sys.stderr,
        )
        return 2
    except ToolError as exc:
        print(f"warroom replay: {exc}", file=sys.stderr)
        return 2
    finally:
        quiet.setLevel(level)
