"""The ``incident-timelines`` table: an incident's events in segments of bounded size.

The current segment is the row ``<incident id>`` (a list of events, as the table always held);
when appending an event would take it past ``SEGMENT_BYTES`` of JSON, it is sealed as the row
``<incident id>@<n>`` (n = 0, 1, ...) and a new current segment begins. So no row outgrows a
Kafka record, however long an incident runs (an outage with reminders every few minutes, or a
flood of long notes), and each append rewrites at most one segment. Readers join the sealed
segments in order, then the current one.
"""

from __future__ import annotations

import json
from typing import Any

#: Encoded bytes a segment may reach before it is sealed (a Kafka record holds about 1 MB).
SEGMENT_BYTES = 256 * 1024


def _size(events: list[dict[str, Any]]) -> int:
    return len(json.dumps(events, separators=(",", ":")).encode())


def sealed(table: Any, incident_id: str) -> list[list[dict[str, Any]]]:
    """The incident's sealed segments, in order."""
    out: list[list[dict[str, Any]]] = []
    while True:
        segment = table.get(f"{incident_id}@{len(out)}")
        if segment is None:
            return out
        out.append(segment)


def append(table: Any, incident_id: str, event: dict[str, Any]) -> None:
    """Add ``event`` to the incident's timeline (inside the stream that owns the table)."""
    current = table.get(incident_id) or []
    if current and _size([*current, event]) > SEGMENT_BYTES:
        table[f"{incident_id}@{len(sealed(table, incident_id))}"] = current
        current = []
    table[incident_id] = [*current, event]


def read(table: Any, incident_id: str) -> list[dict[str, Any]] | None:
    """Every event of the incident, in order; None if it has none."""
    current = table.get(incident_id)
    if current is None:
        return None
    return [e for segment in sealed(table, incident_id) for e in segment] + list(current)
