"""``auth.tokens.v1`` (compacted, keyed by the token's SHA-256) and the HTTP bodies of people's
actions: personal tokens, responders paged by hand, and what every command body may carry."""

from __future__ import annotations

from typing import Self

from pydantic import ConfigDict, Field, model_validator

from schemas.common import Name, Severity, Timestamp, WireModel

Digest = str


class TokenRecord(WireModel):
    """A personal API token as stored: never the token, only its SHA-256 (hex)."""

    digest: Digest = Field(pattern=r"^[0-9a-f]{64}$")
    person: Name
    created_at: Timestamp
    created_by: Name

    @property
    def token_id(self) -> str:
        """A short, public name for the token (the first 12 hex digits of its digest)."""
        return self.digest[:12]


class TokenCreated(WireModel):
    """``POST /api/tokens`` answers the token once; only its digest is kept."""

    person: Name
    token: str
    token_id: str
    created_at: Timestamp


class TokenRequest(WireModel):
    """``POST /api/tokens``: a new token for a person of the catalog. Nothing else: a token has
    its person's role from the catalog and no expiry, so a request asking for a role or an
    expiry is refused rather than answered with a token that has neither."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    person: Name
    #: Ignored, as every body's ``actor``: the caller's token says who asks.
    actor: object = Field(default=None, exclude=True)


class ResponderRequest(WireModel):
    """``POST /api/incidents/{id}/responders``: page exactly one of a person, a team (its
    schedule's on-call, else its members) or a schedule's on-call into the incident now."""

    person: Name | None = None
    team: Name | None = None
    schedule: Name | None = None
    text: str | None = Field(default=None, max_length=10_000, description="Why they are needed.")

    @model_validator(mode="after")
    def _exactly_one(self) -> Self:
        if sum(x is not None for x in (self.person, self.team, self.schedule)) != 1:
            raise ValueError("name exactly one of person, team or schedule")
        return self


class CommandBody(WireModel):
    """The body of ``POST /api/incidents/{id}/{action}``. The actor is the authenticated
    person: an ``actor`` field is ignored."""

    text: str | None = Field(default=None, max_length=10_000)
    at: Timestamp | None = Field(default=None, description="When it happened, if earlier.")
    severity: Severity | None = Field(default=None, description="For ``severity``.")
    role: str | None = Field(default=None, description="For ``roles``: the role to assign.")
    person: Name | None = Field(default=None, description="For ``roles``: who takes it.")


class Accepted(WireModel):
    """A write the broker has acknowledged: the command's id and who it was recorded as."""

    accepted: bool = True
    command_id: str
    incident_id: str
    actor: str


class ApiError(WireModel):
    """Every error: a status code and this body."""

    error: str
