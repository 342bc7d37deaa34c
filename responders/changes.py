"""Changes joined to incidents: which service a change event belongs to, which changes precede an
incident's impact, and the command that records a change on an open incident's timeline.

>>> from schemas.catalog import Catalog
>>> catalog = Catalog.model_validate({
...     "services": {"api": {"team": "t", "depends_on": ["db"]},
...                  "db": {"team": "t", "routing_keys": ["R-DB"]}},
...     "teams": {"t": {"members": ["a"], "escalation": [{"targets": ["a"]}]}},
...     "people": {"a": {"contacts": [{"channel": "console"}]}}})
>>> now = datetime(2026, 1, 1, 12, tzinfo=UTC)
>>> event = ChangeEventV2.model_validate(
...     {"routing_key": "R-DB", "payload": {"summary": "db: raise max_connections"}})
>>> change = change_of(event, catalog, now, "chg-1")
>>> change.service, change.at == now
('db', True)
>>> [c.id for c in before_impact([change], "api", catalog, now + timedelta(minutes=30), 3600)]
['chg-1']
>>> before_impact([change], "api", catalog, now - timedelta(seconds=1), 3600)
[]
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

from schemas.catalog import Catalog
from schemas.changes import Change, ChangeEventV2
from schemas.commands import Command, CommandKind


class Unmapped(ValueError):
    """A change event whose service cannot be told."""


def service_of(event: ChangeEventV2, catalog: Catalog) -> str | None:
    """The service of a change event: its ``service``; else the catalog service whose
    ``routing_keys`` hold its routing key; else ``custom_details.service``; else its
    ``payload.source``."""
    if event.service:
        return event.service
    if event.routing_key:
        mapped = catalog.service_for_routing_key(event.routing_key)
        if mapped is not None:
            return mapped
    details = event.payload.custom_details or {}
    named = details.get("service")
    if isinstance(named, str) and named.strip():
        return named.strip()
    return event.payload.source or None


def change_of(event: ChangeEventV2, catalog: Catalog, now: datetime, change_id: str) -> Change:
    """The ``Change`` a change event records, received at ``now``; ``Unmapped`` when no
    service can be told (``Change`` validation errors name the field otherwise)."""
    service = service_of(event, catalog)
    if service is None:
        raise Unmapped(
            "service: name it (service), map the routing key to a service in the catalog "
            "(services.<name>.routing_keys), or set payload.source"
        )
    links = [{"href": x.href, **({"text": x.text} if x.text else {})} for x in event.links]
    return Change(
        id=change_id,
        at=event.payload.timestamp or now,
        service=service,
        summary=event.payload.summary,
        source=event.payload.source,
        custom_details=event.payload.custom_details or {},
        links=links,
        received_at=now,
    )


def related(service: str, catalog: Catalog) -> set[str]:
    """The service and the services it depends on."""
    listed = catalog.services.get(service)
    return {service, *(listed.depends_on if listed is not None else ())}


def before_impact(
    changes: Iterable[Change],
    service: str,
    catalog: Catalog,
    impact_at: datetime,
    lookback_s: float,
) -> list[Change]:
    """The changes to ``service`` and what it depends on in the ``lookback_s`` before
    ``impact_at`` (up to it, inclusive), oldest first."""
    wanted = related(service, catalog)
    since = impact_at - timedelta(seconds=lookback_s)
    found = [c for c in changes if c.service in wanted and since <= c.at <= impact_at]
    return sorted(found, key=lambda c: (c.at, c.id))


def record(change: Change, incident_id: str, routing_key: str) -> Command:
    """The command that records ``change`` on an open incident's timeline; its id derives from
    the change and the incident, so a second delivery is a no-op."""
    return Command(
        id=f"{change.id}@{incident_id}"[:200],
        kind=CommandKind.RECORD_CHANGE,
        incident_id=incident_id,
        routing_key=routing_key,
        actor=(change.source or "changes")[:200],
        issued_at=change.received_at or change.at,
        change=summary(change),
    )


def summary(change: Change) -> dict[str, object]:
    """What a timeline entry or a review line shows of a change."""
    return {
        "change_id": change.id,
        "service": change.service,
        "summary": change.summary,
        "changed_at": change.at.astimezone(UTC).isoformat(),
        **({"source": change.source} if change.source else {}),
        **({"links": change.links} if change.links else {}),
    }
