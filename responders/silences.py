"""Which detections a silence mutes, and when silences start and end (pure, ``now`` given)."""

from __future__ import annotations

from collections.abc import Container, Iterable, Mapping
from datetime import datetime
from enum import StrEnum

from schemas import Detection
from schemas.silences import Matcher, Silence, full_match


class SilenceState(StrEnum):
    PENDING = "pending"
    ACTIVE = "active"
    EXPIRED = "expired"


def state(silence: Silence, now: datetime, resolved: Container[str] = ()) -> SilenceState:
    """Pending before ``starts_at``; expired after ``ends_at``, after ``expired_at``, or once the
    incident it waits for is among ``resolved`` (a mapping says when: from then on); active
    otherwise."""
    if silence.expired_at is not None and now >= silence.expired_at:
        return SilenceState.EXPIRED
    if silence.ends_at is not None and now >= silence.ends_at:
        return SilenceState.EXPIRED
    if silence.until_resolved is not None and _resolved_by(silence.until_resolved, resolved, now):
        return SilenceState.EXPIRED
    if now < silence.starts_at:
        return SilenceState.PENDING
    return SilenceState.ACTIVE


def _resolved_by(incident_id: str, resolved: Container[str], now: datetime) -> bool:
    """True when the incident is resolved at ``now``: among ``resolved``, and, where the time of
    its resolution is known, resolved by then (an input decided before it is judged as it was
    when it came)."""
    if incident_id not in resolved:
        return False
    at = resolved.get(incident_id) if isinstance(resolved, Mapping) else None
    return not isinstance(at, datetime) or at <= now


def ended_at(silence: Silence, resolved_at: Mapping[str, datetime | None]) -> datetime | None:
    """When the silence stopped holding: the earliest of its end, its early expiry and the
    resolution of the incident it waited for (if known); None while none has happened yet
    (an end in the future still counts as the time it will end)."""
    ends = [t for t in (silence.expired_at, silence.ends_at) if t is not None]
    waited = silence.until_resolved
    if waited is not None and waited in resolved_at:
        ends.append(resolved_at[waited] or silence.created_at)
    return min(ends) if ends else None


def forgettable(
    silence: Silence, now: datetime, retention_s: float, resolved_at: Mapping[str, datetime | None]
) -> bool:
    """True when the silence ended ``retention_s`` or more ago (0: silences are kept forever),
    as Alertmanager forgets expired silences after its data retention.

    >>> from datetime import UTC, timedelta
    >>> t0 = datetime(2026, 6, 1, tzinfo=UTC)
    >>> s = Silence.model_validate({"id": "s", "matchers": [{"name": "service", "value": "a"}],
    ...     "starts_at": t0, "ends_at": t0 + timedelta(hours=1), "created_by": "ann",
    ...     "comment": "deploy", "created_at": t0})
    >>> [forgettable(s, t0 + timedelta(hours=h), 3600.0, {}) for h in (1, 2)]
    [False, True]
    """
    if retention_s <= 0:
        return False
    end = ended_at(silence, resolved_at)
    return end is not None and (now - end).total_seconds() >= retention_s


def _value(detection: Detection, name: str) -> str | None:
    fixed = {
        "service": detection.service,
        "signal": detection.signal,
        "detector": detection.detector,
        "severity": detection.severity.value,
    }
    return fixed.get(name, detection.labels.get(name))


def _matches(matcher: Matcher, value: str | None) -> bool:
    if value is None:
        return False
    if matcher.regex:
        return full_match(matcher.value, value)
    return value == matcher.value


def matches(silence: Silence, detection: Detection) -> bool:
    """True when every matcher of the silence matches the detection."""
    return all(_matches(m, _value(detection, m.name)) for m in silence.matchers)


def silenced_by(
    detection: Detection,
    silences: Iterable[Silence],
    now: datetime,
    resolved: Container[str] = (),
) -> Silence | None:
    """The first active silence that mutes the detection, if any. ``resolved`` is asked for
    membership only (the worker passes its bounded dict of resolved ids, not a copy)."""
    for silence in silences:
        if state(silence, now, resolved) is SilenceState.ACTIVE and matches(silence, detection):
            return silence
    return None


def transitions(
    silences: Iterable[Silence],
    known: Mapping[str, SilenceState],
    now: datetime,
    resolved: Container[str] = (),
) -> list[tuple[Silence, SilenceState]]:
    """Silences whose state differs from ``known`` (for "started" and "expired" notices). A
    silence not yet seen active that has expired since, and was active from its start, gets
    both: it started and ended between two looks (created and ended within a second, or while
    the worker was too busy to look), and its start is news too."""
    out = []
    for silence in silences:
        current = state(silence, now, resolved)
        seen = known.get(silence.id)
        if seen == current:
            continue
        if (
            seen in (None, SilenceState.PENDING)
            and current is SilenceState.EXPIRED
            and state(silence, silence.starts_at, resolved) is SilenceState.ACTIVE
        ):
            out.append((silence, SilenceState.ACTIVE))
        out.append((silence, current))
    return out
