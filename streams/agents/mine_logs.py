"""``mine_logs``: log records in (``logs.records.v1``), templates mined, detections out.

Each service's miner and detector state lives in the ``log-state`` table, keyed by service and
co-partitioned with the records (which are keyed by service), so template ids and baselines
survive restarts. A timer reports services that went silent.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from detectors.logs import LogSource
from responders.lifecycle import routing_key
from schemas import LogRecord
from streams.agents import each_input
from streams.codec import arrival, decode_batchable, encode

if TYPE_CHECKING:
    from streams.pipeline import Pipeline

SILENCE_CHECK_S = 60.0


def attach(p: Pipeline) -> None:
    state = p.tables.log_state
    # The last state written per service and the source built from it: rebuilt only if the
    # table holds something else (after recovery or a rebalance).
    live: dict[str, tuple[Any, LogSource]] = {}
    silences_sent: set[str] = set()

    def source_of(service: str) -> LogSource:
        saved = state.get(service)
        cached = live.get(service)
        if cached is not None and cached[0] is saved:
            return cached[1]
        return LogSource.from_state(saved) if saved is not None else LogSource.create()

    async def on_records(event: Any) -> None:
        message = event.message
        context = arrival(message.timestamp, p.settings.max_future_s)
        received = {"received_at": context["received_at"] if context else None}
        decoded = decode_batchable(event.value, LogRecord, "records", context)
        for bad in decoded.rejected:
            await p.dead_letters.send(message, "decode", bad.reason, bad.payload)
        by_service: dict[str, list[LogRecord]] = defaultdict(list)
        for record in decoded.items:
            by_service[record.service].append(record)
        for service, records in by_service.items():
            try:
                source = source_of(service)
                detections = source.process(records)
                saved = source.to_state()
                state[service] = saved
                live[service] = (saved, source)
            except Exception as exc:  # this service's records fail, the others' go on
                live.pop(service, None)
                p.count("mine_logs_errors")
                await p.dead_letters.send(message, "mine_logs", f"{type(exc).__name__}: {exc}")
                continue
            p.count("log_records_processed", len(records))
            for found in detections:
                detection = found.model_copy(update=received)
                key = routing_key(detection, p.settings.group_by).encode()
                p.count("detections_emitted")
                await p.topics.detections.send(key=key, value=encode(detection))

    @p.app.agent(p.topics.logs, name="mine_logs")
    async def mine_logs(stream: Any) -> None:
        await each_input(p, stream, "mine_logs", on_records,
                         stage="mine_logs", errors="mine_logs_errors")  # fmt: skip

    @p.app.timer(interval=SILENCE_CHECK_S)
    async def report_silent_sources() -> None:
        now = datetime.now(tz=UTC).timestamp()
        for service in list(state.keys()):
            try:
                detection = source_of(service).detector.check_silence(service, now)
            except Exception:
                p.count("mine_logs_errors")
                continue
            if detection is not None and detection.id not in silences_sent:
                silences_sent.add(detection.id)
                key = routing_key(detection, p.settings.group_by).encode()
                p.count("detections_emitted")
                await p.topics.detections.send(key=key, value=encode(detection))
