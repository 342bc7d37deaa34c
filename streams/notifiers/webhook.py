"""Generic webhook channel: the page as a JSON POST, with its dedup key in a header."""

from __future__ import annotations

import aiohttp

from responders.ports import DeliveryResult
from schemas import Page


class WebhookNotifier:
    """POSTs ``Page`` JSON to the contact's address; 5xx, 429 and timeouts are retryable."""

    def __init__(self, timeout_s: float = 5.0) -> None:
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._session: aiohttp.ClientSession | None = None

    async def deliver(self, page: Page) -> DeliveryResult:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        headers = {
            "Content-Type": "application/json",
            "Idempotency-Key": page.dedup_key,
            "X-Warroom-Dedup-Key": page.dedup_key,
        }
        try:
            async with self._session.post(
                page.address, data=page.model_dump_json(), headers=headers
            ) as response:
                if 200 <= response.status < 300:
                    return DeliveryResult(delivered=True, detail=f"HTTP {response.status}")
                retryable = response.status >= 500 or response.status in (408, 429)
                return DeliveryResult(False, retryable, f"HTTP {response.status}")
        except TimeoutError:
            return DeliveryResult(False, True, "timed out")
        except aiohttp.ClientError as exc:
            return DeliveryResult(False, True, f"{type(exc).__name__}: {exc}")

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
