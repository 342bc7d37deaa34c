"""``open_incidents``: detections and commands in, incident state and timeline events out.

Reads ``detections.v1`` and ``incidents.commands.v1`` (both keyed by routing key), keeps the write
model in the ``incidents`` and ``open-incidents`` tables, and sends each new timeline event to
``incidents.events.v1`` and each page to ``mobilization.pages.v1``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from responders.lifecycle import Outcome, incident_id_for, on_command, on_detection, routing_key
from schemas import Command, Detection, Incident
from streams.codec import decode_one, encode

if TYPE_CHECKING:
    from streams.app import Pipeline


def attach(p: Pipeline) -> None:
    incidents, open_by_key = p.tables.incidents, p.tables.open_incidents

    def load(incident_id: str | None) -> Incident | None:
        data = incidents.get(incident_id) if incident_id else None
        return Incident.model_validate(data) if data is not None else None

    def handle(raw: bytes | None, topic: str, now: datetime) -> tuple[Outcome | None, str | None]:
        if topic == p.settings.topics.detections:
            det = decode_one(raw, Detection)
            if det.rejected:
                return None, det.rejected[0].reason
            d = det.items[0]
            seen = load(incident_id_for(routing_key(d), d.id))
            if seen is not None:  # this detection already opened an incident: a replay
                return Outcome(seen), None
            return on_detection(load(open_by_key.get(routing_key(d))), d, p.catalog, now), None
        cmd = decode_one(raw, Command)
        if cmd.rejected:
            return None, cmd.rejected[0].reason
        c = cmd.items[0]
        return on_command(load(c.incident_id), c, now, open_by_key.get(c.routing_key)), None

    @p.app.agent(p.topics.incident_inputs, name="open_incidents")
    async def open_incidents(stream: Any) -> None:
        async for event in stream.events():
            message = event.message
            try:
                outcome, problem = handle(event.value, message.topic, datetime.now(tz=UTC))
            except Exception as exc:
                outcome, problem = None, f"{type(exc).__name__}: {exc}"
            if outcome is None or outcome.rejection:
                stage, reason = (
                    ("decode", problem) if outcome is None else ("lifecycle", outcome.rejection)
                )
                await p.dead_letters.send(message, stage, reason or "rejected")
                continue
            incident = outcome.incident
            if incident is None or not outcome.events:
                continue
            incidents[incident.id] = incident.model_dump(mode="json")
            if incident.status.value == "resolved":
                if open_by_key.get(incident.routing_key) == incident.id:
                    del open_by_key[incident.routing_key]
            else:
                open_by_key[incident.routing_key] = incident.id
            p.count("incidents_opened", int(outcome.opened))
            key = incident.routing_key.encode()
            for ev in outcome.events:
                await p.topics.events.send(key=key, value=encode(ev))
            for page in outcome.pages:
                await p.topics.pages.send(key=incident.id.encode(), value=encode(page))
