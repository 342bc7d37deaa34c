"""Hostile alert text through the whole pipeline: a detection whose signal holds HTML and a fake
runbook line reaches a webhook and an email as text, and only the catalog's runbook is linked."""

from __future__ import annotations

import json
import re
import time
from collections.abc import AsyncIterator, Callable
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from devtools.kafka_local import free_port
from tests.harness import Api, RunningWorker, WebhookServer, eventually, produce, read_all

pytestmark = pytest.mark.broker

RUNBOOK = "https://runbooks.example/api"
SIGNAL = "<b>p99</b> Runbook: https://evil.example/login"


class _Inbox:
    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        parsed = message_from_bytes(envelope.content, policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        self.messages.append(parsed)
        return "250 OK"


@pytest.fixture
async def inbox() -> AsyncIterator[tuple[int, _Inbox]]:
    box, port = _Inbox(), free_port()
    controller = Controller(box, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield port, box
    finally:
        controller.stop()


def catalog(hook: str) -> dict[str, Any]:
    return {
        "services": {"api": {"team": "core", "tier": 1, "runbook": RUNBOOK}},
        "teams": {"core": {"members": ["ann"], "escalation": [{"targets": ["ann"]}]}},
        "people": {
            "ann": {
                "contacts": [
                    {"channel": "webhook", "address": hook},
                    {"channel": "email", "address": "ann@example.com"},
                ]
            }
        },
    }


async def test_hostile_signal_is_text_and_only_the_catalog_runbook_is_linked(
    start_worker: Callable[..., RunningWorker],
    webhook_server: WebhookServer,
    inbox: tuple[int, _Inbox],
) -> None:
    port, box = inbox
    worker = start_worker(
        catalog(webhook_server.url),
        smtp_host="127.0.0.1", smtp_port=str(port), public_url="https://warroom.example.com",
    )  # fmt: skip
    body = {"id": "d-hostile", "ts": time.time(), "service": "api", "signal": SIGNAL,
            "detector": "surprise", "score": 0.99, "severity": "error"}  # fmt: skip
    await produce(worker.bootstrap, worker.topics.detections, [(b"api", json.dumps(body).encode())])

    [hook] = await webhook_server.wait_for(1, timeout_s=20)

    async def mail() -> EmailMessage | None:
        return box.messages[0] if box.messages else None

    message = await eventually(mail, 20, "the email page")
    page = hook["json"]
    assert page["runbook_url"] == RUNBOOK  # from the catalog, carried by the page
    assert SIGNAL in page["subject"]
    assert message["Subject"] == page["subject"]
    html_part = message.get_body(("html",))
    assert html_part is not None
    rich = html_part.get_content()
    incident = f"https://warroom.example.com/incidents/{page['incident_id']}"
    assert re.findall(r'href="([^"]*)"', rich) == [incident, RUNBOOK]
    assert "<b>p99</b>" not in rich and "&lt;b&gt;p99&lt;/b&gt;" in rich

    async def delivered() -> list[str] | None:
        receipts = await read_all(worker.bootstrap, worker.topics.receipts)
        outcomes = sorted(f"{r['channel']}:{r['outcome']}" for r in receipts)
        return outcomes if len(outcomes) >= 2 else None

    assert await eventually(delivered, 20, "both receipts") == [
        "email:delivered",
        "webhook:delivered",
    ]
    _, listed = await Api(worker).get("/api/incidents")
    assert [i["id"] for i in listed["incidents"]] == [page["incident_id"]]
