"""Who is on call and whom each escalation step pages: table-driven, across DST changes."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from responders.oncall import (
    escalation_plan,
    next_due,
    on_call,
    policy_for,
    targets_for_step,
)
from schemas import Catalog

PEOPLE = ("ann", "ben", "cat", "dan")


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def layer(participants: list[str], **fields: Any) -> dict[str, Any]:
    return {"participants": participants, "start": "2026-01-05", "handoff": "09:00", **fields}


def catalog(
    schedules: dict[str, Any] | None = None, policies: dict[str, Any] | None = None, **more: Any
) -> Catalog:
    return Catalog.model_validate(
        {
            "people": {p: {"contacts": [{"channel": "console"}]} for p in PEOPLE},
            "schedules": schedules or {},
            "escalation_policies": policies or {},
            **more,
        }
    )


WEEKLY = {"time_zone": "UTC", "layers": [layer(["ann", "ben", "cat"], rotation="weekly")]}
BERLIN_DAILY = {
    "time_zone": "Europe/Berlin",
    "layers": [layer(["ann", "ben"], rotation="daily", start="2026-03-01")],
}
NEW_YORK_DAILY = {
    "time_zone": "America/New_York",
    "layers": [layer(["ann", "ben"], rotation="daily", start="2026-03-01")],
}
BERLIN_HOURLY = {
    "time_zone": "Europe/Berlin",
    "layers": [layer(["ann", "ben"], rotation="hourly", length=12, start="2026-03-28")],
}
BERLIN_GAP_HANDOFF = {
    "time_zone": "Europe/Berlin",
    "layers": [layer(["ann", "ben"], rotation="daily", start="2026-03-28", handoff="02:30")],
}
LAYERED = {
    "time_zone": "Europe/Berlin",
    "layers": [
        layer(["ann", "ben"], rotation="weekly"),
        layer(
            ["cat"],
            rotation="daily",
            restrictions=[
                {"type": "weekly", "start_day": "fri", "start": "17:00", "end_day": "mon",
                 "end": "09:00"}
            ],
        ),
    ],
}  # fmt: skip
BUSINESS_HOURS = {
    "time_zone": "Europe/Berlin",
    "layers": [
        layer(
            ["ann"],
            rotation="daily",
            restrictions=[
                {"days": ["mon", "tue", "wed", "thu", "fri"], "start": "09:00", "end": "17:00"}
            ],
        )
    ],
}
NIGHTS = {
    "time_zone": "Europe/Berlin",
    "layers": [layer(["ben"], restrictions=[{"start": "22:00", "end": "06:00"}])],
}
OVERRIDDEN = {
    "time_zone": "UTC",
    "layers": [layer(["ann"])],
    "overrides": [
        {"person": "dan", "start": "2026-02-10T12:00:00Z", "end": "2026-02-10T18:00:00Z"},
        {"person": "cat", "start": "2026-02-10T17:00:00Z", "end": "2026-02-11T00:00:00Z"},
    ],
}

# (schedule, at (UTC), expected on call)
CASES = [
    # simple weekly rotation, hand-off Monday 09:00 UTC, nobody before the first turn
    (WEEKLY, "2026-01-05T08:59", []),
    (WEEKLY, "2026-01-05T09:00", ["ann"]),
    (WEEKLY, "2026-01-12T08:59", ["ann"]),
    (WEEKLY, "2026-01-12T09:00", ["ben"]),
    (WEEKLY, "2026-01-22T23:00", ["cat"]),
    (WEEKLY, "2026-01-26T09:00", ["ann"]),
    # daily 09:00 Europe/Berlin: 08:00 UTC in winter, 07:00 UTC in summer time
    (BERLIN_DAILY, "2026-03-28T07:59", ["ann"]),
    (BERLIN_DAILY, "2026-03-28T08:00", ["ben"]),  # ben's turn spans the spring-forward night
    (BERLIN_DAILY, "2026-03-29T06:59", ["ben"]),
    (BERLIN_DAILY, "2026-03-29T07:00", ["ann"]),  # ... and ends 23 h later
    (BERLIN_DAILY, "2026-10-24T06:59", ["ann"]),
    (BERLIN_DAILY, "2026-10-24T07:00", ["ben"]),  # ben's turn spans the fall-back night
    (BERLIN_DAILY, "2026-10-25T07:59", ["ben"]),
    (BERLIN_DAILY, "2026-10-25T08:00", ["ann"]),  # ... and ends 25 h later
    # daily 09:00 America/New_York: 14:00 UTC (EST), 13:00 UTC (EDT); DST 8 March, 1 November
    (NEW_YORK_DAILY, "2026-03-07T14:00", ["ann"]),
    (NEW_YORK_DAILY, "2026-03-08T12:59", ["ann"]),
    (NEW_YORK_DAILY, "2026-03-08T13:00", ["ben"]),
    (NEW_YORK_DAILY, "2026-10-31T13:00", ["ann"]),
    (NEW_YORK_DAILY, "2026-11-01T13:59", ["ann"]),
    (NEW_YORK_DAILY, "2026-11-01T14:00", ["ben"]),
    # hourly turns count elapsed hours, DST or not (start 2026-03-28 09:00 CET = 08:00 UTC)
    (BERLIN_HOURLY, "2026-03-28T20:00", ["ben"]),
    (BERLIN_HOURLY, "2026-03-29T07:59", ["ben"]),
    (BERLIN_HOURLY, "2026-03-29T08:00", ["ann"]),
    # a hand-off at 02:30, which 29 March skips, happens when the clock shows 03:30 (01:30 UTC)
    (BERLIN_GAP_HANDOFF, "2026-03-29T01:29", ["ann"]),
    (BERLIN_GAP_HANDOFF, "2026-03-29T01:30", ["ben"]),
    # layered: the weekend layer (fri 17:00 - mon 09:00 Berlin) overrides the weekly one
    (LAYERED, "2026-01-07T12:00", ["ann"]),
    (LAYERED, "2026-01-09T15:59", ["ann"]),
    (LAYERED, "2026-01-09T16:00", ["cat"]),
    (LAYERED, "2026-01-11T12:00", ["cat"]),
    (LAYERED, "2026-01-12T07:59", ["cat"]),
    (LAYERED, "2026-01-12T08:00", ["ben"]),
    # restriction window: weekdays 09:00-17:00 local, across the spring-forward change
    (BUSINESS_HOURS, "2026-03-27T08:00", ["ann"]),
    (BUSINESS_HOURS, "2026-03-27T15:59", ["ann"]),
    (BUSINESS_HOURS, "2026-03-27T16:00", []),
    (BUSINESS_HOURS, "2026-03-28T10:00", []),
    (BUSINESS_HOURS, "2026-03-30T06:59", []),
    (BUSINESS_HOURS, "2026-03-30T07:00", ["ann"]),
    (NIGHTS, "2026-01-06T22:30", ["ben"]),  # 23:30 local
    (NIGHTS, "2026-01-07T04:59", ["ben"]),  # 05:59 local, the next day
    (NIGHTS, "2026-01-07T05:00", []),
    # explicit overrides beat every layer; where two overlap, both are on call
    (OVERRIDDEN, "2026-02-10T11:59", ["ann"]),
    (OVERRIDDEN, "2026-02-10T12:00", ["dan"]),
    (OVERRIDDEN, "2026-02-10T17:30", ["dan", "cat"]),
    (OVERRIDDEN, "2026-02-10T23:59", ["cat"]),
    (OVERRIDDEN, "2026-02-11T00:00", ["ann"]),
]
NAMES = {
    id(WEEKLY): "weekly",
    id(BERLIN_DAILY): "daily-berlin-dst",
    id(NEW_YORK_DAILY): "daily-new-york-dst",
    id(BERLIN_HOURLY): "hourly-berlin-dst",
    id(BERLIN_GAP_HANDOFF): "handoff-in-dst-gap",
    id(LAYERED): "layered-override",
    id(BUSINESS_HOURS): "restriction-window",
    id(NIGHTS): "restriction-overnight",
    id(OVERRIDDEN): "explicit-override",
}


@pytest.mark.parametrize(
    ("schedule", "at", "expected"),
    CASES,
    ids=[f"{NAMES[id(s)]}@{at}" for s, at, _ in CASES],
)
def test_on_call(schedule: dict[str, Any], at: str, expected: list[str]) -> None:
    assert on_call(catalog({"s": schedule}), "s", utc(at)) == expected


@pytest.mark.parametrize(
    ("schedule", "turn_start", "hours"),
    [
        (BERLIN_DAILY, "2026-03-28T08:00", 23),
        (BERLIN_DAILY, "2026-10-24T07:00", 25),
        (BERLIN_DAILY, "2026-06-10T07:00", 24),
        (NEW_YORK_DAILY, "2026-03-07T14:00", 23),
        (NEW_YORK_DAILY, "2026-10-31T13:00", 25),
    ],
    ids=[
        "berlin-spring-23h",
        "berlin-autumn-25h",
        "berlin-summer-24h",
        "ny-spring-23h",
        "ny-autumn-25h",
    ],
)
def test_turn_length_follows_the_wall_clock(
    schedule: dict[str, Any], turn_start: str, hours: int
) -> None:
    c, start = catalog({"s": schedule}), utc(turn_start)
    holder = on_call(c, "s", start)
    assert on_call(c, "s", start - timedelta(minutes=1)) != holder
    assert on_call(c, "s", start + timedelta(hours=hours, minutes=-1)) == holder
    assert on_call(c, "s", start + timedelta(hours=hours)) != holder


def test_aware_times_in_any_zone_agree() -> None:
    from zoneinfo import ZoneInfo

    c = catalog({"s": BERLIN_DAILY})
    local = datetime(2026, 3, 29, 9, 0, tzinfo=ZoneInfo("Europe/Berlin"))
    assert on_call(c, "s", local) == on_call(c, "s", utc("2026-03-29T07:00")) == ["ann"]
    with pytest.raises(ValueError, match="timezone-aware"):
        on_call(c, "s", datetime(2026, 3, 29, 9, 0))


ROUND_ROBIN = {
    "rr": {
        "steps": [
            {"targets": ["ann", {"person": "ben"}, {"team": "ops"}], "notify": "round_robin"},
            {"delay_s": 300, "targets": [{"schedule": "s"}]},
        ],
        "repeat": 2,
        "repeat_delay_s": 600,
    }
}
OPS = {"ops": {"members": ["cat", "ann"], "escalation_policy": "rr"}}


def test_round_robin_is_deterministic_and_spreads() -> None:
    c = catalog({"s": WEEKLY}, ROUND_ROBIN, teams=OPS)
    at = utc("2026-01-06T00:00")
    picks = {key: targets_for_step(c, "rr", 0, at, key) for key in (f"inc-{i}" for i in range(60))}
    assert all(len(p) == 1 for p in picks.values())
    assert picks == {key: targets_for_step(c, "rr", 0, at, key) for key in picks}
    assert Counter(p[0] for p in picks.values()).keys() == {"ann", "ben", "cat"}
    # each repeated pass moves on to the next person (order: ann, ben, then ops' cat)
    order = ["ann", "ben", "cat"]
    for key in ("inc-1", "inc-2"):
        first = order.index(targets_for_step(c, "rr", 0, at, key)[0])
        assert targets_for_step(c, "rr", 2, at, key) == [order[(first + 1) % 3]]
        assert targets_for_step(c, "rr", 4, at, key) == [order[(first + 2) % 3]]


def test_repeat_count_and_plan() -> None:
    c = catalog({"s": WEEKLY}, ROUND_ROBIN, teams=OPS, services={"api": {"team": "ops"}})
    opened = utc("2026-01-12T08:50")
    plan = escalation_plan(c, "api", opened, incident_key="inc-7")
    assert [p.step for p in plan] == [0, 1, 2, 3, 4, 5]
    assert [(p.due_at - opened).total_seconds() for p in plan] == [0, 300, 900, 1200, 1800, 2100]
    # the schedule step pages whoever is on call when it is due: ann until 09:00, then ben
    assert [p.people for p in plan if p.step % 2] == [["ann"], ["ben"], ["ben"]]
    assert plan[0].people == targets_for_step(c, "rr", 0, opened, "inc-7")
    assert targets_for_step(c, "rr", 6, opened, "inc-7") == []
    assert next_due(c, "rr", -1, opened) == (0, opened)
    assert next_due(c, "rr", 1, opened) == (2, opened + timedelta(seconds=600))
    assert next_due(c, "rr", 5, opened) is None


def test_a_repeat_with_no_explicit_delay_reuses_the_last_step_delay() -> None:
    policies = {"p": {"steps": [{"targets": ["ann"]}, {"delay_s": 120, "targets": ["ben"]}],
                      "repeat": 1}}  # fmt: skip
    c = catalog(policies=policies, services={"api": {"team": "t"}},
                teams={"t": {"members": ["ann"], "escalation_policy": "p"}})  # fmt: skip
    opened = utc("2026-01-12T00:00")
    plan = escalation_plan(c, "api", opened)
    assert [(p.due_at - opened).total_seconds() for p in plan] == [0, 120, 240, 360]
    assert [p.people for p in plan] == [["ann"], ["ben"], ["ann"], ["ben"]]


@pytest.mark.parametrize(
    ("service", "expected"),
    [
        ("api", "direct"),
        ("web", "team-policy"),
        ("db", "team:inline"),
        ("unlisted", "team:inline"),
    ],
    ids=["service-route", "team-policy", "inline-shorthand", "default-team"],
)
def test_policy_for_routes(service: str, expected: str) -> None:
    step = {"steps": [{"targets": ["ann"]}]}
    c = catalog(
        policies={"direct": step, "team-policy": step},
        teams={
            "ops": {"members": ["ann"], "escalation_policy": "team-policy"},
            "inline": {"escalation": [{"targets": ["ben"]}, {"delay_s": 5, "targets": ["cat"]}]},
        },
        services={
            "api": {"team": "ops", "escalation_policy": "direct"},
            "web": {"team": "ops"},
            "db": {"team": "inline"},
        },
        default_team="inline",
    )
    found = policy_for(c, service)
    assert found is not None and found[0] == expected


def test_inline_escalation_keeps_its_short_delays() -> None:
    c = catalog(
        teams={
            "inline": {"escalation": [{"targets": ["ben"]}, {"delay_s": 5, "targets": ["cat"]}]}
        },
        services={"db": {"team": "inline"}},
    )
    opened = utc("2026-01-12T00:00")
    plan = escalation_plan(c, "db", opened)
    assert [(p.step, p.due_at, p.people) for p in plan] == [
        (0, opened, ["ben"]),
        (1, opened + timedelta(seconds=5), ["cat"]),
    ]


def test_no_policy_no_plan() -> None:
    assert policy_for(catalog(), "api") is None
    assert escalation_plan(catalog(), "api", utc("2026-01-12T00:00")) == []


def test_team_target_is_its_schedule_if_it_has_one() -> None:
    policies = {"p": {"steps": [{"targets": [{"team": "ops"}]}]}}
    teams = {"ops": {"members": ["cat", "dan"], "schedule": "s", "escalation_policy": "p"}}
    c = catalog({"s": WEEKLY}, policies, teams=teams)
    assert targets_for_step(c, "p", 0, utc("2026-01-13T00:00"), "k") == ["ben"]


def test_oncall_command(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from pathlib import Path

    from streams.cli import main

    fixture = Path(__file__).parent.parent / "fixtures" / "catalogs" / "good_oncall.yaml"
    monkeypatch.setenv("WARROOM_CATALOG_PATH", str(fixture))
    assert main(["oncall", "checkout", "--at", "2026-03-29T06:00:00Z", "--incident", "i"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "checkout (team payments): policy payments-critical, 2 step(s), repeated 1x"
    assert out[2].split()[:3] == ["step", "0", "+0s"] and out[2].endswith("carol")  # weekend
    assert out[3].split()[:3] == ["step", "1", "+5m"] and "round-robin" in out[3]
    assert "(pass 2)" in out[4] and "+10m" in out[4]
    assert main(["oncall", "search", "--catalog", str(fixture)]) == 0
    assert "policy team:discovery" in capsys.readouterr().out
    assert main(["oncall", "checkout", "--at", "yesterday"]) == 2
    assert "not RFC 3339" in capsys.readouterr().err
    monkeypatch.delenv("WARROOM_CATALOG_PATH")
    assert main(["oncall", "checkout"]) == 2
    assert "no catalog" in capsys.readouterr().err
