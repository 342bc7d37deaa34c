"""Per-recipient rate limits, and a digest instead of a storm.

Each destination (a recipient on one channel: ``<recipient>/<channel>``) has a token bucket
holding at most ``rate`` tokens, refilled at ``rate`` per ``window_s``. A page takes a token; a
page that finds none is not dropped but held, and every page after it joins it, until a token
is free again: then one digest lists them all (severity, title and incident of each) and takes
one token. So a storm of N incidents costs a person ``rate`` pages and one digest per window.

The one exception: a page (``kind="page"``, not a notice or a digest) for a SEV1 incident is
never held. It takes a token if one is left, so it still counts against the limit, but it does
not wait for one: the most severe incidents always reach their responders at once.

State is a plain value (:class:`Bucket`) that the shell keeps in the ``page-throttle`` table;
``now`` is always an argument.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from schemas import Channel, Page, Severity


@dataclass(frozen=True)
class Limit:
    """``rate`` messages per ``window_s`` seconds for one destination."""

    rate: int
    window_s: float

    @property
    def refill_s(self) -> float:
        """Seconds to earn one token back."""
        return self.window_s / self.rate


@dataclass(frozen=True)
class Held:
    """What a digest needs of a page it folds in (and its receipt)."""

    dedup_key: str
    incident_id: str
    severity: Severity
    subject: str
    created_at: datetime

    @classmethod
    def of(cls, page: Page) -> Held:
        return cls(page.dedup_key, page.incident_id, page.severity, page.subject, page.created_at)


@dataclass(frozen=True)
class Bucket:
    """One destination's token bucket, the pages it holds, and where its digest goes."""

    recipient: str
    channel: Channel
    address: str
    tokens: float
    updated_at: datetime | None = None
    held: tuple[Held, ...] = ()
    digests: int = 0

    @property
    def key(self) -> str:
        return f"{self.recipient}/{self.channel.value}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "recipient": self.recipient,
            "channel": self.channel.value,
            "address": self.address,
            "tokens": self.tokens,
            "updated_at": self.updated_at.isoformat() if self.updated_at else None,
            "held": [
                {
                    "dedup_key": h.dedup_key,
                    "incident_id": h.incident_id,
                    "severity": h.severity.value,
                    "subject": h.subject,
                    "created_at": h.created_at.isoformat(),
                }
                for h in self.held
            ],
            "digests": self.digests,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Bucket:
        at = data.get("updated_at")
        return cls(
            recipient=str(data["recipient"]),
            channel=Channel(data["channel"]),
            address=str(data.get("address", "")),
            tokens=float(data["tokens"]),
            updated_at=datetime.fromisoformat(at) if isinstance(at, str) else None,
            held=tuple(
                Held(
                    str(h["dedup_key"]),
                    str(h["incident_id"]),
                    Severity(h["severity"]),
                    str(h["subject"]),
                    datetime.fromisoformat(h["created_at"]),
                )
                for h in data.get("held", [])
            ),
            digests=int(data.get("digests", 0)),
        )


def throttle_key(page: Page) -> str:
    """The destination a page is limited under: its recipient on its channel."""
    return f"{page.recipient}/{page.channel.value}"


def bypasses(page: Page) -> bool:
    """SEV1 pages are never held (notices and digests always are subject to the limit)."""
    return page.kind == "page" and page.severity is Severity.SEV1


def refill(bucket: Bucket | None, page: Page, limit: Limit, now: datetime) -> Bucket:
    """The bucket at ``now`` (a new destination starts full), addressed as ``page`` is."""
    if bucket is None:
        return Bucket(page.recipient, page.channel, page.address, float(limit.rate), now)
    return replace(_refilled(bucket, limit, now), address=page.address)


def _refilled(bucket: Bucket, limit: Limit, now: datetime) -> Bucket:
    if bucket.updated_at is None:
        return replace(bucket, tokens=float(limit.rate), updated_at=now)
    elapsed = max(0.0, (now - bucket.updated_at).total_seconds())
    tokens = min(float(limit.rate), bucket.tokens + elapsed / limit.refill_s)
    return replace(bucket, tokens=tokens, updated_at=max(now, bucket.updated_at))


@dataclass(frozen=True)
class Admission:
    """What to do with one page: send it now, or hold it for the digest (already held: a
    redelivery, which changes nothing)."""

    bucket: Bucket
    send: bool
    already_held: bool = False


def admit(bucket: Bucket | None, page: Page, limit: Limit, now: datetime) -> Admission:
    """Take a token for ``page``, or hold it.

    >>> from datetime import UTC, datetime as dt
    >>> t = dt(2026, 1, 1, tzinfo=UTC)
    >>> page = Page(dedup_key="i/0/ann/console", incident_id="i", routing_key="api", step=0,
    ...             recipient="ann", channel="console", address="", severity="SEV2",
    ...             subject="[SEV2] api latency", body="", created_at=t)
    >>> b = None
    >>> sent = []
    >>> for n in range(4):
    ...     a = admit(b, page.model_copy(update={"dedup_key": f"k{n}"}), Limit(3, 60), t)
    ...     b, _ = a.bucket, sent.append(a.send)
    >>> sent, [h.dedup_key for h in b.held]
    ([True, True, True, False], ['k3'])
    """
    b = refill(bucket, page, limit, now)
    if any(h.dedup_key == page.dedup_key for h in b.held):
        return Admission(b, send=False, already_held=True)
    if bypasses(page):
        return Admission(replace(b, tokens=max(0.0, b.tokens - 1)), send=True)
    if not b.held and b.tokens >= 1:
        return Admission(replace(b, tokens=b.tokens - 1), send=True)
    return Admission(replace(b, held=(*b.held, Held.of(page))), send=False)


def flush_due(bucket: Bucket, limit: Limit) -> datetime | None:
    """When the digest of what ``bucket`` holds can go (None: it holds nothing)."""
    if not bucket.held or bucket.updated_at is None:
        return None
    missing = max(0.0, 1.0 - bucket.tokens)
    return bucket.updated_at + timedelta(seconds=missing * limit.refill_s)


@dataclass(frozen=True)
class Flushed:
    """The bucket after a flush, and the digest to send (None: nothing to send yet)."""

    bucket: Bucket
    digest: Page | None = None
    held: tuple[Held, ...] = ()


#: Lines a digest lists; the rest are counted.
DIGEST_LINES = 50


def flush(bucket: Bucket, limit: Limit, now: datetime) -> Flushed:
    """The digest of everything held, if a token is free at ``now``; it takes that token."""
    b = _refilled(bucket, limit, now)
    if not b.held or b.tokens < 1:
        return Flushed(b)
    n = b.digests + 1
    held = b.held
    worst = min(h.severity for h in held)  # "SEV1" < "SEV2"
    incidents = len({h.incident_id for h in held})
    lines = [f"- {h.subject} (incident {h.incident_id})" for h in held[:DIGEST_LINES]]
    if len(held) > DIGEST_LINES:
        lines.append(f"- ... and {len(held) - DIGEST_LINES} more")
    body = (
        f"{len(held)} message(s) about {incidents} incident(s) were held back by the rate limit "
        f"of {limit.rate} per {limit.window_s:g}s for {b.recipient}:\n" + "\n".join(lines)
    )
    digest = Page(
        dedup_key=f"digest/{b.key}/{n}",
        incident_id="digest",
        routing_key="digest",
        step=0,
        recipient=b.recipient,
        channel=b.channel,
        address=b.address,
        severity=worst,
        subject=f"[digest] [{worst.value}] {incidents} incident(s) for {b.recipient}",
        body=body,
        created_at=now,
        kind="digest",
        incidents=list(dict.fromkeys(h.incident_id for h in held)),
    )
    return Flushed(replace(b, tokens=b.tokens - 1, held=(), digests=n), digest, held)
