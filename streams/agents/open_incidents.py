"""``open_incidents``: detections and commands in, incident state and timeline events out.

Reads ``detections.v1`` and ``incidents.commands.v1`` (both keyed by correlation group), keeps the
write model in the ``incidents`` table and each group's state (open incident, held detections,
timers) in ``open-incidents``, and sends each new timeline event to ``incidents.events.v1`` and each
page to ``mobilization.pages.v1``. An input keyed other than by its correlation group (a producer's
mistake) is sent again under the right key, to the partition that holds its group's state, and
not processed where it landed. A timer sends a ``tick`` command to each group whose deadline
(group wait, update interval, repeat) has come, so timed work also happens inside the stream.

The timer reads deadlines from an index of the groups that have one, which the stream updates as
it processes each input: most groups are idle (no incident, nothing held), and computing every
group's deadline every second costs about 5 µs a group, half a core at 100,000 groups. The index
is rebuilt from the table every ``FULL_SCAN_S`` seconds: a rebalance, a recovery or a catalog
reload changes deadlines without an input of the group; so does the end of an "until resolved"
silence, whose incident's held timers (escalation, repeats, auto-resolve) are not indexed while
it lasts, so that the timer does not wake a muted group every second.

Idle groups (no open incident, nothing held, no deadline) are forgotten once they have been idle
for ``group_retention_s``, or the table and its changelog would grow with every key ever seen.
Each write stamps the group's ``active_at``. The rebuild, which reads every group anyway, puts
the groups whose retention has run out (at most ``FORGET_PER_SCAN`` a rebuild) in the index as
due; their tick, inside the stream, checks again (:func:`~responders.correlation.forgettable`)
and deletes the row, which writes a tombstone to the changelog for compaction to drop. A group
is forgotten at most ``FULL_SCAN_S`` after its retention, and nothing is done every second for
idle groups.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from dataclasses import replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

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
from responders.lifecycle import Outcome, incident_id_for, routing_key
from responders.silences import SilenceState, silenced_by, state
from responders.stakeholders import follow_up
from schemas import Command, CommandKind, Detection, DetectionStatus, Incident, IncidentEvent
from schemas.incidents import IncidentEventKind
from streams import faults
from streams.agents import FirstInput
from streams.codec import arrival, decode_one, encode

if TYPE_CHECKING:
    from streams.app import Pipeline

log = logging.getLogger(__name__)

#: Seconds between rebuilds of the deadline index from the whole table.
FULL_SCAN_S = 10.0
#: Idle groups past their retention put in the index by one rebuild: a backlog of them (the first
#: run after an upgrade, a storm of keys a retention ago) is forgotten at 100 groups a second.
FORGET_PER_SCAN = 1000


def attach(p: Pipeline) -> None:
    incidents, groups, s = p.tables.incidents, p.tables.open_incidents, p.settings
    timing = Timing(
        s.group_wait_s, s.group_interval_s, s.repeat_interval_s, s.ack_timeout_s, s.auto_resolve_s,
        stakeholder_update_interval_s=s.stakeholder_update_interval_s or None,
    )  # fmt: skip
    ticked: dict[str, datetime] = {}
    #: The next deadline of each group that has one (see the module docstring).
    due_at: dict[str, datetime] = {}
    scanned_at = [-FULL_SCAN_S]

    def load(incident_id: str | None) -> Incident | None:
        data = incidents.get(incident_id) if incident_id else None
        return Incident.model_validate(data) if data is not None else None

    def group(key: str) -> Group:
        return Group.from_dict(key, groups.get(key))

    def timing_of(g: Group, incident: Incident | None, service: str | None = None) -> Timing:
        """The worker's timing with the catalog's overrides for the service of the group's
        incident (else of the detection at hand, else of the first one the group holds)."""
        if incident is not None:
            service = incident.service
        elif service is None and g.held:
            service = g.held[0].service
        return timing.for_service(p.catalog, service)

    def muted(incident_id: str | None, now: datetime) -> bool:
        """An active silence "until resolved" for this incident holds back its timers (not the
        stakeholder updates)."""
        return incident_id is not None and any(
            silence.until_resolved == incident_id
            and state(silence, now, p.directory.resolved) is SilenceState.ACTIVE
            for silence in p.directory.active_silences()
        )

    def index_due(g: Group, expired_by: datetime | None = None) -> bool:
        """Index the group's next deadline; with ``expired_by`` (the rebuild), an idle group's
        retention counts as one if it has run out by then. True when that put the group in."""
        incident = load(g.incident_id)
        at = timing_of(g, incident)
        due = g.due(at, incident, p.catalog, muted(g.incident_id, datetime.now(tz=UTC)))
        expiring = False
        if due is None and expired_by is not None:
            forget = forget_at(g, incident, at, p.catalog, s.group_retention_s, expired_by)
            if forget is not None and forget <= expired_by:
                due, expiring = forget, True
        if due is None:
            due_at.pop(g.key, None)
        else:
            due_at[g.key] = due
        return expiring

    def notify_stakeholders(step: Step, now: datetime) -> Step:
        """Add the stakeholder notices the step calls for. The recent timeline is read from
        ``incident-timelines``, which is co-partitioned with this stream (events and inputs are
        both keyed by routing key); the step's own events are added by ``follow_up``."""
        incident = step.outcome.incident
        saved = p.tables.timelines.get(incident.id) if incident is not None else None
        recent = tuple(IncidentEvent.model_validate(e) for e in (saved or [])[-20:])
        return follow_up(step, p.catalog, timing_of(step.group, incident), recent, now)

    def inhibitor(service: str | None) -> str | None:
        """An open incident on one of the service's dependencies, if any."""
        listed = p.catalog.services.get(service) if service else None
        for dependency in listed.depends_on if listed is not None else ():
            found = p.directory.open_on(dependency)
            if found is not None:
                return str(found)
        return None

    def rekeyed(raw: bytes | None, key: bytes | None, topic: str) -> bytes | None:
        """The right key of an input keyed wrongly (or not at all), else None."""
        try:
            if topic == s.topics.detections:
                right = routing_key(Detection.model_validate_json(raw or b""), s.group_by)
            else:
                right = Command.model_validate_json(raw or b"").routing_key
        except ValueError:  # invalid: ``handle`` dead-letters it with the reason
            return None
        return None if key == right.encode() else right.encode()

    def handle(
        raw: bytes | None, topic: str, now: datetime, received_s: float | None
    ) -> tuple[Step | None, str | None]:
        context = arrival(received_s, s.max_future_s)
        if topic == s.topics.detections:
            det = decode_one(raw, Detection, context)
            if det.rejected:
                return None, det.rejected[0].reason
            d = det.items[0]
            key = routing_key(d, s.group_by)
            if load(incident_id_for(key, d.id)) is not None:  # it already opened one: a replay
                return Step(group(key)), None
            g = group(key)
            directory = p.directory
            if d.status is DetectionStatus.FIRING and silenced_by(
                d, directory.active_silences(), now, directory.resolved
            ):
                p.count("detections_silenced")
                return Step(g), None
            current = load(g.incident_id)
            p.count("detections_late", int(late(d, s.max_lateness_s)))
            return (
                on_detection_in_group(
                    g, current, d, p.catalog, timing_of(g, current, d.service), now,
                    inhibitor(d.service), s.max_lateness_s,
                ),
                None,
            )  # fmt: skip
        cmd = decode_one(raw, Command, context)
        if cmd.rejected:
            return None, cmd.rejected[0].reason
        c = cmd.items[0]
        g = group(c.routing_key)
        if c.kind is CommandKind.TICK:
            ticked.pop(c.routing_key, None)
            current = load(g.incident_id)
            at = timing_of(g, current)
            retained = on_retention_tick(g, current, at, p.catalog, s.group_retention_s, now)
            if retained is not None:
                return retained, None
            if muted(g.incident_id, now):
                # The incident's timers wait (escalation, repeats, auto-resolve), but it goes on
                # to ``follow_up``: stakeholders still get their periodic updates.
                return Step(g, Outcome(current)), None
            service = current.service if current else (g.held[0].service if g.held else None)
            return on_tick(g, current, p.catalog, at, now, inhibitor(service)), None
        return on_command_in_group(g, load(c.incident_id), c, now, p.catalog), None

    @p.app.agent(p.topics.incident_inputs, name="open_incidents")
    async def open_incidents(stream: Any) -> None:
        # Silences and resolutions written before a restart must be known before any input is
        # judged (see ``streams.directory``).
        await p.directory.caught_up.wait()
        first = FirstInput("open_incidents")
        async for event in stream.events():
            message = event.message
            first(message)
            now = datetime.now(tz=UTC)
            right = rekeyed(event.value, message.key, message.topic)
            if right is not None:
                to = p.topics.detections if message.topic == s.topics.detections else None
                await (await (to or p.topics.commands).send(key=right, value=event.value))
                p.count("inputs_rekeyed")
                continue
            try:
                step, problem = handle(event.value, message.topic, now, message.timestamp)
            except Exception as exc:
                step, problem = None, f"{type(exc).__name__}: {exc}"
            if step is None or step.outcome.rejection:
                stage, reason = (
                    ("decode", problem) if step is None else ("lifecycle", step.outcome.rejection)
                )
                await p.dead_letters.send(message, stage, reason or "rejected")
                continue
            if step.forget:
                if step.group.key in groups:
                    del groups[step.group.key]  # a tombstone on the changelog
                due_at.pop(step.group.key, None)
                p.count("groups_forgotten")
                continue
            step = notify_stakeholders(step, datetime.now(tz=UTC))
            g, outcome = step.group, step.outcome
            # Send first and wait for the broker, then write the tables: after a crash in
            # between, the input is processed again and sends the same events (same ids and
            # sequence numbers, which the projection ignores) instead of losing them.
            sent = [
                await p.topics.events.send(key=ev.routing_key.encode(), value=encode(ev))
                for ev in outcome.events
            ] + [
                await p.topics.pages.send(key=page.incident_id.encode(), value=encode(page))
                for page in outcome.pages
            ]
            if sent:
                await asyncio.gather(*sent)
                faults.reached("after-events-before-tables")
            incident = outcome.incident
            if incident is not None and outcome.events:
                incidents[incident.id] = incident.model_dump(mode="json")
                if incident.status.value == "resolved" and g.incident_id == incident.id:
                    g = Group(g.key, held=g.held, held_since=g.held_since, seen=g.seen)
            p.count("incidents_opened", int(outcome.opened))
            for ev in outcome.events:
                if ev.kind is IncidentEventKind.UNROUTED:
                    p.count("incidents_unrouted")
                    log.warning("incident %s paged nobody of its own: %s", ev.incident_id,
                                ev.data.get("reason"))  # fmt: skip
            p.count("flaps_suppressed", int(step.suppressed))
            stored = groups.get(g.key)
            if g.to_dict() != stored and (stored is not None or g != Group(g.key)):
                g = replace(g, active_at=datetime.now(tz=UTC))
                groups[g.key] = g.to_dict()
            index_due(g)  # an acknowledgement changes the incident, not always the group

    @p.app.timer(interval=1.0)
    async def tick_due_groups() -> None:
        now = datetime.now(tz=UTC)
        if time.monotonic() - scanned_at[0] >= FULL_SCAN_S:
            scanned_at[0] = time.monotonic()
            due_at.clear()
            budget = FORGET_PER_SCAN
            for key, value in list(groups.items()):
                budget -= index_due(Group.from_dict(key, value), now if budget > 0 else None)
        for key, due in list(due_at.items()):
            if due > now or ticked.get(key) == due:
                continue
            ticked[key] = due
            tick = Command(
                id=f"tick-{uuid.uuid4().hex[:12]}", kind=CommandKind.TICK, incident_id="-",
                routing_key=key, actor="warroom", issued_at=now,
            )  # fmt: skip
            await p.topics.commands.send(key=key.encode(), value=encode(tick))
