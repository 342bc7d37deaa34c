"""The operational catalog (one YAML file): services, teams, people and how to reach them.

Validated here so that every reference error names its field:

>>> Catalog.model_validate({"services": {"api": {"team": "ops"}}})
Traceback (most recent call last):
...
pydantic_core._pydantic_core.ValidationError: 1 validation error for Catalog
services.api.team
  Value error, unknown team 'ops' [type=value_error, input_value='ops', input_type=str]
"""

from __future__ import annotations

from typing import Self

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError, ValidationError

from schemas.common import Name
from schemas.mobilization import Channel


class _Config(BaseModel):
    """Config models reject unknown fields: a typo in a catalog is an error, not a silence."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class ContactMethod(_Config):
    """One way to reach a person."""

    channel: Channel
    address: str = ""

    @model_validator(mode="after")
    def _address_fits_channel(self) -> Self:
        if self.channel is Channel.WEBHOOK and not self.address.startswith(("http://", "https://")):
            raise ValueError("a webhook contact needs an http:// or https:// address")
        return self


class Person(_Config):
    """Someone who can be paged."""

    name: str = ""
    contacts: tuple[ContactMethod, ...] = Field(min_length=1)


class EscalationStep(_Config):
    """Who is paged at this step, and how long after the previous one."""

    delay_s: float = Field(default=0.0, ge=0.0)
    targets: tuple[Name, ...] = Field(min_length=1)


class Team(_Config):
    """A team owns services and is paged through its escalation steps."""

    members: tuple[Name, ...] = ()
    escalation: tuple[EscalationStep, ...] = Field(min_length=1)


class Service(_Config):
    """A service that emits signals; ``tier`` 1 is the most critical."""

    team: Name
    tier: int = Field(default=3, ge=1, le=4)
    runbook: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)


class Catalog(_Config):
    """The whole catalog; ``default_team`` owns services the catalog does not list."""

    services: dict[Name, Service] = Field(default_factory=dict)
    teams: dict[Name, Team] = Field(default_factory=dict)
    people: dict[Name, Person] = Field(default_factory=dict)
    default_team: Name | None = None

    @model_validator(mode="after")
    def _references_resolve(self) -> Self:
        errors: list[InitErrorDetails] = []

        def fail(loc: tuple[str | int, ...], value: object, message: str) -> None:
            errors.append(
                InitErrorDetails(
                    type=PydanticCustomError("value_error", "Value error, {msg}", {"msg": message}),
                    loc=loc,
                    input=value,
                )
            )

        for name, service in self.services.items():
            if service.team not in self.teams:
                fail(("services", name, "team"), service.team, f"unknown team {service.team!r}")
        for name, team in self.teams.items():
            for i, member in enumerate(team.members):
                if member not in self.people:
                    fail(("teams", name, "members", i), member, f"unknown person {member!r}")
            for s, step in enumerate(team.escalation):
                for t, target in enumerate(step.targets):
                    if target not in self.people:
                        fail(
                            ("teams", name, "escalation", s, "targets", t),
                            target,
                            f"unknown person {target!r}",
                        )
        if self.default_team is not None and self.default_team not in self.teams:
            fail(("default_team",), self.default_team, f"unknown team {self.default_team!r}")
        if errors:
            raise ValidationError.from_exception_data(type(self).__name__, errors)
        return self

    def team_for(self, service: str) -> str | None:
        """The owning team of a service, or the default team for services not listed."""
        listed = self.services.get(service)
        return listed.team if listed is not None else self.default_team

    def tier_for(self, service: str) -> int:
        """The service tier (1 = most critical); unlisted services are tier 3."""
        listed = self.services.get(service)
        return listed.tier if listed is not None else 3
