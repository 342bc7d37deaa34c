"""Console channel: the page as one log line (development, demos, and a last resort)."""

from __future__ import annotations

import logging

from responders.ports import DeliveryResult
from schemas import Page

log = logging.getLogger("warroom.pages")


class ConsoleNotifier:
    """Writes each page to the ``warroom.pages`` logger."""

    async def deliver(self, page: Page) -> DeliveryResult:
        log.warning("PAGE %s -> %s: %s", page.dedup_key, page.recipient, page.subject)
        return DeliveryResult(delivered=True)
