"""Generic webhook channel: the page as a JSON POST, with its dedup key and a signature in headers.

The body is the page's JSON, which escapes any text; with action links configured it also has
``actions``: the signed acknowledge and resolve links of the recipient
(``streams.notifiers.links``). The dedup key also travels in headers, percent-encoded where it holds
anything but printable ASCII, so a line break in it cannot add a header (the body keeps it exact).

With a shared secret, ``X-Warroom-Signature: sha256=<hex>`` is the HMAC-SHA256 of the exact body
bytes, so a receiver can check that the page came from warroom and was not altered:

>>> signature(b'{"a":1}', "s3cret")
'sha256=5910e62016ef5034272c926c27071992a465c2335cecf41851bda071577f4f6d'
"""

from __future__ import annotations

import hashlib
import hmac
import json

from responders.ports import DeliveryResult
from schemas import Page
from streams.notifiers.http import JsonPoster
from streams.notifiers.links import ActionLinks
from streams.notifiers.text import header_value

SIGNATURE_HEADER = "X-Warroom-Signature"


def signature(body: bytes, secret: str) -> str:
    """The ``X-Warroom-Signature`` value for a body."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def webhook_body(page: Page, actions: ActionLinks | None = None) -> bytes:
    """The page's JSON; with ``actions``, its signed links too (``actions``: action to URL)."""
    if actions is None or not actions.of(page):
        return page.model_dump_json().encode()
    data = {**page.model_dump(mode="json"), "actions": dict(actions.of(page))}
    return json.dumps(data, separators=(",", ":")).encode()


class WebhookNotifier:
    """POSTs ``Page`` JSON to the contact's address; 5xx, 408, 429 and timeouts are retryable."""

    def __init__(
        self, timeout_s: float = 5.0, secret: str | None = None, actions: ActionLinks | None = None
    ) -> None:
        self._poster = JsonPoster(timeout_s)
        self._secret = secret
        self._actions = actions

    async def deliver(self, page: Page) -> DeliveryResult:
        body = webhook_body(page, self._actions)
        key = header_value(page.dedup_key)
        headers = {"Idempotency-Key": key, "X-Warroom-Dedup-Key": key}
        if self._secret:
            headers[SIGNATURE_HEADER] = signature(body, self._secret)
        return await self._poster.post(page.address, body, headers)

    async def close(self) -> None:
        await self._poster.close()
