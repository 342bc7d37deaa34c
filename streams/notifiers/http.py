"""One JSON POST and what its outcome means for a retry (the webhook and Slack channels, and
runbook webhooks)."""

from __future__ import annotations

from dataclasses import dataclass

import aiohttp

from responders.ports import DeliveryResult


def retryable_status(status: int) -> bool:
    """5xx, 408 and 429 may succeed later; any other failure will not.

    >>> [retryable_status(s) for s in (500, 503, 408, 429, 400, 404)]
    [True, True, True, True, False, False]
    """
    return status >= 500 or status in (408, 429)


def classify(status: int) -> DeliveryResult:
    """2xx is delivered; 5xx, 408 and 429 may succeed later; any other status will not."""
    if 200 <= status < 300:
        return DeliveryResult(delivered=True, detail=f"HTTP {status}")
    return DeliveryResult(False, retryable_status(status), f"HTTP {status}")


@dataclass(frozen=True)
class Answer:
    """What one POST came to: an HTTP status (and the body, when asked for), or the error of a
    request that got none (a timeout, a refused connection), which is worth a retry."""

    status: int | None
    body: str = ""
    error: str | None = None
    timed_out: bool = False

    @property
    def retryable(self) -> bool:
        return self.status is None or retryable_status(self.status)

    def result(self) -> DeliveryResult:
        """The answer as a notifier's outcome."""
        if self.status is not None:
            return classify(self.status)
        return DeliveryResult(False, True, self.error)


class JsonPoster:
    """A lazily opened ``aiohttp`` session that POSTs bytes with a total timeout."""

    def __init__(self, timeout_s: float) -> None:
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._session: aiohttp.ClientSession | None = None

    async def post(self, url: str, body: bytes, headers: dict[str, str]) -> DeliveryResult:
        return (await self.answer(url, body, headers)).result()

    async def answer(
        self, url: str, body: bytes, headers: dict[str, str], read_body: bool = False
    ) -> Answer:
        """POST ``body`` as JSON; the status (and, with ``read_body``, the text answered)."""
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        try:
            async with self._session.post(
                url, data=body, headers={"Content-Type": "application/json", **headers}
            ) as response:
                text = await response.text(errors="replace") if read_body else ""
                return Answer(response.status, text)
        except TimeoutError:
            return Answer(None, error="timed out", timed_out=True)
        except aiohttp.ClientError as exc:
            return Answer(None, error=f"{type(exc).__name__}: {exc}")

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
