"""``/api/tokens``: personal API tokens, created and revoked by an admin; ``/api/whoami``.

A new token is 32 random bytes (``wrp_`` and URL-safe base64), answered once; ``auth.tokens.v1``
(compacted, keyed by its SHA-256) keeps the digest, the person and who made it, and every
worker's directory follows it, so a token works on every worker and survives restarts. Revoking
a person writes a tombstone for each of their tokens: from then on each answers 401.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from aiohttp import web
from pydantic import ValidationError

from responders.access import token_digest
from schemas import format_errors
from schemas.auth import TokenCreated, TokenRecord, TokenRequest
from streams.http.common import ApiError, json_object
from streams.http.writes import acknowledged

if TYPE_CHECKING:
    from streams.http.server import Api

TOKEN_PREFIX = "wrp_"  # noqa: S105 (a prefix, not a secret)


def new_token() -> str:
    """A personal token: ``wrp_`` and 32 random bytes, URL-safe."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def routes(api: Api) -> list[web.RouteDef]:
    p = api.p

    async def publish(digest: str, record: TokenRecord | None) -> None:
        value = record.model_dump_json().encode() if record is not None else None
        sending = await p.app.send(
            p.settings.topics.tokens, key=digest.encode(), value=value,
            key_serializer="raw", value_serializer="raw",
        )  # fmt: skip
        await acknowledged(sending)
        # This worker's API sees it at once; every directory confirms it from the topic.
        if record is None:
            p.directory.tokens.pop(digest, None)
        else:
            p.directory.tokens[digest] = record

    def known_person(body: dict[str, object]) -> str:
        try:
            person = TokenRequest.model_validate(body).person
        except ValidationError as exc:
            raise ApiError(400, format_errors(exc)) from None
        if person not in p.catalog.people:
            raise ApiError(404, f"person {person!r} is not in the catalog")
        return person

    async def create(request: web.Request) -> web.Response:
        who = api.authorized(request, "admin")
        person = known_person(await json_object(request))
        token, now = new_token(), datetime.now(tz=UTC)
        record = TokenRecord(
            digest=token_digest(token), person=person, created_at=now, created_by=who.actor
        )
        await publish(record.digest, record)
        created = TokenCreated(person=person, token=token, token_id=record.token_id, created_at=now)
        return web.json_response(created.model_dump(mode="json"), status=201)

    async def revoke(request: web.Request) -> web.Response:
        api.authorized(request, "admin")
        person = request.match_info["person"]
        held = [r for r in list(p.directory.tokens.values()) if r.person == person]
        for record in held:
            await publish(record.digest, None)
        return web.json_response({"person": person, "revoked": [r.token_id for r in held]})

    async def listing(request: web.Request) -> web.Response:
        api.authorized(request, "admin")
        rows = sorted(p.directory.tokens.values(), key=lambda r: (r.person, r.created_at))
        return web.json_response(
            {
                "tokens": [
                    {
                        "token_id": r.token_id,
                        "person": r.person,
                        "created_at": r.created_at.isoformat(),
                        "created_by": r.created_by,
                    }
                    for r in rows
                ]
            }
        )

    async def whoami(request: web.Request) -> web.Response:
        who = api.authorized(request, "viewer")
        return web.json_response({"actor": who.actor, "role": who.role, "person": who.person})

    return [
        web.post("/api/tokens", create),
        web.get("/api/tokens", listing),
        web.delete("/api/tokens/{person}", revoke),
        web.get("/api/whoami", whoami),
    ]
