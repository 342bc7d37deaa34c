"""The operational catalog (one YAML file): services, teams, people and how to reach them,
on-call schedules, escalation policies, and which policy pages for which service.

Validated here so that every reference error names its field:

>>> Catalog.model_validate({"services": {"api": {"team": "ops"}}})
Traceback (most recent call last):
...
pydantic_core._pydantic_core.ValidationError: 1 validation error for Catalog
services.api.team
  Value error, unknown team 'ops' [type=value_error, input_value='ops', input_type=str]

Schedules hand off at local wall-clock time in their IANA time zone; who is on call at a given
moment, and whom each escalation step pages, is computed in ``responders.oncall``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import date, time
from typing import Annotated, Any, Literal, Self
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError, ValidationError

from schemas.common import Name, Timestamp, no_control
from schemas.mobilization import Channel
from schemas.runbooks import Runbook

Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WEEKDAYS: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
"""Weekday names in ``datetime.weekday()`` order (Monday is 0)."""

MIN_ESCALATION_DELAY_S = 60.0
#: The longest delay an escalation step or pass may have: a week without an acknowledgement.
MAX_ESCALATION_DELAY_S = 7 * 86400.0
"""Policy steps after the first wait at least this long: nobody escalates in under a minute."""

INLINE_POLICY_PREFIX = "team:"
"""A team's inline ``escalation`` is the policy named ``team:<team>``; no policy may use it."""

# ``\Z``, not ``$``: ``$`` also matches before a final newline, which would reach a mail header.
_EMAIL = re.compile(r"^[^@\s<>]+@[^@\s<>]+\.[^@\s<>]+\Z")


class _Config(BaseModel):
    """Config models reject unknown fields: a typo in a catalog is an error, not a silence; and
    infinite or NaN numbers, which no duration or rate here can be."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)


def _wall_clock(value: Any) -> Any:
    if isinstance(value, bool | int | float):
        raise ValueError(
            "a local wall-clock time is written 'HH:MM' (quote it in YAML: unquoted 17:00 "
            "is read as a number)"
        )
    return value


def _no_offset(value: time) -> time:
    if value.tzinfo is not None:
        raise ValueError("a local wall-clock time has no UTC offset: the time zone says which")
    return value


def _zone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise ValueError(
            f"unknown time zone {value!r} (an IANA name such as Europe/Berlin)"
        ) from None
    return value


LocalTime = Annotated[time, BeforeValidator(_wall_clock)]
"""``HH:MM[:SS]`` on the local wall clock of the schedule's time zone."""


class ContactMethod(_Config):
    """One way to reach a person: console, a webhook URL, a Slack incoming webhook, an email."""

    channel: Channel
    address: str = ""

    @model_validator(mode="after")
    def _address_fits_channel(self) -> Self:
        if self.channel is Channel.WEBHOOK and not self.address.startswith(("http://", "https://")):
            raise ValueError("a webhook contact needs an http:// or https:// address")
        if self.channel is Channel.SLACK and not self.address.startswith("https://"):
            raise ValueError("a slack contact needs its incoming-webhook https:// URL as address")
        if self.channel is Channel.EMAIL and not _EMAIL.match(self.address):
            raise ValueError(
                f"an email contact needs an address like name@example.com, got {self.address!r}"
            )
        return self


Role = Literal["viewer", "responder", "admin"]
"""What a person's token may do: ``viewer`` reads, ``responder`` also acts on incidents and
silences, ``admin`` also creates and revokes tokens."""


class Person(_Config):
    """Someone who can be paged, and who acts on incidents as themselves (``role``)."""

    name: Annotated[str, AfterValidator(no_control)] = Field(default="", max_length=200)
    contacts: tuple[ContactMethod, ...] = Field(min_length=1)
    role: Role = "responder"
    slack_user_id: str | None = Field(
        default=None,
        pattern=r"^[UW][A-Z0-9]{2,20}$",
        description="Slack member id (U0123ABCD): Slack buttons pressed by it act as this person.",
    )
    #: The person's IANA time zone (what ``warroom whatif`` counts night pages in).
    time_zone: str | None = None

    @field_validator("time_zone")
    @classmethod
    def _known_zone(cls, value: str | None) -> str | None:
        return None if value is None else _zone(value)


class EscalationStep(_Config):
    """Who is paged at this step, and how long after the previous one (a team's inline form)."""

    delay_s: float = Field(default=0.0, ge=0.0, le=MAX_ESCALATION_DELAY_S)
    targets: tuple[Name, ...] = Field(min_length=1)


class Restriction(_Config):
    """A window of local wall-clock time in which a layer may be on call.

    ``daily``: from ``start`` to ``end`` on each of ``days`` (every day if empty); an ``end`` at
    or before ``start`` ends the next day. ``weekly``: from ``start_day`` ``start`` to
    ``end_day`` ``end``, e.g. fri 17:00 to mon 09:00.
    """

    type: Literal["daily", "weekly"] = "daily"
    start: LocalTime
    end: LocalTime
    days: tuple[Weekday, ...] = ()
    start_day: Weekday | None = None
    end_day: Weekday | None = None

    @field_validator("start", "end")
    @classmethod
    def _local(cls, value: time) -> time:
        return _no_offset(value)

    @model_validator(mode="after")
    def _fields_fit_type(self) -> Self:
        if self.type == "weekly":
            if self.start_day is None or self.end_day is None:
                raise ValueError("a weekly restriction needs start_day and end_day")
            if self.days:
                raise ValueError("days belongs to daily restrictions; weekly ones use start_day")
        elif self.start_day is not None or self.end_day is not None:
            raise ValueError("start_day and end_day belong to weekly restrictions (type: weekly)")
        return self


class Layer(_Config):
    """One rotation: participants take turns, handing off at ``handoff`` local time.

    ``rotation`` with ``length`` says how long a turn is: ``weekly`` (``length`` weeks, handing
    off on ``start``'s weekday), ``daily`` (``length`` days) or ``hourly`` (``length`` hours of
    elapsed time from ``start`` at ``handoff``). ``participants[0]`` takes the first turn on
    ``start``; nobody is on call in this layer before then, nor outside its restrictions.
    """

    name: str = ""
    participants: tuple[Name, ...] = Field(min_length=1)
    rotation: Literal["hourly", "daily", "weekly"] = "weekly"
    length: int = Field(default=1, ge=1, le=1000)
    start: date
    handoff: LocalTime
    restrictions: tuple[Restriction, ...] = ()

    @field_validator("handoff")
    @classmethod
    def _local(cls, value: time) -> time:
        return _no_offset(value)


class Override(_Config):
    """``person`` is on call from ``start`` to ``end`` instead of every layer."""

    person: Name
    start: Timestamp
    end: Timestamp

    @model_validator(mode="after")
    def _ends_after_start(self) -> Self:
        if self.end <= self.start:
            raise ValueError("an override's end must be after its start")
        return self


class Schedule(_Config):
    """Who is on call when: ``layers`` listed lowest first (a later layer with someone on call
    overrides earlier ones), and ``overrides`` above them all."""

    description: str = ""
    time_zone: str
    layers: tuple[Layer, ...] = Field(min_length=1)
    overrides: tuple[Override, ...] = ()

    @field_validator("time_zone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        return _zone(value)


class Target(_Config):
    """Who a policy step pages: exactly one of a person, a schedule's on-call, or a team (its
    schedule if it has one, else its members). A bare string is a person."""

    person: Name | None = None
    schedule: Name | None = None
    team: Name | None = None

    @model_validator(mode="before")
    @classmethod
    def _bare_person(cls, value: Any) -> Any:
        return {"person": value} if isinstance(value, str) else value

    @model_validator(mode="after")
    def _exactly_one(self) -> Self:
        if sum(x is not None for x in (self.person, self.schedule, self.team)) != 1:
            raise ValueError("a target names exactly one of person, schedule or team")
        return self


class PolicyStep(_Config):
    """One escalation step: paged ``delay_s`` after the previous step (the first: after the
    incident opens), notifying everyone it resolves to, or one of them in turn."""

    delay_s: float = Field(default=0.0, ge=0.0, le=MAX_ESCALATION_DELAY_S)
    targets: tuple[Target, ...] = Field(min_length=1)
    notify: Literal["all", "round_robin"] = "all"


class EscalationPolicy(_Config):
    """Ordered steps, run ``repeat`` more times while nobody acknowledges.

    A repeated pass starts ``repeat_delay_s`` after the previous pass's last step (by default
    the last step's own delay). The catalog checks the delays: at least a minute after the
    first step, and between passes.
    """

    description: str = ""
    steps: tuple[PolicyStep, ...] = Field(min_length=1)
    repeat: int = Field(default=0, ge=0, le=9)
    repeat_delay_s: float | None = Field(
        default=None, ge=MIN_ESCALATION_DELAY_S, le=MAX_ESCALATION_DELAY_S
    )

    @property
    def pass_delay_s(self) -> float:
        """How long after a pass's last step the next pass begins."""
        return self.repeat_delay_s if self.repeat_delay_s is not None else self.steps[-1].delay_s


class Team(_Config):
    """A team owns services; it is paged through ``escalation_policy`` or its inline
    ``escalation`` steps. As a policy target, a team is its ``schedule``'s on-call if it has
    one, else all its members."""

    members: tuple[Name, ...] = ()
    escalation: tuple[EscalationStep, ...] = ()
    escalation_policy: Name | None = None
    schedule: Name | None = None


class ServiceTiming(_Config):
    """A service's own timing, each field overriding the worker's setting of the same name (as
    PagerDuty sets acknowledgement timeout and auto-resolve per service, and Alertmanager's
    routes set their own group and repeat intervals). Unset fields keep the worker's."""

    group_wait_s: float | None = Field(default=None, ge=0.0)
    group_interval_s: float | None = Field(default=None, gt=0.0)
    repeat_interval_s: float | None = Field(default=None, gt=0.0)
    ack_timeout_s: float | None = Field(default=None, gt=0.0)
    auto_resolve_s: float | None = Field(default=None, gt=0.0)
    stakeholder_update_interval_s: float | None = Field(default=None, gt=0.0)


class Heartbeat(_Config):
    """A service's heartbeat: some point of the service at least every ``within_s`` seconds
    (event time); when none comes for that long, a ``silence`` detection is raised."""

    within_s: float = Field(ge=1.0, le=366 * 86_400.0)


class NamedHeartbeat(_Config):
    """A cron-style job's heartbeat, sent with ``POST /api/heartbeats/{name}``: when no beat
    comes for ``within_s`` seconds after the last one, a ``silence`` detection for ``service``."""

    service: Name
    within_s: float = Field(ge=1.0, le=366 * 86_400.0)
    description: str = ""


class Service(_Config):
    """A service that emits signals; ``tier`` 1 is the most critical.

    ``escalation_policy`` routes its incidents to a policy; without one, its team's applies.
    """

    team: Name
    tier: int = Field(default=3, ge=1, le=4)
    runbook: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    escalation_policy: Name | None = None
    #: Services this one depends on: while one of them has an open incident, this service's
    #: new incidents are inhibited (opened and linked, but nobody is paged), as Alertmanager's
    #: inhibition rules mute dependent alerts.
    depends_on: tuple[Name, ...] = ()
    #: People who get status notices (not pages) about this service's incidents.
    stakeholders: tuple[Name, ...] = ()
    #: Grouping, repeat, acknowledgement-timeout, auto-resolve and update intervals of this
    #: service's incidents, where they differ from the worker's.
    timing: ServiceTiming | None = None
    #: Points of this service expected at least this often (see ``Heartbeat``).
    heartbeat: Heartbeat | None = None
    #: Routing keys of change events (PagerDuty Change Events v2) that belong to this service.
    routing_keys: tuple[Annotated[str, AfterValidator(no_control)], ...] = ()


_Loc = tuple[str | int, ...]
#: Records one problem at a location: ``fail(loc, value, message)``.
_Fail = Callable[[_Loc, object, str], None]


class _Problems:
    """The problems found while checking a catalog's references, as pydantic error details."""

    def __init__(self) -> None:
        self.errors: list[InitErrorDetails] = []

    def fail(self, loc: _Loc, value: object, message: str) -> None:
        self.errors.append(
            InitErrorDetails(
                type=PydanticCustomError("value_error", "Value error, {msg}", {"msg": message}),
                loc=loc,
                input=value,
            )
        )

    def known(self, loc: _Loc, value: str | None, names: Mapping[str, object], kind: str) -> None:
        """Fails unless ``value`` is None or one of ``names``."""
        if value is not None and value not in names:
            self.fail(loc, value, f"unknown {kind} {value!r}")


class Catalog(_Config):
    """The whole catalog; ``default_team`` owns services the catalog does not list, and
    ``fallback_policy`` pages for an incident its own policy cannot page anyone for (a service no
    policy covers, or a step that resolves to nobody, such as a gap in a schedule)."""

    services: dict[Name, Service] = Field(default_factory=dict)
    teams: dict[Name, Team] = Field(default_factory=dict)
    people: dict[Name, Person] = Field(default_factory=dict)
    schedules: dict[Name, Schedule] = Field(default_factory=dict)
    escalation_policies: dict[Name, EscalationPolicy] = Field(default_factory=dict)
    runbooks: dict[Name, Runbook] = Field(default_factory=dict)
    #: Cron-style jobs' heartbeats by name (``POST /api/heartbeats/{name}``).
    heartbeats: dict[Name, NamedHeartbeat] = Field(default_factory=dict)
    default_team: Name | None = None
    fallback_policy: Name | None = None

    @model_validator(mode="after")
    def _references_resolve(self) -> Self:
        found = _Problems()
        self._check_services(found)
        self._check_signals(found.fail)
        self._check_teams(found)
        self._check_schedules(found)
        self._check_slack_members(found.fail)
        for name, policy in self.escalation_policies.items():
            self._check_policy(name, policy, found.fail)
        self._check_runbooks(found.fail)
        self._check_defaults(found)
        if found.errors:
            raise ValidationError.from_exception_data(type(self).__name__, found.errors)
        return self

    def _check_services(self, found: _Problems) -> None:
        """Services name a known team that pages, known policies, services and people."""
        for name, service in self.services.items():
            at = ("services", name)
            if service.team not in self.teams:
                found.fail((*at, "team"), service.team, f"unknown team {service.team!r}")
            elif service.escalation_policy is None and not self._team_pages(service.team):
                found.fail(
                    (*at, "escalation_policy"),
                    None,
                    f"team {service.team!r} has no escalation or escalation_policy; "
                    "name an escalation_policy for this service",
                )
            found.known(
                (*at, "escalation_policy"),
                service.escalation_policy,
                self.escalation_policies,
                "escalation policy",
            )
            for i, dependency in enumerate(service.depends_on):
                found.known((*at, "depends_on", i), dependency, self.services, "service")
                if dependency == name:
                    found.fail((*at, "depends_on", i), dependency, "depends on itself")
            for i, person in enumerate(service.stakeholders):
                found.known((*at, "stakeholders", i), person, self.people, "person")

    def _check_teams(self, found: _Problems) -> None:
        """Teams name known people, a known escalation policy and a known schedule."""
        for name, team in self.teams.items():
            at = ("teams", name)
            for i, member in enumerate(team.members):
                found.known((*at, "members", i), member, self.people, "person")
            for s, step in enumerate(team.escalation):
                for t, target in enumerate(step.targets):
                    loc = (*at, "escalation", s, "targets", t)
                    found.known(loc, target, self.people, "person")
            found.known(
                (*at, "escalation_policy"),
                team.escalation_policy,
                self.escalation_policies,
                "escalation policy",
            )
            found.known((*at, "schedule"), team.schedule, self.schedules, "schedule")

    def _check_schedules(self, found: _Problems) -> None:
        """A schedule's participants and override people are known people."""
        for name, schedule in self.schedules.items():
            at = ("schedules", name)
            for n, layer in enumerate(schedule.layers):
                for i, person in enumerate(layer.participants):
                    where = (*at, "layers", n, "participants", i)
                    found.known(where, person, self.people, "person")
            for o, override in enumerate(schedule.overrides):
                loc = (*at, "overrides", o, "person")
                found.known(loc, override.person, self.people, "person")

    def _check_slack_members(self, fail: _Fail) -> None:
        """No two people share one Slack member id."""
        slack_members: dict[str, str] = {}
        for name, held in self.people.items():
            other = slack_members.setdefault(held.slack_user_id or "", name)
            if held.slack_user_id and other != name:
                fail(("people", name, "slack_user_id"), held.slack_user_id,
                     f"already the Slack member of {other!r}")  # fmt: skip

    def _check_defaults(self, found: _Problems) -> None:
        """The default team is known and pages; the fallback policy is known."""
        if self.default_team is not None:
            if self.default_team not in self.teams:
                found.fail(
                    ("default_team",), self.default_team, f"unknown team {self.default_team!r}"
                )
            elif not self._team_pages(self.default_team):
                found.fail(
                    ("default_team",),
                    self.default_team,
                    f"team {self.default_team!r} has no escalation or escalation_policy",
                )
        found.known(
            ("fallback_policy",),
            self.fallback_policy,
            self.escalation_policies,
            "escalation policy",
        )

    def _check_signals(self, fail: _Fail) -> None:
        """Named heartbeats belong to known services; a routing key maps to one service."""
        for name, beat in self.heartbeats.items():
            if beat.service not in self.services:
                fail(
                    ("heartbeats", name, "service"),
                    beat.service,
                    f"unknown service {beat.service!r}",
                )
        owner: dict[str, str] = {}
        for name, service in self.services.items():
            for i, key in enumerate(service.routing_keys):
                if key in owner and owner[key] != name:
                    fail(
                        ("services", name, "routing_keys", i),
                        key,
                        f"routing key already belongs to service {owner[key]!r}",
                    )
                owner.setdefault(key, name)

    def service_for_routing_key(self, key: str) -> str | None:
        """The service whose ``routing_keys`` include ``key``, if any."""
        for name, service in self.services.items():
            if key in service.routing_keys:
                return name
        return None

    def _team_pages(self, team: str) -> bool:
        found = self.teams[team]
        return bool(found.escalation) or found.escalation_policy is not None

    def _check_policy(self, name: str, policy: EscalationPolicy, fail: _Fail) -> None:
        at: tuple[str | int, ...] = ("escalation_policies", name)
        if name.startswith(INLINE_POLICY_PREFIX):
            fail(at, name, f"policy names starting {INLINE_POLICY_PREFIX!r} are reserved")
        for s, step in enumerate(policy.steps):
            first = s == 0
            if step.delay_s < MIN_ESCALATION_DELAY_S and not (first and step.delay_s == 0):
                fail(
                    (*at, "steps", s, "delay_s"),
                    step.delay_s,
                    f"delay_s must be at least {MIN_ESCALATION_DELAY_S:g}"
                    + (" (or 0 for the first step)" if first else ""),
                )
            for t, target in enumerate(step.targets):
                loc = (*at, "steps", s, "targets", t)
                kinds: dict[str, dict[str, Any]] = {
                    "person": self.people,
                    "schedule": self.schedules,
                    "team": self.teams,
                }
                for kind, names in kinds.items():
                    value = getattr(target, kind)
                    if value is not None and value not in names:
                        fail((*loc, kind), value, f"unknown {kind} {value!r}")
                team = self.teams.get(target.team or "")
                if team is not None and team.schedule is None and not team.members:
                    fail(
                        (*loc, "team"),
                        target.team,
                        f"team {target.team!r} has no schedule or members",
                    )
        if policy.repeat > 0 and policy.pass_delay_s < MIN_ESCALATION_DELAY_S:
            fail(
                (*at, "repeat_delay_s"),
                policy.repeat_delay_s,
                f"a policy that repeats waits at least {MIN_ESCALATION_DELAY_S:g} s between "
                "passes: set repeat_delay_s (its last step's delay is shorter)",
            )

    def _check_runbooks(self, fail: _Fail) -> None:
        """Runbooks name known services, and no two apply to exactly the same incidents."""
        claimed: dict[tuple[frozenset[str], ...], str] = {}
        for name, runbook in self.runbooks.items():
            match = runbook.applies_to
            for i, service in enumerate(match.services):
                if service not in self.services:
                    fail(
                        ("runbooks", name, "applies_to", "services", i),
                        service,
                        f"unknown service {service!r}",
                    )
            same = tuple(
                frozenset(str(v) for v in values)
                for values in (match.services, match.signals, match.detectors, match.severities)
            )
            if same in claimed:
                fail(
                    ("runbooks", name, "applies_to"),
                    match.model_dump(mode="json"),
                    f"runbook {claimed[same]!r} applies to exactly the same incidents",
                )
            claimed.setdefault(same, name)

    def team_for(self, service: str) -> str | None:
        """The owning team of a service, or the default team for services not listed."""
        listed = self.services.get(service)
        return listed.team if listed is not None else self.default_team

    def tier_for(self, service: str) -> int:
        """The service tier (1 = most critical); unlisted services are tier 3."""
        listed = self.services.get(service)
        return listed.tier if listed is not None else 3
