"""``responders.whatif``: the same recorded inputs under two catalogs, as named timelines."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from responders.correlation import Timing
from responders.whatif import Input, simulate
from schemas import Catalog, Command, CommandKind, Detection
from streams.whatif import since_of

T0 = datetime(2026, 11, 30, 4, 0, tzinfo=UTC)  # 04:00 UTC: night in UTC, not in Los Angeles


def catalog(steps: list[list[str]], **people: Any) -> Catalog:
    return Catalog.model_validate(
        {
            "services": {"api": {"team": "core"}},
            "teams": {"core": {"escalation_policy": "core"}},
            "people": {
                n: {"contacts": [{"channel": "console"}], **people.get(n, {})}
                for n in ("ann", "bob")
            },
            "escalation_policies": {
                "core": {
                    "steps": [
                        {"delay_s": 0 if i == 0 else 300, "targets": names}
                        for i, names in enumerate(steps)
                    ]
                }
            },
        }
    )


def detection(n: int, at: datetime) -> Input:
    d = Detection(id=f"d{n}", ts=at, service="api", signal="errors", detector="x", score=1.0)
    return Input(at, detection=d)


def ack(at: datetime) -> Input:
    c = Command(id="c1", kind=CommandKind.ACKNOWLEDGE, incident_id="recorded-id",
                routing_key="api", actor="ann", issued_at=at)  # fmt: skip
    return Input(at, command=c)


TIMING = Timing(group_wait_s=0.0)


@pytest.mark.parametrize(
    ("steps", "inputs", "ann", "bob"),
    [
        ([["ann"], ["bob"]], [detection(1, T0)], 1, 1),
        ([["ann"]], [detection(1, T0)], 1, 0),
        ([["ann"], ["bob"]], [detection(1, T0), ack(T0 + timedelta(seconds=60))], 1, 0),
    ],
    ids=["two-steps-unacknowledged", "step-removed", "acknowledged-before-step-two"],
)
def test_pages_per_person(steps: list[list[str]], inputs: list[Input], ann: int, bob: int) -> None:
    tally = simulate(inputs, catalog(steps), TIMING, T0 + timedelta(minutes=30))
    assert tally.incidents == {"api": 1}
    assert (tally.person_pages["ann"], tally.person_pages["bob"]) == (ann, bob)


def test_a_page_at_night_is_counted_in_the_persons_time_zone() -> None:
    inputs = [detection(1, T0)]
    utc = simulate(inputs, catalog([["ann"]]), TIMING, T0 + timedelta(minutes=1))
    west = catalog([["ann"]], ann={"time_zone": "America/Los_Angeles"})
    la = simulate(inputs, west, TIMING, T0 + timedelta(minutes=1))
    assert (utc.person_night["ann"], la.person_night["ann"]) == (1, 0)
    assert utc.night_pages == {"api": 1}


def test_the_same_inputs_give_the_same_tally() -> None:
    inputs = [detection(n, T0 + timedelta(hours=n)) for n in range(5)]
    a = simulate(inputs, catalog([["ann"], ["bob"]]), TIMING, T0 + timedelta(days=1))
    b = simulate(
        list(reversed(inputs)), catalog([["ann"], ["bob"]]), TIMING, T0 + timedelta(days=1)
    )
    assert a == b


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ("99999999d", "--since: '99999999d' reaches before the year 1"),
        ("1e400s", "neither a span"),
        ("2099-01-01T00:00:00Z", "--since: 2099-01-01T00:00:00+00:00 is after now"),
        ("0001-01-01T00:00:00+01:00", "--since: '0001-01-01T00:00:00+01:00' is before the year 1"),
        ("garbage", "neither a span"),
    ],
    ids=["span-overflow", "exponent", "future", "before-year-1", "garbage"],
)
def test_a_since_that_is_no_window_is_a_value_error_naming_the_option(text: str, said: str) -> None:
    with pytest.raises(ValueError, match=r"^--since: ") as caught:
        since_of(text, datetime(2026, 12, 7, tzinfo=UTC))
    assert said in str(caught.value), caught.value


def test_a_since_span_or_time_is_the_window_start_in_utc() -> None:
    now = datetime(2026, 12, 7, tzinfo=UTC)
    assert since_of("7d", now) == now - timedelta(days=7)
    assert since_of("2026-12-07T01:00:00+02:00", now) == datetime(2026, 12, 6, 23, tzinfo=UTC)
    assert since_of("2026-12-06T00:00:00", now).tzinfo is UTC
