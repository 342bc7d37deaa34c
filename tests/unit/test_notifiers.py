"""The delivery channels against real local servers: an aiohttp server standing in for webhook
receivers and Slack, and an aiosmtpd SMTP server receiving email."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import re
import socket
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from urllib.parse import quote

import pytest
from aiohttp import web
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from hypothesis import given, settings
from hypothesis import strategies as st

from responders.throttle import Bucket, Limit, admit, flush
from schemas import Channel, Page, Severity
from streams.notifiers.email import EmailNotifier, SmtpConfig
from streams.notifiers.links import incident_template
from streams.notifiers.slack import SlackNotifier, slack_message
from streams.notifiers.webhook import WebhookNotifier

SECRET = "shared-secret"
#: Where pages link: the incident's page for people, under the deployment's public URL.
INCIDENT_URL = incident_template("http://warroom.example/")


def page(channel: Channel, address: str) -> Page:
    return Page(
        dedup_key=f"inc-1/0/alice/{channel.value}",
        incident_id="inc-1",
        routing_key="checkout",
        step=0,
        recipient="alice",
        channel=channel,
        address=address,
        severity=Severity.SEV1,
        subject="[SEV1] checkout: latency_ms anomalous <p99>",
        body="Incident inc-1 on checkout is triggered. Runbook: https://runbooks.example/checkout",
        created_at=datetime(2026, 3, 29, 7, 0, tzinfo=UTC),
        runbook_url="https://runbooks.example/checkout",
    )


@dataclass
class Receiver:
    """A real HTTP server: ``/status/<code>`` answers that code, ``/slow`` never answers in time."""

    url: str
    requests: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    release: asyncio.Event = field(default_factory=asyncio.Event)


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    box: list[Receiver] = []

    async def status(request: web.Request) -> web.Response:
        box[0].requests.append((dict(request.headers), await request.read()))
        return web.Response(status=int(request.match_info["code"]), text="ok")

    async def slow(request: web.Request) -> web.Response:
        await box[0].release.wait()
        return web.Response(text="too late")

    app = web.Application()
    app.router.add_post("/status/{code}", status)
    app.router.add_post("/slow", slow)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    box.append(Receiver(url=f"http://127.0.0.1:{port}"))
    yield box[0]
    box[0].release.set()
    await runner.cleanup()


async def test_webhook_signs_the_exact_body(receiver: Receiver) -> None:
    notifier = WebhookNotifier(timeout_s=2.0, secret=SECRET)
    sent = page(Channel.WEBHOOK, f"{receiver.url}/status/200")
    result = await notifier.deliver(sent)
    await notifier.close()
    assert result.delivered
    headers, body = receiver.requests[0]
    expected = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    assert headers["X-Warroom-Signature"] == f"sha256={expected}"
    assert headers["Idempotency-Key"] == headers["X-Warroom-Dedup-Key"] == sent.dedup_key
    assert headers["Content-Type"] == "application/json"
    assert Page.model_validate_json(body) == sent


async def test_webhook_without_a_secret_is_unsigned(receiver: Receiver) -> None:
    notifier = WebhookNotifier(timeout_s=2.0)
    assert (await notifier.deliver(page(Channel.WEBHOOK, f"{receiver.url}/status/204"))).delivered
    await notifier.close()
    assert "X-Warroom-Signature" not in receiver.requests[0][0]


@pytest.mark.parametrize(
    ("path", "retryable"),
    [
        ("/status/500", True),
        ("/status/503", True),
        ("/status/429", True),
        ("/status/408", True),
        ("/status/400", False),
        ("/status/404", False),
        ("/slow", True),
    ],
    ids=["500", "503", "429", "408", "400", "404", "timeout"],
)
@pytest.mark.parametrize("channel", [Channel.WEBHOOK, Channel.SLACK], ids=["webhook", "slack"])
async def test_http_failures_say_whether_to_retry(
    receiver: Receiver, channel: Channel, path: str, retryable: bool
) -> None:
    notifier: WebhookNotifier | SlackNotifier = (
        WebhookNotifier(timeout_s=0.3, secret=SECRET)
        if channel is Channel.WEBHOOK
        else SlackNotifier(timeout_s=0.3)
    )
    result = await notifier.deliver(page(channel, f"{receiver.url}{path}"))
    await notifier.close()
    assert not result.delivered
    assert result.retryable is retryable
    assert result.detail == ("timed out" if path == "/slow" else f"HTTP {path.rsplit('/')[-1]}")


async def test_refused_connection_is_retryable() -> None:
    notifier = WebhookNotifier(timeout_s=1.0)
    result = await notifier.deliver(page(Channel.WEBHOOK, f"http://127.0.0.1:{free_port()}/x"))
    await notifier.close()
    assert not result.delivered and result.retryable


async def test_slack_incoming_webhook_shape(receiver: Receiver) -> None:
    notifier = SlackNotifier(timeout_s=2.0, incident_url=INCIDENT_URL)
    result = await notifier.deliver(page(Channel.SLACK, f"{receiver.url}/status/200"))
    await notifier.close()
    assert result.delivered
    headers, body = receiver.requests[0]
    assert headers["Content-Type"] == "application/json"
    message = json.loads(body)
    assert message["text"].startswith("[SEV1] checkout: latency_ms anomalous")
    kinds = [b["type"] for b in message["blocks"]]
    assert kinds == ["header", "section", "section", "section", "context"]
    assert message["blocks"][0]["text"] == {
        "type": "plain_text",
        "text": "[SEV1] checkout: latency_ms anomalous <p99>",
    }
    fields = [f["text"] for f in message["blocks"][1]["fields"]]
    assert "*Severity*\nSEV1" in fields and "*Service*\ncheckout" in fields
    links = message["blocks"][3]["text"]["text"]
    assert "<http://warroom.example/incidents/inc-1|Incident>" in links
    assert "<https://runbooks.example/checkout|Runbook>" in links


# --- email -----------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class Mailbox:
    """What the SMTP server accepted; recipients starting ``bounce`` are refused for good,
    ``busy`` ones for now."""

    port: int
    messages: list[tuple[str, list[str], bytes]] = field(default_factory=list)

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if address.startswith("bounce"):
            return "550 5.1.1 no such mailbox"
        if address.startswith("busy"):
            return "451 4.3.0 try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.content
        assert isinstance(content, bytes) and envelope.mail_from is not None
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), content))
        return "250 Message accepted for delivery"


@pytest.fixture
def mailbox() -> Iterator[Mailbox]:
    box = Mailbox(port=free_port())
    controller = Controller(box, hostname="127.0.0.1", port=box.port)
    controller.start()
    yield box
    controller.stop()


def mailer(port: int) -> EmailNotifier:
    config = SmtpConfig(host="127.0.0.1", port=port, sender="warroom@example.com", timeout_s=5)
    return EmailNotifier(config, incident_url=INCIDENT_URL)


async def test_email_arrives_with_text_html_and_the_incident_link(mailbox: Mailbox) -> None:
    result = await mailer(mailbox.port).deliver(page(Channel.EMAIL, "alice@example.com"))
    assert result.delivered, result.detail
    [(sender, recipients, raw)] = mailbox.messages
    assert sender == "warroom@example.com" and recipients == ["alice@example.com"]
    message = message_from_bytes(raw, policy=policy.default)
    assert isinstance(message, EmailMessage)
    assert message["Subject"] == "[SEV1] checkout: latency_ms anomalous <p99>"
    assert message["X-Warroom-Dedup-Key"] == "inc-1/0/alice/email"
    text = message.get_body(("plain",))
    html = message.get_body(("html",))
    assert text is not None and html is not None
    plain, rich = text.get_content(), html.get_content()
    assert "Incident: http://warroom.example/incidents/inc-1" in plain
    assert "Runbook: https://runbooks.example/checkout" in plain
    assert '<a href="http://warroom.example/incidents/inc-1">Incident</a>' in rich
    assert "&lt;p99&gt;" in rich


async def test_a_digest_links_each_incident_it_lists(mailbox: Mailbox) -> None:
    limit, now = Limit(rate=1, window_s=60.0), datetime(2026, 3, 29, 7, 0, tzinfo=UTC)
    bucket = Bucket("alice", Channel.EMAIL, "alice@example.com", tokens=0, updated_at=now)
    # SEV2: a SEV1 page is never held. Two pages about inc-2 make one link.
    for n, incident in enumerate(["inc-1", "inc-2", "inc-2"]):
        held = page(Channel.EMAIL, "alice@example.com").model_copy(
            update={"dedup_key": f"k{n}", "incident_id": incident, "severity": Severity.SEV2}
        )
        bucket = admit(bucket, held, limit, now).bucket
    digest = flush(bucket, limit, now + timedelta(seconds=60)).digest
    assert digest is not None and digest.incidents == ["inc-1", "inc-2"]
    assert (await mailer(mailbox.port).deliver(digest)).delivered
    [(_, _, raw)] = mailbox.messages
    message = message_from_bytes(raw, policy=policy.default)
    assert isinstance(message, EmailMessage)
    text = message.get_body(("plain",))
    assert text is not None
    plain = text.get_content()
    assert "Incident inc-1: http://warroom.example/incidents/inc-1" in plain
    assert "Incident inc-2: http://warroom.example/incidents/inc-2" in plain
    assert "/incidents/digest" not in plain
    slack = json.dumps(slack_message(digest, INCIDENT_URL))
    assert "<http://warroom.example/incidents/inc-2|Incident inc-2>" in slack
    assert "/incidents/digest" not in slack


@pytest.mark.parametrize(
    ("address", "retryable", "code"),
    [("bounce@example.com", False, "SMTP 550"), ("busy@example.com", True, "SMTP 451")],
    ids=["permanent-5xx", "transient-4xx"],
)
async def test_email_refusals_say_whether_to_retry(
    mailbox: Mailbox, address: str, retryable: bool, code: str
) -> None:
    result = await mailer(mailbox.port).deliver(page(Channel.EMAIL, address))
    assert not result.delivered and result.retryable is retryable
    assert result.detail is not None and result.detail.startswith(code)
    assert mailbox.messages == []


async def test_email_server_down_is_retryable() -> None:
    result = await mailer(free_port()).deliver(page(Channel.EMAIL, "alice@example.com"))
    assert not result.delivered and result.retryable


async def test_email_not_configured_is_not_retryable() -> None:
    result = await EmailNotifier(SmtpConfig(host=None)).deliver(page(Channel.EMAIL, "a@b.example"))
    assert not result.delivered and not result.retryable
    assert result.detail is not None and "WARROOM_SMTP_HOST" in result.detail


def test_settings_hold_the_channel_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    from streams.settings import Settings

    monkeypatch.setenv("WARROOM_WEBHOOK_SECRET", "s3cret")
    monkeypatch.setenv("WARROOM_SMTP_HOST", "mail.example")
    monkeypatch.setenv("WARROOM_SMTP_PASSWORD", "hunter2")
    settings = Settings()
    assert settings.webhook_secret is not None
    assert settings.webhook_secret.get_secret_value() == "s3cret"
    assert settings.smtp_host == "mail.example" and settings.smtp_port == 25
    assert "hunter2" not in repr(settings) and "s3cret" not in repr(settings)


# --- hostile alert text: every channel is safe on its own ------------------------------------
#
# Service, signal and incident names come from producers. The schema may refuse some of what
# follows; the channels must not depend on it, so these pages skip validation (model_copy).

EVIL = "https://evil.example/login"
SLACK_INJECTIONS = {
    "channel": "<!channel>",
    "here": "<!here> wake up",
    "everyone": "<!everyone>",
    "user": "<@U123ABC>",
    "group": "<!subteam^S123>",
    "link": f"<{EVIL}|click here>",
    "pre-escaped": "&lt;!channel&gt;",
}


def hostile(channel: Channel, address: str, text: str) -> Page:
    """A page whose every alert-derived field holds ``text``."""
    return page(channel, address).model_copy(
        update={
            "routing_key": f"checkout{text}",
            "incident_id": f"inc-1{text}",
            "dedup_key": f"inc-1{text}/0/alice/{channel.value}",
            "subject": f"[SEV1] checkout{text}: latency_ms anomalous",
            "body": f"Incident inc-1 on checkout{text} is triggered. signals: {text}.",
            "runbook_url": "https://runbooks.example/checkout",
        }
    )


def mrkdwn_texts(message: dict[str, object]) -> list[str]:
    """Every string Slack parses as mrkdwn: the top-level ``text`` and each mrkdwn object."""
    found: list[str] = [str(message["text"])]

    def walk(node: object) -> None:
        if isinstance(node, dict):
            if node.get("type") == "mrkdwn":
                found.append(str(node["text"]))
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(message["blocks"])
    return found


def slack_unescape(text: str) -> str:
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


@pytest.mark.parametrize("text", SLACK_INJECTIONS.values(), ids=SLACK_INJECTIONS.keys())
async def test_slack_shows_hostile_text_as_typed_and_links_only_the_catalog(
    receiver: Receiver, text: str
) -> None:
    notifier = SlackNotifier(timeout_s=2.0, incident_url=INCIDENT_URL)
    result = await notifier.deliver(hostile(Channel.SLACK, f"{receiver.url}/status/200", text))
    await notifier.close()
    assert result.delivered, result.detail
    message = json.loads(receiver.requests[0][1])
    texts = mrkdwn_texts(message)
    # Slack's control sequences are <...>: the only ones left are the two links we make.
    controls = [c for t in texts for c in re.findall(r"<[^<>]*>", t)]
    incident = INCIDENT_URL.format(incident_id=quote(f"inc-1{text}", safe=""))
    assert controls == [f"<{incident}|Incident>", "<https://runbooks.example/checkout|Runbook>"]
    # What the reader sees is what the producer wrote, in the text and in the body.
    assert f"checkout{text}" in slack_unescape(message["text"])
    assert f"signals: {text}." in slack_unescape(message["blocks"][2]["text"]["text"])
    assert message["blocks"][0]["text"]["type"] == "plain_text"
    assert message["unfurl_links"] is False and message["unfurl_media"] is False


@pytest.mark.parametrize("channel", [Channel.SLACK, Channel.EMAIL], ids=["slack", "email"])
async def test_a_runbook_in_alert_text_is_never_a_link(
    receiver: Receiver, mailbox: Mailbox, channel: Channel
) -> None:
    """A signal named "Runbook: https://evil..." stays text; the catalog's runbook is linked."""
    text = f" Runbook: {EVIL} "
    if channel is Channel.SLACK:
        notifier = SlackNotifier(timeout_s=2.0, incident_url=INCIDENT_URL)
        sent = hostile(channel, f"{receiver.url}/status/200", text)
        assert (await notifier.deliver(sent)).delivered
        await notifier.close()
        message = json.loads(receiver.requests[0][1])
        links = message["blocks"][3]["text"]["text"]
        assert "<https://runbooks.example/checkout|Runbook>" in links and EVIL not in links
        assert not any(f"<{EVIL}" in t for t in mrkdwn_texts(message))
        return
    assert (
        await mailer(mailbox.port).deliver(hostile(channel, "alice@example.com", text))
    ).delivered
    [(_, _, raw)] = mailbox.messages
    message = message_from_bytes(raw, policy=policy.default)
    assert isinstance(message, EmailMessage)
    plain_part, html_part = message.get_body(("plain",)), message.get_body(("html",))
    assert plain_part is not None and html_part is not None
    plain, rich = plain_part.get_content(), html_part.get_content()
    assert "Runbook: https://runbooks.example/checkout" in plain
    incident = INCIDENT_URL.format(incident_id=quote(f"inc-1{text}", safe=""))
    lines = plain.splitlines()
    links = lines[lines.index("Escalation step: 0") + 1 :]
    assert links == [f"Incident: {incident}", "Runbook: https://runbooks.example/checkout"]
    assert re.findall(r'href="([^"]*)"', rich) == [incident, "https://runbooks.example/checkout"]


async def test_a_page_without_a_catalog_runbook_links_no_runbook(receiver: Receiver) -> None:
    sent = page(Channel.SLACK, f"{receiver.url}/status/200").model_copy(
        update={"runbook_url": None}  # its body still names one
    )
    links = slack_message(sent, INCIDENT_URL)["blocks"][3]["text"]["text"]
    assert links == "<http://warroom.example/incidents/inc-1|Incident>"


LINE_BREAKS = {
    "crlf-bcc": "\r\nBcc: victim@example.com",
    "lf-header": "\nX-Injected: 1",
    "cr": "\rX-Injected: 1",
    "line-separator": "\u2028X-Injected: 1",
    "next-line": "\x85X-Injected: 1",
    "nul-and-bidi": "\x00\u202eX-Injected: 1",
}


@pytest.mark.parametrize("text", LINE_BREAKS.values(), ids=LINE_BREAKS.keys())
async def test_email_headers_never_carry_a_line_break_from_alert_text(
    mailbox: Mailbox, text: str
) -> None:
    result = await mailer(mailbox.port).deliver(hostile(Channel.EMAIL, "alice@example.com", text))
    assert result.delivered, result.detail
    [(_, recipients, raw)] = mailbox.messages
    assert recipients == ["alice@example.com"]
    message = message_from_bytes(raw, policy=policy.default)
    assert isinstance(message, EmailMessage)
    assert message["Bcc"] is None and message["X-Injected"] is None
    assert message.defects == []
    visible = text.replace("\x00", " ").replace("\u202e", " ")
    subject = " ".join(f"[SEV1] checkout{visible}: latency_ms anomalous".split())
    assert message["Subject"] == subject
    assert message["X-Warroom-Dedup-Key"] == " ".join(f"inc-1{visible}/0/alice/email".split())
    html_part = message.get_body(("html",))
    assert html_part is not None
    assert "<h2>[SEV1] checkout" in html_part.get_content()


@pytest.mark.parametrize(
    "address",
    [
        "alice@example.com\r\nRCPT TO:<victim@example.com>",
        "alice@example.com, victim@example.com",
        "Alice <alice@example.com>",
        "not-an-address",
    ],
    ids=["crlf-smtp-command", "two-mailboxes", "display-name", "no-domain"],
)
async def test_an_address_that_is_not_one_mailbox_is_refused_for_good(
    mailbox: Mailbox, address: str
) -> None:
    sent = page(Channel.EMAIL, "alice@example.com").model_copy(update={"address": address})
    result = await mailer(mailbox.port).deliver(sent)
    assert not result.delivered and not result.retryable
    assert result.detail is not None and result.detail.startswith("invalid address: ")
    assert mailbox.messages == []


async def test_webhook_headers_carry_a_hostile_dedup_key_without_injection(
    receiver: Receiver,
) -> None:
    text = "\r\nX-Injected: 1 é%"
    sent = hostile(Channel.WEBHOOK, f"{receiver.url}/status/200", text)
    notifier = WebhookNotifier(timeout_s=2.0, secret=SECRET)
    result = await notifier.deliver(sent)
    await notifier.close()
    assert result.delivered, result.detail
    headers, body = receiver.requests[0]
    assert "X-Injected" not in headers
    encoded = "inc-1%0D%0AX-Injected: 1 %C3%A9%25/0/alice/webhook"
    assert headers["X-Warroom-Dedup-Key"] == headers["Idempotency-Key"] == encoded
    # The body keeps the key exact (a page read back from the topic would refuse it now).
    assert json.loads(body)["dedup_key"] == sent.dedup_key


@pytest.mark.parametrize("text", LINE_BREAKS.values(), ids=LINE_BREAKS.keys())
async def test_the_console_writes_a_page_on_one_line(
    caplog: pytest.LogCaptureFixture, text: str
) -> None:
    from streams.notifiers.console import ConsoleNotifier

    with caplog.at_level("WARNING", logger="warroom.pages"):
        result = await ConsoleNotifier().deliver(hostile(Channel.CONSOLE, "-", text))
    assert result.delivered
    [record] = caplog.records
    line = record.getMessage()
    assert line.startswith("PAGE inc-1 ") and text.lstrip("\r\n\x85\u2028\x00\u202e") in line
    assert not any(c in line for c in "\r\n\x85\u2028\x00\u202e")


async def test_the_console_line_links_the_incident_page_and_the_runbook(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from streams.notifiers.console import ConsoleNotifier

    with caplog.at_level("WARNING", logger="warroom.pages"):
        await ConsoleNotifier(incident_url=INCIDENT_URL).deliver(page(Channel.CONSOLE, "-"))
    [record] = caplog.records
    assert record.getMessage().endswith(
        " | Incident: http://warroom.example/incidents/inc-1"
        " | Runbook: https://runbooks.example/checkout"
    )


# --- any text at all: properties over what hypothesis can think of --------------------------

ANY_TEXT = st.text(st.characters(codec="utf-8"), max_size=60)
HEADERS = {"Subject", "From", "To", "Date", "Message-ID", "X-Warroom-Dedup-Key", "MIME-Version",
           "Content-Type"}  # fmt: skip


@given(text=ANY_TEXT)
@settings(max_examples=300, deadline=None)
def test_no_text_adds_a_slack_control_sequence(text: str) -> None:
    message = slack_message(hostile(Channel.SLACK, "https://hooks.example/x", text), INCIDENT_URL)
    links = message["blocks"][3]["text"]["text"]
    assert links.count("<") == 2 and links.endswith("|Runbook>")
    for mrkdwn in mrkdwn_texts(message):
        if mrkdwn is not links:
            assert "<" not in mrkdwn and ">" not in mrkdwn, mrkdwn
    body = message["blocks"][2]["text"]["text"]
    assert slack_unescape(body) == hostile(Channel.SLACK, "-", text).body  # shown as written


@given(text=ANY_TEXT)
@settings(max_examples=300, deadline=None)
def test_no_text_adds_an_email_header(text: str) -> None:
    from streams.notifiers.email import email_message

    sent = hostile(Channel.EMAIL, "alice@example.com", text)
    raw = email_message(sent, "warroom@example.com", INCIDENT_URL).as_bytes()
    message = message_from_bytes(raw, policy=policy.default)
    assert isinstance(message, EmailMessage)
    assert set(message.keys()) == HEADERS
    assert message["To"] == "alice@example.com"
    assert "\n" not in str(message["Subject"]) and "\r" not in str(message["Subject"])
    html_part = message.get_body(("html",))
    assert html_part is not None
    hrefs = re.findall(r'href="([^"]*)"', html_part.get_content())
    assert hrefs[1:] == ["https://runbooks.example/checkout"] and len(hrefs) == 2
