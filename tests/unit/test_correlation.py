"""Correlation timing, written as timelines in the style of Alertmanager's acceptance tests.

Each case is a list of steps ``(at_seconds, action)``; after each step the test checks which
timeline events and how many pages came out. Actions: ``fire(signal)``, ``resolve(signal)``,
``tick``, ``ack``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from responders.correlation import (
    Group,
    Timing,
    forget_at,
    forgettable,
    idle,
    on_command_in_group,
    on_detection_in_group,
    on_retention_tick,
    on_tick,
)
from responders.lifecycle import routing_key
from schemas import Catalog, Command, Detection, Incident, IncidentStatus

T0 = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
CATALOG = Catalog.model_validate(
    {
        "services": {"api": {"team": "core", "tier": 1}},
        "teams": {"core": {"escalation": [{"targets": ["ann"]}]}},
        "people": {"ann": {"contacts": [{"channel": "console"}]}},
    }
)
TIMING = Timing(group_wait_s=30, group_interval_s=300, repeat_interval_s=4 * 3600)


@dataclass(frozen=True)
class Act:
    kind: str  # fire, resolve, tick, ack
    signal: str = "latency"
    auto_resolve: bool = False


def fire(signal: str = "latency", auto: bool = False) -> Act:
    return Act("fire", signal, auto)


def resolve(signal: str = "latency", auto: bool = False) -> Act:
    return Act("resolve", signal, auto)


TICK, ACK = Act("tick"), Act("ack")


def run(
    steps: list[tuple[float, Act, list[str], int]],
    timing: Timing = TIMING,
    catalog: Catalog = CATALOG,
) -> tuple[Group, Incident | None]:
    """Play the steps; each expects the event kinds it produces and the number of pages."""
    group, incident = Group("api"), None
    for n, (at, act, kinds, pages) in enumerate(steps):
        now = T0 + timedelta(seconds=at)
        if act.kind in ("fire", "resolve"):
            det = Detection(
                id=f"d-{act.kind}-{act.signal}-{at}", ts=now, service="api", signal=act.signal,
                detector="x", score=1.0, status="firing" if act.kind == "fire" else "resolved",
                auto_resolve=act.auto_resolve,
            )  # fmt: skip
            step = on_detection_in_group(group, incident, det, catalog, timing, now)
        elif act.kind == "tick":
            step = on_tick(group, incident, catalog, timing, now)
        else:
            assert incident is not None
            cmd = Command(id=f"c{n}", kind="acknowledge", incident_id=incident.id,
                          routing_key="api", issued_at=now)  # fmt: skip
            step = on_command_in_group(group, incident, cmd, now)
        got = [e.kind.value for e in step.outcome.events]
        assert (got, len(step.outcome.pages)) == (kinds, pages), f"step {n} at {at}s"
        group = step.group
        incident = step.outcome.incident or incident
    return group, incident


CASES = {
    "group-wait-batches-a-burst": [
        (0, fire("latency"), [], 0),
        (10, fire("errors"), [], 0),
        (29, TICK, [], 0),
        (30, TICK, ["opened", "paged", "detection_attached"], 1),
        (31, fire("latency"), ["detection_attached"], 0),
    ],
    "flap-within-group-wait-opens-nothing": [
        (0, fire(), [], 0),
        (12, resolve(), [], 0),
        (30, TICK, [], 0),
        (45, fire(), [], 0),  # a new flap window starts here
        (75, TICK, ["opened", "paged"], 1),
    ],
    "partial-flap-opens-for-what-still-fires": [
        (0, fire("latency"), [], 0),
        (5, fire("errors"), [], 0),
        (10, resolve("latency"), [], 0),
        (30, TICK, ["opened", "paged"], 1),
    ],
    "group-interval-spaces-update-notices": [
        (0, fire("latency"), [], 0),
        (30, TICK, ["opened", "paged"], 1),
        (90, fire("errors"), ["detection_attached"], 0),
        (329, TICK, [], 0),
        (330, TICK, ["paged"], 1),  # the update: 300 s after the opening notice
        (400, fire("saturation"), ["detection_attached"], 0),
        (630, TICK, ["paged"], 1),
        (700, fire("errors"), ["detection_attached"], 0),  # known signal: no notice due
    ],
    "repeat-interval-pages-again-until-acknowledged": [
        (0, fire(), [], 0),
        (30, TICK, ["opened", "paged"], 1),
        (30 + 4 * 3600 - 1, TICK, [], 0),
        (30 + 4 * 3600, TICK, ["paged"], 1),
        (5 * 3600, ACK, ["acknowledged"], 0),
        (30 + 8 * 3600, TICK, [], 0),
    ],
    "recovery-suggests-mitigation": [
        (0, fire("latency"), [], 0),
        (5, fire("errors"), [], 0),
        (30, TICK, ["opened", "paged", "detection_attached"], 1),
        (100, resolve("latency"), [], 0),
        (200, resolve("errors"), ["signals_recovered"], 0),
    ],
    "alerts-that-auto-resolve-close-the-incident": [
        (0, fire(auto=True), [], 0),
        (30, TICK, ["opened", "paged"], 1),
        (600, resolve(auto=True), ["resolved"], 0),
        (700, fire(auto=True), [], 0),  # after resolve, a new trigger starts a new incident
        (730, TICK, ["opened", "paged"], 1),
    ],
}


@pytest.mark.parametrize("steps", list(CASES.values()), ids=list(CASES))
def test_correlation_timeline(steps: list[tuple[float, Act, list[str], int]]) -> None:
    run(steps)


def test_group_wait_zero_opens_at_once() -> None:
    run([(0, fire(), ["opened", "paged"], 1)], Timing(group_wait_s=0))


def test_due_deadlines() -> None:
    group, incident = run([(0, fire(), [], 0)])
    assert group.due(TIMING, incident) == T0 + timedelta(seconds=30)
    group, incident = run([(0, fire(), [], 0), (30, TICK, ["opened", "paged"], 1)])
    assert group.due(TIMING, incident) == T0 + timedelta(seconds=30 + 4 * 3600)


def test_group_state_round_trips() -> None:
    group, _ = run([(0, fire("latency"), [], 0), (5, fire("errors"), [], 0)])
    assert Group.from_dict("api", group.to_dict()) == group
    assert Group.from_dict("api", "inc-1").incident_id == "inc-1"


@pytest.mark.parametrize(
    ("labels", "dedup", "group_by", "key"),
    [
        ({}, None, ("service",), "api"),
        ({"region": "eu"}, None, ("service", "region"), "service=api|region=eu"),
        ({}, "pd-123", ("service",), "dedup:pd-123"),
    ],
    ids=["service", "labels", "dedup-key"],
)
def test_routing_keys(
    labels: dict[str, str], dedup: str | None, group_by: tuple[str, ...], key: str
) -> None:
    det = Detection(id="d", ts=0, service="api", signal="s", detector="x", score=1,
                    labels=labels, dedup_key=dedup)  # fmt: skip
    assert routing_key(det, group_by) == key


TWO_STEPS = Catalog.model_validate(
    {
        "services": {"api": {"team": "core", "tier": 1}},
        "teams": {
            "core": {
                "escalation": [
                    {"targets": ["ann"]},
                    {"delay_s": 300, "targets": ["bob"]},
                ]
            }
        },
        "people": {p: {"contacts": [{"channel": "console"}]} for p in ("ann", "bob")},
    }
)
NOW_OPEN = Timing(group_wait_s=0, ack_timeout_s=1800, auto_resolve_s=None)


def test_escalation_pages_the_next_step_until_acknowledged() -> None:
    group, incident = run(
        [
            (0, fire(), ["opened", "paged"], 1),
            (299, TICK, [], 0),
            (300, TICK, ["escalated"], 1),  # bob, 300 s after ann
            (301, TICK, [], 0),
        ],
        NOW_OPEN,
        TWO_STEPS,
    )
    assert group.step == 1 and incident is not None


def test_acknowledgement_stops_escalation_and_its_timeout_retriggers() -> None:
    run(
        [
            (0, fire(), ["opened", "paged"], 1),
            (100, ACK, ["acknowledged"], 0),
            (300, TICK, [], 0),  # acknowledged: no escalation
            (1899, TICK, [], 0),
            (1900, TICK, ["status_changed"], 1),  # 30 min after the acknowledgement
            (2200, TICK, ["escalated"], 1),  # triggered again, so escalation resumes
        ],
        NOW_OPEN,
        TWO_STEPS,
    )


def test_auto_resolve_after_a_quiet_period() -> None:
    _, incident = run(
        [
            (0, fire(), ["opened", "paged"], 1),
            (600, fire("errors"), ["detection_attached"], 0),
            (600 + 3599, TICK, [], 0),
            (600 + 3600, TICK, ["resolved"], 0),
        ],
        Timing(group_wait_s=0, auto_resolve_s=3600, group_interval_s=10_000),
    )
    assert incident is not None and incident.status.value == "resolved"


def test_a_replayed_detection_after_resolve_opens_nothing() -> None:
    timing = Timing(group_wait_s=0)
    first = Detection(id="d1", ts=T0, service="api", signal="s", detector="x", score=1.0)
    second = first.model_copy(update={"id": "d2"})
    step = on_detection_in_group(Group("api"), None, first, CATALOG, timing, T0)
    step = on_detection_in_group(step.group, step.outcome.incident, second, CATALOG, timing, T0)
    incident = step.outcome.incident
    assert incident is not None and incident.detection_count == 2
    resolve = Command(id="c1", kind="resolve", incident_id=incident.id, routing_key="api",
                      issued_at=T0 + timedelta(minutes=5))  # fmt: skip
    done = on_command_in_group(step.group, incident, resolve, T0 + timedelta(minutes=5))
    assert done.outcome.incident is not None and done.outcome.incident.status.value == "resolved"
    # The attached detection and the command delivered again (a replay after a crash).
    again = on_detection_in_group(done.group, done.outcome.incident, second, CATALOG, timing, T0)
    assert again.outcome.events == () and not again.outcome.opened
    twice = on_command_in_group(done.group, done.outcome.incident, resolve, T0)
    assert twice.outcome.events == () and twice.outcome.rejection is None


def test_inhibited_by_a_dependency_until_its_incident_resolves() -> None:
    timing = Timing(group_wait_s=0)
    det = Detection(id="d1", ts=T0, service="api", signal="s", detector="x", score=1.0)
    opened = on_detection_in_group(Group("api"), None, det, CATALOG, timing, T0, "inc-db")
    incident = opened.outcome.incident
    assert incident is not None and incident.inhibited_by == "inc-db"
    assert [e.kind.value for e in opened.outcome.events] == ["opened", "inhibited"]
    assert opened.outcome.pages == () and opened.outcome.events[1].data.wire()["by"] == "inc-db"
    due = opened.group.due(timing, incident, CATALOG)
    assert due == T0 + timedelta(seconds=5)
    # Still inhibited: nothing happens but looking again later.
    later = on_tick(opened.group, incident, CATALOG, timing, T0 + timedelta(seconds=5), "inc-db")
    assert later.outcome.events == () and later.group.inhibit_check_at == T0 + timedelta(seconds=10)
    # The dependency's incident resolved: page the first step now.
    now = T0 + timedelta(seconds=10)
    released = on_tick(later.group, incident, CATALOG, timing, now, None)
    assert [e.kind.value for e in released.outcome.events] == ["inhibition_released"]
    assert [p.recipient for p in released.outcome.pages] == ["ann"]
    after = released.outcome.incident
    assert after is not None and after.inhibited_by is None and after.first_paged_at == now


def test_a_services_timing_overrides_the_workers_field_by_field() -> None:
    data = {
        "services": {
            "api": {"team": "core", "tier": 1, "timing": {"group_wait_s": 0, "ack_timeout_s": 600}},
            "web": {"team": "core"},
        },
        "teams": {"core": {"escalation": [{"targets": ["ann"]}]}},
        "people": {"ann": {"contacts": [{"channel": "console"}]}},
    }
    catalog = Catalog.model_validate(data)
    api = TIMING.for_service(catalog, "api")
    assert (api.group_wait_s, api.ack_timeout_s) == (0.0, 600.0)
    assert (api.group_interval_s, api.repeat_interval_s) == (300.0, 4 * 3600.0)
    assert TIMING.for_service(catalog, "web") is TIMING
    assert TIMING.for_service(catalog, "unlisted") is TIMING
    assert TIMING.for_service(None, "api") is TIMING
    # With the service's timing the first detection opens the incident at once.
    run([(0, fire(), ["opened", "paged"], 1)], timing=api, catalog=catalog)
    data["services"]["api"]["timing"] = {"repeat_interval_s": 0}  # type: ignore[index]
    with pytest.raises(ValidationError, match=r"services\.api\.timing\.repeat_interval_s"):
        Catalog.model_validate(data)


RETENTION_S = 120 * 3600.0
#: Nobody to page: an open incident of this catalog has no deadline of its own.
NO_POLICY = Catalog()


def _resolved() -> tuple[Group, Incident]:
    """A group whose incident was resolved, as the shell stores it (only ``seen`` is left)."""
    group, incident = run([(0, fire(), ["opened", "paged"], 1)], Timing(group_wait_s=0))
    assert incident is not None
    cmd = Command(id="c-resolve", kind="resolve", incident_id=incident.id, routing_key="api",
                  issued_at=T0 + timedelta(seconds=60))  # fmt: skip
    done = on_command_in_group(group, incident, cmd, T0 + timedelta(seconds=60))
    assert done.outcome.incident is not None
    kept = Group(group.key, seen=done.group.seen, active_at=T0 + timedelta(seconds=60))
    return kept, done.outcome.incident


def _open(
    catalog: Catalog, status: IncidentStatus = IncidentStatus.TRIGGERED
) -> tuple[Group, Incident]:
    det = Detection(id="d-open", ts=T0, service="api", signal="latency", detector="x", score=1.0)
    step = on_detection_in_group(Group("api"), None, det, catalog, Timing(group_wait_s=0), T0)
    assert step.outcome.incident is not None
    return replace(step.group, active_at=T0), step.outcome.incident.model_copy(
        update={"status": status}
    )


def _held() -> tuple[Group, None]:
    group, incident = run([(0, fire(), [], 0)])
    assert incident is None
    return replace(group, active_at=T0), None


LONG_AFTER = T0 + timedelta(seconds=60 + RETENTION_S)
FORGET_CASES = {
    # (group and its incident, catalog, retention, now, forgettable, forget_at)
    "resolved-and-idle-for-the-retention": (
        _resolved(), CATALOG, RETENTION_S, LONG_AFTER, True, LONG_AFTER,
    ),
    "resolved-but-active-lately": (
        _resolved(), CATALOG, RETENTION_S, LONG_AFTER - timedelta(seconds=1), False, LONG_AFTER,
    ),
    "retention-zero-keeps-every-group": (_resolved(), CATALOG, 0.0, LONG_AFTER, False, None),
    "open-incident-without-deadlines": (
        _open(NO_POLICY), NO_POLICY, RETENTION_S, LONG_AFTER, False, None,
    ),
    "open-incident-with-a-repeat-deadline": (
        _open(CATALOG), CATALOG, RETENTION_S, LONG_AFTER, False, None,
    ),
    "mitigated-incident": (
        _open(NO_POLICY, IncidentStatus.MITIGATED), NO_POLICY, RETENTION_S, LONG_AFTER, False, None,
    ),
    "held-detections-waiting-for-group-wait": (
        _held(), CATALOG, RETENTION_S, LONG_AFTER, False, None,
    ),
    "incident-named-but-not-found": (
        (replace(_resolved()[0], incident_id="inc-missing"), None), CATALOG, RETENTION_S,
        LONG_AFTER, False, None,
    ),
    # Stored before activity times were kept: looked at now, stamped, forgotten a retention later.
    "unknown-age-is-looked-at-not-forgotten": (
        (replace(_resolved()[0], active_at=None), _resolved()[1]), CATALOG, RETENTION_S,
        LONG_AFTER, False, LONG_AFTER,
    ),
}  # fmt: skip


@pytest.mark.parametrize(
    ("state", "catalog", "retention_s", "now", "expected", "at"),
    list(FORGET_CASES.values()),
    ids=list(FORGET_CASES),
)
def test_forgetting_an_idle_group(
    state: tuple[Group, Incident | None],
    catalog: Catalog,
    retention_s: float,
    now: datetime,
    expected: bool,
    at: datetime | None,
) -> None:
    group, incident = state
    assert forgettable(group, incident, TIMING, catalog, retention_s, now) is expected
    assert forget_at(group, incident, TIMING, catalog, retention_s, now) == at


def test_an_open_incident_is_never_idle_whatever_its_age() -> None:
    for catalog in (CATALOG, NO_POLICY):
        group, incident = _open(catalog)
        assert not idle(group, incident, TIMING, catalog)
        years = T0 + timedelta(days=3650)
        assert not forgettable(group, incident, TIMING, catalog, 1.0, years)


def test_a_forgotten_key_starts_a_fresh_group() -> None:
    """After forgetting, the next detection of the key opens a new incident at once (group wait
    0), and a command for the resolved incident is judged as before: a reopen is allowed, since
    no other incident is open for the key."""
    kept, resolved = _resolved()
    assert forgettable(kept, resolved, TIMING, CATALOG, RETENTION_S, LONG_AFTER)
    fresh = Group(kept.key)  # what the shell reads for a deleted key
    det = Detection(id="d-later", ts=LONG_AFTER, service="api", signal="latency", detector="x",
                    score=1.0)  # fmt: skip
    step = on_detection_in_group(fresh, None, det, CATALOG, Timing(group_wait_s=0), LONG_AFTER)
    assert step.outcome.opened and step.outcome.incident is not None
    assert step.outcome.incident.id != resolved.id
    reopen = Command(id="c-reopen", kind="reopen", incident_id=resolved.id, routing_key="api",
                     issued_at=LONG_AFTER)  # fmt: skip
    again = on_command_in_group(fresh, resolved, reopen, LONG_AFTER)
    assert [e.kind.value for e in again.outcome.events] == ["reopened"]
    assert again.group.incident_id == resolved.id


def test_activity_time_round_trips_and_older_rows_have_none() -> None:
    kept, _ = _resolved()
    assert Group.from_dict("api", kept.to_dict()) == kept
    older = {k: v for k, v in kept.to_dict().items() if k != "active_at"}
    assert Group.from_dict("api", older).active_at is None


def test_a_retention_tick_forgets_stamps_or_passes() -> None:
    kept, resolved = _resolved()
    step = on_retention_tick(kept, resolved, TIMING, CATALOG, RETENTION_S, LONG_AFTER)
    assert step is not None and step.forget
    # Unknown age (stored before activity times were kept): stamped, not forgotten, and not
    # looked at again until a retention later.
    legacy = replace(kept, active_at=None)
    step = on_retention_tick(legacy, resolved, TIMING, CATALOG, RETENTION_S, LONG_AFTER)
    assert step is not None and not step.forget and step.group.active_at == LONG_AFTER
    later = LONG_AFTER + timedelta(seconds=RETENTION_S)
    assert forget_at(step.group, resolved, TIMING, CATALOG, RETENTION_S, LONG_AFTER) == later
    # Active lately, kept forever, or not idle: the tick goes on to the group's deadlines.
    soon = LONG_AFTER - timedelta(seconds=1)
    assert on_retention_tick(kept, resolved, TIMING, CATALOG, RETENTION_S, soon) is None
    assert on_retention_tick(legacy, resolved, TIMING, CATALOG, 0.0, LONG_AFTER) is None
    group, incident = _open(CATALOG)
    assert on_retention_tick(group, incident, TIMING, CATALOG, RETENTION_S, LONG_AFTER) is None
