"""The one retry loop (``streams.retry``): pauses, attempts, the deadline, and the runbook
webhooks and pages that use it."""

from __future__ import annotations

import pytest

from streams.agents.run_automation import call_webhook
from streams.retry import Backoff, retry
from tests.unit import test_notifiers
from tests.unit.test_notifiers import Receiver

#: A real HTTP server (``/status/<code>``, ``/slow``), the notifiers' tests' fixture.
receiver = test_notifiers.receiver


class Clock:
    """A logical clock that the fake sleep moves."""

    def __init__(self) -> None:
        self.now = 0.0
        self.pauses: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.pauses.append(seconds)
        self.now += seconds


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    c = Clock()
    monkeypatch.setattr("streams.retry._sleep", c.sleep)
    monkeypatch.setattr("streams.retry._now", c)
    return c


@pytest.mark.parametrize(
    ("backoff", "draw", "pauses"),
    [
        (Backoff(5, 1.0, 30.0), 0.0, [0.5, 1.0, 2.0, 4.0]),
        (Backoff(5, 1.0, 30.0), 0.999999, [1.0, 2.0, 4.0, 8.0]),
        (Backoff(6, 1.0, 3.0), 0.0, [0.5, 1.0, 1.5, 1.5, 1.5]),
        (Backoff(3, 0.0, 3.0), 0.5, [0.0, 0.0]),
    ],
    ids=["doubles-from-half", "doubles-up-to-whole", "capped", "no-backoff"],
)
async def test_pauses_double_with_jitter_up_to_the_cap(
    clock: Clock, backoff: Backoff, draw: float, pauses: list[float]
) -> None:
    tried: list[int] = []

    async def attempt(n: int) -> bool:
        tried.append(n)
        return False

    result, n = await retry(attempt, lambda ok: not ok, backoff, lambda: draw)
    assert (result, n) == (False, backoff.attempts)
    assert tried == list(range(1, backoff.attempts + 1))
    assert clock.pauses == pytest.approx(pauses, abs=1e-5)


async def test_a_result_not_worth_retrying_ends_the_retries(clock: Clock) -> None:
    answers = iter(["busy", "busy", "gone", "busy"])

    async def attempt(n: int) -> str:
        return next(answers)

    assert await retry(attempt, lambda a: a == "busy", Backoff(8, 1.0, 1.0)) == ("gone", 3)
    assert len(clock.pauses) == 2


async def test_no_retry_begins_past_the_deadline(clock: Clock) -> None:
    """Attempts take time too: each costs 3 s here, so with pauses of 1 s the attempts begin at
    0, 4 and 8 s, and a fourth would begin at 12 s, past a 10 s deadline."""
    began: list[float] = []

    async def attempt(n: int) -> bool:
        began.append(clock.now)
        clock.now += 3.0
        return False

    backoff = Backoff(attempts=50, base_s=1.0, cap_s=1.0, deadline_s=10.0)
    result, n = await retry(attempt, lambda ok: not ok, backoff, lambda: 0.999999)
    assert (result, n) == (False, 3)
    assert began == pytest.approx([0.0, 4.0, 8.0], abs=1e-5)


async def test_runbook_webhook_retries_are_capped(clock: Clock, receiver: Receiver) -> None:
    """A runbook webhook answering 503 is retried with pauses that double only up to the cap
    (they doubled without bound: 0.5, 1, 2, 4, ... 32 s with eight attempts)."""
    backoff = Backoff(attempts=8, base_s=0.5, cap_s=2.0)
    url = f"{receiver.url}/status/503"
    result = await call_webhook(url, b"{}", {"Idempotency-Key": "inc-1/t"}, 2.0, backoff)
    assert result == "HTTP 503: ok (after 8 attempts)"
    assert len(receiver.requests) == 8
    assert {h["Idempotency-Key"] for h, _ in receiver.requests} == {"inc-1/t"}
    assert len(clock.pauses) == 7 and max(clock.pauses) <= 2.0


async def test_runbook_webhook_retries_end_at_the_deadline(
    clock: Clock, receiver: Receiver
) -> None:
    """Pauses of 2 to 4 s and a 4 s deadline: one retry fits, a second never does."""
    backoff = Backoff(attempts=8, base_s=4.0, cap_s=4.0, deadline_s=4.0)
    result = await call_webhook(f"{receiver.url}/status/429", b"{}", {}, 2.0, backoff)
    assert result == "HTTP 429: ok (after 2 attempts)"
    assert len(receiver.requests) == 2


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/status/200", "HTTP 200: ok"),
        ("/status/404", "HTTP 404: ok"),
        ("/slow", "timed out after 0.2s (after 2 attempts)"),
    ],
    ids=["ok", "not-found-is-final", "timeout"],
)
async def test_runbook_webhook_result_text(
    clock: Clock, receiver: Receiver, path: str, expected: str
) -> None:
    result = await call_webhook(f"{receiver.url}{path}", b"{}", {}, 0.2, Backoff(2, 0.1, 0.1))
    assert result == expected


def test_the_module_examples_hold() -> None:
    import doctest

    import streams.retry

    result = doctest.testmod(streams.retry)
    assert result.attempted > 0 and result.failed == 0
