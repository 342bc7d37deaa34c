"""Who is on call, and whom each escalation step pages: pure functions over the catalog.

Schedules hand off at local wall-clock time in their IANA time zone, so a daily rotation that
hands off at 09:00 Europe/Berlin does so at 08:00 UTC in winter and 07:00 UTC in summer, and
the turn spanning the spring-forward night is 23 hours long (the autumn one 25). Hourly
rotations count elapsed hours. A hand-off time the clock skips (02:30 on a spring-forward day)
happens when the clock shows 03:30; one it shows twice happens the first time.

Escalation plans count steps across repeats: with three steps and ``repeat: 1``, plan steps
3, 4, 5 are the second pass over policy steps 0, 1, 2. The stream agents keep the timers; they
call ``escalation_plan`` (or ``next_due`` and ``targets_for_step``) with the time they hold.

>>> from datetime import UTC, datetime
>>> from schemas import Catalog
>>> catalog = Catalog.model_validate({
...     "people": {p: {"contacts": [{"channel": "console"}]} for p in ("ann", "ben")},
...     "schedules": {"ops": {"time_zone": "Europe/Berlin", "layers": [{
...         "participants": ["ann", "ben"], "rotation": "daily",
...         "start": "2026-03-01", "handoff": "09:00"}]}},
... })
>>> on_call(catalog, "ops", datetime(2026, 3, 1, 7, 59, tzinfo=UTC))  # 08:59 in Berlin
[]
>>> on_call(catalog, "ops", datetime(2026, 3, 1, 8, 0, tzinfo=UTC))
['ann']
>>> on_call(catalog, "ops", datetime(2026, 3, 30, 7, 0, tzinfo=UTC))  # 09:00 summer time
['ben']
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from datetime import UTC, date, datetime, time, timedelta
from typing import NamedTuple
from zoneinfo import ZoneInfo

from schemas.catalog import (
    INLINE_POLICY_PREFIX,
    WEEKDAYS,
    Catalog,
    EscalationPolicy,
    Layer,
    Override,
    PolicyStep,
    Restriction,
    Target,
)
from schemas.live_catalog import ShiftOverride

_DAY_S = 86_400
_WEEK_S = 7 * _DAY_S


class PlannedStep(NamedTuple):
    """One step of an escalation plan: its index across repeats, when it is due, whom it pages."""

    step: int
    due_at: datetime
    people: list[str]


def on_call(catalog: Catalog, schedule_name: str, at: datetime) -> list[str]:
    """The people on call in a schedule at ``at`` (tz-aware): the overrides covering ``at`` if
    any, else the highest layer with someone on call, else nobody.

    Raises ``KeyError`` for a schedule the catalog does not have.
    """
    schedule = catalog.schedules[schedule_name]
    moment = _utc(at)
    overriding = [o.person for o in schedule.overrides if o.start <= moment < o.end]
    if overriding:
        return _unique(overriding)
    zone = ZoneInfo(schedule.time_zone)
    for layer in reversed(schedule.layers):
        person = layer_on_call(layer, zone, moment)
        if person is not None:
            return [person]
    return []


class Shift(NamedTuple):
    """``person`` is on call in ``schedule`` from ``start`` to ``end``."""

    schedule: str
    person: str
    start: datetime
    end: datetime


def with_overrides(catalog: Catalog, overrides: Iterable[ShiftOverride]) -> Catalog:
    """The catalog with run-time overrides added to their schedules' own. An override whose
    schedule or person the catalog no longer has is left out (a catalog applied since may have
    removed them), never an error."""
    extra: dict[str, list[Override]] = {}
    for o in sorted(overrides, key=lambda o: (o.start, o.id)):
        if o.schedule in catalog.schedules and o.person in catalog.people:
            extra.setdefault(o.schedule, []).append(
                Override(person=o.person, start=o.start, end=o.end)
            )
    if not extra:
        return catalog
    schedules = {
        name: schedule.model_copy(update={"overrides": (*schedule.overrides, *extra.get(name, ()))})
        for name, schedule in catalog.schedules.items()
    }
    return catalog.model_copy(update={"schedules": schedules})


def shifts(catalog: Catalog, schedule_name: str, start: datetime, end: datetime) -> list[Shift]:
    """Each person's turns on call in a schedule between ``start`` and ``end``, overrides
    included, in time order; a turn running past either bound is cut at it.

    Who is on call changes only at a hand-off, at a restriction's edge or at an override's:
    those instants are enumerated, day by day in the schedule's zone, and who is on call asked
    at each. Raises ``KeyError`` for a schedule the catalog does not have.

    >>> from schemas import Catalog
    >>> catalog = Catalog.model_validate({
    ...     "people": {p: {"contacts": [{"channel": "console"}]} for p in ("ann", "ben")},
    ...     "schedules": {"ops": {"time_zone": "UTC", "layers": [{
    ...         "participants": ["ann", "ben"], "rotation": "daily",
    ...         "start": "2026-03-01", "handoff": "09:00"}]}},
    ... })
    >>> t = datetime(2026, 3, 1, tzinfo=UTC)
    >>> [(s.person, s.start.hour, s.end.day) for s in shifts(catalog, "ops", t, t + timedelta(2))]
    [('ann', 9, 2), ('ben', 9, 3)]
    """
    lo, hi = _utc(start), _utc(end)
    edges = sorted(e for e in _edges(catalog, schedule_name, lo, hi) if lo <= e < hi)
    out: list[Shift] = []
    current: dict[str, datetime] = {}
    for at in [*edges, hi]:
        people = set(on_call(catalog, schedule_name, at)) if at < hi else set()
        for person in [p for p in current if p not in people]:
            out.append(Shift(schedule_name, person, current.pop(person), at))
        for person in people - set(current):
            current[person] = at
    return sorted(out, key=lambda s: (s.start, s.person))


def _edges(catalog: Catalog, schedule_name: str, lo: datetime, hi: datetime) -> set[datetime]:
    """Every instant in [``lo``, ``hi``] at which the schedule's on-call may change, and ``lo``."""
    schedule = catalog.schedules[schedule_name]
    zone = ZoneInfo(schedule.time_zone)
    edges = {lo}
    for o in schedule.overrides:
        edges.update((o.start, o.end))
    day, last = lo.astimezone(zone).date() - timedelta(days=1), hi.astimezone(zone).date()
    clocks = {
        clock
        for layer in schedule.layers
        for clock in (layer.handoff, *(t for r in layer.restrictions for t in (r.start, r.end)))
    }
    while day <= last:
        edges.update(_handoff(day, clock, zone) for clock in clocks)
        day += timedelta(days=1)
    for layer in schedule.layers:
        if layer.rotation != "hourly":
            continue
        anchor, step = _handoff(layer.start, layer.handoff, zone), timedelta(hours=layer.length)
        at = anchor + max(0, (lo - anchor) // step) * step
        while at <= hi:
            edges.add(at)
            at += step
    return edges


def layer_on_call(layer: Layer, zone: ZoneInfo, at: datetime) -> str | None:
    """The participant of one layer on call at ``at``, or None (before its start, or outside
    its restrictions: a restriction never lengthens a turn, the rotation runs on beneath it)."""
    moment = _utc(at)
    if layer.restrictions and not _within(layer.restrictions, moment.astimezone(zone)):
        return None
    turn = _turn(layer, zone, moment)
    if turn is None:
        return None
    return layer.participants[turn % len(layer.participants)]


def policy_named(catalog: Catalog, name: str) -> EscalationPolicy:
    """A catalog policy, or ``team:<team>`` for a team's inline escalation steps.

    Raises ``KeyError`` for a name that is neither.
    """
    if name in catalog.escalation_policies:
        return catalog.escalation_policies[name]
    if name.startswith(INLINE_POLICY_PREFIX):
        team = catalog.teams.get(name[len(INLINE_POLICY_PREFIX) :])
        if team is not None and team.escalation:
            return EscalationPolicy(
                steps=tuple(
                    PolicyStep(
                        delay_s=s.delay_s, targets=tuple(Target(person=p) for p in s.targets)
                    )
                    for s in team.escalation
                )
            )
    raise KeyError(f"unknown escalation policy {name!r}")


def policy_for(catalog: Catalog, service: str) -> tuple[str, EscalationPolicy] | None:
    """The policy that pages for a service: its own ``escalation_policy``, else its team's, else
    the team's inline escalation (named ``team:<team>``); None if there is none.

    Services the catalog does not list belong to ``default_team``.
    """
    listed = catalog.services.get(service)
    if listed is not None and listed.escalation_policy is not None:
        name = listed.escalation_policy
        return name, catalog.escalation_policies[name]
    team_name = catalog.team_for(service)
    team = catalog.teams.get(team_name) if team_name is not None else None
    if team_name is None or team is None:
        return None
    if team.escalation_policy is not None:
        return team.escalation_policy, catalog.escalation_policies[team.escalation_policy]
    if team.escalation:
        name = f"{INLINE_POLICY_PREFIX}{team_name}"
        return name, policy_named(catalog, name)
    return None


def step_count(policy: EscalationPolicy) -> int:
    """How many plan steps a policy has, counting every repeated pass."""
    return len(policy.steps) * (policy.repeat + 1)


def delay_before(policy: EscalationPolicy, step: int) -> float:
    """Seconds between plan step ``step - 1`` (or the incident opening, for step 0) and ``step``."""
    passes, index = divmod(step, len(policy.steps))
    if passes > 0 and index == 0:
        return policy.pass_delay_s
    return policy.steps[index].delay_s


def next_due(
    catalog: Catalog, policy_name: str, step: int, paged_at: datetime
) -> tuple[int, datetime] | None:
    """After plan step ``step`` was paged at ``paged_at``: the next step and when it is due, or
    None when the policy (with its repeats) is exhausted. ``step=-1`` with the opening time
    gives the first step."""
    policy = policy_named(catalog, policy_name)
    following = step + 1
    if following >= step_count(policy):
        return None
    return following, _utc(paged_at) + timedelta(seconds=delay_before(policy, following))


def targets_for_step(
    catalog: Catalog, policy_name: str, step: int, at: datetime, incident_key: str
) -> list[str]:
    """The people plan step ``step`` pages at ``at``: every person its targets resolve to (a
    schedule's on-call, a team's schedule or members), or, for ``notify: round_robin``, one of
    them chosen from a hash of ``incident_key``, moving on by one with each repeated pass.

    Empty for a step beyond the plan; raises ``KeyError`` for an unknown policy.
    """
    policy = policy_named(catalog, policy_name)
    if step < 0 or step >= step_count(policy):
        return []
    passes, index = divmod(step, len(policy.steps))
    policy_step = policy.steps[index]
    people = _unique(p for target in policy_step.targets for p in _resolve(catalog, target, at))
    if policy_step.notify == "round_robin" and people:
        return [people[(_stable_hash(incident_key) + passes) % len(people)]]
    return people


def escalation_plan(
    catalog: Catalog, service: str, opened_at: datetime, incident_key: str | None = None
) -> list[PlannedStep]:
    """Every step of the service's policy, with repeats: its index, when it is due if nobody
    acknowledges, and whom it pages then. Round-robin picks use ``incident_key`` (default: the
    service). Empty if no policy pages for the service."""
    found = policy_for(catalog, service)
    if found is None:
        return []
    name, policy = found
    key = incident_key if incident_key is not None else service
    plan = []
    due = _utc(opened_at)
    for step in range(step_count(policy)):
        due += timedelta(seconds=delay_before(policy, step))
        plan.append(PlannedStep(step, due, targets_for_step(catalog, name, step, due, key)))
    return plan


def people_of(catalog: Catalog, target: Target, at: datetime) -> list[str]:
    """Who ``target`` (a person, a schedule's on-call, or a team) reaches at ``at``."""
    return _unique(_resolve(catalog, target, at))


def _resolve(catalog: Catalog, target: Target, at: datetime) -> list[str]:
    if target.person is not None:
        return [target.person]
    if target.schedule is not None:
        return on_call(catalog, target.schedule, at)
    team = catalog.teams[target.team or ""]
    if team.schedule is not None:
        return on_call(catalog, team.schedule, at)
    return list(team.members)


def _turn(layer: Layer, zone: ZoneInfo, at: datetime) -> int | None:
    """Which turn of the layer ``at`` falls in (0 = the first turn), or None before the start."""
    if layer.rotation == "hourly":
        anchor = _handoff(layer.start, layer.handoff, zone)
        if at < anchor:
            return None
        return (at - anchor) // timedelta(hours=layer.length)
    day = at.astimezone(zone).date()
    if _handoff(day, layer.handoff, zone) > at:
        day -= timedelta(days=1)
    days = (day - layer.start).days
    if days < 0:
        return None
    return days // ((7 if layer.rotation == "weekly" else 1) * layer.length)


def _handoff(day: date, at: time, zone: ZoneInfo) -> datetime:
    """The UTC instant of a local wall-clock hand-off (fold 0: a skipped time falls after the
    gap, a repeated time is its first occurrence)."""
    return datetime.combine(day, at, tzinfo=zone).astimezone(UTC)


def _within(restrictions: Iterable[Restriction], local: datetime) -> bool:
    now_s = local.weekday() * _DAY_S + local.hour * 3600 + local.minute * 60 + local.second
    return any(
        start <= now_s < end or start <= now_s + _WEEK_S < end
        for restriction in restrictions
        for start, end in _windows(restriction)
    )


def _windows(restriction: Restriction) -> list[tuple[int, int]]:
    """Windows in seconds from Monday 00:00 local; an end may run past the end of the week."""
    start_s, end_s = _seconds(restriction.start), _seconds(restriction.end)
    if restriction.type == "weekly":
        assert restriction.start_day is not None and restriction.end_day is not None
        start = WEEKDAYS.index(restriction.start_day) * _DAY_S + start_s
        end = WEEKDAYS.index(restriction.end_day) * _DAY_S + end_s
        return [(start, end if end > start else end + _WEEK_S)]
    length = (end_s - start_s) % _DAY_S or _DAY_S
    days = restriction.days or WEEKDAYS
    starts = [WEEKDAYS.index(day) * _DAY_S + start_s for day in days]
    return [(start, start + length) for start in starts]


def _seconds(clock: time) -> int:
    return clock.hour * 3600 + clock.minute * 60 + clock.second


def _utc(at: datetime) -> datetime:
    if at.tzinfo is None:
        raise ValueError("times must be timezone-aware")
    return at.astimezone(UTC)


def _stable_hash(key: str) -> int:
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big")


def _unique(people: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(people))
