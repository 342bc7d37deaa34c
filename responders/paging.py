"""Who is paged for an incident: the owning team's escalation step, one page per contact."""

from __future__ import annotations

from datetime import datetime

from schemas import Catalog, Incident, Page


def dedup_key(incident_id: str, step: int, recipient: str, channel: str) -> str:
    """One key per (incident, step, recipient, channel): the notifier sends each at most once."""
    return f"{incident_id}/{step}/{recipient}/{channel}"


def pages_for(incident: Incident, catalog: Catalog, step: int, now: datetime) -> tuple[Page, ...]:
    """Pages for escalation ``step`` of the incident's team; none if the team or step is unknown."""
    team_name = incident.team
    team = catalog.teams.get(team_name) if team_name else None
    if team is None or step >= len(team.escalation):
        return ()
    subject = f"[{incident.severity.value}] {incident.title}"
    body = (
        f"Incident {incident.id} on {incident.service} is {incident.status.value}. "
        f"Impact since {incident.impact_started_at.isoformat()}; "
        f"detected {incident.detected_at.isoformat()}; "
        f"signals: {', '.join(incident.signals) or 'n/a'}."
    )
    runbook = catalog.services.get(incident.service)
    if runbook is not None and runbook.runbook:
        body += f" Runbook: {runbook.runbook}"
    pages = []
    for recipient in team.escalation[step].targets:
        for contact in catalog.people[recipient].contacts:
            pages.append(
                Page(
                    dedup_key=dedup_key(incident.id, step, recipient, contact.channel.value),
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
                )
            )
    return tuple(pages)
