"""``open_incidents``: detections and commands in, incident state and timeline events out.

Reads ``detections.v1`` and ``incidents.commands.v1`` (both keyed by correlation group), keeps the
write model in the ``incidents`` table and each group's state (open incident, held detections,
timers) in ``open-incidents``, and sends each new timeline event to ``incidents.events.v1`` and each
page to ``mobilization.pages.v1``. Every decision is :func:`responders.engine.decide`'s (or
:func:`~responders.engine.resent`'s, for an input under the wrong key); this module decodes,
sends and writes. Timed work (group wait, escalation, repeats, retention) comes back into the
stream as ``tick`` commands from :mod:`streams.deadlines`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from responders.correlation import Group, Timing
from responders.engine import RECENT_EVENTS, Decision, Received, View, decide, key_of, resent
from schemas import Command, Detection, Incident, IncidentEvent
from schemas.timeline import Unrouted
from streams import deadlines, faults
from streams.agents import each_input
from streams.codec import Decoded, arrival, decode_one, encode

if TYPE_CHECKING:
    from streams.pipeline import Pipeline

log = logging.getLogger(__name__)


def attach(p: Pipeline) -> None:
    s, groups = p.settings, p.tables.open_incidents
    timer = deadlines.Deadlines(view_of(p), groups)
    deadlines.attach(p, timer, lambda: in_force(p, timer))

    def judge(message: Any, value: bytes | None) -> tuple[Received | None, Decision | str]:
        """The input decoded and decided, or why it cannot be decoded. The catalog in force is
        read once per input: one applied meanwhile (the directory swaps it between inputs) is
        used from the next input on."""
        view = in_force(p, timer)
        received, problem = decoded(p, message, value)
        if received is None:
            return None, problem
        key = key_of(received.item, s.group_by)
        decision = resent(received, message.key, s.group_by)
        return received, decision or decide(Group.from_dict(key, groups.get(key)), received, view)

    async def on_input(event: Any) -> None:
        message = event.message
        try:
            received, decision = judge(message, event.value)
        except Exception as exc:  # an input that cannot be judged is refused as undecodable
            received, decision = None, f"{type(exc).__name__}: {exc}"
        if isinstance(decision, str) or decision.rejection:
            stage = "decode" if isinstance(decision, str) else "lifecycle"
            reason = decision if isinstance(decision, str) else decision.rejection
            await p.dead_letters.send(message, stage, reason or "rejected")
            return
        # Send first and wait for the broker, then write the tables: after a crash in
        # between, the input is processed again and sends the same events (same ids and
        # sequence numbers, which the projection ignores) instead of losing them.
        await send(p, decision, message.topic, event.value)
        write(p, decision)
        if received is not None and not decision.resend:
            timer.decided(received, decision)

    @p.app.agent(p.topics.incident_inputs, name="open_incidents")
    async def open_incidents(stream: Any) -> None:
        # Silences and resolutions written before a restart must be known before any input is
        # judged (see ``streams.directory``).
        await p.directory.caught_up.wait()
        await each_input(p, stream, "open_incidents", on_input,
                         stage="incidents", errors="incident_errors")  # fmt: skip


def in_force(p: Pipeline, timer: deadlines.Deadlines) -> View:
    """The timer's view, with the catalog in force now (the live one, once applied)."""
    view = timer.view
    if view.catalog is not p.catalog or view.catalog_version != p.catalog_version:
        view = replace(view, catalog=p.catalog, catalog_version=p.catalog_version,
                       catalog_digest=p.catalog_digest)  # fmt: skip
        timer.view = view
    return view


def view_of(p: Pipeline) -> View:
    """The engine's view of the catalog, the settings, the tables and the directory."""
    s, incidents, timelines = p.settings, p.tables.incidents, p.tables.timelines
    timing = Timing(
        s.group_wait_s, s.group_interval_s, s.repeat_interval_s, s.ack_timeout_s, s.auto_resolve_s,
        stakeholder_update_interval_s=s.stakeholder_update_interval_s or None,
    )  # fmt: skip

    def incident(incident_id: str) -> Incident | None:
        data = incidents.get(incident_id)
        return Incident.model_validate(data) if data is not None else None

    def recent(incident_id: str) -> Sequence[IncidentEvent]:
        # ``incident-timelines`` is co-partitioned with this stream (events and inputs are
        # both keyed by routing key); its current segment holds the latest events.
        saved = timelines.get(incident_id) or []
        return tuple(IncidentEvent.model_validate(e) for e in saved[-RECENT_EVENTS:])

    return View(
        p.catalog, timing, s.group_by, s.max_lateness_s, s.group_retention_s, incident, recent,
        p.directory.active_silences, p.directory.resolved, p.directory.open_on,
        p.catalog_version, p.catalog_digest,
    )  # fmt: skip


def decoded(p: Pipeline, message: Any, value: bytes | None) -> tuple[Received | None, str]:
    """The input with its record's time, validated against it; else why it is invalid."""
    context = arrival(message.timestamp, p.settings.max_future_s)
    found: Decoded[Detection] | Decoded[Command] = (
        decode_one(value, Detection, context)
        if message.topic == p.settings.topics.detections
        else decode_one(value, Command, context)
    )
    if found.rejected:
        return None, found.rejected[0].reason
    recorded = datetime.fromtimestamp(message.timestamp, tz=UTC) if context else None
    return Received(found.items[0], recorded), ""


async def send(p: Pipeline, d: Decision, topic: str, value: bytes | None) -> None:
    """Send the decision's events and pages (or the input again, under its right key) and wait
    until the broker has them all."""
    if d.resend:
        to = p.topics.detections if topic == p.settings.topics.detections else p.topics.commands
        await (await to.send(key=d.key.encode(), value=value))
        return
    sent = [
        await p.topics.events.send(key=ev.routing_key.encode(), value=encode(ev)) for ev in d.events
    ] + [await p.topics.pages.send(key=pg.incident_id.encode(), value=encode(pg)) for pg in d.pages]
    if sent:
        await asyncio.gather(*sent)
        faults.reached("after-events-before-tables")


def write(p: Pipeline, d: Decision) -> None:
    """Write the decision's incident and group, and count what it did."""
    groups = p.tables.open_incidents
    if d.incident is not None:
        p.tables.incidents[d.incident.id] = d.incident.model_dump(mode="json")
    if d.forget and d.key in groups:
        del groups[d.key]  # a tombstone on the changelog
    elif d.write_group:
        groups[d.key] = d.group.to_dict()
    for name, n in d.counts:
        p.count(name, n)
    for ev in d.events:
        if isinstance(ev.data, Unrouted):
            log.warning("incident %s paged nobody of its own: %s", ev.incident_id, ev.data.reason)
