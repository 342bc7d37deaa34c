"""The incident engine: one input of a correlation group in, the group's next state and what to
send out.

:func:`decide` is a total function of the group's state, the input and a :class:`View` (the
catalog, the worker's timing and limits, and read-only lookups of the incidents, their recent
timelines and what every worker sees: silences, resolved incidents, open incidents by service).
It decides replays, silences, "until resolved" mutes, inhibition by a dependency, retention and
the group's timers, and returns a :class:`Decision`: the events and pages to send, the incident
and group to write, or the reason to refuse the input. It never reads the clock: an input is
decided at its own time (:func:`decided_at`), so processing it again, at any later time, decides
the same and writes the same bytes.

The shell (``streams.agents.open_incidents``) decodes, calls :func:`decide`, sends, then writes.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Container, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from responders.correlation import (
    Group,
    Step,
    Timing,
    forget_at,
    late,
    on_command_in_group,
    on_detection_in_group,
    on_retention_tick,
    on_tick,
)
from responders.lifecycle import Outcome, catalog_recorded, incident_id_for, routing_key
from responders.silences import SilenceState, silenced_by, state
from responders.stakeholders import follow_up
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
from schemas.silences import Silence

#: The time of an input that carries none (a record without a timestamp, from an old producer).
EPOCH = datetime.fromtimestamp(0, tz=UTC)
#: Timeline events before a step that stakeholder notices quote.
RECENT_EVENTS = 20


def _no_incident(_incident_id: str) -> Incident | None:
    return None


def _no_events(_incident_id: str) -> Sequence[IncidentEvent]:
    return ()


def _no_silences() -> Sequence[Silence]:
    return ()


def _nothing_open(_service: str) -> str | None:
    return None


@dataclass(frozen=True)
class View:
    """What :func:`decide` reads besides the group: the catalog, the worker's timing and limits,
    and lookups the shell binds to its tables and directory (each one a read, never a write)."""

    catalog: Catalog
    timing: Timing = field(default_factory=Timing)
    group_by: tuple[str, ...] = ("service",)
    max_lateness_s: float = math.inf
    #: Idle groups are forgotten this long after their last change (0: kept forever).
    group_retention_s: float = 0.0
    #: An incident by id, from the write model.
    incident: Callable[[str], Incident | None] = _no_incident
    #: An incident's latest timeline events (for the notices that quote them).
    recent: Callable[[str], Sequence[IncidentEvent]] = _no_events
    silences: Callable[[], Sequence[Silence]] = _no_silences
    #: Incident ids known to be resolved ("until resolved" silences end with them).
    resolved: Container[str] = ()
    #: An open incident on a service, if any (for inhibition by dependencies).
    open_on: Callable[[str], str | None] = _nothing_open
    #: The live catalog in force (its version on ``catalog.v1``, and digest), which the
    #: incidents it leaves open record on their timelines; None: the file catalog.
    catalog_version: int | None = None
    catalog_digest: str = ""


@dataclass(frozen=True)
class Received:
    """One decoded input and its record's timestamp (None: the record carries none)."""

    item: Detection | Command
    recorded_at: datetime | None = None


@dataclass(frozen=True)
class Decision:
    """What one input does. The shell sends ``events`` and ``pages`` first, then writes
    ``incident`` (when not None) and the group (``group`` when ``write_group``; deleted when
    ``forget``), and adds ``counts`` to its metrics. A ``rejection`` goes to the dead-letter
    topic, and nothing else happens; with ``resend``, the input itself is sent again under
    ``key``, and nothing else happens."""

    key: str
    at: datetime
    group: Group
    incident: Incident | None = None
    events: tuple[IncidentEvent, ...] = ()
    pages: tuple[Page, ...] = ()
    rejection: str | None = None
    forget: bool = False
    write_group: bool = False
    counts: tuple[tuple[str, int], ...] = ()
    resend: bool = False


def key_of(item: Detection | Command, group_by: tuple[str, ...]) -> str:
    """The correlation group an input belongs to (the key it must be sent under)."""
    return item.routing_key if isinstance(item, Command) else routing_key(item, group_by)


def resent(
    received: Received, record_key: bytes | None, group_by: tuple[str, ...]
) -> Decision | None:
    """An input that came keyed other than by its correlation group (a producer's mistake) is
    sent again under the right key, to the partition that holds its group's state, and not
    processed where it landed; None for an input keyed right."""
    key = key_of(received.item, group_by)
    if record_key == key.encode():
        return None
    return Decision(
        key, given_time(received), Group(key), resend=True, counts=(("inputs_rekeyed", 1),)
    )


def given_time(received: Received) -> datetime:
    """The input's own time: a command's ``issued_at`` (a tick's due time), else the record's
    timestamp; a detection without a record time is decided at its data's arrival."""
    item = received.item
    if isinstance(item, Command) and item.issued_at is not None:
        return item.issued_at
    if received.recorded_at is not None:
        return received.recorded_at
    return item.received_at or item.ts if isinstance(item, Detection) else EPOCH


def decided_at(group: Group, received: Received) -> datetime:
    """The time an input is decided at: its own, but never before the group's last change, so
    that a group's timeline does not run backwards when its inputs come out of order."""
    given = given_time(received)
    return max(given, group.active_at) if group.active_at is not None else given


def tick_for(key: str, due: datetime) -> Command:
    """The tick asking group ``key`` to act on its deadline ``due``: the same command (same id,
    same time) whenever and however often the timer sends it.

    >>> a = tick_for("api", EPOCH)
    >>> a == tick_for("api", EPOCH), a.id == tick_for("web", EPOCH).id, a.issued_at == EPOCH
    (True, False, True)
    """
    digest = hashlib.sha256(f"{key}\x00{due.isoformat()}".encode()).hexdigest()[:20]
    return Command(
        id=f"tick-{digest}", kind=CommandKind.TICK, incident_id="-", routing_key=key,
        actor="warroom", issued_at=due,
    )  # fmt: skip


def timing_of(
    group: Group, incident: Incident | None, view: View, service: str | None = None
) -> Timing:
    """The worker's timing with the catalog's overrides for the service of the group's incident
    (else of the detection at hand, else of the first one the group holds)."""
    if incident is not None:
        service = incident.service
    elif service is None and group.held:
        service = group.held[0].service
    return view.timing.for_service(view.catalog, service)


def muted(incident_id: str | None, view: View, now: datetime) -> bool:
    """An active silence "until resolved" for this incident holds back its timers (not the
    stakeholder updates)."""
    return incident_id is not None and any(
        silence.until_resolved == incident_id
        and state(silence, now, view.resolved) is SilenceState.ACTIVE
        for silence in view.silences()
    )


def inhibitor(service: str | None, view: View) -> str | None:
    """An open incident on one of the service's dependencies, if any."""
    listed = view.catalog.services.get(service) if service else None
    for dependency in listed.depends_on if listed is not None else ():
        found = view.open_on(dependency)
        if found is not None:
            return str(found)
    return None


def next_deadline(
    group: Group, view: View, now: datetime, expired_by: datetime | None = None
) -> tuple[datetime | None, bool]:
    """The group's next deadline, and whether it is the end of its retention: with
    ``expired_by`` (a rebuild of the index), an idle group's retention counts as a deadline if it
    has run out by then."""
    incident = _load(group.incident_id, view)
    at = timing_of(group, incident, view)
    due = group.due(at, incident, view.catalog, muted(group.incident_id, view, now))
    if unrecorded(incident, view):
        due = now  # its next input records the catalog in force
    if due is not None or expired_by is None:
        return due, False
    forget = forget_at(group, incident, at, view.catalog, view.group_retention_s, expired_by)
    if forget is not None and forget <= expired_by:
        return forget, True
    return None, False


def decide(group: Group, received: Received, view: View) -> Decision:
    """What ``received`` does to ``group`` (the stored state of its correlation group)."""
    now = decided_at(group, received)
    item = received.item
    if isinstance(item, Detection):
        step, counts = _detection(group, item, view, now)
    elif item.kind is CommandKind.TICK:
        step, counts = _tick(group, view, now), ()
    else:
        incident = _load(item.incident_id, view)
        step, counts = on_command_in_group(group, incident, item, now, view.catalog), ()
    return _settle(group, step, view, now, counts)


def _load(incident_id: str | None, view: View) -> Incident | None:
    return view.incident(incident_id) if incident_id else None


Counts = tuple[tuple[str, int], ...]


def _detection(group: Group, d: Detection, view: View, now: datetime) -> tuple[Step, Counts]:
    if _load(incident_id_for(group.key, d.id), view) is not None:  # it opened one: a replay
        return Step(group), ()
    if d.status is DetectionStatus.FIRING and silenced_by(d, view.silences(), now, view.resolved):
        return Step(group), (("detections_silenced", 1),)
    current = _load(group.incident_id, view)
    timing = timing_of(group, current, view, d.service)
    step = on_detection_in_group(
        group, current, d, view.catalog, timing, now, inhibitor(d.service, view),
        view.max_lateness_s,
    )  # fmt: skip
    return step, (("detections_late", int(late(d, view.max_lateness_s))),)


def _tick(group: Group, view: View, now: datetime) -> Step:
    current = _load(group.incident_id, view)
    timing = timing_of(group, current, view)
    retained = on_retention_tick(group, current, timing, view.catalog, view.group_retention_s, now)
    if retained is not None:
        return retained
    if muted(group.incident_id, view, now):
        # The incident's timers wait (escalation, repeats, auto-resolve), but it goes on to
        # the stakeholder follow-up: they still get their periodic updates.
        return Step(group, Outcome(current))
    service = current.service if current else (group.held[0].service if group.held else None)
    return on_tick(group, current, view.catalog, timing, now, inhibitor(service, view))


def _settle(before: Group, step: Step, view: View, now: datetime, counts: Counts) -> Decision:
    """The step as a decision: refused, forgotten, or followed up for the stakeholders, with
    the group closed once its incident is resolved and stamped when it changed."""
    key = before.key
    if step.outcome.rejection:
        return Decision(key, now, before, rejection=step.outcome.rejection)
    if step.forget:
        return Decision(key, now, before, forget=True, counts=(("groups_forgotten", 1),))
    step = _recorded(_followed_up(step, view, now), view, now)
    g, outcome = step.group, step.outcome
    incident = outcome.incident if outcome.events else None
    if incident is not None and incident.status is IncidentStatus.RESOLVED:
        g = _closed(g, incident.id)
    legacy = before.active_at is None and before != Group(key)  # stored before it was stamped
    write = g != before or legacy
    if write:
        g = replace(g, active_at=now)
    return Decision(
        key, now, g, incident, outcome.events, outcome.pages, write_group=write,
        counts=(*counts, *_outcome_counts(step)),
    )  # fmt: skip


def unrecorded(incident: Incident | None, view: View) -> bool:
    """An open incident that has not recorded the live catalog in force yet."""
    return (
        incident is not None
        and view.catalog_version is not None
        and incident.status is not IncidentStatus.RESOLVED
        and incident.catalog_version != view.catalog_version
    )


def _recorded(step: Step, view: View, now: datetime) -> Step:
    """The step with the live catalog in force recorded on the incident it leaves open (the
    group's, if the step is about no incident), when it has not been yet."""
    if view.catalog_version is None:
        return step
    group_incident = _load(step.group.incident_id, view)
    outcome = catalog_recorded(
        step.outcome, group_incident, view.catalog_version, view.catalog_digest, now
    )
    return step if outcome is step.outcome else replace(step, outcome=outcome)


def _closed(group: Group, incident_id: str) -> Group:
    """The group once ``incident_id`` is resolved: if it was the group's incident, only what
    the group holds for the next one and the ids of its latest inputs remain."""
    if group.incident_id != incident_id:
        return group
    return Group(group.key, held=group.held, held_since=group.held_since, seen=group.seen)


def _followed_up(step: Step, view: View, now: datetime) -> Step:
    """The step with the stakeholder notices it calls for (they quote the incident's latest
    timeline events, by seq: an input processed again after its events were projected quotes
    the same ones)."""
    incident = step.outcome.incident
    if incident is None:
        return step
    recent = view.recent(incident.id)[-RECENT_EVENTS:]
    timing = timing_of(step.group, incident, view)
    return follow_up(step, view.catalog, timing, recent, now)


def _outcome_counts(step: Step) -> Counts:
    unrouted = sum(e.kind is IncidentEventKind.UNROUTED for e in step.outcome.events)
    return (
        ("incidents_opened", int(step.outcome.opened)),
        ("flaps_suppressed", int(step.suppressed)),
        ("incidents_unrouted", unrouted),
    )
