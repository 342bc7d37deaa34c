"""Who is paged for an incident: the owning team's escalation step, one page per contact."""

from __future__ import annotations

from datetime import datetime

from responders.oncall import policy_for, targets_for_step
from schemas import Catalog, ContactMethod, Incident, Page
from schemas.mobilization import PageKind


def dedup_key(incident_id: str, step: int, recipient: str, channel: str) -> str:
    """One key per (incident, step, recipient, channel): the notifier sends each once (again
    only after a crash at the moment of sending, under the same key)."""
    return f"{incident_id}/{step}/{recipient}/{channel}"


def pages_for(incident: Incident, catalog: Catalog, step: int, now: datetime) -> tuple[Page, ...]:
    """Pages for plan step ``step`` (counting repeats) of the escalation policy that pages for the
    incident's service; none if there is no policy or the plan has no such step."""
    found = policy_for(catalog, incident.service)
    if found is None:
        return ()
    people = targets_for_step(catalog, found[0], step, now, incident.id)
    if not people:
        return ()
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
