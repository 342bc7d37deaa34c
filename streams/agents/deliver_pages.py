"""``deliver_pages``: pages in (``mobilization.pages.v1``), deliveries and receipts out.

The ``notification-log`` table, keyed by each page's ``dedup_key``, makes delivery at most once
per key across replays; failures are retried with bounded exponential backoff and jitter, then
dead-lettered with the reason. Every attempt gets a receipt on ``mobilization.receipts.v1``.
"""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from schemas import Page, Receipt, ReceiptOutcome
from streams.codec import decode_one, encode

if TYPE_CHECKING:
    from streams.app import Pipeline


def attach(p: Pipeline) -> None:
    log_table, s = p.tables.notification_log, p.settings

    async def receipt(
        page: Page, outcome: ReceiptOutcome, attempt: int, detail: str | None
    ) -> None:
        r = Receipt(
            dedup_key=page.dedup_key,
            incident_id=page.incident_id,
            recipient=page.recipient,
            channel=page.channel,
            outcome=outcome,
            attempt=attempt,
            at=datetime.now(tz=UTC),
            detail=detail,
        )
        await p.topics.receipts.send(key=page.incident_id.encode(), value=encode(r))

    @p.app.agent(p.topics.pages, name="deliver_pages")
    async def deliver_pages(stream: Any) -> None:
        async for event in stream.events():
            decoded = decode_one(event.value, Page)
            if decoded.rejected:
                await p.dead_letters.send(event.message, "decode", decoded.rejected[0].reason)
                continue
            page = decoded.items[0]
            if log_table.get(page.dedup_key) is not None:
                await receipt(page, ReceiptOutcome.DUPLICATE, 1, "already handled")
                continue
            notifier = p.notifiers[page.channel]
            detail: str | None = None
            for attempt in range(1, s.delivery_attempts + 1):
                result = await notifier.deliver(page)
                detail = result.detail
                if result.delivered:
                    await receipt(page, ReceiptOutcome.DELIVERED, attempt, detail)
                    log_table[page.dedup_key] = {"outcome": "delivered", "attempts": attempt}
                    p.count("pages_delivered")
                    break
                last = attempt == s.delivery_attempts or not result.retryable
                await receipt(page, ReceiptOutcome.FAILED, attempt, detail)
                if last:
                    break
                backoff = min(s.delivery_backoff_s * 2 ** (attempt - 1), s.delivery_backoff_max_s)
                await asyncio.sleep(backoff * (0.5 + random.random() / 2))
            if log_table.get(page.dedup_key) is None:
                await receipt(page, ReceiptOutcome.DEAD_LETTERED, attempt, detail)
                log_table[page.dedup_key] = {"outcome": "dead_lettered", "attempts": attempt}
                p.count("pages_dead_lettered")
                await p.dead_letters.send(event.message, "deliver", f"undeliverable: {detail}")
