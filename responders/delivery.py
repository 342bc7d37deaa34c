"""The decisions of page delivery (the shell is ``streams.agents.deliver_pages``): what to do
with a page that arrives, what a delivery's last attempt settles (receipts, notification-log
entries, a dead letter, the incident told), what an outcome counts, and when an unfinished
delivery may be taken up again.

A delivery is recorded in the notification log as ``pending`` before its first attempt, and its
outcome is written over that entry once it has been read back from the broker.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from responders.engine import Counts
from responders.ports import DeliveryResult
from responders.throttle import Bucket, Limit, admit
from schemas import Command, CommandKind, Page, Receipt, ReceiptOutcome

#: The notification-log outcome of a delivery not finished yet.
PENDING = "pending"

#: A notification-log entry as an outcome writes it.
Entry = dict[str, str | int | None]


def pending(entry: Any) -> bool:
    """Whether a notification-log entry is a delivery not finished (the ``keep`` of the
    ``notification-log`` table: held in memory whatever the table store, for the resume).

    >>> pending({"outcome": "pending"}), pending({"outcome": "delivered"}), pending("pending")
    (True, False, False)
    """
    return isinstance(entry, dict) and entry.get("outcome") == PENDING


def read_past(done: int | None, committed: int | None, end: int) -> bool:
    """Whether a partition has been processed up to ``end`` (exclusive), given the last offset
    this worker's stream processed on it (``done``) and its committed offset: what was
    committed was processed, here or by the partition's owner while it was away from here
    (``done`` is then an offset read before it went away).

    >>> read_past(None, 4, 9), read_past(8, 4, 9), read_past(100, 151, 151)
    (False, True, True)
    """
    return max(done + 1 if done is not None else 0, committed or 0) >= end


@dataclass(frozen=True)
class Arrival:
    """What to do with a page read by the delivery stream: hand it to its lane (``send``), or
    answer it with a ``duplicate`` receipt (``detail`` says why), or hold it for a digest.
    ``bucket`` is its destination's bucket to write back (None: no rate limit)."""

    send: bool
    bucket: Bucket | None = None
    duplicate: str | None = None


def arrive(
    page: Page, logged: bool, bucket: Bucket | None, limit: Limit | None, now: datetime
) -> Arrival:
    """Decide on ``page``: a page already in the notification log (``logged``) is a duplicate;
    else, under a rate ``limit``, it takes a token from its destination's ``bucket``, or is
    held (a page held already is a duplicate too)."""
    if logged:
        return Arrival(False, duplicate="already handled")
    if limit is None:
        return Arrival(True)
    admitted = admit(bucket, page, limit, now)
    if admitted.already_held:
        return Arrival(False, admitted.bucket, duplicate="held for a digest")
    return Arrival(admitted.send, admitted.bucket)


@dataclass(frozen=True)
class Notice:
    """One receipt to send: the outcome of a delivery attempt for the page ``dedup_key``."""

    dedup_key: str
    incident_id: str
    outcome: ReceiptOutcome
    attempt: int
    detail: str | None


@dataclass(frozen=True)
class Settled:
    """What a delivery's last attempt settles: a receipt for the page when it is dead-lettered
    (``lost``, with the dead letter's ``reason``), a receipt for each page a digest held
    (``folded``), the notification-log entries to write over the pending ones, and whether the
    incident is told its page reached nobody (``escalate``)."""

    lost: Notice | None
    reason: str | None
    escalate: bool
    folded: tuple[Notice, ...]
    entries: dict[str, Entry]


def settle(
    page: Page, held: Sequence[tuple[str, str]], result: DeliveryResult, tries: int
) -> Settled:
    """What the last of ``tries`` attempts to deliver ``page`` settles; ``held`` are the
    (dedup key, incident id) of the pages a digest folds in."""
    delivered, detail = result.delivered, result.detail
    outcome = ReceiptOutcome.DELIVERED if delivered else ReceiptOutcome.DEAD_LETTERED
    entries: dict[str, Entry] = {page.dedup_key: {"outcome": outcome.value, "attempts": tries}}
    folded_as = ReceiptOutcome.DIGESTED if delivered else ReceiptOutcome.DEAD_LETTERED
    folded = tuple(
        Notice(key, incident_id, folded_as, tries, f"in {page.dedup_key}")
        for key, incident_id in held
    )
    for key, _ in held:
        entries[key] = {"outcome": folded_as.value, "in": page.dedup_key}
    if delivered:
        return Settled(None, None, False, folded, entries)
    lost = Notice(page.dedup_key, page.incident_id, outcome, tries, detail)
    return Settled(lost, f"undeliverable: {detail}", page.kind == "page", folded, entries)


def receipt(notice: Notice, page: Page, at: datetime) -> Receipt:
    """The receipt of ``notice``, for a page that went to ``page``'s destination."""
    return Receipt(
        dedup_key=notice.dedup_key,
        incident_id=notice.incident_id,
        recipient=page.recipient,
        channel=page.channel,
        outcome=notice.outcome,
        attempt=notice.attempt,
        at=at,
        detail=notice.detail,
    )


def delivery_failed(page: Page, detail: str | None, at: datetime) -> Command:
    """The command telling ``page``'s incident that this page reached nobody: its timeline
    records it, and the next escalation step is paged at once if this was the current one.
    Its id derives from the page, so a second failure of the same page changes nothing."""
    return Command(
        id="dlv-" + hashlib.sha256(page.dedup_key.encode()).hexdigest()[:24],
        kind=CommandKind.DELIVERY_FAILED,
        incident_id=page.incident_id,
        routing_key=page.routing_key,
        actor="warroom",
        issued_at=at,
        # A destination's own words: cut first, and a lone surrogate cannot be encoded as UTF-8.
        text=(detail or "undeliverable")[:1000].encode("utf-8", "replace").decode("utf-8"),
        person=page.recipient,
        page=page.dedup_key,
        step=page.step,
    )


def outcome_counts(entries: Mapping[str, Mapping[str, object]]) -> Counts:
    """The counters an outcome moves: the page (or digest) delivered or dead-lettered, and a
    digest sent (its entries include the pages it folded in, marked with ``in``).

    >>> outcome_counts({"d": {"outcome": "delivered"}, "k": {"outcome": "digested", "in": "d"}})
    (('pages_delivered', 1), ('digests_sent', 1))
    >>> outcome_counts({"k": {"outcome": "dead_lettered"}})
    (('pages_dead_lettered', 1),)
    """
    sent = [e for e in entries.values() if "in" not in e]  # the page or digest sent
    delivered = any(e.get("outcome") == ReceiptOutcome.DELIVERED.value for e in sent)
    digest = len(sent) < len(entries)
    return (
        ("pages_delivered" if delivered else "pages_dead_lettered", 1),
        *((("digests_sent", int(delivered)),) if digest else ()),
    )
