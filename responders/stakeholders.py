"""Stakeholder notices: status messages for the people who follow a service's incidents without
being paged for them (``Service.stakeholders``).

Each stakeholder gets a notice on every contact method when an incident opens, a status update
every ``stakeholder_update_interval_s`` while it is open, one when it is reopened, and a final
one when it is resolved. A notice is a :class:`~schemas.Page` with ``kind="notice"``, a
``[notice]`` subject and ``dedup_key = <incident>/notice/<reason>/<person>/<channel>``; its body
is :func:`status_update`, built only from the incident and its latest timeline events: the
conditions (status, severity, impact, signals), the actions taken, and what is still needed.

Why :func:`follow_up` rather than a branch in ``on_tick``: notices follow from what any input did
(an opening by detection or tick, a resolve by command, detection or tick, a reopen by command),
not only from timers, so one function applied to every step's result covers them all. The
periodic timer still runs through the group tick machinery: ``Group.due`` includes the next
update's deadline, so the worker's timer sends the group a ``tick``, and the tick's step comes
through here like any other.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime

from responders.correlation import Group, Step, Timing
from responders.paging import page_to
from schemas import (
    Catalog,
    Incident,
    IncidentEvent,
    IncidentEventKind,
    IncidentStatus,
    Page,
    timeline,
)
from schemas.runbooks import PHASES

E = IncidentEventKind
#: Timeline events an update lists under "actions", newest last.
ACTIONS_KEPT = 5
#: Events that are not actions anyone took (they are the conditions, or bookkeeping).
_NOT_ACTIONS = frozenset({E.DETECTION_ATTACHED, E.RUNBOOK_ATTACHED})
#: Timeline events that send a notice of their own, and its reason in the dedup key.
_NOTICE_EVENTS = {E.OPENED: "opened", E.REOPENED: "reopened", E.RESOLVED: "resolved"}


def _duration(seconds: float) -> str:
    """A short human duration.

    >>> _duration(42), _duration(600), _duration(5400), _duration(90000)
    ('42s', '10m', '1h30m', '1d1h')
    """
    s = max(0, int(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m"
    if s < 86400:
        h, m = divmod(s // 60, 60)
        return f"{h}h{m:02d}m" if m else f"{h}h"
    d, h = divmod(s // 3600, 24)
    return f"{d}d{h}h" if h else f"{d}d"


def _clock(t: datetime) -> str:
    return t.strftime("%H:%M:%SZ")


def _who(recipients: Sequence[str]) -> str:
    return ", ".join(recipients) if recipients else "nobody"


def _action(ev: IncidentEvent) -> str:
    """One line of what an event did."""
    d = ev.data
    match ev.kind:
        case E.OPENED:
            text = "opened"
        case E.PAGED if isinstance(d, timeline.Paged):
            text = f"paged {_who(d.recipients)}"
        case E.ESCALATED if isinstance(d, timeline.Escalated):
            step = "?" if d.step is None else d.step
            text = f"escalated to step {step} ({_who(d.recipients)})"
        case E.ACKNOWLEDGED | E.MITIGATED | E.RESOLVED | E.REOPENED:
            text = f"{ev.kind.value} by {ev.actor}"
        case E.NOTE if isinstance(d, timeline.Text):
            text = f"note from {ev.actor}: {d.text or ''}".rstrip(": ")
        case E.TASK_DONE if isinstance(d, timeline.TaskDone):
            text = f"task {d.phase}/{d.task_id} {d.outcome or 'done'}"
        case E.ROLE_ASSIGNED if isinstance(d, timeline.RoleAssigned):
            text = f"{d.person} is {d.role}"
        case E.SEVERITY_CHANGED if isinstance(d, timeline.SeverityChanged):
            text = f"severity {d.from_} to {d.to}"
        case _:
            text = ev.kind.value.replace("_", " ")
    return f"{_clock(ev.at)} {text}"


_NOTHING = {True: "nothing further: the incident is resolved", False: "nothing open for now"}


def _needs(incident: Incident) -> list[str]:
    """What the incident still needs, in lifecycle order."""
    if incident.status is IncidentStatus.RESOLVED:
        return []
    needs = []
    if incident.status is IncidentStatus.TRIGGERED:
        needs.append("no one has acknowledged yet")
    if incident.commander is None:
        needs.append("no commander assigned")
    order: dict[str, int] = {phase: i for i, phase in enumerate(PHASES)}
    pending = sorted(
        (key for key, state in incident.tasks.items() if state != "done"),
        key=lambda k: (order.get(k.split("/")[0], len(order)), k),
    )
    if pending:
        needs.append(f"{len(pending)} runbook task(s) unfinished: {', '.join(pending)}")
    if incident.status is IncidentStatus.MITIGATED:
        needs.append("service restored; the cause is yet to be fixed")
    return needs


def status_update(incident: Incident, recent_events: Sequence[IncidentEvent], now: datetime) -> str:
    """The body of a stakeholder notice: conditions, actions, needs.

    >>> from datetime import UTC, datetime as dt
    >>> t = dt(2026, 3, 1, 10, 0, tzinfo=UTC)
    >>> inc = Incident(id="inc-1", routing_key="api", service="api", title="api latency",
    ...                status="triggered", severity="SEV2", impact_started_at=t,
    ...                detected_at=t, opened_at=t, signals=("latency",))
    >>> print(status_update(inc, (), dt(2026, 3, 1, 10, 30, tzinfo=UTC)))
    Conditions: api latency is triggered, SEV2, impact since 10:00:00Z (30m); signals: latency.
    Actions: none yet.
    Needs: no one has acknowledged yet; no commander assigned.
    """
    resolved = incident.status is IncidentStatus.RESOLVED
    end = incident.resolved_at if resolved and incident.resolved_at is not None else now
    impact = f"impact since {_clock(incident.impact_started_at)}"
    impact += f" ({_duration((end - incident.impact_started_at).total_seconds())})"
    if incident.mitigated_at is not None:
        impact += f", restored {_clock(incident.mitigated_at)}"
    conditions = (
        f"{incident.title} is {incident.status.value}, {incident.severity.value}, {impact}; "
        f"signals: {', '.join(incident.signals) or 'n/a'}."
    )
    latest = {ev.seq: ev for ev in recent_events if ev.incident_id == incident.id}
    actions = [
        _action(latest[seq]) for seq in sorted(latest) if latest[seq].kind not in _NOT_ACTIONS
    ]
    needs = _needs(incident)
    lines = [
        f"Conditions: {conditions}",
        f"Actions: {'; '.join(actions[-ACTIONS_KEPT:]) or 'none yet'}.",
        f"Needs: {'; '.join(needs) or _NOTHING[resolved]}.",
    ]
    return "\n".join(lines)


def notices_for(
    incident: Incident,
    catalog: Catalog,
    reason: str,
    recent_events: Sequence[IncidentEvent],
    now: datetime,
) -> tuple[Page, ...]:
    """A notice for every contact of every stakeholder of the incident's service.

    ``reason`` names the notice in its dedup key (``opened``, ``update3@12``, ``resolved@20``):
    the same notice delivered again is sent once.
    """
    listed = catalog.services.get(incident.service)
    if listed is None or not listed.stakeholders:
        return ()
    body = status_update(incident, recent_events, now)
    subject = f"[notice] [{incident.severity.value}] {incident.title}: {incident.status.value}"
    return tuple(
        page_to(
            incident,
            person,
            contact,
            f"{incident.id}/notice/{reason}/{person}/{contact.channel.value}",
            subject,
            body,
            now,
            kind="notice",
        )
        for person in dict.fromkeys(listed.stakeholders)
        if person in catalog.people
        for contact in catalog.people[person].contacts
    )


def follow_up(
    step: Step,
    catalog: Catalog,
    timing: Timing,
    recent_events: Sequence[IncidentEvent],
    now: datetime,
) -> Step:
    """``step`` with the stakeholder notices it calls for added to its pages.

    A notice for each opening, reopening and resolution among the step's events (a resolution
    is the final update), else a periodic update if one is due. ``recent_events`` are the
    incident's latest timeline events before this step (the step's own are added here).
    """
    incident, g = step.outcome.incident, step.group
    if incident is None or step.outcome.rejection:
        return step
    listed = catalog.services.get(incident.service)
    if listed is None or not listed.stakeholders:
        return step
    timeline = (*recent_events, *step.outcome.events)
    notices: list[Page] = []
    for ev in step.outcome.events:
        reason = _NOTICE_EVENTS.get(ev.kind)
        if reason is not None and ev.incident_id == incident.id:
            why = reason if ev.kind is E.OPENED else f"{reason}@{ev.seq}"
            notices += notices_for(incident, catalog, why, timeline, now)
    if notices:
        return _sent(step, replace(g, last_update_notice_at=now), notices)
    interval = timing.stakeholder_update_interval_s
    since = g.last_update_notice_at or incident.opened_at
    if (
        incident.status is IncidentStatus.RESOLVED
        or interval is None
        or (now - since).total_seconds() < interval
    ):
        return step
    n = g.update_notices + 1
    notices += notices_for(incident, catalog, f"update{n}@{incident.last_seq}", timeline, now)
    return _sent(step, replace(g, last_update_notice_at=now, update_notices=n), notices)


def _sent(step: Step, group: Group, notices: Sequence[Page]) -> Step:
    outcome = replace(step.outcome, pages=(*step.outcome.pages, *notices))
    return replace(step, group=group, outcome=outcome)
