"""Correlation and noise control: detections grouped into incidents with Alertmanager's timing.

A correlation group (by default one per service; PagerDuty's ``dedup_key`` makes its own group)
holds at most one open incident. Timing follows Alertmanager's route options and defaults:

- ``group_wait`` (30 s): the first firing detection of a new group is held this long, so that a
  burst opens one incident with all of it. If every held signal resolves within the wait, nothing
  opens: the flap is suppressed.
- ``group_interval`` (5 min): new signals joining an open incident notify its responders at most
  this often.
- ``repeat_interval`` (4 h): an incident nobody has acknowledged is paged again this often.

A firing detection that is :func:`late` (its data reached warroom more than ``max_lateness_s``
after its time: a backfill) pages nobody and opens nothing: it is recorded on the timeline of the
group's open incident, if there is one, and is otherwise only on the detections topic. Its points
still trained the detectors.

When every firing signal of an open incident has recovered, a ``signals_recovered`` event suggests
mitigation; for alerts that ask for it (``auto_resolve``, as Alertmanager's and PagerDuty's do) the
incident is resolved instead. Timers are deadlines in the group state; the shell asks for them to
be acted on with :func:`on_tick`.

Retention (Alertmanager's ``--data.retention``): a group is kept while it has something to lose
(an open incident, held detections, a deadline) and forgotten once it has been :func:`idle` for
the retention. Once its incident is resolved a group keeps only ``seen``, the ids of its latest
inputs, so that an input delivered again after a crash changes nothing; there is no re-open or
flap window in the group state (a detection after a resolve opens a new incident, and a flap
within the group wait leaves nothing held). A redelivery comes within the broker's commit
interval of the first delivery, or after a crashed worker restarts: the retention (120 h by
default) must outlast that. A detection for a forgotten key starts a fresh group; one that opened
an incident is still recognized from the ``incidents`` table, which is not forgotten.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from responders.lifecycle import DECLARED, Outcome, apply, make_event, on_command, on_detection
from responders.oncall import next_due, people_of, policy_for
from responders.paging import page_to, pages_for, route
from schemas import (
    Catalog,
    Command,
    CommandKind,
    Detection,
    DetectionStatus,
    Incident,
    IncidentEvent,
    IncidentEventKind,
    IncidentStatus,
    Page,
)
from schemas.catalog import Target

E = IncidentEventKind
SEEN_KEPT = 128
#: How often an inhibited incident looks whether its dependency's incident is still open.
INHIBIT_CHECK = timedelta(seconds=5)
#: Detections a group holds during its group wait; in a storm, the rest are dropped.
HELD_KEPT = 200


@dataclass(frozen=True)
class Timing:
    """Alertmanager's route timing options, with its defaults."""

    group_wait_s: float = 30.0
    group_interval_s: float = 300.0
    repeat_interval_s: float = 4 * 3600.0
    #: PagerDuty's acknowledgement timeout: an acknowledged incident not mitigated this long
    #: after its last acknowledgement is triggered again (None: never).
    ack_timeout_s: float | None = None
    #: PagerDuty's auto-resolve: an open incident without detections this long is resolved.
    auto_resolve_s: float | None = None
    #: How often the service's stakeholders get a status update while the incident is open
    #: (None: only when it opens and when it is resolved). See ``responders.stakeholders``.
    stakeholder_update_interval_s: float | None = None

    def for_service(self, catalog: Catalog | None, service: str | None) -> Timing:
        """This timing with the overrides the catalog sets for ``service``, if any."""
        listed = catalog.services.get(service) if catalog is not None and service else None
        if listed is None or listed.timing is None:
            return self
        return replace(self, **listed.timing.model_dump(exclude_none=True))


@dataclass(frozen=True)
class Group:
    """The state of one correlation group (stored in the ``open-incidents`` table)."""

    key: str
    incident_id: str | None = None
    held: tuple[Detection, ...] = ()
    held_since: datetime | None = None
    firing: tuple[str, ...] = ()
    auto_resolve: bool = False
    last_paged_at: datetime | None = None
    repeats: int = 0
    last_update_at: datetime | None = None
    updates: int = 0
    unannounced: tuple[str, ...] = ()
    step: int = 0
    step_paged_at: datetime | None = None
    acked_at: datetime | None = None
    retriggers: int = 0
    last_detection_at: datetime | None = None
    #: Ids of the latest detections and commands applied: inputs delivered again (a replay after
    #: a crash may come after the incident they joined was resolved) change nothing.
    seen: tuple[str, ...] = ()
    #: When the stakeholders last got a notice, and how many periodic updates they have had.
    last_update_notice_at: datetime | None = None
    update_notices: int = 0
    #: The open incident on a dependency that inhibits this group's incident, and when to look
    #: again whether it is still open.
    inhibited_by: str | None = None
    inhibit_check_at: datetime | None = None
    #: When an input last changed the group (the shell stamps it as it writes the group); an
    #: idle group is forgotten a retention after it. None: stored before it was kept.
    active_at: datetime | None = None

    def remember(self, input_id: str) -> Group:
        return replace(self, seen=(*self.seen, input_id)[-SEEN_KEPT:])

    def due(
        self,
        timing: Timing,
        incident: Incident | None,
        catalog: Catalog | None = None,
        muted: bool = False,
    ) -> datetime | None:
        """The earliest deadline this group has, if any. ``muted`` (an "until resolved" silence
        holds the incident's timers): only the next stakeholder update counts."""
        if muted:
            return self._next_update(timing, incident, catalog)
        deadlines = []
        escalation = self._next_step(incident, catalog) if catalog is not None else None
        if escalation is not None:
            deadlines.append(escalation[1])
        acked = incident is not None and incident.status is IncidentStatus.ACKNOWLEDGED
        if acked and timing.ack_timeout_s is not None and self.acked_at is not None:
            deadlines.append(self.acked_at + timedelta(seconds=timing.ack_timeout_s))
        live = incident is not None and incident.status is not IncidentStatus.RESOLVED
        if live and timing.auto_resolve_s is not None and self.last_detection_at is not None:
            deadlines.append(self.last_detection_at + timedelta(seconds=timing.auto_resolve_s))
        if self.held and self.held_since is not None:
            deadlines.append(self.held_since + timedelta(seconds=timing.group_wait_s))
        if self.inhibited_by is not None and self.inhibit_check_at is not None:
            deadlines.append(self.inhibit_check_at)
        unacknowledged = incident is not None and incident.status is IncidentStatus.TRIGGERED
        if unacknowledged and self.last_paged_at is not None and escalation is None:
            deadlines.append(self.last_paged_at + timedelta(seconds=timing.repeat_interval_s))
        if incident is not None and self.unannounced and self.last_update_at is not None:
            deadlines.append(self.last_update_at + timedelta(seconds=timing.group_interval_s))
        update = self._next_update(timing, incident, catalog)
        if update is not None:
            deadlines.append(update)
        return min(deadlines) if deadlines else None

    def _next_update(
        self, timing: Timing, incident: Incident | None, catalog: Catalog | None
    ) -> datetime | None:
        """When the next stakeholder update is due (``responders.stakeholders.follow_up`` sends
        it), while the incident is live and its service has stakeholders."""
        updates_s = timing.stakeholder_update_interval_s
        if incident is None or incident.status is IncidentStatus.RESOLVED:
            return None
        if catalog is None or updates_s is None:
            return None
        listed = catalog.services.get(incident.service)
        if listed is None or not listed.stakeholders:
            return None
        since = self.last_update_notice_at or incident.opened_at
        return since + timedelta(seconds=updates_s)

    def _next_step(
        self, incident: Incident | None, catalog: Catalog
    ) -> tuple[int, datetime] | None:
        """The next escalation step and when it is due, while nobody has acknowledged."""
        if incident is None or incident.status is not IncidentStatus.TRIGGERED:
            return None
        if self.step_paged_at is None:
            return None
        found = policy_for(catalog, incident.service)
        if found is None:
            return None
        return next_due(catalog, found[0], self.step, self.step_paged_at)

    def to_dict(self) -> dict[str, Any]:
        def iso(t: datetime | None) -> str | None:
            return t.isoformat() if t is not None else None

        return {
            "key": self.key,
            "incident_id": self.incident_id,
            "held": [d.model_dump(mode="json") for d in self.held],
            "held_since": iso(self.held_since),
            "firing": list(self.firing),
            "auto_resolve": self.auto_resolve,
            "last_paged_at": iso(self.last_paged_at),
            "repeats": self.repeats,
            "last_update_at": iso(self.last_update_at),
            "updates": self.updates,
            "unannounced": list(self.unannounced),
            "step": self.step,
            "step_paged_at": iso(self.step_paged_at),
            "acked_at": iso(self.acked_at),
            "retriggers": self.retriggers,
            "last_detection_at": iso(self.last_detection_at),
            "seen": list(self.seen),
            "last_update_notice_at": iso(self.last_update_notice_at),
            "update_notices": self.update_notices,
            "inhibited_by": self.inhibited_by,
            "inhibit_check_at": iso(self.inhibit_check_at),
            "active_at": iso(self.active_at),
        }

    @classmethod
    def from_dict(cls, key: str, data: dict[str, Any] | str | None) -> Group:
        if data is None:
            return cls(key)
        if isinstance(data, str):  # an older form: just the open incident's id
            return cls(key, incident_id=data)

        def when(name: str) -> datetime | None:
            value = data.get(name)
            return datetime.fromisoformat(value) if isinstance(value, str) else None

        return cls(
            key=key,
            incident_id=data.get("incident_id"),
            held=tuple(Detection.model_validate(d) for d in data.get("held", [])),
            held_since=when("held_since"),
            firing=tuple(data.get("firing", [])),
            auto_resolve=bool(data.get("auto_resolve", False)),
            last_paged_at=when("last_paged_at"),
            repeats=int(data.get("repeats", 0)),
            last_update_at=when("last_update_at"),
            updates=int(data.get("updates", 0)),
            unannounced=tuple(data.get("unannounced", [])),
            step=int(data.get("step", 0)),
            step_paged_at=when("step_paged_at"),
            acked_at=when("acked_at"),
            retriggers=int(data.get("retriggers", 0)),
            last_detection_at=when("last_detection_at"),
            seen=tuple(data.get("seen", [])),
            last_update_notice_at=when("last_update_notice_at"),
            update_notices=int(data.get("update_notices", 0)),
            inhibited_by=data.get("inhibited_by"),
            inhibit_check_at=when("inhibit_check_at"),
            active_at=when("active_at"),
        )


@dataclass(frozen=True)
class Step:
    """What one input did to a group: its new state, and the incident outcome (if any)."""

    group: Group
    outcome: Outcome = field(default_factory=lambda: Outcome(None))
    suppressed: bool = False
    #: The group has been idle for the retention: the shell deletes its state.
    forget: bool = False


def idle(group: Group, incident: Incident | None, timing: Timing, catalog: Catalog | None) -> bool:
    """True when forgetting the group loses nothing that matters: it has no open incident
    (``incident`` is the one ``group.incident_id`` names, if found), holds no detection, and has
    no deadline pending."""
    if group.held or group.held_since is not None or group.inhibited_by is not None:
        return False
    if group.incident_id is not None and (
        incident is None or incident.status is not IncidentStatus.RESOLVED
    ):
        return False
    return group.due(timing, incident, catalog) is None


def forget_at(
    group: Group,
    incident: Incident | None,
    timing: Timing,
    catalog: Catalog | None,
    retention_s: float,
    now: datetime,
) -> datetime | None:
    """When to look at the group to forget it: ``retention_s`` after its last activity, if it is
    :func:`idle`; None while it is not, or when ``retention_s`` is 0 (groups are kept forever).

    A group stored before activity times were kept is looked at ``now``: its age is unknown, so
    the tick that looks at it does not forget it but stamps it, and it is forgotten a retention
    later (see :func:`forgettable`).
    """
    if retention_s <= 0 or not idle(group, incident, timing, catalog):
        return None
    if group.active_at is None:
        return now
    return group.active_at + timedelta(seconds=retention_s)


def forgettable(
    group: Group,
    incident: Incident | None,
    timing: Timing,
    catalog: Catalog | None,
    retention_s: float,
    now: datetime,
) -> bool:
    """True when the group is idle and its last activity is ``retention_s`` or more ago."""
    at = forget_at(group, incident, timing, catalog, retention_s, now)
    return group.active_at is not None and at is not None and now >= at


def on_retention_tick(
    group: Group,
    incident: Incident | None,
    timing: Timing,
    catalog: Catalog | None,
    retention_s: float,
    now: datetime,
) -> Step | None:
    """What a tick does about the retention: forget the group if it is :func:`forgettable`;
    stamp it with ``now`` if it is idle but its age is unknown (stored before activity times
    were kept), so that it is forgotten a retention later and not looked at again meanwhile;
    None otherwise (the tick goes on to the group's deadlines)."""
    if forgettable(group, incident, timing, catalog, retention_s, now):
        return Step(group, forget=True)
    if group.active_at is None and forget_at(group, incident, timing, catalog, retention_s, now):
        return Step(replace(group, active_at=now))
    return None


def _live(incident: Incident | None) -> Incident | None:
    """The incident if it is still open."""
    if incident is None or incident.status is IncidentStatus.RESOLVED:
        return None
    return incident


def late(detection: Detection, max_lateness_s: float) -> bool:
    """True for a firing detection whose data was received more than ``max_lateness_s`` after
    the detection's time (``received_at`` says when; without it, never late: an alert from a
    webhook says what fires now, however long ago it started).

    >>> d = Detection(id="d", ts=0, service="api", signal="s", detector="x", score=1,
    ...               received_at=7200)
    >>> late(d, 3600), late(d, 7200), late(d.model_copy(update={"received_at": None}), 1)
    (True, False, False)
    """
    if detection.status is not DetectionStatus.FIRING or detection.received_at is None:
        return False
    return (detection.received_at - detection.ts).total_seconds() > max_lateness_s


def _signal(d: Detection) -> str:
    return d.dedup_key or d.signal


def _open(group: Group, catalog: Catalog, now: datetime, inhibited_by: str | None = None) -> Step:
    """Open the incident for everything held, in arrival order; if an incident on a dependency is
    open (``inhibited_by``), link it and page nobody until that one is resolved."""
    first, *rest = group.held
    outcome = on_detection(None, first, catalog, now, key=group.key, inhibited_by=inhibited_by)
    incident = outcome.incident
    assert incident is not None
    events, pages = list(outcome.events), list(outcome.pages)
    for d in rest:
        more = on_detection(incident, d, catalog, now)
        incident = more.incident or incident
        events += more.events
    firing = tuple(dict.fromkeys(_signal(d) for d in group.held))
    g = replace(
        group,
        incident_id=incident.id,
        held=(),
        held_since=None,
        firing=firing,
        auto_resolve=all(d.auto_resolve for d in group.held),
        last_paged_at=now if pages else None,
        repeats=0,
        last_update_at=now,
        updates=0,
        unannounced=(),
        step=0,
        step_paged_at=None if inhibited_by else now,
        acked_at=None,
        retriggers=0,
        last_detection_at=now,
        inhibited_by=inhibited_by,
        inhibit_check_at=now + INHIBIT_CHECK if inhibited_by else None,
    )
    return Step(g, Outcome(incident, tuple(events), tuple(pages), opened=True))


def on_detection_in_group(
    group: Group,
    incident: Incident | None,
    detection: Detection,
    catalog: Catalog,
    timing: Timing,
    now: datetime,
    inhibited_by: str | None = None,
    max_lateness_s: float = math.inf,
) -> Step:
    """Feed one detection to its group. ``incident`` is the group's open incident, if any;
    ``inhibited_by`` an open incident on one of the service's dependencies, if any; a detection
    :func:`late` by more than ``max_lateness_s`` is recorded, not paged."""
    if detection.id in group.seen:
        return Step(group)
    if late(detection, max_lateness_s):
        step = _late(group, _live(incident), detection, catalog, now)
    else:
        step = _detection(group, incident, detection, catalog, timing, now, inhibited_by)
    if step.group is group and not step.outcome.events:
        return step  # nothing happened (e.g. dropped in a storm): a redelivery may still count
    return replace(step, group=step.group.remember(detection.id))


def _detection(
    group: Group,
    incident: Incident | None,
    detection: Detection,
    catalog: Catalog,
    timing: Timing,
    now: datetime,
    inhibited_by: str | None = None,
) -> Step:
    live = _live(incident)
    signal = _signal(detection)
    if detection.status is DetectionStatus.RESOLVED:
        return _recovered(group, live, signal, detection, now)
    if live is not None:
        outcome = on_detection(live, detection, catalog, now)
        firing = group.firing if signal in group.firing else (*group.firing, signal)
        new_signal = signal not in live.signals and signal not in group.unannounced
        unannounced = (*group.unannounced, signal) if new_signal else group.unannounced
        g = replace(group, firing=firing, unannounced=unannounced, last_detection_at=now)
        return _announce(g, outcome, catalog, timing, now)
    if any(d.id == detection.id for d in group.held):
        return Step(group)
    if len(group.held) >= HELD_KEPT:  # a storm: the incident opens with the first ones
        return Step(group)
    declared = detection.detector == DECLARED  # a person: first, and open at once
    held = (detection, *group.held) if declared else (*group.held, detection)
    g = replace(group, incident_id=None, held=held, held_since=group.held_since or now)
    if timing.group_wait_s <= 0 or declared:
        return _open(g, catalog, now, inhibited_by)
    return Step(g)


def _late(
    group: Group, incident: Incident | None, detection: Detection, catalog: Catalog, now: datetime
) -> Step:
    """A backfilled detection: on the open incident's timeline, if any, and nothing else (no
    page, no new signal to announce, no incident opened, no timer moved)."""
    if incident is None:
        return Step(group)
    return Step(group, on_detection(incident, detection, catalog, now))


def _recovered(
    group: Group, incident: Incident | None, signal: str, detection: Detection, now: datetime
) -> Step:
    if any(_signal(d) == signal for d in group.held):
        held = tuple(d for d in group.held if _signal(d) != signal)
        g = replace(group, held=held, held_since=group.held_since if held else None)
        return Step(g, suppressed=not held)
    if incident is None or signal not in group.firing:
        return Step(group)
    firing = tuple(s for s in group.firing if s != signal)
    g = replace(group, firing=firing)
    if firing:
        return Step(g, Outcome(incident))
    seq = incident.last_seq + 1
    if group.auto_resolve and detection.auto_resolve:
        ev = make_event(
            incident.id, incident.routing_key, seq, E.RESOLVED, detection.ts,
            detection.detector, detection.id, {"text": "every signal recovered"},
        )  # fmt: skip
        if ev.at < incident.impact_started_at:
            ev = ev.model_copy(update={"at": now})
    else:
        ev = make_event(
            incident.id, incident.routing_key, seq, E.SIGNALS_RECOVERED, now,
            "warroom", detection.id, {"suggestion": "mitigate", "signal": signal},
        )  # fmt: skip
    return Step(g, Outcome(apply(incident, ev), (ev,)))


def _announce(
    group: Group, outcome: Outcome, catalog: Catalog, timing: Timing, now: datetime
) -> Step:
    """Notify responders of new signals, no more often than ``group_interval``."""
    incident = outcome.incident
    if incident is None or not group.unannounced or group.inhibited_by is not None:
        return Step(group, outcome)
    last = group.last_update_at
    if last is not None and now < last + timedelta(seconds=timing.group_interval_s):
        return Step(group, outcome)
    n = group.updates + 1
    signals = ", ".join(group.unannounced)
    pages = tuple(
        p.model_copy(
            update={
                "dedup_key": f"{p.dedup_key}#update{n}",
                "subject": f"[update] {p.subject}: new signals {signals}",
            }
        )
        for p in pages_for(incident, catalog, step=0, now=now)
    )
    seq = incident.last_seq + 1
    data = {
        "update": n,
        "signals": list(group.unannounced),
        "recipients": sorted({p.recipient for p in pages}),
    }
    ev = make_event(incident.id, incident.routing_key, seq, E.PAGED, now, "warroom", None, data)
    g = replace(group, last_update_at=now, updates=n, unannounced=())
    return Step(
        g,
        Outcome(apply(incident, ev), (*outcome.events, ev), (*outcome.pages, *pages)),
    )


def on_command_in_group(
    group: Group,
    incident: Incident | None,
    command: Command,
    now: datetime,
    catalog: Catalog | None = None,
) -> Step:
    """A person's command, with what it means for the group's timers: an acknowledgement stops
    escalation and starts the acknowledgement timeout; a reopen starts escalation over; a page of
    the current step that could not be delivered escalates to the next step at once. A command
    applied before (by id) changes nothing."""
    if command.id in group.seen:
        return Step(group, Outcome(incident))
    if command.kind is CommandKind.ADD_RESPONDER:
        return _add_responder(group, incident, command, catalog or Catalog(), now)
    outcome = on_command(incident, command, now, group.incident_id)
    kinds = {e.kind for e in outcome.events}
    if E.DELIVERY_FAILED in kinds and catalog is not None and outcome.incident is not None:
        failed = Step(group.remember(command.id), outcome)
        return _escalate_past(failed, outcome.incident, command.step, catalog, now)
    g = group
    if E.ACKNOWLEDGED in kinds:
        g = replace(g, acked_at=now)
    if E.REOPENED in kinds and outcome.incident is not None:
        g = replace(
            g, incident_id=outcome.incident.id, step=0, step_paged_at=now, acked_at=None,
            last_paged_at=now, last_detection_at=now,
        )  # fmt: skip
    if outcome.events:
        g = g.remember(command.id)
    return Step(g, outcome)


def _add_responder(
    group: Group, incident: Incident | None, command: Command, catalog: Catalog, now: datetime
) -> Step:
    """Page a person, a team or a schedule's on-call into the incident now, recorded as who
    added whom; refused (with the reason) for a resolved incident or a target nobody answers.

    Each page has its own dedup key (the command's id in it), on the group's current step."""
    refused = _responder_refusal(incident, command, catalog)
    if refused is not None or incident is None:
        return Step(group, Outcome(incident, rejection=refused or "incident not found"))
    at = command.at or command.issued_at or now
    target = Target(person=command.person, team=command.team, schedule=command.schedule)
    people = people_of(catalog, target, at)
    if not people:
        return Step(group, Outcome(incident, rejection="nobody is on call there now"))
    subject = f"[{incident.severity.value}] {incident.title} (you were added)"
    why = f" Why: {command.text}" if command.text else ""
    body = f"{command.actor} added you to incident {incident.id} on {incident.service}.{why}"
    pages = tuple(
        page_to(incident, person, contact, f"{incident.id}/{group.step}/{person}/"
                f"{contact.channel.value}/{command.id}", subject, body, at, group.step)
        for person in people
        for contact in catalog.people[person].contacts
    )  # fmt: skip
    named = target.model_dump(exclude_none=True)
    data: dict[str, object] = {"target": named, "recipients": people, "text": command.text}
    event = make_event(
        incident.id, incident.routing_key, incident.last_seq + 1, E.RESPONDER_ADDED, at,
        command.actor, command.id, data,
    )  # fmt: skip
    g = group.remember(command.id)
    return _with(Step(g, Outcome(incident)), g, incident, event, pages)


def _responder_refusal(incident: Incident | None, command: Command, catalog: Catalog) -> str | None:
    if incident is None:
        return f"incident {command.incident_id!r} not found"
    if incident.status is IncidentStatus.RESOLVED:
        return "cannot add a responder to a resolved incident"
    named = [
        (what, name, known)
        for what, name, known in (
            ("person", command.person, catalog.people),
            ("team", command.team, catalog.teams),
            ("schedule", command.schedule, catalog.schedules),
        )
        if name is not None
    ]
    if len(named) != 1:
        return "name exactly one of person, team or schedule"
    what, name, known = named[0]
    if name not in known:
        return f"{what}: {name!r} is not in the catalog"
    return None


def _escalate_past(
    step: Step, incident: Incident, failed_step: int | None, catalog: Catalog, now: datetime
) -> Step:
    """After a page of ``failed_step`` could not be delivered: if that is still the step the
    unacknowledged incident is on, page the next one now rather than when it falls due."""
    g = step.group
    if incident.status is not IncidentStatus.TRIGGERED or g.inhibited_by is not None:
        return step
    if failed_step is None or failed_step != g.step:
        return step
    escalation = g._next_step(incident, catalog)
    if escalation is None:
        return step
    n = escalation[0]
    pages = pages_for(incident, catalog, step=n, now=now)
    escalated = make_event(
        incident.id, incident.routing_key, incident.last_seq + 1, E.ESCALATED, now, "warroom",
        None, {"step": n, "recipients": sorted({p.recipient for p in pages}),
               "reason": "delivery failed"},
    )  # fmt: skip
    g = replace(g, step=n, step_paged_at=now, last_paged_at=now)
    return _with(step, g, incident, escalated, pages)


def _with(step: Step, group: Group, incident: Incident, event: IncidentEvent,
          pages: tuple[Page, ...] = ()) -> Step:  # fmt: skip
    """``step`` followed by one more timeline event (and its pages)."""
    return Step(
        group,
        Outcome(
            apply(incident, event), (*step.outcome.events, event), (*step.outcome.pages, *pages)
        ),
    )


def _past(deadline_from: datetime | None, seconds: float | None, now: datetime) -> bool:
    return (
        deadline_from is not None
        and seconds is not None
        and now >= deadline_from + timedelta(seconds=seconds)
    )


def _inhibition(
    group: Group, incident: Incident, catalog: Catalog, now: datetime, still: str | None
) -> Step:
    """An inhibited incident: look again later, or, once the dependency's incident is resolved,
    page its first step as it would have when it opened."""
    if still is not None:
        return Step(replace(group, inhibit_check_at=now + INHIBIT_CHECK), Outcome(incident))
    pages = pages_for(incident, catalog, step=0, now=now)
    released = make_event(
        incident.id, incident.routing_key, incident.last_seq + 1, E.INHIBITION_RELEASED, now,
        "warroom", group.inhibited_by,
        {"by": group.inhibited_by, "recipients": sorted({p.recipient for p in pages})},
    )  # fmt: skip
    g = replace(
        group, inhibited_by=None, inhibit_check_at=None, step=0, step_paged_at=now,
        last_paged_at=now if pages else None,
    )  # fmt: skip
    return Step(g, Outcome(apply(incident, released), (released,), pages))


def on_tick(
    group: Group,
    incident: Incident | None,
    catalog: Catalog,
    timing: Timing,
    now: datetime,
    inhibited_by: str | None = None,
) -> Step:
    """Act on the group's deadlines that are due at ``now``: open what the group wait held,
    announce new signals, auto-resolve a quiet incident, re-trigger an acknowledgement that
    timed out, escalate to the next step, or page again after ``repeat_interval``."""
    live = _live(incident)
    if group.held and group.held_since is not None and live is None:
        if _past(group.held_since, timing.group_wait_s, now):
            return _open(group, catalog, now, inhibited_by)
        return Step(group)
    if live is None:
        return Step(group)
    if group.inhibited_by is not None:
        return _inhibition(group, live, catalog, now, inhibited_by)
    step = Step(group, Outcome(live))
    if group.unannounced:
        step = _announce(group, Outcome(live), catalog, timing, now)
    inc = step.outcome.incident or live
    g = step.group
    seq = inc.last_seq + 1

    def ev(kind: IncidentEventKind, data: dict[str, object]) -> IncidentEvent:
        return make_event(inc.id, inc.routing_key, seq, kind, now, "warroom", None, data)

    if _past(g.last_detection_at, timing.auto_resolve_s, now):
        text = f"auto-resolved: no detections for {timing.auto_resolve_s:.0f}s"
        return _with(step, g, inc, ev(E.RESOLVED, {"text": text}))
    if inc.status is IncidentStatus.ACKNOWLEDGED and _past(g.acked_at, timing.ack_timeout_s, now):
        n = g.retriggers + 1
        changed = ev(E.STATUS_CHANGED, {"from": "acknowledged", "to": "triggered",
                                        "reason": "acknowledgement timed out"})  # fmt: skip
        pages = tuple(
            p.model_copy(update={"dedup_key": f"{p.dedup_key}#retrigger{n}"})
            for p in pages_for(apply(inc, changed), catalog, step=g.step, now=now)
        )
        g = replace(g, retriggers=n, acked_at=None, step_paged_at=now, last_paged_at=now)
        return _with(step, g, inc, changed, pages)
    escalation = g._next_step(inc, catalog)
    if escalation is not None:
        if now < escalation[1]:
            return step
        n = escalation[0]
        routed = route(inc, catalog, step=n, now=now)
        g = replace(g, step=n, step_paged_at=now, last_paged_at=now)
        if routed.unrouted is not None:
            unrouted = ev(E.UNROUTED, {"reason": routed.unrouted, "fallback": routed.fallback,
                                       "step": n})  # fmt: skip
            step = _with(step, g, inc, unrouted)
            inc = step.outcome.incident or inc
            seq = inc.last_seq + 1  # the next event's (``ev`` reads it when called)
        recipients = sorted({p.recipient for p in routed.pages})
        escalated = ev(E.ESCALATED, {"step": n, "recipients": recipients})
        return _with(step, g, inc, escalated, routed.pages)
    if inc.status is IncidentStatus.TRIGGERED and _past(
        g.last_paged_at, timing.repeat_interval_s, now
    ):
        n = g.repeats + 1
        pages = tuple(
            p.model_copy(update={"dedup_key": f"{p.dedup_key}#repeat{n}"})
            for p in pages_for(inc, catalog, step=g.step, now=now)
        )
        paged = ev(E.PAGED, {"repeat": n, "recipients": sorted({p.recipient for p in pages})})
        return _with(step, replace(g, last_paged_at=now, repeats=n), inc, paged, pages)
    return step
