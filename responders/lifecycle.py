"""The incident lifecycle: inputs in, timeline events and effects out, state as their fold.

Every change to an incident is an :class:`~schemas.IncidentEvent`; :func:`apply` folds events into
the incident, so the incident table is a projection of ``incidents.events.v1`` and replaying the
timeline rebuilds it exactly. :func:`on_detection` and :func:`on_command` are total: illegal
inputs come back as a rejection with a reason, never as an exception.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from responders.paging import route
from responders.runbooks import (
    AUTOMATION,
    DONE,
    FAILED,
    attached_data,
    find_task,
    initial_tasks,
    runbook_for,
    succeeded,
    task_key,
)
from schemas import (
    Catalog,
    Command,
    CommandKind,
    Detection,
    DetectionSeverity,
    Incident,
    IncidentEvent,
    IncidentEventKind,
    IncidentStatus,
    Page,
    Runbook,
    Severity,
    timeline,
)

_NAMESPACE = uuid.UUID("6f1d3c2e-8a4b-4f0e-9c57-0d6a1f2b3c4d")
_KEEP_DETECTION_IDS = 64
_MAX_FUTURE = timedelta(minutes=1)

S = IncidentStatus
C = CommandKind
E = IncidentEventKind

#: (status, command) -> (new status, event kind). Pairs not listed are illegal.
TRANSITIONS: dict[tuple[IncidentStatus, CommandKind], tuple[IncidentStatus, IncidentEventKind]] = {
    (S.TRIGGERED, C.ACKNOWLEDGE): (S.ACKNOWLEDGED, E.ACKNOWLEDGED),
    (S.TRIGGERED, C.MITIGATE): (S.MITIGATED, E.MITIGATED),
    (S.TRIGGERED, C.RESOLVE): (S.RESOLVED, E.RESOLVED),
    (S.ACKNOWLEDGED, C.MITIGATE): (S.MITIGATED, E.MITIGATED),
    (S.ACKNOWLEDGED, C.RESOLVE): (S.RESOLVED, E.RESOLVED),
    (S.MITIGATED, C.RESOLVE): (S.RESOLVED, E.RESOLVED),
    (S.MITIGATED, C.REOPEN): (S.TRIGGERED, E.REOPENED),
    (S.RESOLVED, C.REOPEN): (S.TRIGGERED, E.REOPENED),
}


@dataclass(frozen=True)
class Outcome:
    """What an input did: the incident after it, its new events, pages to send, or a rejection."""

    incident: Incident | None
    events: tuple[IncidentEvent, ...] = ()
    pages: tuple[Page, ...] = ()
    rejection: str | None = None
    opened: bool = field(default=False)


def routing_key(detection: Detection, group_by: tuple[str, ...] = ("service",)) -> str:
    """The correlation group of a detection: its ``dedup_key`` if it has one, else its values of
    the ``group_by`` labels (``service`` is the detection's service).

    >>> d = Detection(id="d", ts=0, service="api", signal="s", detector="x", score=1,
    ...               labels={"region": "eu"})
    >>> routing_key(d), routing_key(d, ("service", "region"))
    ('api', 'service=api|region=eu')
    """
    if detection.dedup_key:
        return f"dedup:{detection.dedup_key}"
    if group_by == ("service",):
        return detection.service
    values = {**detection.labels, "service": detection.service}
    return "|".join(f"{label}={values.get(label, '')}" for label in group_by)


def incident_id_for(key: str, opening_detection_id: str) -> str:
    """Deterministic, so a replayed detection maps to the incident it already opened."""
    return "inc-" + uuid.uuid5(_NAMESPACE, f"{key}\x00{opening_detection_id}").hex[:16]


#: The detector of an incident a person declared (``POST /api/incidents``): its detection carries
#: the title and severity they gave in its context, and it opens without a group wait.
DECLARED = "declared"


def _title_and_severity(detection: Detection, catalog: Catalog) -> tuple[str, Severity]:
    title = f"{detection.service}: {detection.signal} anomalous ({detection.detector})"
    severity = severity_for(detection.severity, catalog.tier_for(detection.service))
    if detection.detector != DECLARED:
        return title, severity
    given = detection.context.get("title")
    chosen = detection.context.get("severity")
    valid = {s.value for s in Severity}
    return (
        str(given)[:200] if given else title,
        Severity(chosen) if chosen in valid else severity,
    )


def severity_for(detection: DetectionSeverity, tier: int) -> Severity:
    """SEV1-4 from the detection's severity and the service tier (tier 1 = most critical).

    >>> severity_for(DetectionSeverity.CRITICAL, 1), severity_for(DetectionSeverity.ERROR, 3)
    (<Severity.SEV1: 'SEV1'>, <Severity.SEV3: 'SEV3'>)
    """
    base = {
        DetectionSeverity.CRITICAL: 1,
        DetectionSeverity.ERROR: 2,
        DetectionSeverity.WARNING: 3,
        DetectionSeverity.INFO: 4,
    }[detection]
    return Severity(f"SEV{min(4, base + (1 if tier >= 3 else 0))}")


def make_event(
    incident_id: str,
    key: str,
    seq: int,
    kind: IncidentEventKind,
    at: datetime,
    actor: str,
    cause: str | None,
    data: dict[str, object] | None = None,
) -> IncidentEvent:
    return IncidentEvent(
        id=f"{incident_id}:{seq}",
        incident_id=incident_id,
        routing_key=key,
        seq=seq,
        kind=kind,
        at=at,
        actor=actor,
        cause=cause,
        data=data or {},
    )


def on_detection(
    current: Incident | None,
    detection: Detection,
    catalog: Catalog,
    now: datetime,
    key: str | None = None,
    inhibited_by: str | None = None,
) -> Outcome:
    """Open an incident for the detection's group, or attach it to the open one.

    ``current`` is the group's open (not resolved) incident, if any. A detection already seen
    (by id) changes nothing, so replays are harmless.
    """
    key = key or (current.routing_key if current is not None else routing_key(detection))
    if current is not None and current.status is not S.RESOLVED:
        return _attach(current, detection, key, now)
    return _open(_opened(detection, catalog, key, now), detection, catalog, now, inhibited_by)


def _attach(current: Incident, detection: Detection, key: str, now: datetime) -> Outcome:
    """The open incident with one more detection, unless it has seen this one already."""
    if detection.id in current.detection_ids:
        return Outcome(current)
    event = make_event(
        current.id,
        key,
        current.last_seq + 1,
        E.DETECTION_ATTACHED,
        now,
        "warroom",
        detection.id,
        {
            "detection_id": detection.id,
            "signal": detection.signal,
            "detector": detection.detector,
            "score": detection.score,
            "detected_at": detection.ts.isoformat(),
            "context": detection.context,
        },
    )
    return Outcome(apply(current, event), (event,))


def _opened(detection: Detection, catalog: Catalog, key: str, now: datetime) -> Incident:
    """The incident a detection opens, triggered, before its runbook and its pages."""
    impact = detection.impact_started_at or detection.ts
    title, severity = _title_and_severity(detection, catalog)
    return Incident(
        id=incident_id_for(key, detection.id),
        routing_key=key,
        service=detection.service,
        title=title,
        status=S.TRIGGERED,
        severity=severity,
        team=catalog.team_for(detection.service),
        detector=detection.detector,
        impact_started_at=min(impact, detection.ts),
        detected_at=detection.ts,
        opened_at=now,
        detection_count=1,
        detection_ids=(detection.id,),
        signals=(detection.signal,),
        last_seq=1,
    )


def _open(
    opened: Incident,
    detection: Detection,
    catalog: Catalog,
    now: datetime,
    inhibited_by: str | None,
) -> Outcome:
    """Record the opening, attach the incident's runbook, then page, or hold the pages back
    while an incident on a dependency (``inhibited_by``) is open."""
    first = make_event(
        opened.id,
        opened.routing_key,
        1,
        E.OPENED,
        now,
        "warroom",
        detection.id,
        {
            "incident": opened.model_dump(mode="json"),
            "detection": detection.model_dump(mode="json"),
        },
    )
    routed = route(opened, catalog, step=0, now=now)
    trail = _with_runbook((opened, (first,)), catalog, now)
    recipients = sorted({p.recipient for p in routed.pages})
    if inhibited_by is not None:
        data: dict[str, object] = {"by": inhibited_by, "recipients_not_paged": recipients}
        return Outcome(*_then(trail, E.INHIBITED, now, inhibited_by, data), (), opened=True)
    if routed.unrouted is not None:
        data = {"reason": routed.unrouted, "fallback": routed.fallback, "step": 0}
        trail = _then(trail, E.UNROUTED, now, None, data)
    if routed.pages:
        trail = _then(trail, E.PAGED, now, None, {"step": 0, "recipients": recipients})
    return Outcome(*trail, routed.pages, opened=True)


#: An incident and the events that made it so far.
_Trail = tuple[Incident, tuple[IncidentEvent, ...]]


def _with_runbook(trail: _Trail, catalog: Catalog, now: datetime) -> _Trail:
    """The incident with the catalog's runbook for it attached, if there is one."""
    incident, events = trail
    found = runbook_for(catalog, incident)
    if found is None:
        return incident, events
    attached = runbook_attached(incident, *found, now)
    return apply(incident, attached), (*events, attached)


def _then(
    trail: _Trail,
    kind: IncidentEventKind,
    now: datetime,
    cause: str | None,
    data: dict[str, object],
) -> _Trail:
    """The incident after its next event by warroom, and the events so far with it."""
    incident, events = trail
    event = make_event(
        incident.id, incident.routing_key, incident.last_seq + 1, kind, now, "warroom", cause, data
    )
    return apply(incident, event), (*events, event)


def runbook_attached(
    incident: Incident, name: str, runbook: Runbook, at: datetime
) -> IncidentEvent:
    """The ``runbook_attached`` event that gives the incident the runbook's tasks."""
    return make_event(
        incident.id, incident.routing_key, incident.last_seq + 1, E.RUNBOOK_ATTACHED, at,
        "warroom", name, attached_data(name, runbook),
    )  # fmt: skip


def on_command(
    current: Incident | None,
    command: Command,
    now: datetime,
    open_in_group: str | None = None,
) -> Outcome:
    """Apply a person's command, or reject it with the reason (unknown, illegal, bad time).

    ``open_in_group`` is the id of the group's open incident, if any: a resolved incident is not
    reopened while another one is open for the same group.
    """
    if current is None:
        return Outcome(None, rejection=f"incident {command.incident_id!r} not found")
    at = command.at or command.issued_at or now
    if at > now + _MAX_FUTURE:
        return Outcome(current, rejection="'at' is in the future")
    seq = current.last_seq + 1
    if command.kind in (C.SET_SEVERITY, C.ASSIGN_ROLE):
        return _people_change(current, command, at, seq)
    if command.kind is C.COMPLETE_TASK:
        return _complete_task(current, command, at, seq)
    if command.kind is C.DELIVERY_FAILED:
        if current.status is S.RESOLVED:
            return Outcome(current, rejection="the incident is resolved")
        failed: dict[str, object] = {
            "page": command.page, "step": command.step, "recipient": command.person,
            "detail": command.text,
        }  # fmt: skip
        event = make_event(
            current.id, current.routing_key, seq, E.DELIVERY_FAILED, at, "warroom", command.id,
            failed,
        )  # fmt: skip
        return Outcome(apply(current, event), (event,))
    if command.kind is C.RECORD_CHANGE:
        if current.status is S.RESOLVED or not command.change:
            return Outcome(current)  # it arrived after the incident: the review lists it
        event = make_event(
            current.id, current.routing_key, seq, E.CHANGE_RECORDED, at,
            command.actor, command.id, dict(command.change),
        )  # fmt: skip
        return Outcome(apply(current, event), (event,))
    if command.kind is C.NOTE:
        if not command.text:
            return Outcome(current, rejection="a note needs text")
        event = make_event(
            current.id, current.routing_key, seq, E.NOTE, at, command.actor, command.id,
            {"text": command.text},
        )  # fmt: skip
        return Outcome(apply(current, event), (event,))
    target = TRANSITIONS.get((current.status, command.kind))
    if target is None:
        return Outcome(
            current,
            rejection=f"cannot {command.kind.value} an incident that is {current.status.value}",
        )
    if command.kind is C.REOPEN and open_in_group not in (None, current.id):
        return Outcome(
            current, rejection=f"incident {open_in_group} is already open for this group"
        )
    floor = current.opened_at if command.kind is C.ACKNOWLEDGE else current.impact_started_at
    if command.kind is not C.REOPEN and at < floor:
        return Outcome(current, rejection=f"'at' is before the incident started ({floor})")
    _, kind = target
    data: dict[str, object] = {"text": command.text} if command.text else {}
    event = make_event(
        current.id, current.routing_key, seq, kind, at, command.actor, command.id, data
    )
    return Outcome(apply(current, event), (event,))


#: Roles people take in an incident (Dispatch and PagerDuty's response roles).
ROLES = ("commander", "scribe", "communications", "responder", "subject_matter_expert")


def _people_change(current: Incident, command: Command, at: datetime, seq: int) -> Outcome:
    """Severity changes and role assignments: allowed until the incident is resolved."""
    if current.status is S.RESOLVED:
        return Outcome(current, rejection=f"cannot {command.kind.value} a resolved incident")
    if command.kind is C.SET_SEVERITY:
        if command.severity is None:
            return Outcome(current, rejection="severity: required (SEV1 to SEV4)")
        if command.severity is current.severity:
            return Outcome(current, rejection=f"the severity is already {current.severity.value}")
        data: dict[str, object] = {
            "from": current.severity.value, "to": command.severity.value, "text": command.text,
        }  # fmt: skip
        kind = E.SEVERITY_CHANGED
    else:
        if command.role not in ROLES:
            return Outcome(current, rejection=f"role: one of {', '.join(ROLES)}")
        if not command.person:
            return Outcome(current, rejection="person: required")
        previous = current.roles.get(command.role)
        if previous == command.person:
            return Outcome(current, rejection=f"{command.person} is already {command.role}")
        # A hand-off names who hands over, so the timeline shows who held the role when.
        data = {"role": command.role, "person": command.person, "previous": previous}
        kind = E.ROLE_ASSIGNED
    ev = make_event(current.id, current.routing_key, seq, kind, at, command.actor, command.id, data)
    return Outcome(apply(current, ev), (ev,))


def _complete_task(current: Incident, command: Command, at: datetime, seq: int) -> Outcome:
    """A runbook task done: by a person (done), or by automation (done or failed, from its
    result). A failed task may be completed again, by hand; a done one may not."""
    if current.status is S.RESOLVED:
        return Outcome(current, rejection="cannot complete a task of a resolved incident")
    if not command.task:
        return Outcome(current, rejection="task: required (a task id of the incident's runbook)")
    found = find_task(current.tasks, command.task)
    if found is None:
        if not current.tasks:
            return Outcome(current, rejection="the incident has no runbook tasks")
        known = ", ".join(key.partition("/")[2] for key in current.tasks)
        return Outcome(current, rejection=f"unknown task {command.task!r}; one of {known}")
    phase, state = found
    if state == DONE:
        return Outcome(current, rejection=f"task {command.task!r} is already done")
    if at < current.opened_at:
        return Outcome(
            current, rejection=f"'at' is before the runbook was attached ({current.opened_at})"
        )
    automated = command.actor == AUTOMATION
    data: dict[str, object] = {
        "task_id": command.task,
        "task": command.task,
        "phase": phase,
        "outcome": DONE if not automated or succeeded(command.text) else FAILED,
        # The runbook is attached when the incident opens.
        "duration_s": (at - current.opened_at).total_seconds(),
    }
    if command.text:
        data["result" if automated else "text"] = command.text
    ev = make_event(
        current.id, current.routing_key, seq, E.TASK_DONE, at, command.actor, command.id, data
    )
    return Outcome(apply(current, ev), (ev,))


def catalog_recorded(
    outcome: Outcome, incident: Incident | None, version: int, digest: str, now: datetime
) -> Outcome:
    """``outcome`` with a ``catalog_applied`` event added when the incident it leaves open (its
    own, else ``incident``, the group's) has not recorded catalog ``version`` yet: on opening,
    and on its next input after another catalog is applied.

    >>> from datetime import UTC, datetime
    >>> t = datetime(2026, 1, 1, tzinfo=UTC)
    >>> inc = Incident(id="inc-1", routing_key="x", service="x", title="x", status="triggered",
    ...                severity="SEV2", impact_started_at=t, detected_at=t, opened_at=t,
    ...                last_seq=3)
    >>> out = catalog_recorded(Outcome(inc), None, 7, "ab" * 32, t)
    >>> [(e.kind.value, e.seq, e.data.wire()["version"]) for e in out.events]
    [('catalog_applied', 4, 7)]
    >>> out.incident.catalog_version
    7
    >>> catalog_recorded(out, None, 7, "ab" * 32, t) is out
    True
    """
    current = outcome.incident if outcome.incident is not None else incident
    if (
        outcome.rejection
        or current is None
        or current.status is S.RESOLVED
        or current.catalog_version == version
    ):
        return outcome
    data: dict[str, object] = {
        "version": version, "digest": digest, "previous": current.catalog_version,
    }  # fmt: skip
    event = make_event(
        current.id, current.routing_key, current.last_seq + 1, E.CATALOG_APPLIED, now,
        "warroom", None, data,
    )  # fmt: skip
    return replace(outcome, incident=apply(current, event), events=(*outcome.events, event))


def apply(incident: Incident | None, event: IncidentEvent) -> Incident:
    """Fold one timeline event into the incident; events already applied (by seq) are ignored."""
    if incident is None:
        if not isinstance(event.data, timeline.Opened):
            raise ValueError(f"the first event of an incident must be 'opened', not {event.kind}")
        return Incident.model_validate(event.data.incident)
    if event.seq <= incident.last_seq:
        return incident
    return incident.model_copy(update={"last_seq": event.seq, **_changes(incident, event)})


def _changes(incident: Incident, event: IncidentEvent) -> dict[str, object]:
    """What one event changes in the incident, by its kind and its payload."""
    changes: dict[str, object] = {}
    at, d = event.at, event.data
    match event.kind:
        case E.DETECTION_ATTACHED if isinstance(d, timeline.DetectionAttached):
            detection_id = d.detection_id or str(event.cause)
            changes["detection_count"] = incident.detection_count + 1
            changes["detection_ids"] = (*incident.detection_ids, detection_id)[
                -_KEEP_DETECTION_IDS:
            ]
            if d.signal and d.signal not in incident.signals:
                changes["signals"] = (*incident.signals, d.signal)
        case E.PAGED:
            if incident.first_paged_at is None:
                changes["first_paged_at"] = at
        case E.ACKNOWLEDGED:
            changes["status"] = S.ACKNOWLEDGED
            # Time to acknowledge counts from the first acknowledgement.
            changes["acknowledged_at"] = incident.acknowledged_at or at
        case E.MITIGATED:
            changes["status"] = S.MITIGATED
            changes["mitigated_at"] = at
        case E.RESOLVED:
            changes["status"] = S.RESOLVED
            changes["resolved_at"] = at
            if incident.mitigated_at is None:
                changes["mitigated_at"] = at
        case E.REOPENED:
            changes["status"] = S.TRIGGERED
            changes["mitigated_at"] = None
            changes["resolved_at"] = None
        case E.UNROUTED if isinstance(d, timeline.Unrouted):
            changes["unrouted"] = d.reason
        case E.INHIBITED if isinstance(d, timeline.Inhibited):
            changes["inhibited_by"] = d.by
        case E.INHIBITION_RELEASED if isinstance(d, timeline.InhibitionReleased):
            changes["inhibited_by"] = None
            if incident.first_paged_at is None and d.recipients:
                changes["first_paged_at"] = at
        case E.STATUS_CHANGED if isinstance(d, timeline.StatusChanged):
            changes["status"] = S(d.to)
        case E.SEVERITY_CHANGED if isinstance(d, timeline.SeverityChanged):
            changes["severity"] = Severity(d.to)
        case E.RUNBOOK_ATTACHED if isinstance(d, timeline.RunbookAttached):
            changes["tasks"] = initial_tasks(d)
        case E.TASK_DONE if isinstance(d, timeline.TaskDone) and d.task_id and d.phase:
            key = task_key(d.phase, d.task_id)
            changes["tasks"] = {**incident.tasks, key: d.outcome or DONE}
        case E.CATALOG_APPLIED if isinstance(d, timeline.CatalogApplied):
            changes["catalog_version"] = d.version
        case E.ROLE_ASSIGNED if isinstance(d, timeline.RoleAssigned):
            changes["roles"] = {**incident.roles, d.role: d.person}
        case _:
            pass
    return changes


def replay(events: Iterable[IncidentEvent]) -> dict[str, Incident]:
    """Rebuild every incident from a timeline (any order across incidents, seq order within)."""
    incidents: dict[str, Incident] = {}
    for event in sorted(events, key=lambda e: (e.incident_id, e.seq)):
        incidents[event.incident_id] = apply(incidents.get(event.incident_id), event)
    return incidents
