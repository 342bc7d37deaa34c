"""One JSON POST and what its outcome means for a retry (the webhook and Slack channels)."""

from __future__ import annotations

import aiohttp

from responders.ports import DeliveryResult


def classify(status: int) -> DeliveryResult:
    """2xx is delivered; 5xx, 408 and 429 may succeed later; any other status will not."""
    if 200 <= status < 300:
        return DeliveryResult(delivered=True, detail=f"HTTP {status}")
    retryable = status >= 500 or status in (408, 429)
    return DeliveryResult(False, retryable, f"HTTP {status}")


class JsonPoster:
    """A lazily opened ``aiohttp`` session that POSTs bytes with a total timeout."""

    def __init__(self, timeout_s: float) -> None:
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._session: aiohttp.ClientSession | None = None

    async def post(self, url: str, body: bytes, headers: dict[str, str]) -> DeliveryResult:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        try:
            async with self._session.post(
                url, data=body, headers={"Content-Type": "application/json", **headers}
            ) as response:
                return classify(response.status)
        except TimeoutError:
            return DeliveryResult(False, True, "timed out")
        except aiohttp.ClientError as exc:
            return DeliveryResult(False, True, f"{type(exc).__name__}: {exc}")

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
