"""Stakeholder notices and the per-recipient rate limit on the real broker: a stakeholder hears
when an incident opens, periodically while it is open (also while an "until resolved" silence
mutes its pages), and when it is resolved; a storm of incidents reaches its responder as a few
pages and one digest, every page accounted for."""

from __future__ import annotations

import json
import re
import time
from collections import Counter
from collections.abc import Callable
from datetime import datetime
from typing import Any

import pytest

from tests.harness import Api, RunningWorker, WebhookServer, eventually, produce, read_all

pytestmark = pytest.mark.broker

UPDATE_INTERVAL_S = 3


def detection(det_id: str, service: str) -> tuple[bytes, bytes]:
    body = {"id": det_id, "ts": time.time(), "service": service, "signal": "latency",
            "detector": "surprise", "score": 0.99, "severity": "error"}  # fmt: skip
    return service.encode(), json.dumps(body).encode()


def catalog(hook: str, services: list[str], stakeholders: tuple[str, ...] = ()) -> dict[str, Any]:
    people = ("ann", *stakeholders)
    return {
        "services": {
            s: {"team": "core", "tier": 1, "stakeholders": list(stakeholders)} for s in services
        },
        "teams": {"core": {"members": ["ann"], "escalation": [{"targets": ["ann"]}]}},
        "people": {
            name: {"contacts": [{"channel": "webhook", "address": f"{hook}?to={name}"}]}
            for name in people
        },
    }


def received(server: WebhookServer) -> list[dict[str, Any]]:
    return [r["json"] for r in server.requests]


def _ts(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


async def test_stakeholder_gets_notice_updates_and_final_update(
    start_worker: Callable[..., RunningWorker], webhook_server: WebhookServer
) -> None:
    worker = start_worker(
        catalog(webhook_server.url, ["api"], stakeholders=("sue",)),
        stakeholder_update_interval_s=str(UPDATE_INTERVAL_S),
    )
    api = Api(worker)
    await produce(worker.bootstrap, worker.topics.detections, [detection("d-api", "api")])

    def first(pred: Callable[[dict[str, Any]], bool]) -> Callable[[], Any]:
        async def probe() -> dict[str, Any] | None:
            return next((m for m in received(webhook_server) if pred(m)), None)

        return probe

    page = await eventually(first(lambda m: m["recipient"] == "ann"), 20, "ann's page")
    incident = page["incident_id"]
    assert page["kind"] == "page"
    notice = await eventually(first(lambda m: m["recipient"] == "sue"), 20, "sue's notice")
    assert notice["kind"] == "notice" and notice["subject"].startswith("[notice]")
    assert notice["dedup_key"] == f"{incident}/notice/opened/sue/webhook"
    assert "Conditions:" in notice["body"] and "no one has acknowledged yet" in notice["body"]

    update = await eventually(
        first(lambda m: "/notice/update1" in m["dedup_key"]),
        UPDATE_INTERVAL_S + 20,
        "the first periodic update",
    )
    assert update["recipient"] == "sue" and update["kind"] == "notice"
    assert _ts(update["created_at"]) - _ts(notice["created_at"]) >= UPDATE_INTERVAL_S
    assert "paged ann" in update["body"]  # actions, from the timeline

    status, _ = await api.post(f"/api/incidents/{incident}/resolve", actor="ann")
    assert status == 202
    final = await eventually(
        first(lambda m: "/notice/resolved@" in m["dedup_key"]), 20, "the final update"
    )
    assert final["recipient"] == "sue" and "resolved" in final["subject"]
    assert "resolved by ann" in final["body"] and "Needs: nothing further" in final["body"]
    # The on-call was paged, never sent notices; nothing was delivered twice.
    assert {m["kind"] for m in received(webhook_server) if m["recipient"] == "ann"} == {"page"}
    assert set(Counter(m["dedup_key"] for m in received(webhook_server)).values()) == {1}


ESCALATION_DELAY_S = 8


async def test_until_resolved_silence_mutes_pages_not_stakeholder_updates(
    start_worker: Callable[..., RunningWorker], webhook_server: WebhookServer
) -> None:
    # ann is paged at once and bob ESCALATION_DELAY_S later if nobody acknowledges; sue follows.
    book = catalog(webhook_server.url, ["api"], stakeholders=("sue",))
    book["people"]["bob"] = {
        "contacts": [{"channel": "webhook", "address": f"{webhook_server.url}?to=bob"}]
    }
    book["teams"]["core"]["escalation"] = [
        {"targets": ["ann"]},
        {"delay_s": ESCALATION_DELAY_S, "targets": ["bob"]},
    ]
    worker = start_worker(book, stakeholder_update_interval_s=str(UPDATE_INTERVAL_S))
    api = Api(worker)
    await produce(worker.bootstrap, worker.topics.detections, [detection("d-api", "api")])

    async def first_page() -> dict[str, Any] | None:
        return next((m for m in received(webhook_server) if m["recipient"] == "ann"), None)

    page = await eventually(first_page, 20, "ann's page")
    incident = page["incident_id"]
    code, silence = await api.post(
        "/api/silences",
        {"matchers": {"service": "api"}, "until_resolved": incident, "comment": "known issue"},
    )
    assert code == 201 and silence["state"] == "active"
    escalation_due = _ts(page["created_at"]) + ESCALATION_DELAY_S
    assert _ts(silence["created_at"]) < escalation_due - 1, "silenced too late for this test"

    async def update_after(t: float) -> dict[str, Any] | None:
        return next(
            (
                m
                for m in received(webhook_server)
                if "/notice/update" in m["dedup_key"] and _ts(m["created_at"]) > t
            ),
            None,
        )

    # Updates go on while the silence holds: one after the silence began, and one after bob's
    # step was due (so the muted escalation has been ticked and held back by then).
    muted_update = await eventually(
        lambda: update_after(_ts(silence["created_at"])), UPDATE_INTERVAL_S + 20,
        "a stakeholder update under the silence",
    )  # fmt: skip
    assert muted_update["recipient"] == "sue" and muted_update["kind"] == "notice"
    assert "no one has acknowledged yet" in muted_update["body"]
    await eventually(
        lambda: update_after(escalation_due + 1), ESCALATION_DELAY_S + UPDATE_INTERVAL_S + 20,
        "a stakeholder update after the escalation was due",
    )  # fmt: skip
    # Paging stayed muted: ann's first page only, nothing for bob.
    assert [m["recipient"] for m in received(webhook_server) if m["kind"] == "page"] == ["ann"]
    # The held escalation is not a deadline while muted: the timer ticks the group for the
    # updates only, not every second from the moment bob's step was due.
    held_from = escalation_due + 1
    await eventually(
        lambda: update_after(held_from + 2 * UPDATE_INTERVAL_S), 3 * UPDATE_INTERVAL_S + 20,
        "two more updates",
    )  # fmt: skip
    held_to = time.time()
    ticks = [
        c for c in await read_all(worker.bootstrap, worker.topics.commands)
        if c["kind"] == "tick" and held_from <= _ts(c["issued_at"]) <= held_to
    ]  # fmt: skip
    assert held_to - held_from > 2 * UPDATE_INTERVAL_S
    assert len(ticks) <= (held_to - held_from) / UPDATE_INTERVAL_S + 2, (
        len(ticks),
        held_to - held_from,
    )

    assert (await api.post(f"/api/incidents/{incident}/resolve", actor="ann"))[0] == 202

    async def final() -> dict[str, Any] | None:
        return next(
            (m for m in received(webhook_server) if "/notice/resolved@" in m["dedup_key"]), None
        )

    assert (await eventually(final, 20, "the final update"))["recipient"] == "sue"
    updates = sorted(
        int(re.findall(r"/notice/update(\d+)@", m["dedup_key"])[0])
        for m in received(webhook_server)
        if "/notice/update" in m["dedup_key"]
    )
    assert updates == list(range(1, len(updates) + 1)) and len(updates) >= 3, updates
    assert set(Counter(m["dedup_key"] for m in received(webhook_server)).values()) == {1}


async def test_storm_is_three_pages_and_one_digest(
    start_worker: Callable[..., RunningWorker], webhook_server: WebhookServer
) -> None:
    services = [f"svc{i:02d}" for i in range(12)]
    worker = start_worker(
        catalog(webhook_server.url, services),
        page_rate_per_recipient="3",
        page_rate_window_s="30",  # a token back every 10 s: the whole storm is held by then
    )
    await produce(
        worker.bootstrap, worker.topics.detections, [detection(f"d-{s}", s) for s in services]
    )

    async def digest_arrived() -> dict[str, Any] | None:
        return next((m for m in received(webhook_server) if m["kind"] == "digest"), None)

    digest = await eventually(digest_arrived, 45, "the digest")
    pages = [m for m in received(webhook_server) if m["kind"] == "page"]
    assert len(pages) == 3
    assert digest["recipient"] == "ann" and digest["subject"].startswith("[digest]")
    listed = set(re.findall(r"\(incident (inc-[0-9a-f]+)\)", digest["body"]))
    assert len(listed) == 9 and not listed & {p["incident_id"] for p in pages}

    sent = await read_all(worker.bootstrap, worker.topics.pages)
    assert len(sent) == 12 and len({p["incident_id"] for p in sent}) == 12
    assert {p["incident_id"] for p in pages} | listed == {p["incident_id"] for p in sent}

    async def accounted() -> dict[str, str] | None:
        receipts = await read_all(worker.bootstrap, worker.topics.receipts)
        final = {
            r["dedup_key"]: r["outcome"]
            for r in receipts
            if r["outcome"] in ("delivered", "digested", "dead_lettered")
        }
        return final if all(p["dedup_key"] in final for p in sent) else None

    outcomes = await eventually(accounted, 20, "a receipt for every page")
    assert Counter(outcomes[p["dedup_key"]] for p in sent) == {"delivered": 3, "digested": 9}
    assert outcomes[digest["dedup_key"]] == "delivered"
    # Nothing delivered twice, and one digest for the whole storm.
    assert set(Counter(m["dedup_key"] for m in received(webhook_server)).values()) == {1}
    assert len(received(webhook_server)) == 4
