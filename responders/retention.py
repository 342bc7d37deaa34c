"""Retention of the delivery logs, as Alertmanager keeps its notification log for
``--data.retention`` (120 h by default) and then forgets it.

Two changelog-backed tables would otherwise grow with every page and every incident that has a
runbook, and every worker start restores them whole into memory:

- the ``notification-log``: what became of each page's ``dedup_key`` (delivered, dead-lettered,
  digested), so that a page delivered again is answered ``duplicate`` and not sent twice;
- the ``automation-log``: an incident's runbook and the webhooks already called for it, so that
  each automated task is called once per incident.

Each entry records when it was last written (:data:`WRITTEN_AT`, set by :func:`stamp`) and is
forgotten once the retention has run out since (:func:`expires_at`). An automation-log entry
whose incident is not resolved is kept whatever its age (:func:`in_progress`): a phase may still
begin and call its webhooks. Entries stored before times were kept have none: they come due at
once, and the prune that looks at one stamps it (:attr:`Prune.STAMP`), so that it is forgotten a
retention later and not looked at again meanwhile. The shell asks about due entries
(:func:`to_prune`) every :func:`scan_interval_s`, and the stream that owns each one decides
(:func:`on_prune`) and deletes it: a tombstone on the table's changelog, dropped by compaction.

Why 120 h is safe. The notification log is consulted when a page reaches the delivery stage. A
page reaches it again only when an input is processed again: within the broker's commit interval
(a second) of the first time, or when a crashed worker restarts and processes what it had not
committed; later pages of an incident (escalation steps, repeats, updates) have keys of their
own. The retention must outlast the longest outage during which such work waits uncommitted:
five days, as for correlation groups. The automation log is read for every timeline event of an
incident. While the incident is open its entry is kept; once it is resolved, the events that can
still come (a note, a reopen) rewrite the entry and restart its retention, and a reopen more than
a retention after the last event finds none: the reopened incident's automated tasks are not
called (they stay on the incident, for people to do). A replay of the timeline (a producer
sending everything again, a consumer group reset) brings back ``opened`` events of incidents
long forgotten; :func:`too_old_to_start` refuses to start an entry from an event older than the
retention. That loses nothing: an entry is forgotten a retention after its last write, which
comes after its incident opened, so the entry of an incident opened more recently than the
retention ago has not been forgotten.

>>> from datetime import UTC, datetime, timedelta
>>> t0 = datetime(2026, 5, 1, tzinfo=UTC)
>>> entry = stamp({"outcome": "delivered"}, t0)
>>> [on_prune(entry, 3600.0, t0 + timedelta(minutes=m)) for m in (59, 60)]
[<Prune.KEEP: 'keep'>, <Prune.FORGET: 'forget'>]
>>> on_prune({"outcome": "delivered"}, 3600.0, t0)
<Prune.STAMP: 'stamp'>
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from schemas import IncidentStatus

WRITTEN_AT = "written_at"
"""The field of a log entry that holds when it was last written (ISO 8601, UTC)."""
#: Seconds between two scans for due entries when the retention is longer than that.
SCAN_EVERY_S = 60.0
#: Entries one scan asks about at most: a backlog (the first scans after an upgrade stamping
#: every entry stored before times were kept, a storm of pages a retention ago) is worked off
#: at 1,000 entries a minute per log.
PRUNE_PER_SCAN = 1000


class Prune(StrEnum):
    """What the stream does with an entry it is asked about."""

    KEEP = "keep"
    #: Its age is unknown (stored before entries recorded it): write it back with the time.
    STAMP = "stamp"
    #: Its retention has run out: delete it.
    FORGET = "forget"


def never(entry: Mapping[str, Any]) -> bool:
    """No entry of the log is kept regardless of its age (the notification log)."""
    return False


def in_progress(entry: Mapping[str, Any]) -> bool:
    """An automation-log entry whose incident is not resolved: a phase may still begin.

    >>> [in_progress({"incident": {"status": s}}) for s in ("acknowledged", "resolved")]
    [True, False]
    """
    incident = entry.get("incident")
    status = incident.get("status") if isinstance(incident, Mapping) else None
    return status != IncidentStatus.RESOLVED.value


def stamp(entry: Mapping[str, Any], now: datetime) -> dict[str, Any]:
    """The entry as written at ``now``."""
    return {**entry, WRITTEN_AT: now.isoformat()}


def written_at(entry: Mapping[str, Any]) -> datetime | None:
    """When the entry was last written; None when it does not say (stored before it did)."""
    text = entry.get(WRITTEN_AT)
    if not isinstance(text, str):
        return None
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None


def expires_at(
    entry: Mapping[str, Any], retention_s: float, now: datetime, pinned: bool = False
) -> datetime | None:
    """When to look at the entry: ``retention_s`` after it was last written, ``now`` if that is
    unknown (to stamp it); None when entries are kept forever (``retention_s`` 0) or this one is
    ``pinned`` (kept whatever its age)."""
    if retention_s <= 0 or pinned:
        return None
    at = written_at(entry)
    return now if at is None else at + timedelta(seconds=retention_s)


def on_prune(
    entry: Mapping[str, Any] | None, retention_s: float, now: datetime, pinned: bool = False
) -> Prune:
    """What the stream that owns the entry does when asked about it at ``now``: it checks again,
    since the entry may have been written since it was asked about."""
    if entry is None:
        return Prune.KEEP
    due = expires_at(entry, retention_s, now, pinned)
    if due is None or due > now:
        return Prune.KEEP
    return Prune.STAMP if written_at(entry) is None else Prune.FORGET


def to_prune(
    entries: Iterable[tuple[str, Mapping[str, Any]]],
    retention_s: float,
    now: datetime,
    asked: Mapping[str, object] | None = None,
    pinned: Callable[[Mapping[str, Any]], bool] = never,
    limit: int = PRUNE_PER_SCAN,
) -> list[str]:
    """The keys of the entries one scan asks their stream about: past their retention or of
    unknown age, at most ``limit``. ``asked`` maps the keys asked about before, and not yet
    answered, to the :data:`WRITTEN_AT` they had then: those are not asked again unless they
    have been written since (a stream that lags behind is not flooded with the same question).
    """
    asked = asked or {}
    found: list[str] = []
    for key, entry in entries:
        if len(found) >= limit:
            break
        if key in asked and asked[key] == entry.get(WRITTEN_AT):
            continue
        due = expires_at(entry, retention_s, now, pinned(entry))
        if due is not None and due <= now:
            found.append(key)
    return found


def too_old_to_start(at: datetime, retention_s: float, now: datetime) -> bool:
    """True when an event at ``at`` is older than the retention: its log entry, if it had one,
    may have been forgotten, so it must not start one (see the module docstring)."""
    return retention_s > 0 and now - at >= timedelta(seconds=retention_s)


def scan_interval_s(retention_s: float) -> float:
    """Seconds between scans: a minute, or the retention when that is shorter (at least a
    second). An entry is forgotten at most one interval after its retention has run out.

    >>> scan_interval_s(120 * 3600), scan_interval_s(5.0), scan_interval_s(0.2)
    (60.0, 5.0, 1.0)
    """
    return min(SCAN_EVERY_S, max(1.0, retention_s))
