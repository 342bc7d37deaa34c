"""Alerts from other tools as detections: Alertmanager webhooks and PagerDuty Events API v2.

Both ask for ``auto_resolve``: when every alert of an incident has resolved, so has the incident.
Detection ids are derived from the alert, so a redelivered webhook opens nothing new.
"""

from __future__ import annotations

import hashlib
from datetime import datetime

from schemas import Detection, DetectionSeverity, DetectionStatus
from schemas.alerts import AlertmanagerWebhook, PagerDutyEvent

_SEVERITIES = {
    "critical": DetectionSeverity.CRITICAL,
    "page": DetectionSeverity.CRITICAL,
    "error": DetectionSeverity.ERROR,
    "high": DetectionSeverity.ERROR,
    "warning": DetectionSeverity.WARNING,
    "warn": DetectionSeverity.WARNING,
    "info": DetectionSeverity.INFO,
    "low": DetectionSeverity.INFO,
}
SERVICE_LABELS = ("service", "job", "app", "namespace")


def _digest(*parts: str) -> str:
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()[:20]


def from_alertmanager(
    payload: AlertmanagerWebhook, now: datetime, service_labels: tuple[str, ...] = SERVICE_LABELS
) -> list[Detection]:
    """One detection per alert; resolved alerts become resolved detections of the same signal."""
    out = []
    for alert in payload.alerts:
        labels = alert.labels
        service = next((labels[k] for k in service_labels if labels.get(k)), "unknown")
        name = labels.get("alertname", "alert")
        identity = alert.fingerprint or _digest(*sorted(f"{k}={v}" for k, v in labels.items()))
        resolved = alert.status == "resolved"
        ended = _ended(alert.ends_at) if resolved else None
        out.append(
            Detection(
                id=f"am-{identity}-{alert.starts_at.timestamp():.0f}-{alert.status}",
                ts=ended or now if resolved else alert.starts_at,
                service=service,
                signal=f"{name}:{identity[:8]}",
                detector="alertmanager",
                score=1.0,
                severity=_SEVERITIES.get(
                    labels.get("severity", "").lower(), DetectionSeverity.ERROR
                ),
                impact_started_at=alert.starts_at,
                labels=labels,
                context={
                    "annotations": alert.annotations,
                    "generator_url": alert.generator_url,
                    "summary": alert.annotations.get("summary") or name,
                },
                status=DetectionStatus.RESOLVED if resolved else DetectionStatus.FIRING,
                auto_resolve=True,
            )
        )
    return out


def _ended(text: str | None) -> datetime | None:
    """Alertmanager's ``endsAt``; its zero time (``0001-01-01``) means not ended."""
    if not text:
        return None
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.year > 1970 and parsed.tzinfo is not None else None


def pagerduty_dedup_key(event: PagerDutyEvent) -> str:
    """The event's dedup key, or one derived from its payload (as PagerDuty does for triggers)."""
    if event.dedup_key:
        return event.dedup_key
    p = event.payload
    return _digest(p.summary if p else "", p.source if p else "")


def from_pagerduty(event: PagerDutyEvent, now: datetime, retry_id: str | None = None) -> Detection:
    """A trigger or resolve as a detection in the group of its ``dedup_key``. An event without
    ``payload.timestamp`` is dated ``now``; ``retry_id`` (from the request's idempotency key)
    then stands for that time in its id, so a client's retry is the same detection."""
    key = pagerduty_dedup_key(event)
    p = event.payload
    details = (p.custom_details if p else None) or {}
    service = str(
        details.get("service") or (p.component if p else None) or (p.source if p else key)
    )
    stamped = p.timestamp if p and p.timestamp else None
    at = stamped or now
    when = at.isoformat() if stamped is not None or retry_id is None else retry_id
    resolved = event.event_action.value == "resolve"
    return Detection(
        id=f"pd-{_digest(key, event.event_action.value, when, p.summary if p else '')}",
        ts=at,
        service=service,
        signal=key,
        detector="pagerduty",
        score=1.0,
        severity=_SEVERITIES.get(p.severity, DetectionSeverity.ERROR)
        if p
        else DetectionSeverity.ERROR,
        impact_started_at=at,
        context={"summary": p.summary if p else "", "source": p.source if p else None, **details},
        status=DetectionStatus.RESOLVED if resolved else DetectionStatus.FIRING,
        dedup_key=key,
        auto_resolve=True,
    )
