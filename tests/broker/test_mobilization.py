"""Mobilization on the real broker: step one paged at once, escalation after its delay unless
acknowledged, escalation resumed after a SIGKILL without paging step one again, and email."""

from __future__ import annotations

import json
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

STEP_DELAY_S = 4


def catalog(hook: str, smtp: bool = False) -> dict[str, Any]:
    contacts = {
        "ann": [{"channel": "webhook", "address": f"{hook}?to=ann"}],
        "bob": [{"channel": "webhook", "address": f"{hook}?to=bob"}],
    }
    if smtp:
        contacts["ann"].append({"channel": "email", "address": "ann@example.com"})
    return {
        "services": {svc: {"team": "core", "tier": 1} for svc in ("api", "cart", "auth")},
        "teams": {
            "core": {
                "members": ["ann", "bob"],
                "escalation": [
                    {"targets": ["ann"]},
                    {"delay_s": STEP_DELAY_S, "targets": ["bob"]},
                ],
            }
        },
        "people": {name: {"contacts": c} for name, c in contacts.items()},
    }


def detection(det_id: str, service: str) -> tuple[bytes, bytes]:
    body = {"id": det_id, "ts": time.time(), "service": service, "signal": "latency",
            "detector": "surprise", "score": 0.99, "severity": "error"}  # fmt: skip
    return service.encode(), json.dumps(body).encode()


def pages(server: WebhookServer, service: str | None = None) -> list[dict[str, Any]]:
    got = [r["json"] for r in server.requests]
    return [p for p in got if service is None or p["subject"].split("] ")[1].startswith(service)]


def by_key(server: WebhookServer) -> dict[str, int]:
    counts: dict[str, int] = {}
    for page in pages(server):
        counts[page["dedup_key"]] = counts.get(page["dedup_key"], 0) + 1
    return counts


async def test_escalation_and_acknowledgement(
    start_worker: Callable[..., RunningWorker], webhook_server: WebhookServer
) -> None:
    worker = start_worker(catalog(webhook_server.url))
    api = Api(worker)
    await produce(worker.bootstrap, worker.topics.detections,
                  [detection("d-api", "api"), detection("d-cart", "cart")])  # fmt: skip
    # Step one, for both incidents, at once.
    await webhook_server.wait_for(2, timeout_s=15)
    first = {p["subject"].split("] ")[1].split(":")[0]: p for p in pages(webhook_server)}
    assert {p["recipient"] for p in first.values()} == {"ann"}
    assert {p["step"] for p in first.values()} == {0}
    _, listed = await api.get("/api/incidents")
    by_service = {i["service"]: i for i in listed["incidents"]}
    for service, page in first.items():
        assert page["created_at"] == by_service[service]["opened_at"]  # paged as it opened
    # Acknowledge cart's incident; api's is left alone and escalates to bob.
    cart = by_service["cart"]["id"]
    assert (await api.post(f"/api/incidents/{cart}/acknowledge", actor="ann"))[0] == 202

    async def bob_paged() -> dict[str, Any] | None:
        return next((p for p in pages(webhook_server) if p["recipient"] == "bob"), None)

    second = await eventually(bob_paged, STEP_DELAY_S + 15, "the second step of api's incident")
    assert second["incident_id"] == by_service["api"]["id"] and second["step"] == 1
    waited = _ts(second["created_at"]) - _ts(first["api"]["created_at"])
    assert waited >= STEP_DELAY_S  # not before its delay
    # Had cart's incident escalated, its page would be as due as api's by now.
    await eventually(lambda: _settled(api, by_service["api"]["id"]), 10, "the escalation event")
    assert [p["recipient"] for p in pages(webhook_server, "cart")] == ["ann"]
    _, timeline = await api.get(f"/api/incidents/{by_service['api']['id']}/timeline")
    assert [e["kind"] for e in timeline["events"]] == ["opened", "paged", "escalated"]
    assert all(n == 1 for n in by_key(webhook_server).values())


async def _settled(api: Api, incident_id: str) -> bool | None:
    _, timeline = await api.get(f"/api/incidents/{incident_id}/timeline")
    return True if any(e["kind"] == "escalated" for e in timeline["events"]) else None


def _ts(text: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


async def test_kill_between_steps_resumes_without_paging_step_one_again(
    start_worker: Callable[..., RunningWorker], webhook_server: WebhookServer
) -> None:
    worker = start_worker(catalog(webhook_server.url))
    await produce(worker.bootstrap, worker.topics.detections, [detection("d-auth", "auth")])
    [page] = await webhook_server.wait_for(1, timeout_s=15)
    assert page["json"]["recipient"] == "ann"

    async def recorded() -> bool | None:
        # The delivery's outcome is on the broker: step one is over (a kill before that, just
        # after the receiver's answer, is the window where a page is sent twice by design).
        records = await read_all(worker.bootstrap, worker.topics.deliveries)
        return (
            True
            if any(page["json"]["dedup_key"] in r.get("entries", {}) for r in records)
            else None
        )

    await eventually(recorded, 15, "step one's delivery outcome")
    worker.kill()  # between step one and step two
    worker.start()

    async def bob_paged() -> bool | None:
        return True if any(p["recipient"] == "bob" for p in pages(webhook_server)) else None

    await eventually(bob_paged, STEP_DELAY_S + 30, "step two after the restart")
    assert sorted(p["recipient"] for p in pages(webhook_server)) == ["ann", "bob"]
    assert all(n == 1 for n in by_key(webhook_server).values())


class _Inbox:
    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        parsed = message_from_bytes(envelope.content, policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        self.messages.append(parsed)
        return "250 OK"


@pytest.fixture
async def smtp_server() -> AsyncIterator[tuple[int, _Inbox]]:
    inbox = _Inbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield port, inbox
    finally:
        controller.stop()


async def test_email_page_arrives_with_the_incident_link(
    start_worker: Callable[..., RunningWorker],
    webhook_server: WebhookServer,
    smtp_server: tuple[int, _Inbox],
) -> None:
    port, inbox = smtp_server
    worker = start_worker(
        catalog(webhook_server.url, smtp=True),
        smtp_host="127.0.0.1", smtp_port=str(port), public_url="https://warroom.example.com",
    )  # fmt: skip
    await produce(worker.bootstrap, worker.topics.detections, [detection("d-mail", "api")])

    async def mail() -> EmailMessage | None:
        return inbox.messages[0] if inbox.messages else None

    message = await eventually(mail, 20, "the email page")
    _, listed = await Api(worker).get("/api/incidents")
    incident_id = listed["incidents"][0]["id"]
    assert message["To"] == "ann@example.com"
    assert "api" in message["Subject"] and "SEV2" in message["Subject"]
    text = message.get_body(preferencelist=("plain",))
    assert text is not None
    assert f"https://warroom.example.com/incidents/{incident_id}" in text.get_content()


async def test_pages_wait_out_a_webhook_that_refuses_connections(
    start_worker: Callable[..., RunningWorker],
) -> None:
    server = WebhookServer()
    server.port = free_port()  # nothing listens there yet: connections are refused
    worker = start_worker(
        catalog(server.url),
        delivery_attempts="30", delivery_backoff_s="0.5", delivery_backoff_max_s="2.5",
    )  # fmt: skip
    await produce(worker.bootstrap, worker.topics.detections,
                  [detection("d-o1", "api"), detection("d-o2", "cart")])  # fmt: skip
    outage_s = 30.0
    down_until = time.monotonic() + outage_s

    async def refused_for_a_while() -> bool | None:
        receipts = await read_all(worker.bootstrap, worker.topics.receipts)
        failed = sum(r["outcome"] == "failed" for r in receipts)
        return True if failed >= 2 and time.monotonic() >= down_until else None

    await eventually(refused_for_a_while, outage_s + 20, "30 s of refused deliveries")
    await server.start_on(server.port)
    try:
        # Step one for both incidents, and (nobody acknowledged) step two: every page, once.
        await server.wait_for(4, timeout_s=30)
        assert sorted(p["recipient"] for p in pages(server)) == ["ann", "ann", "bob", "bob"]
        assert all(n == 1 for n in by_key(server).values())
        receipts = await read_all(worker.bootstrap, worker.topics.receipts)
        assert not [r for r in receipts if r["outcome"] == "dead_lettered"]
    finally:
        await server.stop()
