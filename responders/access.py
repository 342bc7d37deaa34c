"""Who may do what, and the signatures that say who someone is: personal tokens (stored as their
SHA-256), roles, signed action links and Slack's request signature.

Pure: every check receives the time (``now_s``, epoch seconds) and the keys it needs.

>>> allows("responder", "viewer"), allows("viewer", "responder")
(True, False)
>>> key = b"k" * 32
>>> sig = link_signature(key, "inc-1", "acknowledge", "ann", 1_000)
>>> link_problem(key, "inc-1", "acknowledge", "ann", 1_000, sig, now_s=999, ttl_s=60)
>>> link_problem(key, "inc-1", "resolve", "ann", 1_000, sig, now_s=999, ttl_s=60)
'the link is not valid (its signature does not match)'
>>> link_problem(key, "inc-1", "acknowledge", "ann", 1_000, sig, now_s=1_000, ttl_s=60)
'the link expired at 1970-01-01T00:16:40Z'
>>> link_problem(key, "inc-1", "acknowledge", "ann", 1_000, sig, now_s=900, ttl_s=60)
'the link expires 100 s from now, beyond the time to live of 60 s'
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime
from typing import get_args

from schemas.catalog import Role

ROLES: tuple[Role, ...] = get_args(Role)
"""Weakest first: each role may do what the ones before it may."""

#: What a signed link may do: one action each.
LINK_ACTIONS = ("acknowledge", "resolve")

#: Slack refuses requests older than five minutes, to stop replays; so do we.
SLACK_MAX_AGE_S = 300.0


def allows(role: Role, needed: Role) -> bool:
    """True when ``role`` may do what ``needed`` may."""
    return ROLES.index(role) >= ROLES.index(needed)


def token_digest(token: str) -> str:
    """What is stored of a personal token: the SHA-256 of it, in hex. A token is 32 random bytes,
    so a fast hash is enough: there is nothing to guess by trying words.

    >>> token_digest("abc")[:16]
    'ba7816bf8f01cfea'
    """
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def _link_message(incident_id: str, action: str, person: str, expires: int) -> bytes:
    # NUL cannot occur in any of the parts (names refuse control characters), so no two
    # different tuples share a message.
    return "\x00".join(("warroom-link-v1", incident_id, action, person, str(expires))).encode()


def link_signature(key: bytes, incident_id: str, action: str, person: str, expires: int) -> str:
    """HMAC-SHA256 over (incident, action, person, expiry), in hex."""
    message = _link_message(incident_id, action, person, expires)
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def link_problem(
    key: bytes,
    incident_id: str,
    action: str,
    person: str,
    expires: int,
    sig: str,
    now_s: float,
    ttl_s: float,
) -> str | None:
    """Why a signed link may not act (tampered, another action, expired, or expiring further
    ahead than ``ttl_s`` from now, which no link of this deployment does: a shortened time to
    live applies to links already sent), or None."""
    if action not in LINK_ACTIONS:
        return f"a link acts only to {' or '.join(LINK_ACTIONS)}, not {action!r}"
    expected = link_signature(key, incident_id, action, person, expires)
    if not hmac.compare_digest(expected, sig.encode("ascii", "replace").decode()):
        return "the link is not valid (its signature does not match)"
    if now_s >= expires:
        ended = datetime.fromtimestamp(expires, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        return f"the link expired at {ended}"
    if expires - now_s > ttl_s:
        return (
            f"the link expires {expires - now_s:.0f} s from now, beyond the time to live "
            f"of {ttl_s:.0f} s"
        )
    return None


def slack_signature(secret: bytes, timestamp: str, body: bytes) -> str:
    """Slack's ``X-Slack-Signature``: ``v0=`` and the HMAC-SHA256 of ``v0:{timestamp}:{body}``.

    >>> slack_signature(b"s", "1", b"x")[:10]
    'v0=a665c97'
    """
    base = b"v0:" + timestamp.encode("ascii", "replace") + b":" + body
    return "v0=" + hmac.new(secret, base, hashlib.sha256).hexdigest()


def slack_problem(
    secret: bytes, timestamp: str | None, signature: str | None, body: bytes, now_s: float
) -> str | None:
    """Why a request did not come from Slack, or is a replay of an old one; None if it did.

    >>> slack_problem(b"s", "100", slack_signature(b"s", "100", b"x"), b"x", now_s=401)
    'X-Slack-Request-Timestamp: 301 s away from now (at most 300)'
    """
    if not timestamp or not signature:
        return "X-Slack-Signature and X-Slack-Request-Timestamp are required"
    try:
        # Slack sends epoch seconds (10 digits); a longer number is not one, however valid.
        sent = int(timestamp) if len(timestamp) <= 20 else None
    except ValueError:
        sent = None
    if sent is None:
        return "X-Slack-Request-Timestamp: not a number of seconds"
    if abs(now_s - sent) > SLACK_MAX_AGE_S:
        return (
            f"X-Slack-Request-Timestamp: {abs(now_s - sent):.0f} s away from now "
            f"(at most {SLACK_MAX_AGE_S:.0f})"
        )
    expected = slack_signature(secret, timestamp, body)
    if not hmac.compare_digest(expected.encode(), signature.encode("ascii", "replace")):
        return "X-Slack-Signature does not match the body"
    return None
