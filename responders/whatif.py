"""What a catalog would have done with recorded inputs: incidents opened and pages sent.

``simulate`` folds recorded detections and people's commands (acknowledge, mitigate, resolve,
reopen, ...) in arrival order through the functions the worker applies
(``responders.correlation``: grouping, escalation, repeats, inhibition by dependencies), ticking
each correlation group at its deadlines on a simulated clock, exactly as the worker's timer
does. A recorded command is applied to the group's incident in the simulation (the one open for
its routing key), so an acknowledgement stops the escalation it stopped, whatever the catalog.
Silences, rate limits and delivery failures are not replayed.

Pages are counted once per (incident, escalation step, person), whatever the channels; a page
is at night when it is sent between 03:00 and 07:00 in the person's ``time_zone`` (else their
first schedule's time zone, else UTC).
"""

from __future__ import annotations

import heapq
import math
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from responders.correlation import (
    Group,
    Step,
    Timing,
    on_command_in_group,
    on_detection_in_group,
    on_tick,
)
from responders.lifecycle import routing_key
from schemas import Catalog, Command, CommandKind, Detection, Incident, IncidentStatus

#: Local hours in which a page wakes someone: from 03:00 up to 07:00.
NIGHT = (3, 7)
#: Commands of the worker itself, not of people: the simulation makes its own.
_INTERNAL = {CommandKind.TICK, CommandKind.DELIVERY_FAILED, CommandKind.RECORD_CHANGE}


@dataclass
class Tally:
    """What one run of the fold counted."""

    incidents: Counter[str] = field(default_factory=Counter)
    pages: Counter[str] = field(default_factory=Counter)
    night_pages: Counter[str] = field(default_factory=Counter)
    person_pages: Counter[str] = field(default_factory=Counter)
    person_night: Counter[str] = field(default_factory=Counter)


@dataclass(frozen=True)
class Input:
    """A recorded input at the time it reached the worker."""

    at: datetime
    detection: Detection | None = None
    command: Command | None = None


def zone_of(person: str, catalog: Catalog) -> ZoneInfo:
    """The person's time zone: their own, else their first schedule's, else UTC."""
    listed = catalog.people.get(person)
    if listed is not None and listed.time_zone:
        return ZoneInfo(listed.time_zone)
    for _, schedule in sorted(catalog.schedules.items()):
        if any(person in layer.participants for layer in schedule.layers):
            return ZoneInfo(schedule.time_zone)
    return ZoneInfo("UTC")


def at_night(at: datetime, zone: ZoneInfo) -> bool:
    """Whether ``at`` is between 03:00 and 07:00 on the wall clock of ``zone``."""
    return NIGHT[0] <= at.astimezone(zone).hour < NIGHT[1]


class _Fold:
    def __init__(self, catalog: Catalog, timing: Timing, group_by: tuple[str, ...]) -> None:
        self.catalog, self.timing, self.group_by = catalog, timing, group_by
        self.groups: dict[str, Group] = {}
        self.incidents: dict[str, Incident] = {}
        self.due: list[tuple[datetime, str]] = []
        self.tally = Tally()
        self._paged: set[tuple[str, int, str]] = set()
        #: The deadline each group was last ticked at (as the worker's timer keeps it).
        self._ticked: dict[str, datetime] = {}

    def incident(self, g: Group) -> Incident | None:
        return self.incidents.get(g.incident_id) if g.incident_id else None

    def timing_of(self, g: Group, service: str | None = None) -> Timing:
        incident = self.incident(g)
        if incident is not None:
            service = incident.service
        elif service is None and g.held:
            service = g.held[0].service
        return self.timing.for_service(self.catalog, service)

    def inhibitor(self, service: str | None) -> str | None:
        listed = self.catalog.services.get(service) if service else None
        for dependency in listed.depends_on if listed is not None else ():
            found = sorted(
                i.id
                for i in self.incidents.values()
                if i.service == dependency and i.status is not IncidentStatus.RESOLVED
            )
            if found:
                return found[0]
        return None

    def apply(self, step: Step) -> None:
        g, outcome = step.group, step.outcome
        incident = outcome.incident
        if incident is not None and outcome.events:
            self.incidents[incident.id] = incident
            if incident.status is IncidentStatus.RESOLVED and g.incident_id == incident.id:
                g = Group(g.key, held=g.held, held_since=g.held_since, seen=g.seen)
        if outcome.opened and incident is not None:
            self.tally.incidents[incident.service] += 1
        for page in outcome.pages:
            if page.kind != "page":
                continue
            once = (page.incident_id, page.step, page.recipient)
            if once in self._paged:
                continue
            self._paged.add(once)
            service = self.incidents[page.incident_id].service
            night = at_night(page.created_at, zone_of(page.recipient, self.catalog))
            self.tally.pages[service] += 1
            self.tally.person_pages[page.recipient] += 1
            self.tally.night_pages[service] += night
            self.tally.person_night[page.recipient] += night
        self.groups[g.key] = g
        due = g.due(self.timing_of(g), self.incident(g), self.catalog)
        if due is not None:
            heapq.heappush(self.due, (due, g.key))

    def tick_until(self, until: datetime) -> None:
        while self.due and self.due[0][0] <= until:
            at, key = heapq.heappop(self.due)
            g = self.groups[key]
            current = self.incident(g)
            if g.due(self.timing_of(g), current, self.catalog) != at or self._ticked.get(key) == at:
                continue  # superseded by a later input, or ticked at this deadline already
            self._ticked[key] = at
            service = current.service if current else (g.held[0].service if g.held else None)
            step = on_tick(g, current, self.catalog, self.timing_of(g), at, self.inhibitor(service))
            self.apply(step)

    def detection(self, d: Detection, at: datetime, max_lateness_s: float) -> None:
        key = routing_key(d, self.group_by)
        g = self.groups.get(key, Group(key))
        current = self.incident(g)
        step = on_detection_in_group(
            g, current, d, self.catalog, self.timing_of(g, d.service), at,
            self.inhibitor(d.service), max_lateness_s,
        )  # fmt: skip
        self.apply(step)

    def command(self, c: Command, at: datetime) -> None:
        g = self.groups.get(c.routing_key)
        if g is None or c.kind in _INTERNAL:
            return
        target = g.incident_id
        if target is None:  # a reopen names the last incident of the group
            target = c.incident_id if c.incident_id in self.incidents else None
        if target is None:
            return
        mine = c.model_copy(update={"incident_id": target})
        step = on_command_in_group(g, self.incidents.get(target), mine, at, self.catalog)
        if step.outcome.rejection is None:
            self.apply(step)


def simulate(
    inputs: Iterable[Input],
    catalog: Catalog,
    timing: Timing,
    until: datetime,
    group_by: tuple[str, ...] = ("service",),
    max_lateness_s: float = math.inf,
) -> Tally:
    """Fold ``inputs`` (any order; taken by arrival time) under ``catalog``, with the timers run
    up to ``until`` and one group wait past it (detections at the window's end open their
    incidents, as they would have)."""
    fold = _Fold(catalog, timing, group_by)
    ordered = sorted(inputs, key=lambda i: (i.at, i.command is not None))
    for item in ordered:
        fold.tick_until(item.at - timedelta(microseconds=1))
        if item.detection is not None:
            fold.detection(item.detection, item.at, max_lateness_s)
        elif item.command is not None:
            fold.command(item.command, item.at)
    waits = [timing.group_wait_s] + [
        s.timing.group_wait_s
        for s in catalog.services.values()
        if s.timing is not None and s.timing.group_wait_s is not None
    ]
    fold.tick_until(until + timedelta(seconds=max(waits)))
    return fold.tally
