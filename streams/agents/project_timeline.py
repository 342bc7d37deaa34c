"""``project_timeline``: timeline events in (``incidents.events.v1``), the read model out.

Folds each event into the ``incident-projection`` and ``incident-timelines`` tables (what the API
and the dashboard read) and sends what changed for the MTTR aggregates to the internal
contributions topic, keyed by ``<dimension>=<value>`` so each group is aggregated in one place.
Re-applying an event changes nothing (events carry their sequence number).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from responders.lifecycle import apply
from responders.mttr import contributions
from schemas import Incident, IncidentEvent
from streams import timeline_store
from streams.agents import each_input
from streams.codec import encode

if TYPE_CHECKING:
    from streams.pipeline import Pipeline


def attach(p: Pipeline) -> None:
    projection, timelines = p.tables.incident_projection, p.tables.timelines

    async def on_event(event: Any) -> None:
        ev = await p.dead_letters.decoded(event, IncidentEvent)
        if ev is None:
            return
        saved = projection.get(ev.incident_id)
        before = Incident.model_validate(saved) if saved is not None else None
        incident = apply(before, ev)
        if before is None or ev.seq > before.last_seq:
            projection[ev.incident_id] = incident.model_dump(mode="json")
            timeline_store.append(timelines, ev.incident_id, ev.model_dump(mode="json"))
            p.live.publish("event", ev.model_dump(mode="json"))
            p.live.publish("incident", incident.model_dump(mode="json"))
        # Sent again on a replay too: the aggregator's fold is idempotent, and this way a
        # crash between the table write and the send loses nothing.
        for c in contributions(before, incident):
            await p.topics.contributions.send(key=c.group.encode(), value=encode(c))

    @p.app.agent(p.topics.events, name="project_timeline")
    async def project_timeline(stream: Any) -> None:
        await each_input(p, stream, "project_timeline", on_event,
                         stage="project", errors="projection_errors")  # fmt: skip
