"""Which detections a silence mutes, and when silences start and end (pure, ``now`` given)."""

from __future__ import annotations

import re
from collections.abc import Container, Iterable, Mapping
from datetime import datetime
from enum import StrEnum

from schemas import Detection
from schemas.silences import Matcher, Silence


class SilenceState(StrEnum):
    PENDING = "pending"
    ACTIVE = "active"
    EXPIRED = "expired"


def state(silence: Silence, now: datetime, resolved: Container[str] = ()) -> SilenceState:
    """Pending before ``starts_at``; expired after ``ends_at``, after ``expired_at``, or once the
    incident it waits for is among ``resolved``; active otherwise."""
    if silence.expired_at is not None and now >= silence.expired_at:
        return SilenceState.EXPIRED
    if silence.ends_at is not None and now >= silence.ends_at:
        return SilenceState.EXPIRED
    if silence.until_resolved is not None and silence.until_resolved in resolved:
        return SilenceState.EXPIRED
    if now < silence.starts_at:
        return SilenceState.PENDING
    return SilenceState.ACTIVE


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
        return re.fullmatch(matcher.value, value) is not None
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
    """Silences whose state differs from ``known`` (for "started" and "expired" notices)."""
    out = []
    for silence in silences:
        current = state(silence, now, resolved)
        if known.get(silence.id) != current:
            out.append((silence, current))
    return out
