"""``aggregate``: timeline events in (``incidents.events.v1``), MTTR aggregates out.

Projects the timeline into the ``incident-projection`` and ``incident-timelines`` tables (the read
model behind the API) and folds each incident's durations into ``mttr-by-service``; every change
publishes the service's aggregate to ``aggregates.mttr.v1``, keyed so compaction keeps the latest.
Re-applying an event changes nothing (events carry their sequence number).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from responders.lifecycle import apply
from responders.mttr import Durations, aggregate, durations
from schemas import Incident, IncidentEvent
from streams.codec import decode_one, encode

if TYPE_CHECKING:
    from streams.app import Pipeline


def attach(p: Pipeline) -> None:
    projection, timelines, by_service = (
        p.tables.incident_projection, p.tables.timelines, p.tables.mttr_by_service,
    )  # fmt: skip

    @p.app.agent(p.topics.events, name="aggregate")
    async def aggregate_events(stream: Any) -> None:
        async for event in stream.events():
            decoded = decode_one(event.value, IncidentEvent)
            if decoded.rejected:
                await p.dead_letters.send(event.message, "decode", decoded.rejected[0].reason)
                continue
            ev = decoded.items[0]
            saved = projection.get(ev.incident_id)
            try:
                before = Incident.model_validate(saved) if saved is not None else None
                incident = apply(before, ev)
            except Exception as exc:
                await p.dead_letters.send(event.message, "project", f"{type(exc).__name__}: {exc}")
                continue
            if before is None or ev.seq > before.last_seq:
                projection[ev.incident_id] = incident.model_dump(mode="json")
                timelines[ev.incident_id] = [
                    *timelines.get(ev.incident_id, []),
                    ev.model_dump(mode="json"),
                ]
            rows = dict(by_service.get(incident.service) or {})
            rows[incident.id] = durations(incident).to_list()
            by_service[incident.service] = rows
            agg = aggregate("service", incident.service,
                            {k: Durations.from_list(v) for k, v in rows.items()},
                            datetime.now(tz=UTC))  # fmt: skip
            await p.topics.aggregates.send(key=agg.key.encode(), value=encode(agg))
