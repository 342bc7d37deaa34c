"""The incident lifecycle: a total, table-driven transition function and its fold."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest

from responders.lifecycle import (
    TRANSITIONS,
    apply,
    incident_id_for,
    on_command,
    on_detection,
    replay,
)
from schemas import (
    Catalog,
    Command,
    CommandKind,
    Detection,
    Incident,
    IncidentEventKind,
    IncidentStatus,
)

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
CATALOG = Catalog.model_validate(
    {
        "services": {"api": {"team": "core", "tier": 1}},
        "teams": {"core": {"escalation": [{"targets": ["ann"]}]}},
        "people": {"ann": {"contacts": [{"channel": "console"}]}},
    }
)


def detection(det_id: str = "d1", at: datetime = T0, service: str = "api") -> Detection:
    return Detection(
        id=det_id,
        ts=at,
        service=service,
        signal="latency",
        detector="median_mad",
        score=0.99999,
        severity="error",
        impact_started_at=at - timedelta(seconds=30),
    )


def command(kind: CommandKind, incident: Incident, **kw: object) -> Command:
    return Command.model_validate(
        {
            "id": f"c-{kind.value}",
            "kind": kind,
            "incident_id": incident.id,
            "routing_key": incident.routing_key,
            "actor": "ann",
            "issued_at": kw.pop("issued_at", T0 + timedelta(minutes=5)),
            **kw,
        }
    )


def opened() -> Incident:
    outcome = on_detection(None, detection(), CATALOG, T0 + timedelta(seconds=2))
    assert outcome.incident is not None and outcome.opened
    return outcome.incident


def test_opening_records_times_pages_and_events() -> None:
    outcome = on_detection(None, detection(), CATALOG, T0 + timedelta(seconds=2))
    incident = outcome.incident
    assert incident is not None
    assert incident.id == incident_id_for("api", "d1")
    assert incident.impact_started_at == T0 - timedelta(seconds=30)
    assert incident.detected_at == T0 and incident.opened_at == T0 + timedelta(seconds=2)
    assert incident.first_paged_at == incident.opened_at
    assert incident.severity.value == "SEV2"  # error on a tier-1 service
    assert [e.kind for e in outcome.events] == [IncidentEventKind.OPENED, IncidentEventKind.PAGED]
    assert [p.dedup_key for p in outcome.pages] == [f"{incident.id}/0/ann/console"]


def test_unowned_service_opens_without_pages_and_says_why() -> None:
    outcome = on_detection(None, detection(service="orphan"), CATALOG, T0)
    assert outcome.opened and outcome.pages == ()
    kinds = [e.kind for e in outcome.events]
    assert kinds == [IncidentEventKind.OPENED, IncidentEventKind.UNROUTED]
    assert outcome.events[-1].data.wire() == {
        "reason": "no escalation policy pages for service 'orphan'", "fallback": None, "step": 0,
    }  # fmt: skip
    assert outcome.incident is not None
    assert outcome.incident.unrouted == "no escalation policy pages for service 'orphan'"


def test_detections_attach_once() -> None:
    incident = opened()
    again = on_detection(incident, detection(), CATALOG, T0)
    assert again.events == () and again.incident == incident
    second = on_detection(incident, detection("d2"), CATALOG, T0 + timedelta(seconds=9))
    assert second.incident is not None and second.incident.detection_count == 2
    assert [e.kind for e in second.events] == [IncidentEventKind.DETECTION_ATTACHED]


S, C = IncidentStatus, CommandKind
LIFECYCLE = [C.ACKNOWLEDGE, C.MITIGATE, C.RESOLVE, C.REOPEN]
ALL_PAIRS = list(itertools.product(list(S), LIFECYCLE))


def at_status(status: IncidentStatus) -> Incident:
    incident = opened()
    path = {
        S.TRIGGERED: [],
        S.ACKNOWLEDGED: [C.ACKNOWLEDGE],
        S.MITIGATED: [C.ACKNOWLEDGE, C.MITIGATE],
        S.RESOLVED: [C.RESOLVE],
    }[status]
    for kind in path:
        result = on_command(incident, command(kind, incident), T0 + timedelta(minutes=10))
        assert result.incident is not None and result.rejection is None
        incident = result.incident
    return incident


@pytest.mark.parametrize(("status", "kind"), ALL_PAIRS, ids=[f"{s}-{k}" for s, k in ALL_PAIRS])
def test_transition_table_is_total(status: IncidentStatus, kind: CommandKind) -> None:
    incident = at_status(status)
    result = on_command(incident, command(kind, incident), T0 + timedelta(minutes=10))
    if (status, kind) in TRANSITIONS:
        assert result.rejection is None
        assert result.incident is not None
        assert result.incident.status is TRANSITIONS[(status, kind)][0]
        assert len(result.events) == 1
    else:
        assert result.rejection is not None and status.value in result.rejection
        assert result.events == () and result.incident == incident


@pytest.mark.parametrize(
    ("kind", "extra", "reason"),
    [
        (C.ACKNOWLEDGE, {"at": T0 - timedelta(hours=1)}, "before the incident started"),
        (C.MITIGATE, {"at": T0 + timedelta(hours=3)}, "in the future"),
        (C.NOTE, {}, "a note needs text"),
    ],
    ids=["ack-too-early", "future", "empty-note"],
)
def test_bad_commands_are_rejected_with_a_reason(
    kind: CommandKind, extra: dict[str, object], reason: str
) -> None:
    incident = opened()
    result = on_command(incident, command(kind, incident, **extra), T0 + timedelta(minutes=10))
    assert result.rejection is not None and reason in result.rejection


def test_backfilled_time_is_recorded() -> None:
    incident = opened()
    mitigated_at = T0 + timedelta(minutes=1)
    result = on_command(
        incident, command(C.MITIGATE, incident, at=mitigated_at), T0 + timedelta(minutes=10)
    )
    assert result.incident is not None and result.incident.mitigated_at == mitigated_at


def test_reopen_refused_while_another_incident_is_open() -> None:
    incident = at_status(S.RESOLVED)
    result = on_command(
        incident, command(C.REOPEN, incident), T0 + timedelta(minutes=10), "inc-other"
    )
    assert result.rejection is not None and "inc-other" in result.rejection
    ok = on_command(incident, command(C.REOPEN, incident), T0 + timedelta(minutes=10), None)
    assert ok.incident is not None and ok.incident.status is S.TRIGGERED
    assert ok.incident.resolved_at is None


def test_unknown_incident() -> None:
    incident = opened()
    result = on_command(None, command(C.ACKNOWLEDGE, incident), T0)
    assert result.incident is None and result.rejection is not None


def test_replaying_the_timeline_rebuilds_the_incident_exactly() -> None:
    first = on_detection(None, detection(), CATALOG, T0 + timedelta(seconds=2))
    assert first.incident is not None
    events = list(first.events)
    incident = first.incident
    now = T0 + timedelta(minutes=10)
    attach = on_detection(incident, detection("d2"), CATALOG, now)
    assert attach.incident is not None
    incident = attach.incident
    events += attach.events
    for kind in (C.ACKNOWLEDGE, C.MITIGATE, C.RESOLVE):
        result = on_command(incident, command(kind, incident), now)
        assert result.incident is not None
        incident = result.incident
        events += result.events
    # Any order across incidents, duplicates included: the fold ignores what it has applied.
    rebuilt = replay([*reversed(events), *events])
    assert rebuilt == {incident.id: incident}
    assert apply(incident, events[-1]) == incident


def test_severity_changes_and_role_hand_offs() -> None:
    incident = opened()
    now = T0 + timedelta(minutes=10)
    raised = on_command(incident, command(C.SET_SEVERITY, incident, severity="SEV1"), now)
    assert raised.incident is not None and raised.incident.severity.value == "SEV1"
    assert raised.events[0].data.wire()["from"] == "SEV2"
    same = on_command(
        raised.incident, command(C.SET_SEVERITY, raised.incident, severity="SEV1"), now
    )
    assert same.rejection is not None and "already" in same.rejection
    ic = on_command(raised.incident, command(C.ASSIGN_ROLE, raised.incident, role="commander",
                                             person="ann"), now)  # fmt: skip
    assert ic.incident is not None and ic.incident.commander == "ann"
    handoff = on_command(ic.incident, command(C.ASSIGN_ROLE, ic.incident, role="commander",
                                              person="bo"), now)  # fmt: skip
    assert handoff.incident is not None and handoff.incident.commander == "bo"
    assert handoff.events[0].data.wire() == {"role": "commander", "person": "bo", "previous": "ann"}
    bad = on_command(ic.incident, command(C.ASSIGN_ROLE, ic.incident, role="boss", person="x"), now)
    assert bad.rejection is not None and "role: one of" in bad.rejection
    resolved = at_status(S.RESOLVED)
    late = on_command(resolved, command(C.SET_SEVERITY, resolved, severity="SEV1"), now)
    assert late.rejection is not None and "resolved" in late.rejection
