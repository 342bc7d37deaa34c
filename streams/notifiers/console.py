"""Console channel: the page as one log line (development, demos, and a last resort), ending with
the links a reader follows (the incident's page, the runbook)."""

from __future__ import annotations

import logging

from responders.ports import DeliveryResult
from schemas import Page
from streams.notifiers.links import links_for
from streams.notifiers.text import one_line

log = logging.getLogger("warroom.pages")


class ConsoleNotifier:
    """Writes each page to the ``warroom.pages`` logger, on one line whatever its text holds."""

    def __init__(self, incident_url: str | None = None) -> None:
        self._incident_url = incident_url

    async def deliver(self, page: Page) -> DeliveryResult:
        fields = (page.dedup_key, page.recipient, page.subject)
        links = "".join(
            f" | {label}: {one_line(url)}" for label, url in links_for(page, self._incident_url)
        )
        log.warning("PAGE %s -> %s: %s%s", *(one_line(f) for f in fields), links)
        return DeliveryResult(delivered=True)
