"""``deliver_pages``: pages in (``mobilization.pages.v1``), deliveries and receipts out.

Two stages. ``deliver_pages`` validates each page (or dead-letters it) and re-keys it by its
destination, ``<recipient>/<channel>``, onto the internal ``mobilization.deliveries.v1``;
``deliver_to_recipients`` reads that topic, so each destination's rate limit (the
``page-throttle`` table, :mod:`responders.throttle`) is kept in exactly one partition. A page
within the limit is delivered; one over it is held and folded into a digest. A timer sends a
``FlushDigest`` (keyed by destination, like the pages) when a held digest may go, so the digest
is sent even if no further page arrives, and every table write happens inside the stream.

The ``notification-log`` table, keyed by each page's ``dedup_key``, makes delivery once per key
across replays; only a crash between a notifier's answer and the table write reaching the broker
sends that page again on recovery, under the same key (``Idempotency-Key``), so delivery is at
least once and idempotent receivers see it once. Failures are retried with bounded exponential
backoff and jitter, then dead-lettered with the reason. Every attempt gets a receipt on
``mobilization.receipts.v1``, and every held page one more when its digest has gone
(``digested``).

Each notification-log entry records when it was written and is forgotten
``delivery_log_retention_s`` (120 h) later (:mod:`streams.retention`): a timer sends a
``PruneEntry`` for each due entry to the partition of this topic that holds it, and this stream
deletes it.
"""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from responders.throttle import Bucket, Held, Limit, admit, flush, flush_due, throttle_key
from schemas import Page, Receipt, ReceiptOutcome
from schemas.mobilization import FlushDigest
from schemas.retention import PruneEntry
from streams.agents import FirstInput
from streams.codec import decode_one, encode
from streams.retention import LogRetention

if TYPE_CHECKING:
    from streams.app import Pipeline


def attach(p: Pipeline) -> None:
    log_table, buckets, s = p.tables.notification_log, p.tables.page_throttle, p.settings
    rate = s.page_rate_per_recipient
    limit = Limit(rate, s.page_rate_window_s) if rate > 0 else None
    flushing: dict[str, datetime] = {}
    retention = LogRetention(p, log_table, p.topics.deliveries, "notification_log_forgotten")

    def log(key: str, entry: dict[str, Any]) -> None:
        retention.write(key, entry, datetime.now(tz=UTC))

    async def receipt(
        page: Page | Held,
        to: Bucket | Page,
        outcome: ReceiptOutcome,
        attempt: int,
        detail: str | None,
    ) -> None:
        r = Receipt(
            dedup_key=page.dedup_key,
            incident_id=page.incident_id,
            recipient=to.recipient,
            channel=to.channel,
            outcome=outcome,
            attempt=attempt,
            at=datetime.now(tz=UTC),
            detail=detail,
        )
        await p.topics.receipts.send(key=page.incident_id.encode(), value=encode(r))

    async def deliver(page: Page, message: Any) -> tuple[bool, int, str | None]:
        """Send with retries, a receipt per attempt; log the outcome under the dedup key."""
        notifier = p.notifiers[page.channel]
        detail: str | None = None
        attempt = 1
        for attempt in range(1, s.delivery_attempts + 1):
            result = await notifier.deliver(page)
            detail = result.detail
            if result.delivered:
                await receipt(page, page, ReceiptOutcome.DELIVERED, attempt, detail)
                log(page.dedup_key, {"outcome": "delivered", "attempts": attempt})
                p.count("pages_delivered")
                return True, attempt, detail
            await receipt(page, page, ReceiptOutcome.FAILED, attempt, detail)
            if attempt == s.delivery_attempts or not result.retryable:
                break
            backoff = min(s.delivery_backoff_s * 2 ** (attempt - 1), s.delivery_backoff_max_s)
            await asyncio.sleep(backoff * (0.5 + random.random() / 2))
        await receipt(page, page, ReceiptOutcome.DEAD_LETTERED, attempt, detail)
        log(page.dedup_key, {"outcome": "dead_lettered", "attempts": attempt})
        p.count("pages_dead_lettered")
        await p.dead_letters.send(message, "deliver", f"undeliverable: {detail}")
        return False, attempt, detail

    async def on_page(page: Page, message: Any, now: datetime) -> None:
        if log_table.get(page.dedup_key) is not None:
            await receipt(page, page, ReceiptOutcome.DUPLICATE, 1, "already handled")
            return
        if limit is not None:
            key = throttle_key(page)
            saved = buckets.get(key)
            admitted = admit(Bucket.from_dict(saved) if saved else None, page, limit, now)
            buckets[key] = admitted.bucket.to_dict()
            if admitted.already_held:
                await receipt(page, page, ReceiptOutcome.DUPLICATE, 1, "held for a digest")
                return
            if not admitted.send:
                p.count("pages_held")
                return
        await deliver(page, message)

    async def on_flush(key: str, message: Any, now: datetime) -> None:
        flushing.pop(key, None)
        saved = buckets.get(key)
        if limit is None or saved is None:
            return
        flushed = flush(Bucket.from_dict(saved), limit, now)
        digest = flushed.digest
        if digest is None:
            return
        if log_table.get(digest.dedup_key) is None:  # else: sent before a crash, and replayed
            delivered, attempts, _ = await deliver(digest, message)
            outcome = ReceiptOutcome.DIGESTED if delivered else ReceiptOutcome.DEAD_LETTERED
            for held in flushed.held:
                await receipt(held, flushed.bucket, outcome, attempts, f"in {digest.dedup_key}")
                log(held.dedup_key, {"outcome": outcome.value, "in": digest.dedup_key})
            p.count("digests_sent", int(delivered))
        buckets[key] = flushed.bucket.to_dict()

    @p.app.agent(p.topics.pages, name="deliver_pages")
    async def deliver_pages(stream: Any) -> None:
        first = FirstInput("deliver_pages")
        async for event in stream.events():
            first(event.message)
            page = await p.dead_letters.decoded(event, Page)
            if page is None:
                continue
            key = throttle_key(page).encode()
            await p.topics.deliveries.send(key=key, value=event.value)

    @p.app.agent(p.topics.deliveries, name="deliver_to_recipients")
    async def deliver_to_recipients(stream: Any) -> None:
        first = FirstInput("deliver_to_recipients")
        async for event in stream.events():
            first(event.message)
            now = datetime.now(tz=UTC)
            try:
                flush_request = decode_one(event.value, FlushDigest)
                if flush_request.items:
                    await on_flush(flush_request.items[0].key, event.message, now)
                    continue
                prune_request = decode_one(event.value, PruneEntry)
                if prune_request.items:
                    retention.on_request(prune_request.items[0], now)
                    continue
                page = await p.dead_letters.decoded(event, Page)
                if page is None:
                    continue
                await on_page(page, event.message, now)
            except Exception as exc:
                p.count("delivery_errors")
                await p.dead_letters.send(event.message, "deliver", f"{type(exc).__name__}: {exc}")

    @p.app.timer(interval=0.5)
    async def flush_digests() -> None:
        if limit is None:
            return
        now = datetime.now(tz=UTC)
        for key, value in list(buckets.items()):
            due = flush_due(Bucket.from_dict(value), limit)
            if due is None or due > now or flushing.get(key) == due:
                continue
            flushing[key] = due
            request = FlushDigest(key=key, at=now)
            await p.topics.deliveries.send(key=key.encode(), value=encode(request))

    if retention.retention_s > 0:

        @p.app.timer(interval=retention.interval_s)
        async def prune_notification_log() -> None:
            await retention.scan(datetime.now(tz=UTC))
