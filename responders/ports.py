"""Ports the shell implements: how a page leaves the building."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from schemas import Page


@dataclass(frozen=True)
class DeliveryResult:
    """Alertmanager-style outcome: delivered, or failed and whether a retry may help."""

    delivered: bool
    retryable: bool = False
    detail: str | None = None


class Notifier(Protocol):
    """Delivers one page over one channel."""

    async def deliver(self, page: Page) -> DeliveryResult: ...
