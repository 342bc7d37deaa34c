"""Slack channel: the page as an incoming-webhook message (fallback text plus Block Kit blocks).

The contact's address is the incoming-webhook URL Slack gave for a channel. Slack answers 200
``ok``; 5xx, 408, 429 and timeouts are retryable, other 4xx (``invalid_payload``, ``no_service``,
``channel_is_archived``, ...) are not.

Alert text is untrusted: every field of it is escaped for mrkdwn (``&``, ``<``, ``>``, as Slack's
formatting docs ask), so ``<!channel>``, ``<@U123>`` or ``<https://evil|click>`` in a service or
signal name shows as typed and neither notifies anyone nor links anywhere. The only links are the
incident's and the runbook's (``streams.notifiers.links``), and link previews are off.
"""

from __future__ import annotations

import json
from typing import Any

from responders.ports import DeliveryResult
from schemas import Page
from streams.notifiers.http import JsonPoster
from streams.notifiers.links import ActionLinks, links_for
from streams.notifiers.text import one_line


def _escape(text: str) -> str:
    """Slack's mrkdwn escaping: only ``&``, ``<`` and ``>`` are special.

    >>> _escape("<!channel> & <https://evil.example|click>")
    '&lt;!channel&gt; &amp; &lt;https://evil.example|click&gt;'
    """
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _link(url: str, label: str) -> str:
    """``<url|label>`` with the label escaped and the URL unable to end the link early.

    >>> _link("https://rb.example/a?x=1&y=|2", "Runbook <1>")
    '<https://rb.example/a?x=1&amp;y=%7C2|Runbook &lt;1&gt;>'
    """
    return f"<{_escape(url).replace('|', '%7C')}|{_escape(label)}>"


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _buttons(page: Page) -> dict[str, Any]:
    """Acknowledge and resolve buttons; ``/api/slack/interactivity`` receives their presses
    (``action_id``: the action, ``value``: the incident)."""
    return {
        "type": "actions",
        "elements": [
            {"type": "button", "action_id": action, "value": page.incident_id,
             "text": {"type": "plain_text", "text": action.capitalize()},
             **({"style": "primary"} if action == "acknowledge" else {})}
            for action in ("acknowledge", "resolve")
        ],
    }  # fmt: skip


def slack_message(
    page: Page,
    incident_url: str | None = None,
    actions: ActionLinks | None = None,
    buttons: bool = False,
) -> dict[str, Any]:
    """The incoming-webhook payload for a page: ``text`` (notifications and fallback) and blocks
    with the title, severity, service, incident, escalation step, body and links; with
    ``buttons`` (a Slack app's signing secret is set), acknowledge and resolve buttons."""
    links = links_for(page, incident_url, actions)
    subject = one_line(page.subject)
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": _clip(subject, 150)}},
        {
            "type": "section",
            "fields": [
                {"type": "mrkdwn", "text": f"*Severity*\n{page.severity.value}"},
                {"type": "mrkdwn", "text": f"*Service*\n{_escape(one_line(page.routing_key))}"},
                {"type": "mrkdwn", "text": f"*Incident*\n{_escape(one_line(page.incident_id))}"},
                {"type": "mrkdwn", "text": f"*Escalation step*\n{page.step}"},
            ],
        },
        {"type": "section", "text": {"type": "mrkdwn", "text": _clip(_escape(page.body), 3000)}},
    ]
    if links:
        text = " · ".join(_link(url, label) for label, url in links)
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": text}})
    if buttons and page.kind == "page" and not page.incidents:
        blocks.append(_buttons(page))
    key = _escape(one_line(page.dedup_key))
    blocks.append(
        {"type": "context", "elements": [{"type": "mrkdwn", "text": f"dedup key `{key}`"}]}
    )
    text = _clip(_escape(f"{subject} ({one_line(page.routing_key)})"), 3000)
    # No previews: a URL in alert text must not make Slack fetch it or show its page.
    return {"text": text, "blocks": blocks, "unfurl_links": False, "unfurl_media": False}


class SlackNotifier:
    """POSTs a Slack incoming-webhook message to the contact's webhook URL."""

    def __init__(
        self,
        timeout_s: float = 5.0,
        incident_url: str | None = None,
        actions: ActionLinks | None = None,
        buttons: bool = False,
    ) -> None:
        self._poster = JsonPoster(timeout_s)
        self._incident_url = incident_url
        self._actions = actions
        self._buttons = buttons

    async def deliver(self, page: Page) -> DeliveryResult:
        message = slack_message(page, self._incident_url, self._actions, self._buttons)
        body = json.dumps(message).encode()
        return await self._poster.post(page.address, body, {})

    async def close(self) -> None:
        await self._poster.close()
