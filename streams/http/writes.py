"""What every HTTP write shares: an id that a client's retry reproduces, and a send the broker
has acknowledged before the API answers 2xx.

``Idempotency-Key`` (as PagerDuty, Stripe and the IETF draft use it): a request that carries one
gets ids derived from it, the method, the path and the caller's credentials, so a retry of the
same request writes a message with the same id, which every reader already treats as a no-op
(commands by id in the correlation group, silences by id on a compacted topic, detections by id).
Without the header, ids are random, as before. A key is at most 255 printable ASCII characters.
"""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from typing import Any

from aiohttp import web

IDEMPOTENCY_HEADER = "Idempotency-Key"
MAX_KEY = 255
#: How long a write waits for the broker's acknowledgement before answering 503.
ACK_TIMEOUT_S = 15.0


def idempotency_key(request: web.Request) -> str | None:
    """The request's ``Idempotency-Key``, checked; ``web.HTTPBadRequest`` names the problem."""
    key = request.headers.get(IDEMPOTENCY_HEADER)
    if key is None:
        return None
    if not key or len(key) > MAX_KEY or not key.isascii() or not key.isprintable():
        raise web.HTTPBadRequest(
            reason=f"{IDEMPOTENCY_HEADER}: 1 to {MAX_KEY} printable ASCII characters"
        )
    return key


def write_id(
    prefix: str, request: web.Request, *scope: str, body: bytes = b"", length: int = 20
) -> str:
    """``<prefix>-<hex>``: derived from the ``Idempotency-Key`` (with the method, path,
    credentials, ``scope`` and the request's ``body``) when the request has one, else random.
    The same key with another body is another write, never the first one's id with new
    content."""
    key = idempotency_key(request)
    if key is None:
        return f"{prefix}-{uuid.uuid4().hex[:length]}"
    caller = request.headers.get("Authorization", "")
    parts = [request.method, request.path, caller, key, *scope, hashlib.sha256(body).hexdigest()]
    digest = hashlib.sha256("\x00".join(parts).encode("utf-8", "surrogatepass")).hexdigest()
    return f"{prefix}-{digest[:length]}"


async def acknowledged(sending: Any) -> None:
    """Wait until the broker has the record ``sending`` (what a Faust ``send`` returned: a
    future of the record's metadata) or answer 503: a 2xx means the write is durable."""
    try:
        await asyncio.wait_for(asyncio.shield(sending), ACK_TIMEOUT_S)
    except TimeoutError:
        raise web.HTTPServiceUnavailable(
            reason="the broker did not acknowledge the write in time; retry with the same "
            f"{IDEMPOTENCY_HEADER}"
        ) from None
    except Exception as exc:
        raise web.HTTPServiceUnavailable(
            reason=f"the broker refused the write ({type(exc).__name__}); retry with the same "
            f"{IDEMPOTENCY_HEADER}"
        ) from None
