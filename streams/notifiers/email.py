"""Email channel: the page as a plain-text and HTML message over SMTP (stdlib ``smtplib``, run
in a thread so the event loop never blocks).

SMTP's own codes say whether to retry: 4xx replies are transient (retryable), 5xx permanent.
Connection failures and timeouts are retryable. The ``Message-ID`` is derived from the page's
dedup key, so a replayed page is recognisably the same message.

Alert text is untrusted: header values are made one line (a CR/LF in a service or signal name
can neither add a header nor make the message unsendable), the HTML part escapes every field,
and the only links are the incident's and the catalog's runbook (``streams.notifiers.links``).
An address that is not one plain mailbox is refused for good, before any SMTP command.
"""

from __future__ import annotations

import asyncio
import hashlib
import html
import smtplib
import ssl
from dataclasses import dataclass
from email.errors import HeaderParseError
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime

from responders.ports import DeliveryResult
from schemas import Page
from streams.notifiers.links import ActionLinks, links_for
from streams.notifiers.text import one_line

#: Characters of a subject kept in the header (the whole title is in the body).
SUBJECT_CHARS = 250


@dataclass(frozen=True)
class SmtpConfig:
    """Where and how to send: from ``Settings.smtp_*``; no host means email is not configured."""

    host: str | None
    port: int = 25
    sender: str = "warroom@localhost"
    starttls: bool = False
    username: str | None = None
    password: str | None = None
    timeout_s: float = 10.0


def mailbox(address: str) -> str:
    r"""``address`` if it is one plain mailbox (``user@domain``, no display name, no line break);
    raises ValueError otherwise.

    >>> mailbox("ann@example.com")
    'ann@example.com'
    >>> mailbox("ann@example.com\r\nBcc: all@example.com")
    Traceback (most recent call last):
    ...
    ValueError: not one mailbox: 'ann@example.com\r\nBcc: all@example.com'
    """
    try:
        parsed = Address(addr_spec=address)
    except (ValueError, IndexError, HeaderParseError):
        raise ValueError(f"not one mailbox: {address!r}") from None
    if parsed.addr_spec != address or not parsed.domain or one_line(address) != address:
        raise ValueError(f"not one mailbox: {address!r}")
    return address


def email_message(
    page: Page, sender: str, incident_url: str | None = None, actions: ActionLinks | None = None
) -> EmailMessage:
    """The message for a page: subject, a plain-text part and an HTML alternative with links
    (the signed acknowledge and resolve links among them, with ``actions``). Raises ValueError
    when the page's address is not one mailbox."""
    links = links_for(page, incident_url, actions)
    message = EmailMessage()
    message["Subject"] = one_line(page.subject, SUBJECT_CHARS)
    message["From"] = sender
    message["To"] = mailbox(page.address)
    message["Date"] = format_datetime(page.created_at)
    digest = hashlib.sha256(page.dedup_key.encode()).hexdigest()[:32]
    message["Message-ID"] = f"<{digest}@warroom>"
    message["X-Warroom-Dedup-Key"] = one_line(page.dedup_key)
    facts = [
        ("Severity", page.severity.value),
        ("Service", page.routing_key),
        ("Incident", page.incident_id),
        ("Escalation step", str(page.step)),
    ]
    lines = [f"{k}: {one_line(v)}" for k, v in facts] + [f"{k}: {u}" for k, u in links]
    text = "\n".join([page.body, "", *lines])
    message.set_content(text + "\n")
    rows = "".join(
        f"<tr><th align='left'>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>"
        for k, v in facts
    )
    anchors = " · ".join(
        f'<a href="{html.escape(url)}">{html.escape(label)}</a>' for label, url in links
    )
    message.add_alternative(
        "<!doctype html><html><body>"
        f"<h2>{html.escape(one_line(page.subject))}</h2><p>{html.escape(page.body)}</p>"
        f"<table>{rows}</table>" + (f"<p>{anchors}</p>" if anchors else "") + "</body></html>\n",
        subtype="html",
    )
    return message


class EmailNotifier:
    """Sends each page to the contact's address through the configured SMTP server."""

    def __init__(
        self,
        config: SmtpConfig,
        incident_url: str | None = None,
        actions: ActionLinks | None = None,
    ) -> None:
        self._actions = actions
        self._config = config
        self._incident_url = incident_url

    async def deliver(self, page: Page) -> DeliveryResult:
        if not self._config.host:
            return DeliveryResult(False, False, "email is not configured (WARROOM_SMTP_HOST)")
        try:
            recipient = mailbox(page.address)
        except ValueError as exc:
            return DeliveryResult(False, False, f"invalid address: {exc}")
        message = email_message(page, self._config.sender, self._incident_url, self._actions)
        return await asyncio.to_thread(self._send, message, recipient)

    def _send(self, message: EmailMessage, recipient: str) -> DeliveryResult:
        c = self._config
        assert c.host is not None
        try:
            with smtplib.SMTP(c.host, c.port, timeout=c.timeout_s) as smtp:
                if c.starttls:
                    smtp.starttls(context=ssl.create_default_context())
                if c.username:
                    smtp.login(c.username, c.password or "")
                smtp.send_message(message, c.sender, [recipient])
        except smtplib.SMTPRecipientsRefused as exc:
            code, reply = next(iter(exc.recipients.values()))
            return _refused(code, reply)
        except smtplib.SMTPResponseException as exc:
            return _refused(exc.smtp_code, exc.smtp_error)
        except TimeoutError:
            return DeliveryResult(False, True, "timed out")
        except (OSError, smtplib.SMTPException) as exc:
            return DeliveryResult(False, True, f"{type(exc).__name__}: {exc}")
        return DeliveryResult(delivered=True, detail="SMTP 250")

    async def close(self) -> None:
        return None


def _refused(code: int, reply: bytes | str) -> DeliveryResult:
    text = reply.decode(errors="replace") if isinstance(reply, bytes) else reply
    return DeliveryResult(False, 400 <= code < 500, f"SMTP {code} {text}".strip())
