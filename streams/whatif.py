"""``warroom whatif``: what a proposed catalog (and detector settings) would have done with the
recorded detections and commands of a past window, beside what the current one did.

Reads ``detections.v1`` and ``incidents.commands.v1`` (and, with ``--detector-params``,
``metrics.points.v1``) from the broker, folds them with :func:`responders.whatif.simulate` under
the current catalog and under the proposal, and prints incidents opened and pages sent per
service and per person, now and with the proposal, with the pages sent between 03:00 and 07:00.
With ``--detector-params``, the proposal's metric detections are those the detectors with those
parameters find in the recorded points (the current ones are what was recorded); alerts,
declared incidents and silences are kept as recorded.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import re
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError
from pydantic import ValidationError

from detectors.bank import detection as metric_detection
from responders.correlation import Timing
from responders.whatif import Input, Tally, simulate
from schemas import Catalog, Command, Detection, format_errors
from streams.app import ConfigError, catalog_for_command, load_catalog
from streams.codec import decode_points, decode_points_many
from streams.settings import Settings

PROG = "warroom whatif"
#: Detectors whose detections come from elsewhere than the metric detectors.
_NOT_METRIC = {"pagerduty", "alertmanager", "declared", "silence", "logs"}
_SPAN = re.compile(r"^(\d+(?:\.\d+)?)([smhdw])$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--catalog", required=True, help="the proposed catalog YAML")
    p.add_argument("--current", default=None, help="the current catalog (WARROOM_CATALOG_PATH)")
    p.add_argument("--since", default="7d", help="window: 7d, 24h, 90m, or an RFC 3339 time")
    p.add_argument(
        "--detector-params", default=None, metavar="JSON",
        help="the proposal's default detector parameters (as WARROOM_DETECTOR_PARAMS)",
    )  # fmt: skip
    p.add_argument("--json", action="store_true", help="print one JSON object")


def since_of(text: str, now: datetime) -> datetime:
    """The start of the window: ``now`` less a span (``7d``), or an RFC 3339 time (UTC when it
    names no offset), not after ``now``; ``ValueError`` naming ``--since`` otherwise."""
    found = _SPAN.match(text.strip())
    if found:
        try:
            return now - timedelta(seconds=float(found.group(1)) * _UNIT_S[found.group(2)])
        except OverflowError:
            raise ValueError(f"--since: {text!r} reaches before the year 1") from None
    try:
        at = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"--since: {text!r} is neither a span (7d, 24h, 90m) nor a time") from None
    try:
        at = at.astimezone(UTC) if at.tzinfo else at.replace(tzinfo=UTC)
    except OverflowError:
        raise ValueError(f"--since: {text!r} is before the year 1") from None
    if at > now:
        raise ValueError(f"--since: {at.isoformat()} is after now ({now.isoformat()})")
    return at


async def _records(settings: Settings, topic: str) -> list[Any]:
    """Every record of ``topic`` up to its end now (none if it does not exist)."""
    consumer = AIOKafkaConsumer(
        **settings.kafka_client_kwargs(), group_id=None, enable_auto_commit=False
    )
    try:
        await consumer.start()
        tps = [TopicPartition(topic, p) for p in await _partitions(settings, topic)]
        if not tps:
            return []
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        out: list[Any] = []
        while [tp for tp in tps if await consumer.position(tp) < ends[tp]]:
            batch = await consumer.getmany(timeout_ms=500)
            for records in batch.values():
                out.extend(records)
        return out
    finally:
        await consumer.stop()


async def _partitions(settings: Settings, topic: str) -> list[int]:
    """The partitions of ``topic`` (none if it does not exist)."""
    admin = AIOKafkaAdminClient(**settings.kafka_client_kwargs())
    try:
        await admin.start()
        [described] = await admin.describe_topics([topic])
        return sorted(p["partition"] for p in described.get("partitions") or [])
    finally:
        await admin.close()


def _arrival(d: Detection) -> datetime:
    """When a detection reached the incident stream: its input's arrival where known (a
    point's record time), else its own time (an alert's payload or the record's)."""
    return d.received_at or d.ts


def _decoded(records: list[Any], model: Any) -> list[Any]:
    out = []
    for r in records:
        try:
            out.append(model.model_validate_json(r.value or b""))
        except ValidationError:
            continue  # the worker dead-lettered it
    return out


def rescored(records: list[Any], settings: Settings, params: dict[str, Any]) -> list[Detection]:
    """The metric detections the default detector with ``params`` finds in the points of
    ``records``, in the order the worker would read them (by partition, then offset)."""
    proposal = settings.model_copy(update={"detector_params": params})
    banks: dict[int, Any] = {}
    found: list[Detection] = []
    for r in sorted(records, key=lambda r: (r.partition, r.offset)):
        received_s = r.timestamp / 1000
        columns = decode_points_many([r.value], [received_s], settings.max_future_s)
        if not columns.series:
            continue
        bank = banks.setdefault(r.partition, proposal.detector_banks())
        rows = bank.rows_for(columns.series)
        _, fired = bank.observe_rows(
            rows, columns.values, columns.ts, ends=settings.detect_resolves
        )
        points = decode_points(r.value, received_s, settings.max_future_s).points if fired else []
        for f in fired:
            p = points[f.index]
            found.append(
                metric_detection(
                    f, detector=bank.detector(int(rows[f.index])),
                    series=columns.series[f.index], service=p.service, metric=p.metric,
                    labels=p.labels or {}, ts=float(columns.ts[f.index]), value=p.value,
                ).model_copy(update={"received_at": datetime.fromtimestamp(received_s, UTC)})
            )  # fmt: skip
    return found


def tables(now: Tally, proposed: Tally) -> dict[str, Any]:
    """Per service and per person: now, proposed and the difference."""

    def rows(keys: set[str], columns: dict[str, Callable[[Tally], Any]]) -> list[dict[str, Any]]:
        out = []
        for key in sorted(keys):
            row: dict[str, Any] = {"name": key}
            for column, of in columns.items():
                row[f"{column}_now"] = of(now)[key]
                row[f"{column}_proposed"] = of(proposed)[key]
            out.append(row)
        return out

    services = set(now.incidents) | set(proposed.incidents) | set(now.pages) | set(proposed.pages)
    people = set(now.person_pages) | set(proposed.person_pages)
    return {
        "services": rows(
            services,
            {
                "incidents": lambda t: t.incidents,
                "pages": lambda t: t.pages,
                "night_pages": lambda t: t.night_pages,
            },
        ),
        "people": rows(
            people, {"pages": lambda t: t.person_pages, "night_pages": lambda t: t.person_night}
        ),
    }


def render(result: dict[str, Any]) -> str:
    """The tables as aligned text."""
    out = [
        f"what if: {result['proposal']} against {result['current']}, "
        f"{result['since']} to {result['until']} ({result['detections']} detections, "
        f"{result['commands']} commands)",
        "",
    ]
    heads = {
        "services": ("service", ["incidents", "pages", "night_pages"]),
        "people": ("person", ["pages", "night_pages"]),
    }
    for part, (title, columns) in heads.items():
        names = ["pages 03-07" if c == "night_pages" else c for c in columns]
        header = [title] + [f"{n} {w}" for n in names for w in ("now", "proposed")]
        body = [
            [r["name"]] + [str(r[f"{c}_{w}"]) for c in columns for w in ("now", "proposed")]
            for r in result[part]
        ] or [["(none)"] + [""] * (len(header) - 1)]
        widths = [max(len(row[i]) for row in [header, *body]) for i in range(len(header))]
        for row in [header, *body]:
            out.append(
                "  ".join(
                    cell.ljust(widths[i]) if i == 0 else cell.rjust(widths[i])
                    for i, cell in enumerate(row)
                ).rstrip()
            )
        out.append("")
    return "\n".join(out).rstrip() + "\n"


def run(args: argparse.Namespace) -> int:
    try:
        settings = Settings()
    except ValidationError as exc:
        print(f"{PROG}: invalid settings: {format_errors(exc, 'WARROOM')}", file=sys.stderr)
        return 2
    current = catalog_for_command(args.current, PROG)
    if current is None:
        return 2
    try:
        proposal: Catalog = load_catalog(Path(args.catalog))
    except ConfigError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 2
    params = None
    if args.detector_params is not None:
        try:
            params = json.loads(args.detector_params)
            if not isinstance(params, dict):
                raise ValueError("a JSON object of parameters, such as '{\"k\": 3}'")
            settings.model_copy(update={"detector_params": params}).detector_banks()
        except (ValueError, TypeError) as exc:
            print(f"{PROG}: --detector-params: {exc}", file=sys.stderr)
            return 2
    until = datetime.now(tz=UTC)
    try:
        since = since_of(args.since, until)
    except ValueError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 2
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)  # a failure is said once, below
    try:
        result = asyncio.run(_compare(settings, current, proposal, params, since, until))
    except KafkaError as exc:
        print(
            f"{PROG}: cannot read the recorded topics at {settings.bootstrap_servers} "
            f"(WARROOM_BOOTSTRAP_SERVERS): {exc}",
            file=sys.stderr,
        )
        return 1
    result.update(current=str(args.current or settings.catalog_path), proposal=args.catalog)
    print(
        json.dumps(result, indent=2) if args.json else render(result),
        end="" if not args.json else "\n",
    )
    return 0


async def _compare(
    settings: Settings,
    current: Catalog,
    proposal: Catalog,
    params: dict[str, Any] | None,
    since: datetime,
    until: datetime,
) -> dict[str, Any]:
    names = settings.topics
    detections = [
        d for d in _decoded(await _records(settings, names.detections), Detection)
        if _arrival(d) >= since
    ]  # fmt: skip
    commands = [
        c for c in _decoded(await _records(settings, names.commands), Command)
        if c.issued_at >= since
    ]  # fmt: skip
    proposed_detections = detections
    if params is not None:
        points = [
            r
            for r in await _records(settings, names.metrics)
            if r.timestamp / 1000 >= since.timestamp()
        ]
        kept = [d for d in detections if d.detector in _NOT_METRIC]
        proposed_detections = kept + [
            d for d in rescored(points, settings, params) if _arrival(d) >= since
        ]
    timing = Timing(
        settings.group_wait_s, settings.group_interval_s, settings.repeat_interval_s,
        settings.ack_timeout_s, settings.auto_resolve_s,
    )  # fmt: skip
    orders = [Input(c.issued_at, command=c) for c in commands]

    def fold(found: list[Detection], catalog: Catalog) -> Tally:
        inputs = [Input(_arrival(d), detection=d) for d in found] + orders
        return simulate(inputs, catalog, timing, until, settings.group_by, settings.max_lateness_s)

    result = tables(fold(detections, current), fold(proposed_detections, proposal))
    result.update(
        since=since.isoformat(), until=until.isoformat(), detections=len(detections),
        commands=len(commands),
    )  # fmt: skip
    if params is not None:
        result["detections_proposed"] = len(proposed_detections)
    return result
