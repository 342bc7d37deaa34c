"""The delivery channels against real local servers: an aiohttp server standing in for webhook
receivers and Slack, and an aiosmtpd SMTP server receiving email."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import socket
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage

import pytest
from aiohttp import web
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from responders.throttle import Bucket, Limit, admit, flush
from schemas import Channel, Page, Severity
from streams.notifiers.email import EmailNotifier, SmtpConfig
from streams.notifiers.slack import SlackNotifier, slack_message
from streams.notifiers.webhook import WebhookNotifier

SECRET = "shared-secret"
INCIDENT_URL = "http://warroom.example/api/incidents/{incident_id}"


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
    assert "<http://warroom.example/api/incidents/inc-1|Incident>" in links
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
    assert "Incident: http://warroom.example/api/incidents/inc-1" in plain
    assert "Runbook: https://runbooks.example/checkout" in plain
    assert '<a href="http://warroom.example/api/incidents/inc-1">Incident</a>' in rich
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
    assert "Incident inc-1: http://warroom.example/api/incidents/inc-1" in plain
    assert "Incident inc-2: http://warroom.example/api/incidents/inc-2" in plain
    assert "/api/incidents/digest" not in plain
    slack = json.dumps(slack_message(digest, INCIDENT_URL))
    assert "<http://warroom.example/api/incidents/inc-2|Incident inc-2>" in slack
    assert "/api/incidents/digest" not in slack


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
