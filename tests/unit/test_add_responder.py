"""Paging someone into an incident by hand: who added whom is on the timeline, each person the
target reaches gets a page on each contact, and a target that reaches nobody, a resolved
incident or a second delivery of the same command change nothing."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from responders.correlation import Group, on_command_in_group
from schemas import Catalog, Command, CommandKind, Incident

T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
CATALOG = Catalog.model_validate(
    {
        "people": {
            "ann": {"contacts": [{"channel": "console"}]},
            "bob": {"contacts": [{"channel": "console"},
                                 {"channel": "webhook", "address": "https://h.example/b"}]},
        },
        "teams": {"dba": {"members": ["bob"]}, "payments": {"members": ["ann"]}},
        "schedules": {"nights": {"time_zone": "UTC", "layers": [{"participants": ["ann"],
                      "start": "2026-03-02", "handoff": "18:00",
                      "restrictions": [{"start": "18:00", "end": "06:00"}]}]}},
    }
)  # fmt: skip


def incident(status: str = "acknowledged") -> Incident:
    return Incident(
        id="inc-1", routing_key="checkout", service="checkout", title="Card payments fail",
        status=status, severity="SEV2", impact_started_at=T0, detected_at=T0, opened_at=T0,
        last_seq=3,
    )  # fmt: skip


def add(**target: str) -> Command:
    return Command(id="cmd-7", kind=CommandKind.ADD_RESPONDER, incident_id="inc-1",
                   routing_key="checkout", actor="ann", issued_at=T0, text="db slow",
                   **target)  # fmt: skip


def test_a_team_is_paged_in_and_the_timeline_says_who_added_whom() -> None:
    group = Group(key="checkout", incident_id="inc-1", step=1)
    step = on_command_in_group(group, incident(), add(team="dba"), T0, CATALOG)
    [event] = step.outcome.events
    assert (event.kind.value, event.actor, event.seq) == ("responder_added", "ann", 4)
    assert event.data.wire() == {
        "target": {"team": "dba"}, "recipients": ["bob"], "text": "db slow"
    }  # fmt: skip
    assert [(p.recipient, p.channel.value, p.step) for p in step.outcome.pages] == [
        ("bob", "console", 1), ("bob", "webhook", 1),
    ]  # fmt: skip
    assert len({p.dedup_key for p in step.outcome.pages}) == 2
    assert all("cmd-7" in p.dedup_key for p in step.outcome.pages)
    assert "ann added you" in step.outcome.pages[0].body
    # Delivered again (a replay): nothing new.
    again = on_command_in_group(step.group, step.outcome.incident, add(team="dba"), T0, CATALOG)
    assert again.outcome.events == () and again.outcome.pages == ()


@pytest.mark.parametrize(
    ("target", "status", "refusal"),
    [
        ({"person": "eve"}, "triggered", "person: 'eve' is not in the catalog"),
        ({"team": "nope"}, "triggered", "team: 'nope' is not in the catalog"),
        ({"schedule": "nights"}, "triggered", "nobody is on call there now"),
        ({"person": "bob"}, "resolved", "cannot add a responder to a resolved incident"),
        ({}, "triggered", "name exactly one of person, team or schedule"),
    ],
    ids=["unknown-person", "unknown-team", "schedule-with-nobody-on-call", "resolved", "no-target"],
)
def test_refusals_name_the_reason_and_page_nobody(
    target: dict[str, str], status: str, refusal: str
) -> None:
    group = Group(key="checkout", incident_id="inc-1")
    step = on_command_in_group(group, incident(status), add(**target), T0, CATALOG)
    assert step.outcome.rejection == refusal
    assert step.outcome.events == () and step.outcome.pages == ()
    assert step.group == group
