"""Detections, commands and pages through the real agents, in memory."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import timedelta

from responders.ports import DeliveryResult
from schemas import Catalog, Command, Detection, IncidentEvent, MttrAggregate, Page, Receipt
from streams.codec import encode
from tests.agents.memory import Runtime

Make = Callable[..., Runtime]
CATALOG = Catalog.model_validate(
    {
        "services": {"api": {"team": "core", "tier": 1}, "db": {"team": "data", "tier": 2}},
        "teams": {
            "core": {
                "escalation": [
                    {"targets": ["ann"]},
                    {"delay_s": 300, "targets": ["bob"]},
                ]
            },
            "data": {"escalation": [{"targets": ["cy"]}]},
        },
        "people": {p: {"contacts": [{"channel": "console"}]} for p in ("ann", "bob", "cy")},
    }
)


async def detect(rt: Runtime, n: int = 1, service: str = "api", settle: bool = True) -> None:
    at = rt.clock.now - timedelta(seconds=1)
    d = Detection(
        id=f"det-{n}", ts=at, service=service, signal="latency", detector="zscore", score=0.99,
        received_at=at,
    )  # fmt: skip
    await rt.send(rt.names.detections, service.encode(), encode(d))
    if settle:
        await rt.settle()


def events(rt: Runtime) -> list[IncidentEvent]:
    return rt.decoded(rt.names.events, IncidentEvent)


def kinds(rt: Runtime) -> list[str]:
    return [e.kind for e in events(rt)]


async def test_a_detection_opens_an_incident_and_its_page_reaches_the_first_step(
    runtime: Make,
) -> None:
    rt = runtime(CATALOG)
    await detect(rt)
    assert kinds(rt)[0] == "opened"
    pages = rt.decoded(rt.names.pages, Page)
    assert [p.recipient for p in pages] == ["ann"]
    assert [p.dedup_key for p in rt.notifier.to("ann")] == [pages[0].dedup_key]
    receipts = rt.decoded(rt.names.receipts, Receipt)
    assert [r.outcome for r in receipts] == ["delivered"]
    log = rt.pipeline.tables.notification_log[pages[0].dedup_key]
    assert log["outcome"] == "delivered"
    incident_id = events(rt)[0].incident_id
    assert rt.pipeline.tables.incident_projection[incident_id]["status"] == "triggered"


async def command(rt: Runtime, kind: str, incident_id: str, n: int = 1) -> None:
    c = Command(
        id=f"cmd-{kind}-{n}", kind=kind, incident_id=incident_id, routing_key="api",
        actor="ann", issued_at=rt.clock.now,
    )  # fmt: skip
    await rt.send(rt.names.commands, b"api", encode(c))
    await rt.settle()


async def wait_for_escalation(rt: Runtime, seconds: float) -> None:
    """Let ``seconds`` pass, running the deadline timer every 10 s of them as the worker does
    every second."""
    for _ in range(int(seconds // 10)):
        rt.clock.advance(10)
        await rt.timer("tick_due_groups")
        await rt.settle()


async def test_the_second_step_is_paged_when_nobody_acknowledges(runtime: Make) -> None:
    rt = runtime(CATALOG)
    await detect(rt)
    await wait_for_escalation(rt, 320)
    assert [p.recipient for p in rt.notifier.delivered] == ["ann", "bob"]
    assert "escalated" in kinds(rt)


async def test_an_acknowledgement_stops_the_escalation(runtime: Make) -> None:
    rt = runtime(CATALOG)
    await detect(rt)
    rt.clock.advance(60)
    await command(rt, "acknowledge", events(rt)[0].incident_id)
    await wait_for_escalation(rt, 600)
    assert [p.recipient for p in rt.notifier.delivered] == ["ann"]
    assert "acknowledged" in kinds(rt) and "escalated" not in kinds(rt)
    incident_id = events(rt)[0].incident_id
    assert rt.pipeline.tables.incident_projection[incident_id]["status"] == "acknowledged"


async def test_invalid_inputs_are_dead_lettered_with_the_reason_and_the_stream_goes_on(
    runtime: Make,
) -> None:
    rt = runtime(CATALOG)
    await rt.send(rt.names.detections, b"api", b'{"id": "det-x", "service": "api"')
    await rt.send(rt.names.commands, b"api", b'{"kind": "acknowledge"}')
    await rt.send(rt.names.pages, b"inc", b"\xff not a page")
    await rt.settle()
    await detect(rt)
    (detection,) = rt.dead_letters(rt.names.detections)
    (command,) = rt.dead_letters(rt.names.commands)
    (page,) = rt.dead_letters(rt.names.pages)
    assert (detection.stage, command.stage, page.stage) == ("decode", "decode", "decode")
    assert "JSON" in detection.error or "json" in detection.error
    assert "id" in command.error and "incident_id" in command.error
    assert page.source_topic == rt.names.pages and page.offset == 0
    assert kinds(rt)[0] == "opened"
    assert [p.recipient for p in rt.notifier.delivered] == ["ann"]


async def test_a_notifier_that_raises_dead_letters_the_page_and_pages_the_next_step_at_once(
    runtime: Make,
) -> None:
    rt = runtime(CATALOG)
    rt.notifier.scripted["ann"] = [RuntimeError("smtp relay refused the connection")]
    await detect(rt)
    assert [p.recipient for p in rt.notifier.attempts] == ["ann", "bob"]
    assert [p.recipient for p in rt.notifier.delivered] == ["bob"]
    ann = [r for r in rt.decoded(rt.names.receipts, Receipt) if r.recipient == "ann"]
    assert [r.outcome for r in ann] == ["failed", "dead_lettered"]
    (letter,) = rt.dead_letters(rt.names.deliveries)
    assert letter.stage == "deliver"
    assert letter.error == "undeliverable: RuntimeError: smtp relay refused the connection"
    assert "delivery_failed" in kinds(rt)


async def test_a_retryable_failure_is_tried_again_and_delivered_without_escalating(
    runtime: Make,
) -> None:
    rt = runtime(CATALOG)
    busy = DeliveryResult(False, retryable=True, detail="429 slow down")
    rt.notifier.scripted["ann"] = [busy, busy]
    await detect(rt)
    ann = [r for r in rt.decoded(rt.names.receipts, Receipt) if r.recipient == "ann"]
    assert [(r.outcome, r.attempt) for r in ann] == [
        ("failed", 1), ("failed", 2), ("delivered", 3),
    ]  # fmt: skip
    assert [p.recipient for p in rt.notifier.delivered] == ["ann"]
    assert rt.dead_letters(rt.names.deliveries) == []


async def test_attempts_run_out_on_retryable_failures_then_the_next_step_is_paged(
    runtime: Make,
) -> None:
    rt = runtime(CATALOG, delivery_attempts=2)
    busy = DeliveryResult(False, retryable=True, detail="503 unavailable")
    rt.notifier.scripted["ann"] = [busy, busy]
    await detect(rt)
    ann = [r for r in rt.decoded(rt.names.receipts, Receipt) if r.recipient == "ann"]
    assert [r.outcome for r in ann] == ["failed", "failed", "dead_lettered"]
    assert [p.recipient for p in rt.notifier.delivered] == ["bob"]
    (letter,) = rt.dead_letters(rt.names.deliveries)
    assert letter.error == "undeliverable: 503 unavailable"


async def test_a_stuck_destination_holds_up_only_its_own_pages(runtime: Make) -> None:
    rt = runtime(CATALOG)
    rt.notifier.stuck["ann"] = released = asyncio.Event()
    await detect(rt, settle=False)
    await detect(rt, 2, service="db", settle=False)
    await rt.settle(until=lambda: bool(rt.notifier.to("cy")))
    assert [p.recipient for p in rt.notifier.attempts] == ["ann", "cy"]
    assert rt.notifier.to("ann") == []
    released.set()
    await rt.settle()
    assert [p.recipient for p in rt.notifier.delivered] == ["cy", "ann"]


async def test_a_detection_and_a_page_processed_twice_page_once(runtime: Make) -> None:
    rt = runtime(CATALOG)
    await detect(rt)
    await detect(rt)  # the same detection again: a replay, or a retried produce
    (page,) = rt.log.on(rt.names.pages)
    await rt.send(page.topic, page.key, page.value)
    await rt.settle()
    assert kinds(rt).count("opened") == 1
    assert len(rt.notifier.attempts) == 1
    receipts = rt.decoded(rt.names.receipts, Receipt)
    assert [(r.outcome, r.detail) for r in receipts] == [
        ("delivered", "recorded"), ("duplicate", "already handled"),
    ]  # fmt: skip


async def test_acknowledged_then_resolved_the_incident_counts_in_the_mttr_aggregates(
    runtime: Make,
) -> None:
    rt = runtime(CATALOG)
    await detect(rt)
    incident_id = events(rt)[0].incident_id
    rt.clock.advance(60)
    await command(rt, "acknowledge", incident_id)
    rt.clock.advance(600)
    await command(rt, "resolve", incident_id, 2)
    latest = {a.key: a for a in rt.decoded(rt.names.aggregates, MttrAggregate)}
    api = latest["service=api|30d"]
    assert (api.incidents, api.open_incidents) == (1, 0)
    # Acknowledged 60 s after it was detected (the record's time); resolved 661 s after the
    # impact began (the detection's own time, 1 s earlier).
    assert (api.time_to_acknowledge.mean_s, api.time_to_resolve.mean_s) == (60.0, 661.0)
    assert rt.pipeline.tables.mttr_latest["service=api|30d"]["incidents"] == 1
