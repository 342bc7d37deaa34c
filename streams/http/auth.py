"""Who is calling: a person by their personal token (``auth.tokens.v1``, followed by every
worker's directory), or automation by the shared ``WARROOM_API_TOKEN``.

A person acts with the ``role`` the catalog gives them and is the actor of everything they do.
The shared token is an admin; its actor is the ``X-Warroom-Actor`` header's name, else ``api``
(not ``automation``: that actor marks a runbook webhook's result).
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from dataclasses import dataclass

from pydantic import TypeAdapter, ValidationError

from responders.access import allows, token_digest
from schemas.auth import TokenRecord
from schemas.catalog import Catalog, Role
from schemas.common import Name
from streams.http.common import ApiError

ACTOR_HEADER = "X-Warroom-Actor"
#: The actor of the shared token's writes that name nobody.
SHARED_ACTOR = "api"
#: Actors only the worker itself writes: nobody may claim them in ``X-Warroom-Actor``.
RESERVED_ACTORS = frozenset({"automation", "warroom"})
_NAME: TypeAdapter[str] = TypeAdapter(Name)


@dataclass(frozen=True)
class Principal:
    """The caller: who the timeline records (``actor``) and what they may do (``role``)."""

    actor: str
    role: Role
    #: The catalog person, or None for the shared token.
    person: str | None = None


def bearer(authorization: str) -> str:
    """The token of an ``Authorization: Bearer <token>`` header; 401 without one."""
    scheme, _, given = authorization.partition(" ")
    if scheme.lower() != "bearer" or not given.strip():
        raise ApiError(401, "missing bearer token (Authorization: Bearer <token>)")
    return given.strip()


def identify(
    given: str,
    shared: str | None,
    tokens: Mapping[str, TokenRecord],
    catalog: Catalog,
    actor_header: str | None,
) -> Principal:
    """The principal a token stands for; 401 for a token nobody holds (or that was revoked)."""
    # Header values may hold any bytes (surrogate-escaped by aiohttp): encode losslessly.
    if shared is not None and hmac.compare_digest(
        given.encode("utf-8", "surrogatepass"), shared.encode()
    ):
        return Principal(_shared_actor(actor_header), "admin")
    record = tokens.get(token_digest(given))
    if record is None:
        raise ApiError(401, "invalid token")
    person = catalog.people.get(record.person)
    if person is None:
        raise ApiError(401, f"the token's person {record.person!r} is no longer in the catalog")
    return Principal(record.person, person.role, record.person)


def _shared_actor(header: str | None) -> str:
    if header is None:
        return SHARED_ACTOR
    try:
        actor = _NAME.validate_python(header)
    except ValidationError:
        raise ApiError(400, f"{ACTOR_HEADER}: 1 to 200 characters, no control characters") from None
    if actor in RESERVED_ACTORS:
        raise ApiError(400, f"{ACTOR_HEADER}: {actor!r} is reserved for the worker")
    return actor


def require(principal: Principal, needed: Role) -> Principal:
    """``principal`` when its role allows ``needed``, else 403 naming both."""
    if not allows(principal.role, needed):
        raise ApiError(
            403, f"{principal.actor} is a {principal.role}; this needs the {needed} role"
        )
    return principal
