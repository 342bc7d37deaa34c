"""The incident engine (``responders.engine.decide``), written as timelines.

A :class:`World` plays the shell: it keeps the incident table, the groups, the timelines and
what the directory knows, feeds each input to :func:`decide`, and applies the decision as the
agent does (events and pages out, incident and group written). Each step names the input's
time, the input, the timeline event kinds it must produce and the number of pages.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from responders.correlation import Group, Timing
from responders.engine import (
    EPOCH,
    Decision,
    Received,
    View,
    decide,
    decided_at,
    key_of,
    next_deadline,
    resent,
    tick_for,
)
from schemas import Catalog, Command, Detection, Incident, IncidentEvent
from schemas.silences import Silence

T0 = datetime(2026, 5, 4, 12, 0, tzinfo=UTC)
CATALOG = Catalog.model_validate(
    {
        "services": {
            "api": {"team": "core", "tier": 1, "depends_on": ["db"], "stakeholders": ["cto"]},
            "db": {"team": "core", "tier": 1},
        },
        "teams": {
            "core": {"escalation": [{"targets": ["ann"]}, {"delay_s": 300, "targets": ["bob"]}]}
        },
        "people": {p: {"contacts": [{"channel": "console"}]} for p in ("ann", "bob", "cto")},
    }
)
TIMING = Timing(group_wait_s=30, group_interval_s=300, repeat_interval_s=4 * 3600)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


@dataclass
class World:
    """The shell's tables and directory, in memory."""

    timing: Timing = TIMING
    retention_s: float = 0.0
    incidents: dict[str, Incident] = field(default_factory=dict)
    groups: dict[str, Group] = field(default_factory=dict)
    timelines: dict[str, list[IncidentEvent]] = field(default_factory=dict)
    silences: list[Silence] = field(default_factory=list)
    resolved: set[str] = field(default_factory=set)
    open_by_service: dict[str, str] = field(default_factory=dict)

    def view(self) -> View:
        return View(
            CATALOG, self.timing, group_retention_s=self.retention_s,
            incident=self.incidents.get, recent=lambda i: self.timelines.get(i, []),
            silences=lambda: self.silences, resolved=self.resolved,
            open_on=self.open_by_service.get,
        )  # fmt: skip

    def feed(self, item: Detection | Command, recorded_s: float | None = None) -> Decision:
        recorded = at(recorded_s) if recorded_s is not None else None
        received = Received(item, recorded)
        key = key_of(item, ("service",))
        decision = decide(self.groups.get(key, Group(key)), received, self.view())
        if decision.rejection is None:
            self.apply(decision)
        return decision

    def apply(self, d: Decision) -> None:
        for ev in d.events:
            self.timelines.setdefault(ev.incident_id, []).append(ev)
        if d.incident is not None:
            self.incidents[d.incident.id] = d.incident
        if d.forget:
            self.groups.pop(d.key, None)
        elif d.write_group:
            self.groups[d.key] = d.group

    def tick(self, key: str = "api") -> Decision:
        """The tick the timer sends for the group's next deadline."""
        group = self.groups[key]
        due, _ = next_deadline(group, self.view(), T0, expired_by=at(10**9))
        assert due is not None, "no deadline"
        return self.feed(tick_for(key, due))

    def incident(self, key: str = "api") -> Incident:
        incident_id = self.groups[key].incident_id
        assert incident_id is not None
        return self.incidents[incident_id]


def fire(n: int, seconds: float, service: str = "api", signal: str = "latency") -> Detection:
    return Detection(
        id=f"d{n}", ts=at(seconds), service=service, signal=signal, detector="zscore", score=1.0,
        received_at=at(seconds),
    )  # fmt: skip


def command(kind: str, incident_id: str, seconds: float | None, **kw: Any) -> Command:
    issued = at(seconds) if seconds is not None else None
    return Command.model_validate(
        {"id": f"c-{kind}-{seconds}", "kind": kind, "incident_id": incident_id,
         "routing_key": "api", "actor": "ann", "issued_at": issued, **kw}
    )  # fmt: skip


def silence(**kw: Any) -> Silence:
    base: dict[str, Any] = {
        "id": "s1", "matchers": [{"name": "service", "value": "api"}], "starts_at": at(0),
        "created_by": "ann", "comment": "deploy", "created_at": at(0),
    }  # fmt: skip
    return Silence.model_validate({**base, **kw})


def kinds(d: Decision) -> list[str]:
    return [e.kind.value for e in d.events]


def pages(d: Decision, kind: str = "page") -> list[str]:
    return [p.recipient for p in d.pages if p.kind == kind]


def test_a_burst_opens_one_incident_at_the_end_of_the_group_wait_and_escalates() -> None:
    w = World()
    assert kinds(w.feed(fire(1, 0), recorded_s=1)) == []
    assert kinds(w.feed(fire(2, 5, signal="errors"), recorded_s=6)) == []
    opened = w.tick()
    assert opened.at == at(31)  # the group wait counts from the first detection's record
    assert kinds(opened) == ["opened", "paged", "detection_attached"]
    assert pages(opened) == ["ann"]
    assert pages(opened, "notice") == ["cto"]
    escalated = w.tick()
    assert escalated.at == at(331) and kinds(escalated) == ["escalated"]
    assert pages(escalated) == ["bob"]


def test_a_detection_that_opened_an_incident_changes_nothing_when_it_comes_again() -> None:
    w = World(timing=Timing(group_wait_s=0))
    first = w.feed(fire(1, 0), recorded_s=0)
    assert kinds(first) == ["opened", "paged"]
    w.feed(command("resolve", w.incident().id, 60))
    again = w.feed(fire(1, 0), recorded_s=0)
    assert again.events == () and again.pages == () and not again.write_group


def test_a_silenced_detection_opens_nothing_and_is_counted() -> None:
    w = World(timing=Timing(group_wait_s=0))
    w.silences.append(silence(ends_at=at(600)))
    silenced = w.feed(fire(1, 10), recorded_s=10)
    assert silenced.events == () and ("detections_silenced", 1) in silenced.counts
    # The silence ended at 600 s: a detection recorded after it opens the incident.
    assert kinds(w.feed(fire(2, 601), recorded_s=601)) == ["opened", "paged"]


def test_an_until_resolved_silence_holds_the_escalation_until_it_ends() -> None:
    w = World(timing=Timing(group_wait_s=0))
    w.feed(fire(1, 0), recorded_s=0)
    incident = w.incident()
    w.silences.append(silence(until_resolved=incident.id))
    held = w.feed(tick_for("api", at(300)))
    assert held.events == () and held.pages == ()
    w.silences.clear()
    assert kinds(w.feed(tick_for("api", at(301)))) == ["escalated"]


def test_an_open_incident_on_a_dependency_inhibits_paging_until_it_resolves() -> None:
    w = World(timing=Timing(group_wait_s=0))
    w.open_by_service["db"] = "inc-db"
    opened = w.feed(fire(1, 0), recorded_s=0)
    assert kinds(opened) == ["opened", "inhibited"] and pages(opened) == []
    still = w.tick()
    assert still.events == () and still.group.inhibit_check_at == at(10)
    del w.open_by_service["db"]
    released = w.tick()
    assert kinds(released) == ["inhibition_released"] and pages(released) == ["ann"]


def test_a_resolution_closes_the_group_and_the_next_detection_opens_anew() -> None:
    w = World(timing=Timing(group_wait_s=0))
    first = w.feed(fire(1, 0), recorded_s=0)
    incident_id = w.incident().id
    resolved = w.feed(command("resolve", incident_id, 100, text="fixed"))
    assert kinds(resolved) == ["resolved"] and resolved.group.incident_id is None
    assert resolved.incident is not None and resolved.incident.status.value == "resolved"
    again = w.feed(fire(2, 200), recorded_s=200)
    assert kinds(again) == ["opened", "paged"] and again.group.incident_id != incident_id
    assert first.incident is not None and again.incident is not None


def test_an_idle_group_is_forgotten_after_its_retention() -> None:
    w = World(timing=Timing(group_wait_s=0), retention_s=3600)
    w.feed(fire(1, 0), recorded_s=0)
    w.feed(command("resolve", w.incident().id, 100))
    group = w.groups["api"]
    due, expiring = next_deadline(group, w.view(), at(200), expired_by=at(100 + 3600))
    assert (due, expiring) == (at(100 + 3600), True)
    forgotten = w.feed(tick_for("api", at(100 + 3600)))
    assert forgotten.forget and ("groups_forgotten", 1) in forgotten.counts
    assert "api" not in w.groups


@pytest.mark.parametrize(
    ("item", "recorded_s", "expected"),
    [
        (command("note", "inc-x", 50, text="n"), 70, at(50)),
        (command("note", "inc-x", None, text="n"), 70, at(70)),
        (tick_for("api", at(40)), 90, at(40)),
        (fire(1, 5), 8, at(8)),
        (fire(1, 5), None, at(5)),
        (command("note", "inc-x", None, text="n"), None, EPOCH),
    ],
    ids=["issued_at", "record-time", "tick-due", "detection-record", "detection-data", "none"],
)
def test_an_input_is_decided_at_its_own_time(
    item: Detection | Command, recorded_s: float | None, expected: datetime
) -> None:
    recorded = at(recorded_s) if recorded_s is not None else None
    assert decided_at(Group("api"), Received(item, recorded)) == expected


def test_an_input_is_never_decided_before_its_groups_last_change() -> None:
    group = Group("api", active_at=at(100))
    assert decided_at(group, Received(tick_for("api", at(40)))) == at(100)
    assert decided_at(group, Received(tick_for("api", at(140)))) == at(140)


def test_a_wrongly_keyed_input_is_sent_again_under_its_groups_key() -> None:
    received = Received(fire(1, 0), at(0))
    moved = resent(received, b"someone-else", ("service",))
    assert moved is not None and moved.resend and moved.key == "api"
    assert ("inputs_rekeyed", 1) in moved.counts
    assert resent(received, b"api", ("service",)) is None


def test_a_command_for_an_unknown_incident_is_refused_with_the_reason() -> None:
    refused = World().feed(command("acknowledge", "inc-nope", 10))
    assert refused.rejection == "incident 'inc-nope' not found"
    assert refused.events == () and not refused.write_group


def test_an_input_processed_again_after_its_events_were_projected_sends_the_same() -> None:
    w = World(timing=Timing(group_wait_s=0))
    w.feed(fire(1, 0), recorded_s=0)
    incident_id = w.incident().id
    before = (dict(w.groups), dict(w.incidents), {k: list(v) for k, v in w.timelines.items()})
    resolve = command("resolve", incident_id, 100, text="rolled back")
    first = w.feed(resolve)
    # A crash after the events were sent (and projected) and before the tables were written.
    w.groups, w.incidents = before[0], before[1]
    again = w.feed(resolve)
    assert again.events == first.events and again.pages == first.pages
    assert pages(first, "notice") == ["cto"]


def test_the_same_inputs_fed_to_two_fresh_groups_decide_the_same() -> None:
    def run(recorded: Sequence[tuple[Detection | Command, float | None]]) -> list[Decision]:
        w = World()
        out = [w.feed(item, s) for item, s in recorded]
        out.append(w.tick())
        return out

    inputs: list[tuple[Detection | Command, float | None]] = [(fire(1, 0), 1), (fire(2, 3), 4)]
    assert run(inputs) == run(inputs)
