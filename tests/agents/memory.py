"""The agents' own code over an in-memory :class:`~streams.pipeline.Pipeline`: no broker.

:class:`Runtime` assembles a pipeline (:func:`streams.app.assemble`, as the worker does) over
an app whose topics and tables live in memory, and attaches the real agents to it with their
``attach``. Every message sent to a topic (or a dead-letter topic) is appended to one ordered
log; :meth:`Runtime.settle` hands each agent the records of its topics that it has not read yet,
as Faust would, and waits (with a deadline) until no record is unread and no delivery lane is
working. Timers run when a test calls them, at the time of the test's clock (:class:`Clock`),
which the modules in ``CLOCKED`` read instead of the wall clock.

Pages leave through :class:`RecordingNotifier`, a :class:`responders.ports.Notifier` put in the
pipeline's notifier mapping for every channel: it records each page and can be told to fail or
raise for a recipient.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any, TypeVar, cast

import pytest
from pydantic import BaseModel

from responders.ports import DeliveryResult, Notifier
from schemas import Catalog, Channel, DeadLetter, Page
from streams.app import assemble
from streams.lanes import Lanes
from streams.settings import Settings

T0 = datetime(2026, 5, 4, 12, 0, tzinfo=UTC)
#: Modules whose ``datetime`` and ``time`` the runtime replaces by its clock.
CLOCKED = ("streams.deadlines", "streams.agents.deliver_pages")
M = TypeVar("M", bound=BaseModel)
Agent = Callable[[Any], Awaitable[None]]


@dataclass(frozen=True)
class Record:
    """One message as it sits on its topic."""

    topic: str
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp: float
    partition: int = 0


class Log:
    """Every message sent, in order, to any topic."""

    def __init__(self) -> None:
        self.records: list[Record] = []

    def append(self, topic: str, key: bytes | None, value: bytes | None, at: datetime) -> None:
        offset = sum(1 for r in self.records if r.topic == topic)
        self.records.append(Record(topic, offset, key, value, at.timestamp()))

    def on(self, topic: str) -> list[Record]:
        return [r for r in self.records if r.topic == topic]


class Clock:
    """The time the clocked modules read (and every record is stamped with)."""

    def __init__(self, now: datetime = T0) -> None:
        self.now = now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Make the clocked modules read this clock for ``datetime.now`` and ``time``."""
        dates = SimpleNamespace(now=lambda tz=None: self.now, fromtimestamp=datetime.fromtimestamp)
        seconds = SimpleNamespace(
            time=lambda: self.now.timestamp(), monotonic=lambda: self.now.timestamp()
        )
        for name in CLOCKED:
            module = sys.modules[name]
            if hasattr(module, "datetime"):
                monkeypatch.setattr(module, "datetime", dates)
            if hasattr(module, "time"):
                monkeypatch.setattr(module, "time", seconds)


def _settled(value: object = None) -> asyncio.Future[object]:
    future: asyncio.Future[object] = asyncio.get_running_loop().create_future()
    future.set_result(value)
    return future


class MemoryTopic:
    """A topic (or several, read together) whose messages go to the runtime's log."""

    def __init__(self, log: Log, clock: Clock, *names: str) -> None:
        self.log, self.clock, self.names = log, clock, names

    async def send(
        self, key: bytes | None = None, value: bytes | None = None, **_: Any
    ) -> asyncio.Future[object]:
        self.log.append(self.names[0], key, value, self.clock.now)
        return _settled()


class Signal:
    def __init__(self) -> None:
        self.handlers: list[Callable[..., Awaitable[None]]] = []

    def connect(self, handler: Callable[..., Awaitable[None]]) -> Callable[..., Awaitable[None]]:
        self.handlers.append(handler)
        return handler


class MemoryConsumer:
    """What the agents read of Faust's consumer: end offsets (every topic one partition), and
    no committed offset."""

    def __init__(self, log: Log) -> None:
        self.log = log
        self._committed_offset: dict[Any, int] = {}

    def _new_topicpartition(self, topic: str, partition: int) -> tuple[str, int]:
        return (topic, partition)

    def highwater(self, tp: tuple[str, int]) -> int:
        return len(self.log.on(tp[0]))


class MemoryProducer:
    """Faust's producer as the agents use it: a flush, which has nothing to wait for (a table
    write here is in the table at once)."""

    async def flush(self) -> None:
        return None


class MemoryApp:
    """What the agents use of ``faust.App``: agents, timers and tasks are recorded, not run."""

    def __init__(self, log: Log, clock: Clock) -> None:
        self.log, self.clock = log, clock
        self.agents: dict[str, tuple[tuple[str, ...], Agent]] = {}
        self.timers: dict[str, Callable[[], Awaitable[None]]] = {}
        self.on_before_shutdown = Signal()
        self.rebalancing = False
        self.consumer = MemoryConsumer(log)
        self.producer = MemoryProducer()

    def agent(self, channel: MemoryTopic, name: str) -> Callable[[Agent], Agent]:
        def register(fn: Agent) -> Agent:
            self.agents[name] = (channel.names, fn)
            return fn

        return register

    def timer(self, interval: float) -> Callable[[Any], Any]:
        def register(fn: Any) -> Any:
            self.timers[fn.__name__] = fn
            return fn

        return register

    def task(self, fn: Any) -> Any:
        return fn

    def topic(self, *names: str, **_: Any) -> MemoryTopic:
        return MemoryTopic(self.log, self.clock, *names)

    def Table(self, name: str, **_: Any) -> MemoryTable:
        return MemoryTable()

    async def send(self, channel: str, key: bytes | None, value: bytes, **_: Any) -> None:
        self.log.append(channel, key, value, self.clock.now)


class MemoryTable(dict[str, Any]):
    """A table of one partition."""

    def partition_of(self, key: str) -> int | None:
        return 0 if key in self else None

    @property
    def recent(self) -> dict[str, Any]:
        """Every row is held in memory."""
        return self


@dataclass
class RecordingNotifier:
    """A :class:`~responders.ports.Notifier` that records the pages it is handed. Outcomes queued
    in ``scripted`` for a recipient (a result, or an exception to raise) are used up first; a
    recipient in ``stuck`` is not answered until its event is set (a black-holed endpoint)."""

    attempts: list[Page] = field(default_factory=list)
    delivered: list[Page] = field(default_factory=list)
    scripted: dict[str, list[DeliveryResult | Exception]] = field(default_factory=dict)
    stuck: dict[str, asyncio.Event] = field(default_factory=dict)

    async def deliver(self, page: Page) -> DeliveryResult:
        self.attempts.append(page)
        if page.recipient in self.stuck:
            await self.stuck[page.recipient].wait()
        queued = self.scripted.get(page.recipient)
        if queued:
            outcome = queued.pop(0)
            if isinstance(outcome, Exception):
                raise outcome
            if not outcome.delivered:
                return outcome
        self.delivered.append(page)
        return DeliveryResult(True, detail="recorded")

    def to(self, recipient: str) -> list[Page]:
        """The pages delivered to ``recipient``."""
        return [p for p in self.delivered if p.recipient == recipient]


class _Stream:
    """The part of a Faust stream an agent reads: its events, each with its message."""

    def __init__(self, records: Iterable[Record]) -> None:
        self.records = list(records)

    async def events(self) -> AsyncIterator[Any]:
        for r in self.records:
            yield SimpleNamespace(message=r, key=r.key, value=r.value)


def _lanes() -> list[asyncio.Task[Any]]:
    """The delivery lanes at work (``streams.lanes``)."""
    return [
        t
        for t in asyncio.all_tasks()
        if not t.done() and getattr(t.get_coro(), "__qualname__", "") == Lanes._drain.__qualname__
    ]


class Runtime:
    """A pipeline in memory with the real agents attached."""

    def __init__(
        self,
        settings: Settings,
        catalog: Catalog,
        monkeypatch: pytest.MonkeyPatch,
        notifiers: Mapping[Channel, Notifier] | None = None,
    ) -> None:
        self.clock, self.log = Clock(), Log()
        self.notifier = RecordingNotifier()
        self.app = MemoryApp(self.log, self.clock)
        everywhere = dict.fromkeys(Channel, self.notifier)
        self.pipeline = assemble(cast(Any, self.app), settings, catalog, notifiers or everywhere)
        self.read: dict[str, int] = {}
        from streams.agents import aggregate_mttr, deliver_pages, open_incidents, project_timeline

        for agent in (open_incidents, deliver_pages, project_timeline, aggregate_mttr):
            agent.attach(self.pipeline)
        self.clock.install(monkeypatch)
        self.pipeline.directory.caught_up.set()  # nothing to read back in memory

    @property
    def names(self) -> Any:
        return self.pipeline.settings.topics

    async def send(self, topic: str, key: bytes | None, value: bytes | None) -> None:
        """Produce one message, as a client outside the pipeline does."""
        self.log.append(topic, key, value, self.clock.now)

    async def settle(self, until: Callable[[], bool] | None = None, timeout_s: float = 5.0) -> None:
        """Run the agents until ``until()`` holds, else until every record is read and every
        lane is idle; fail after ``timeout_s``."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while True:
            ran = await self._run_agents()
            working = _lanes()
            if until() if until is not None else not (ran or working):
                return
            if loop.time() > deadline:
                raise AssertionError(f"not settled after {timeout_s}s: {len(working)} lanes busy")
            if not ran:
                await asyncio.wait(working or [asyncio.ensure_future(asyncio.sleep(0.01))],
                                   timeout=0.05, return_when=asyncio.FIRST_COMPLETED)  # fmt: skip

    async def _run_agents(self) -> bool:
        ran = False
        for name, (topics, fn) in list(self.app.agents.items()):
            start = self.read.get(name, 0)
            unread = self.log.records[start:]
            self.read[name] = len(self.log.records)
            mine = [r for r in unread if r.topic in topics]
            if mine:
                await fn(_Stream(mine))
                ran = True
        return ran

    async def timer(self, name: str) -> None:
        """Run one of the agents' timers now (at the clock's time)."""
        await self.app.timers[name]()

    async def close(self) -> None:
        for handler in self.app.on_before_shutdown.handlers:
            await handler(self.app)

    def decoded(self, topic: str, model: type[M]) -> list[M]:
        """Every message on ``topic`` that is a ``model``."""
        found = []
        for r in self.log.on(topic):
            try:
                found.append(model.model_validate_json(r.value or b""))
            except ValueError:
                continue
        return found

    def dead_letters(self, topic: str) -> list[DeadLetter]:
        return self.decoded(f"{topic}.dlq", DeadLetter)
