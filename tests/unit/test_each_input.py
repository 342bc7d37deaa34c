"""``streams.agents.each_input``: the one per-input error policy of every agent."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import pytest

from streams.agents import each_input


@dataclass
class FakeDeadLetters:
    sent: list[tuple[int, str, str]] = field(default_factory=list)

    async def send(self, message: Any, stage: str, error: str) -> None:
        self.sent.append((message.offset, stage, error))


@dataclass
class FakePipeline:
    dead_letters: FakeDeadLetters = field(default_factory=FakeDeadLetters)
    counters: dict[str, int] = field(default_factory=dict)

    def count(self, name: str, n: int = 1) -> None:
        self.counters[name] = self.counters.get(name, 0) + n


class FakeMessage:
    def __init__(self, offset: int, value: str) -> None:
        self.topic, self.partition, self.offset, self.value = "t", 0, offset, value
        self.generation_id, self.acked = 1, False


class FakeStream:
    def __init__(self, values: list[str]) -> None:
        self.values = values
        self.messages: list[FakeMessage] = []

    async def events(self) -> AsyncIterator[Any]:
        for offset, value in enumerate(self.values):
            message = FakeMessage(offset, value)
            self.messages.append(message)
            yield SimpleNamespace(message=message, value=value)


@pytest.mark.parametrize(
    ("values", "handled", "letters"),
    [
        (["a", "b"], ["a", "b"], []),
        (["a", "boom", "b"], ["a", "b"], [(1, "stage-x", "ValueError: boom")]),
        (["boom", "boom"], [], [(0, "stage-x", "ValueError: boom"),
                                (1, "stage-x", "ValueError: boom")]),
    ],
    ids=["all-good", "one-bad-between", "all-bad"],
)  # fmt: skip
async def test_an_input_that_raises_is_dead_lettered_counted_and_the_stream_goes_on(
    values: list[str], handled: list[str], letters: list[tuple[int, str, str]]
) -> None:
    fake = FakePipeline()
    p: Any = fake  # what each_input uses of a Pipeline: count and dead_letters
    seen: list[str] = []

    async def handle(event: Any) -> None:
        if event.value == "boom":
            raise ValueError("boom")
        seen.append(event.value)

    await each_input(p, FakeStream(values), "agent-x", handle, stage="stage-x", errors="x_errors")
    assert seen == handled
    assert fake.dead_letters.sent == letters
    assert fake.counters.get("x_errors", 0) == len(letters)


async def test_an_input_whose_handling_is_cancelled_is_not_counted_as_processed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A stop cancels the agent with an input in hand; Faust's stream acknowledges that input
    anyway. It must be let go uncounted (read again by the next owner), not committed."""
    import asyncio

    from streams import faust_acks

    started = asyncio.Event()

    async def handle(event: Any) -> None:
        started.set()
        await asyncio.Event().wait()  # the events of this input are never sent

    stream = FakeStream(["a"])
    task = asyncio.ensure_future(
        each_input(FakePipeline(), stream, "t", handle, stage="s", errors="e")  # type: ignore[arg-type]
    )
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    recorded: list[int] = []
    app = SimpleNamespace(
        consumer_generation_id=1, flow_control=SimpleNamespace(is_active=lambda: True)
    )
    consumer = SimpleNamespace(app=app, _unacked_messages=set(), _waiting_for_ack=None)
    (message,) = stream.messages  # the message the stream had in hand, acknowledged by Faust

    def original(self: Any, message: Any) -> bool:
        recorded.append(message.offset)
        return True

    monkeypatch.setattr(faust_acks, "_ORIGINAL_ACK", original)
    assert faust_acks._ack(consumer, message) is False  # let go, its offset not recorded
    assert recorded == [] and message.acked
    # The same offset read again later (by this or the next owner) and handled to its end counts.
    again = FakeMessage(0, "a")
    assert faust_acks._ack(consumer, again) is True
    assert recorded == [0]


async def test_a_table_refusing_a_write_for_stale_metadata_has_the_input_handled_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``PartitionsMismatch`` (a changelog the consumer's metadata does not show whole yet) is
    no fault of the input: it is neither dead-lettered nor skipped, but handled again."""
    from faust.exceptions import PartitionsMismatch

    import streams.agents

    monkeypatch.setattr(streams.agents, "METADATA_RETRY_S", 0.0)
    fake = FakePipeline()
    p: Any = fake
    attempts: list[str] = []

    async def handle(event: Any) -> None:
        attempts.append(event.value)
        if event.value == "a" and attempts.count("a") < 3:
            raise PartitionsMismatch("changelog has 1 partition, source 4")

    await each_input(p, FakeStream(["a", "b"]), "agent-x", handle, stage="s", errors="x_errors")
    assert attempts == ["a", "a", "a", "b"]
    assert fake.dead_letters.sent == []
    assert fake.counters == {}
