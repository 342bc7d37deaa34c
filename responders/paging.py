"""Who is paged for an incident: the owning team's escalation step, one page per contact.

Nobody is left unpaged silently: when the incident's own policy pages nobody (no policy covers
its service, or the step resolves to nobody, as in a gap in a schedule), :func:`route` says why,
and pages the catalog's ``fallback_policy`` instead when there is one.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from responders.oncall import policy_for, step_count, targets_for_step
from schemas import Catalog, ContactMethod, Incident, Page
from schemas.mobilization import PageKind


def dedup_key(incident_id: str, step: int, recipient: str, channel: str) -> str:
    """One key per (incident, step, recipient, channel): the notifier sends each once (again
    only after a crash at the moment of sending, under the same key)."""
    return f"{incident_id}/{step}/{recipient}/{channel}"


@dataclass(frozen=True)
class Routed:
    """The pages for one step, and, when the incident's own policy paged nobody, why
    (``unrouted``) and the fallback policy paged instead (``fallback``, if it paged anyone)."""

    pages: tuple[Page, ...]
    unrouted: str | None = None
    fallback: str | None = None


def route(incident: Incident, catalog: Catalog, step: int, now: datetime) -> Routed:
    """The pages for plan step ``step`` (counting repeats) of the policy that pages for the
    incident's service; no pages and no reason for a step beyond the plan. Where the policy pages
    nobody, the first step of the catalog's ``fallback_policy`` is paged, with the reason.

    >>> from datetime import UTC, datetime
    >>> from schemas import Catalog, Incident
    >>> cat = Catalog.model_validate({"people": {"ops": {"contacts": [{"channel": "console"}]}},
    ...     "escalation_policies": {"ops": {"steps": [{"targets": [{"person": "ops"}]}]}},
    ...     "fallback_policy": "ops"})
    >>> t = datetime(2026, 1, 1, tzinfo=UTC)
    >>> inc = Incident(id="inc-1", routing_key="x", service="x", title="x", status="triggered",
    ...                severity="SEV2", impact_started_at=t, detected_at=t, opened_at=t)
    >>> routed = route(inc, cat, 0, t)
    >>> routed.unrouted, routed.fallback, [p.recipient for p in routed.pages]
    ("no escalation policy pages for service 'x'", 'ops', ['ops'])
    """
    found = policy_for(catalog, incident.service)
    if found is None:
        reason = f"no escalation policy pages for service {incident.service!r}"
    else:
        name, policy = found
        if step >= step_count(policy):
            return Routed(())
        people = targets_for_step(catalog, name, step, now, incident.id)
        if people:
            return Routed(_pages(incident, catalog, step, people, now))
        reason = f"step {step} of {name!r} resolves to nobody at {now.isoformat()}"
    fallback = catalog.fallback_policy
    if fallback is None or (found is not None and found[0] == fallback):
        return Routed((), reason)
    people = targets_for_step(catalog, fallback, 0, now, incident.id)
    if not people:
        return Routed((), f"{reason}; the fallback policy {fallback!r} resolves to nobody too")
    return Routed(_pages(incident, catalog, step, people, now), reason, fallback)


def unroutable(catalog: Catalog) -> list[str]:
    """Why an incident could page nobody under this catalog, when it has no ``fallback_policy``
    (``warroom config check`` requires one then): services it does not list have no team, or a
    schedule has hours that no layer covers.

    >>> unroutable(Catalog())
    ['a service the catalog does not list has no team (no default_team)']
    """
    if catalog.fallback_policy is not None:
        return []
    found = []
    if catalog.default_team is None:
        found.append("a service the catalog does not list has no team (no default_team)")
    for name, schedule in catalog.schedules.items():
        if all(layer.restrictions for layer in schedule.layers):
            found.append(f"schedule {name!r} has hours no layer covers (every layer is restricted)")
    return found


def pages_for(incident: Incident, catalog: Catalog, step: int, now: datetime) -> tuple[Page, ...]:
    """The pages of :func:`route` (the fallback's, where the incident's policy pages nobody)."""
    return route(incident, catalog, step, now).pages


def _pages(
    incident: Incident, catalog: Catalog, step: int, people: list[str], now: datetime
) -> tuple[Page, ...]:
    subject = f"[{incident.severity.value}] {incident.title}"
    body = (
        f"Incident {incident.id} on {incident.service} is {incident.status.value}. "
        f"Impact since {incident.impact_started_at.isoformat()}; "
        f"detected {incident.detected_at.isoformat()}; "
        f"signals: {', '.join(incident.signals) or 'n/a'}."
    )
    listed = catalog.services.get(incident.service)
    runbook = listed.runbook if listed is not None and listed.runbook else None
    if runbook is not None:
        body += f" Runbook: {runbook}"
    pages = []
    for recipient in people:
        for contact in catalog.people[recipient].contacts:
            key = dedup_key(incident.id, step, recipient, contact.channel.value)
            page = page_to(
                incident, recipient, contact, key, subject, body, now, step, "page", runbook
            )
            pages.append(page)
    return tuple(pages)


def page_to(
    incident: Incident,
    recipient: str,
    contact: ContactMethod,
    key: str,
    subject: str,
    body: str,
    now: datetime,
    step: int = 0,
    kind: PageKind = "page",
    runbook: str | None = None,
) -> Page:
    """One message about ``incident`` to one contact method of ``recipient``; ``runbook`` is the
    catalog's runbook URL for the incident's service, the only runbook a notifier links."""
    return Page(
        dedup_key=key,
        incident_id=incident.id,
        routing_key=incident.routing_key,
        step=step,
        recipient=recipient,
        channel=contact.channel,
        address=contact.address,
        severity=incident.severity,
        subject=subject,
        body=body,
        created_at=now,
        kind=kind,
        runbook_url=runbook,
    )
