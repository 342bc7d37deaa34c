"""Stakeholder notices: what each is about, when they are sent, and what the update says."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from responders.correlation import Group, Step, Timing, on_command_in_group, on_detection_in_group
from responders.lifecycle import Outcome, make_event
from responders.stakeholders import follow_up, notices_for, status_update
from schemas import Catalog, Command, Detection, Incident, IncidentEvent, IncidentEventKind

E = IncidentEventKind
T0 = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
CATALOG = Catalog.model_validate(
    {
        "services": {
            "api": {"team": "core", "tier": 1, "stakeholders": ["sue", "vic"]},
            "db": {"team": "core", "tier": 1},
        },
        "teams": {"core": {"escalation": [{"targets": ["ann"]}]}},
        "people": {
            "ann": {"contacts": [{"channel": "console"}]},
            "sue": {"contacts": [{"channel": "console"}]},
            "vic": {
                "contacts": [
                    {"channel": "console"},
                    {"channel": "webhook", "address": "https://hooks.example.com/vic"},
                ]
            },
        },
    }
)
TIMING = Timing(group_wait_s=0, stakeholder_update_interval_s=600)


def incident(**changes: object) -> Incident:
    base = Incident(
        id="inc-1", routing_key="api", service="api", title="api latency", status="triggered",
        severity="SEV2", impact_started_at=T0 - timedelta(minutes=5), detected_at=T0,
        opened_at=T0, signals=("latency",), last_seq=2,
    )  # fmt: skip
    return Incident.model_validate({**base.model_dump(), **changes})


def event(seq: int, kind: IncidentEventKind, at_s: float, actor: str = "warroom",
          **data: object) -> IncidentEvent:  # fmt: skip
    return make_event("inc-1", "api", seq, kind, T0 + timedelta(seconds=at_s), actor, None, data)


@pytest.mark.parametrize(
    ("inc", "events", "now_s", "expected"),
    [
        pytest.param(
            incident(),
            [],
            60,
            [
                "api latency is triggered, SEV2, impact since 11:55:00Z (6m); signals: latency.",
                "Actions: none yet.",
                "no one has acknowledged yet",
                "no commander assigned",
            ],
            id="just-opened",
        ),
        pytest.param(
            incident(status="acknowledged", roles={"commander": "ann"}),
            [
                event(1, E.OPENED, 0),
                event(2, E.PAGED, 0, recipients=["ann"]),
                event(3, E.DETECTION_ATTACHED, 5),
                event(4, E.ACKNOWLEDGED, 60, "ann"),
                event(5, E.ROLE_ASSIGNED, 70, "ann", role="commander", person="ann"),
            ],
            120,
            [
                "12:00:00Z paged ann",
                "12:01:00Z acknowledged by ann",
                "ann is commander",
                "Needs: nothing open for now.",
            ],
            id="acknowledged-with-commander",
        ),
        pytest.param(
            incident(
                tasks={
                    "diagnose/logs": "pending",
                    "mobilize/call": "done",
                    "mitigate/rollback": "failed",
                }
            ),
            [],
            60,
            ["2 runbook task(s) unfinished: diagnose/logs, mitigate/rollback"],
            id="unfinished-tasks-in-phase-order",
        ),
        pytest.param(
            incident(status="mitigated", mitigated_at=T0 + timedelta(minutes=10)),
            [event(3, E.MITIGATED, 600, "ann")],
            900,
            ["restored 12:10:00Z", "mitigated by ann", "the cause is yet to be fixed"],
            id="mitigated",
        ),
        pytest.param(
            incident(status="resolved", resolved_at=T0 + timedelta(minutes=25)),
            [event(3, E.RESOLVED, 1500, "ann")],
            9999,
            ["(30m)", "resolved by ann", "Needs: nothing further: the incident is resolved."],
            id="resolved-impact-ends-at-resolution",
        ),
        pytest.param(
            incident(),
            [event(i, E.NOTE, i, "ann", text=f"n{i}") for i in range(1, 9)],
            60,
            ["note from ann: n4; ", "note from ann: n8.", "Actions: 12:00:04Z"],
            id="only-the-latest-actions",
        ),
    ],
)
def test_status_update(
    inc: Incident, events: list[IncidentEvent], now_s: float, expected: list[str]
) -> None:
    text = status_update(inc, events, T0 + timedelta(seconds=now_s))
    assert text.startswith("Conditions: ")
    for fragment in expected:
        assert fragment in text, (fragment, text)


def test_status_update_is_deterministic_and_ignores_other_incidents() -> None:
    other = make_event("inc-2", "db", 9, E.NOTE, T0, "bob", None, {"text": "elsewhere"})
    a = status_update(incident(), [other], T0)
    assert a == status_update(incident(), [other], T0) and "elsewhere" not in a


def test_notices_go_to_every_contact_of_every_stakeholder() -> None:
    notices = notices_for(incident(), CATALOG, "opened", [], T0)
    assert [(n.recipient, n.channel.value) for n in notices] == [
        ("sue", "console"), ("vic", "console"), ("vic", "webhook"),
    ]  # fmt: skip
    assert {n.kind for n in notices} == {"notice"}
    assert notices[2].dedup_key == "inc-1/notice/opened/vic/webhook"
    assert notices[2].address == "https://hooks.example.com/vic"
    assert all(n.subject.startswith("[notice] [SEV2] api latency") for n in notices)
    assert notices_for(incident(service="db"), CATALOG, "opened", [], T0) == ()


def detection(det_id: str, service: str = "api") -> Detection:
    return Detection(id=det_id, ts=T0, service=service, signal="latency", detector="x",
                     score=1.0, severity="error")  # fmt: skip


def command(kind: str, at: datetime) -> Command:
    return Command(id=f"c-{kind}", kind=kind, incident_id="-", routing_key="api",
                   actor="ann", issued_at=at)  # fmt: skip


def keys(step: Step) -> list[str]:
    return [p.dedup_key.split("/", 1)[1] for p in step.outcome.pages if p.kind == "notice"]


def test_opened_periodic_and_final_notices() -> None:
    opened = follow_up(
        on_detection_in_group(Group("api"), None, detection("d1"), CATALOG, TIMING, T0),
        CATALOG, TIMING, (), T0,
    )  # fmt: skip
    assert keys(opened) == ["notice/opened/sue/console", "notice/opened/vic/console",
                            "notice/opened/vic/webhook"]  # fmt: skip
    assert [p.recipient for p in opened.outcome.pages if p.kind == "page"] == ["ann"]
    g, inc = opened.group, opened.outcome.incident
    assert inc is not None and g.last_update_notice_at == T0
    assert g.due(TIMING, inc, CATALOG) == T0 + timedelta(seconds=600)

    def at(seconds: float) -> Step:
        return follow_up(Step(g, Outcome(inc)), CATALOG, TIMING, opened.outcome.events,
                         T0 + timedelta(seconds=seconds))  # fmt: skip

    assert keys(at(599)) == []  # not yet
    due = at(600)
    assert keys(due)[0] == f"notice/update1@{inc.last_seq}/sue/console"
    assert due.group.update_notices == 1 and due.group.last_update_notice_at is not None
    assert due.group.due(TIMING, inc, CATALOG) == T0 + timedelta(seconds=1200)
    again = follow_up(due, CATALOG, TIMING, (), T0 + timedelta(seconds=601))
    assert keys(again) == keys(due)  # nothing more until the next interval

    resolved = on_command_in_group(g, inc, command("resolve", T0 + timedelta(seconds=30)),
                                   T0 + timedelta(seconds=30))  # fmt: skip
    final = follow_up(resolved, CATALOG, TIMING, opened.outcome.events, T0 + timedelta(seconds=30))
    assert keys(final)[0].startswith("notice/resolved@")
    assert all("resolved by ann" in p.body for p in final.outcome.pages)


@pytest.mark.parametrize(
    ("service", "timing"),
    [
        pytest.param("db", TIMING, id="no-stakeholders"),
        pytest.param("api", Timing(group_wait_s=0), id="periodic-updates-off"),
    ],
)
def test_no_periodic_update(service: str, timing: Timing) -> None:
    step = on_detection_in_group(Group(service), None, detection("d1", service), CATALOG,
                                 timing, T0)  # fmt: skip
    step = follow_up(step, CATALOG, timing, (), T0)
    inc = step.outcome.incident
    assert inc is not None
    later = follow_up(Step(step.group, Outcome(inc)), CATALOG, timing, (), T0 + timedelta(days=1))
    assert keys(later) == []
    # Only the incident's other deadlines (the repeat page) remain.
    assert step.group.due(timing, inc, CATALOG) == T0 + timedelta(seconds=timing.repeat_interval_s)


def test_group_round_trips_notice_state() -> None:
    g = Group("api", incident_id="inc-1", last_update_notice_at=T0, update_notices=3)
    assert Group.from_dict("api", g.to_dict()) == g
    assert Group.from_dict("api", {"incident_id": "inc-1"}).update_notices == 0


def test_a_muted_incident_keeps_only_its_stakeholder_update_deadline() -> None:
    # A repeat page every 60 s would come first; under an "until resolved" silence only the
    # stakeholder update is a deadline, so the timer does not tick the held group every second.
    timing = Timing(group_wait_s=0, repeat_interval_s=60, stakeholder_update_interval_s=600)
    for service, update in (("api", T0 + timedelta(seconds=600)), ("db", None)):
        step = on_detection_in_group(Group(service), None, detection("d1", service), CATALOG,
                                     timing, T0)  # fmt: skip
        step = follow_up(step, CATALOG, timing, (), T0)
        inc = step.outcome.incident
        assert inc is not None
        assert step.group.due(timing, inc, CATALOG) == T0 + timedelta(seconds=60)
        assert step.group.due(timing, inc, CATALOG, muted=True) == update
