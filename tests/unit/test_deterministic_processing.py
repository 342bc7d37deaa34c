"""Processing an input twice, at any two wall-clock times, writes byte-identical outputs
(invariant 7).

A recorded scenario (detections, the ticks the timer sent, people's commands) is fed to two
workers of the ``open_incidents`` agent, built on in-memory tables and topics. The second
worker processes every input 30 s of wall-clock time later than the first, as a worker that
re-processes after a crash does. Every event, page and tick they send must be the same bytes.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest

from schemas import Catalog, Command, Detection
from streams.codec import encode
from streams.settings import Settings

T0 = datetime(2026, 5, 4, 12, 0, tzinfo=UTC)
DETECTIONS, COMMANDS = "detections.v1", "incidents.commands.v1"
CATALOG = Catalog.model_validate(
    {
        "services": {"api": {"team": "core", "tier": 1, "stakeholders": ["cto"]}},
        "teams": {
            "core": {
                "escalation": [
                    {"targets": ["ann"]},
                    {"delay_s": 300, "targets": ["bob"]},
                ]
            }
        },
        "people": {p: {"contacts": [{"channel": "console"}]} for p in ("ann", "bob", "cto")},
    }
)
#: Modules whose ``datetime``/``time`` a test replaces by a clock it sets.
CLOCKED = ("streams.agents.open_incidents", "streams.deadlines")


@dataclass
class Record:
    """One input as it sits on its topic: bytes, key and the record's timestamp."""

    topic: str
    key: bytes
    value: bytes
    timestamp_s: float


@dataclass
class Worker:
    """The ``open_incidents`` agent and its timer over in-memory tables and topics."""

    agent: Callable[[Any], Any]
    timer: Callable[[], Any]
    sent: list[tuple[str, bytes, bytes]] = field(default_factory=list)
    dead: list[str] = field(default_factory=list)


def _settled(value: object = None) -> asyncio.Future[object]:
    future: asyncio.Future[object] = asyncio.get_running_loop().create_future()
    future.set_result(value)
    return future


def worker() -> Worker:
    from streams.agents import open_incidents

    captured: dict[str, Any] = {}
    sent: list[tuple[str, bytes, bytes]] = []
    dead: list[str] = []

    class Topic:
        def __init__(self, name: str) -> None:
            self.name = name

        async def send(self, key: bytes, value: bytes) -> asyncio.Future[object]:
            sent.append((self.name, key, value))
            return _settled()

    class App:
        def agent(self, _topic: object, name: str) -> Callable[[Any], Any]:
            def register(fn: Any) -> Any:
                captured["agent"] = fn
                return fn

            return register

        def timer(self, interval: float) -> Callable[[Any], Any]:
            def register(fn: Any) -> Any:
                captured["timer"] = fn
                return fn

            return register

    class DeadLetters:
        async def send(self, message: Any, stage: str, reason: str) -> None:
            dead.append(f"{stage}: {reason}")

    caught_up = asyncio.Event()
    caught_up.set()
    directory = SimpleNamespace(
        caught_up=caught_up, active_silences=lambda: [], resolved={}, open_on=lambda _s: None
    )
    settings = Settings(group_wait_s=30, group_interval_s=300, repeat_interval_s=4 * 3600)
    p = SimpleNamespace(
        settings=settings,
        catalog=CATALOG,
        catalog_version=None,
        catalog_digest="",
        app=App(),
        topics=SimpleNamespace(
            incident_inputs=Topic("inputs"),
            detections=Topic(DETECTIONS),
            commands=Topic(COMMANDS),
            events=Topic("incidents.events.v1"),
            pages=Topic("mobilization.pages.v1"),
        ),
        tables=SimpleNamespace(incidents={}, open_incidents={}, timelines={}),
        directory=directory,
        dead_letters=DeadLetters(),
        counters={},
        count=lambda name, n=1: None,
    )
    open_incidents.attach(p)  # type: ignore[arg-type]
    return Worker(captured["agent"], captured["timer"], sent, dead)


class Clock:
    """The wall clock the modules in ``CLOCKED`` read, set by the test."""

    def __init__(self) -> None:
        self.now = T0

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        clock = self

        class Frozen(datetime):
            @classmethod
            def now(cls, tz: Any = None) -> Frozen:
                return clock.now  # type: ignore[return-value]

        fake_time = SimpleNamespace(
            time=lambda: clock.now.timestamp(), monotonic=lambda: clock.now.timestamp()
        )
        for name in CLOCKED:
            module = sys.modules.get(name)
            if module is None:
                continue
            if hasattr(module, "datetime"):
                monkeypatch.setattr(module, "datetime", Frozen)
            if hasattr(module, "time"):
                monkeypatch.setattr(module, "time", fake_time)


def _events(records: list[Record]) -> Any:
    async def events() -> AsyncIterator[Any]:
        for r in records:
            message = SimpleNamespace(
                key=r.key, topic=r.topic, timestamp=r.timestamp_s, partition=0, offset=0
            )
            yield SimpleNamespace(message=message, value=r.value)

    return SimpleNamespace(events=events)


def process(w: Worker, record: Record) -> list[tuple[str, bytes, bytes]]:
    """What the worker sends for one input."""
    before = len(w.sent)
    asyncio.run(w.agent(_events([record])))
    return w.sent[before:]


def run_timer(w: Worker) -> list[Record]:
    """The ticks the worker's timer sends now, as records on the commands topic."""
    before = len(w.sent)

    async def once() -> None:
        await w.timer()

    asyncio.run(once())
    return [Record(t, k, v, 0.0) for t, k, v in w.sent[before:] if t == COMMANDS]


def detection(n: int, at_s: float, signal: str, status: str = "firing") -> Record:
    ts = T0 + timedelta(seconds=at_s)
    d = Detection(
        id=f"det-{n}", ts=ts, service="api", signal=signal, detector="zscore", score=0.99,
        status=status, received_at=ts,
    )  # fmt: skip
    return Record(DETECTIONS, b"api", encode(d), (ts + timedelta(seconds=1)).timestamp())


def command(kind: str, incident_id: str, at_s: float, **fields: Any) -> Record:
    issued = T0 + timedelta(seconds=at_s)
    c = Command(
        id=f"cmd-{kind}-{at_s:g}", kind=kind, incident_id=incident_id,
        routing_key="api", actor="ann", issued_at=issued, **fields,
    )  # fmt: skip
    return Record(COMMANDS, b"api", encode(c), (issued + timedelta(seconds=0.2)).timestamp())


def _incident_id(sent: list[tuple[str, bytes, bytes]]) -> str:
    from schemas import IncidentEvent

    for topic, _key, value in sent:
        if topic == "incidents.events.v1":
            return IncidentEvent.model_validate_json(value).incident_id
    raise AssertionError("no incident opened")


def scenario(first: Worker, clock: Clock) -> Iterator[tuple[float, Record]]:
    """The recorded inputs, each with the wall-clock second (after T0) the first worker
    processes it at. Ticks are those the first worker's timer sent."""
    yield 2.0, detection(1, 0, "latency")
    yield 6.0, detection(2, 5, "errors")
    clock.now = T0 + timedelta(seconds=32)  # the group wait (30 s) has passed
    ticks = run_timer(first)
    assert len(ticks) == 1
    yield 33.0, ticks[0]
    incident_id = _incident_id(first.sent)
    yield 120.0, command("note", incident_id, 119, text="looking at the database")
    clock.now = T0 + timedelta(seconds=300)  # the second step is due at 30 + 300 s
    ticks = run_timer(first)
    assert ticks == []
    clock.now = T0 + timedelta(seconds=331)
    ticks = run_timer(first)
    assert len(ticks) == 1
    yield 331.0, ticks[0]
    yield 400.0, detection(3, 398, "latency", "resolved")
    yield 420.0, command("acknowledge", incident_id, 419)
    yield 900.0, command("resolve", incident_id, 899, text="rolled back")


def test_every_input_processed_again_later_writes_the_same_bytes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = Clock()
    first, again = worker(), worker()
    clock.install(monkeypatch)
    lag = timedelta(seconds=30)  # the second worker re-processes everything 30 s later
    compared = 0
    for wall_s, record in scenario(first, clock):
        clock.now = T0 + timedelta(seconds=wall_s)
        sent_first = process(first, record)
        clock.now = T0 + timedelta(seconds=wall_s) + lag
        sent_again = process(again, record)
        assert sent_again == sent_first, f"input {record.value[:60]!r}"
        compared += len(sent_first)
    assert first.dead == again.dead == []
    kinds = [t for t, _, _ in first.sent]
    assert kinds.count("mobilization.pages.v1") >= 3 and compared >= 10


def test_the_timer_sends_the_same_tick_for_the_same_deadline_at_any_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = Clock()
    first, again = worker(), worker()
    clock.install(monkeypatch)
    record = detection(1, 0, "latency")
    clock.now = T0 + timedelta(seconds=2)
    process(first, record)
    process(again, record)
    clock.now = T0 + timedelta(seconds=31)
    ticks_first = run_timer(first)
    clock.now = T0 + timedelta(seconds=61)
    ticks_again = run_timer(again)
    assert [t.value for t in ticks_first] == [t.value for t in ticks_again]
    assert len(ticks_first) == 1
    tick = Command.model_validate_json(ticks_first[0].value)
    # Due at the end of the group wait: 30 s after the detection's record reached the stream.
    assert tick.issued_at == T0 + timedelta(seconds=31)


def test_a_command_without_issued_at_is_decided_at_its_records_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from schemas import IncidentEvent

    clock = Clock()
    first, again = worker(), worker()
    clock.install(monkeypatch)
    for w in (first, again):
        process(w, detection(1, 0, "latency"))
    clock.now = T0 + timedelta(seconds=40)
    tick = run_timer(first)[0]
    for w in (first, again):
        process(w, tick)
    incident_id = _incident_id(first.sent)
    old = command("note", incident_id, 100, text="from an older client")
    data = {k: v for k, v in Command.model_validate_json(old.value).model_dump().items()
            if k != "issued_at"}  # fmt: skip
    old.value = Command.model_validate(data).model_dump_json().encode()
    assert b'issued_at":null' in old.value
    clock.now = T0 + timedelta(seconds=200)
    sent_first = process(first, old)
    clock.now = T0 + timedelta(seconds=500)
    assert process(again, old) == sent_first
    (note,) = [IncidentEvent.model_validate_json(v) for _, _, v in sent_first]
    assert note.kind.value == "note" and note.at == datetime.fromtimestamp(old.timestamp_s, UTC)
