"""Console channel: the page as one log line (development, demos, and a last resort)."""

from __future__ import annotations

import logging

from responders.ports import DeliveryResult
from schemas import Page
from streams.notifiers.text import one_line

log = logging.getLogger("warroom.pages")


class ConsoleNotifier:
    """Writes each page to the ``warroom.pages`` logger, on one line whatever its text holds."""

    async def deliver(self, page: Page) -> DeliveryResult:
        fields = (page.dedup_key, page.recipient, page.subject)
        log.warning("PAGE %s -> %s: %s", *(one_line(f) for f in fields))
        return DeliveryResult(delivered=True)
