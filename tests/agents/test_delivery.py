"""Pages through ``deliver_pages`` and the notifier seam, in memory: what reaches a notifier, in
which order with the notification log, what a failure tells the incident, how the rate limit
folds pages into a digest, and when an unfinished delivery is taken up again."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable
from typing import Any

from responders.ports import DeliveryResult
from schemas import Catalog, Command, Page, Receipt
from schemas.mobilization import DeliveryOutcome
from streams.codec import encode
from tests.agents.memory import Runtime
from tests.agents.test_incidents import CATALOG, detect

Make = Callable[..., Runtime]
#: Two services of one team (so two incidents paging the same person), of a tier whose pages
#: are not SEV1 (a SEV1 page is never held by the rate limit).
SHARED = Catalog.model_validate(
    {
        "services": {"api": {"team": "core", "tier": 3}, "web": {"team": "core", "tier": 3}},
        "teams": {"core": {"escalation": [{"targets": ["ann"]}]}},
        "people": {"ann": {"contacts": [{"channel": "console"}]}},
    }
)


def receipts(rt: Runtime, dedup_key: str) -> list[tuple[str, int, str | None]]:
    return [
        (r.outcome, r.attempt, r.detail)
        for r in rt.decoded(rt.names.receipts, Receipt)
        if r.dedup_key == dedup_key
    ]


async def test_a_delivered_page_leaves_its_pending_entry_flushed_before_its_first_attempt(
    runtime: Make,
) -> None:
    rt = runtime(CATALOG)
    seen: list[tuple[str, Any]] = []
    log = rt.pipeline.tables.notification_log

    async def flush() -> None:
        seen.append(("flush", {k: v["outcome"] for k, v in log.items()}))

    deliver = rt.notifier.deliver

    async def attempt(page: Page) -> DeliveryResult:
        seen.append(("attempt", page.dedup_key))
        return await deliver(page)

    rt.app.producer.flush = flush  # type: ignore[method-assign]
    rt.notifier.deliver = attempt  # type: ignore[method-assign]
    await detect(rt)
    (page,) = rt.decoded(rt.names.pages, Page)
    assert seen == [("flush", {page.dedup_key: "pending"}), ("attempt", page.dedup_key)]
    assert log[page.dedup_key]["outcome"] == "delivered"
    assert log[page.dedup_key]["attempts"] == 1
    (outcome,) = rt.decoded(rt.names.deliveries, DeliveryOutcome)
    assert outcome.destination == "ann/console"
    assert outcome.entries == {page.dedup_key: {"outcome": "delivered", "attempts": 1}}
    assert receipts(rt, page.dedup_key) == [("delivered", 1, "recorded")]
    assert rt.pipeline.counters["pages_delivered"] == 1


async def test_an_undeliverable_page_tells_its_incident_which_page_and_step_failed(
    runtime: Make,
) -> None:
    rt = runtime(CATALOG, delivery_attempts=1)
    rt.notifier.scripted["ann"] = [DeliveryResult(False, detail="410 gone")]
    await detect(rt)
    first = rt.decoded(rt.names.pages, Page)[0]
    failed = [c for c in rt.decoded(rt.names.commands, Command) if c.kind == "delivery_failed"]
    assert [(c.person, c.page, c.step, c.text) for c in failed] == [
        ("ann", first.dedup_key, 0, "410 gone")
    ]
    (command,) = failed
    assert command.id == "dlv-" + hashlib.sha256(first.dedup_key.encode()).hexdigest()[:24]
    assert (command.incident_id, command.routing_key) == (first.incident_id, first.routing_key)
    assert (command.actor, command.issued_at) == ("warroom", rt.clock.now)
    log = rt.pipeline.tables.notification_log
    assert log[first.dedup_key]["outcome"] == "dead_lettered"
    assert receipts(rt, first.dedup_key) == [
        ("failed", 1, "410 gone"), ("dead_lettered", 1, "410 gone"),
    ]  # fmt: skip
    assert rt.pipeline.counters["pages_dead_lettered"] == 1
    assert [p.recipient for p in rt.notifier.delivered] == ["bob"]


async def test_pages_over_the_rate_limit_are_held_and_leave_in_one_digest(runtime: Make) -> None:
    rt = runtime(SHARED, page_rate_per_recipient=1, page_rate_window_s=60)
    await detect(rt, 1, service="api")
    await detect(rt, 2, service="web")
    first, second = rt.decoded(rt.names.pages, Page)
    assert [p.dedup_key for p in rt.notifier.delivered] == [first.dedup_key]
    assert rt.pipeline.counters["pages_held"] == 1
    assert receipts(rt, second.dedup_key) == []

    # The same page again while it is held: a duplicate, still held.
    (record,) = [r for r in rt.log.on(rt.names.pages) if r.value == encode(second)]
    await rt.send(rt.names.pages, record.key, record.value)
    await rt.settle()
    assert receipts(rt, second.dedup_key) == [("duplicate", 1, "held for a digest")]

    await rt.timer("flush_digests")  # not due yet: no token is free
    await rt.settle()
    assert len(rt.notifier.delivered) == 1
    rt.clock.advance(61)
    await rt.timer("flush_digests")
    await rt.settle()
    digest = rt.notifier.delivered[-1]
    assert (digest.kind, digest.recipient) == ("digest", "ann")
    assert digest.dedup_key == "digest/ann/console/1"
    assert second.subject in digest.body
    log = rt.pipeline.tables.notification_log
    assert log[digest.dedup_key]["outcome"] == "delivered"
    assert log[second.dedup_key]["outcome"] == "digested"
    assert log[second.dedup_key]["in"] == digest.dedup_key
    assert receipts(rt, second.dedup_key)[-1] == ("digested", 1, f"in {digest.dedup_key}")
    assert rt.pipeline.counters["digests_sent"] == 1

    await rt.timer("flush_digests")  # nothing is held any more
    await rt.settle()
    assert len(rt.notifier.delivered) == 2


async def test_a_digest_that_cannot_be_delivered_dead_letters_the_pages_it_holds(
    runtime: Make,
) -> None:
    rt = runtime(SHARED, page_rate_per_recipient=1, page_rate_window_s=60, delivery_attempts=1)
    await detect(rt, 1, service="api")
    rt.notifier.scripted["ann"] = [DeliveryResult(False, detail="500 down")]
    await detect(rt, 2, service="web")
    second = rt.decoded(rt.names.pages, Page)[1]
    rt.clock.advance(61)
    await rt.timer("flush_digests")
    await rt.settle()
    log = rt.pipeline.tables.notification_log
    assert log["digest/ann/console/1"]["outcome"] == "dead_lettered"
    assert log[second.dedup_key] == {
        **log[second.dedup_key], "outcome": "dead_lettered", "in": "digest/ann/console/1",
    }  # fmt: skip
    assert receipts(rt, second.dedup_key)[-1] == (
        "dead_lettered", 1, "in digest/ann/console/1",
    )  # fmt: skip
    # A digest is not a page of an escalation step: no incident is told.
    failed = [c for c in rt.decoded(rt.names.commands, Command) if c.kind == "delivery_failed"]
    assert failed == []
    (letter,) = rt.dead_letters(rt.names.deliveries)
    assert letter.error == "undeliverable: 500 down"
    assert rt.pipeline.counters.get("digests_sent", 0) == 0


async def test_a_pending_entry_whose_outcome_is_still_unread_is_not_resumed(
    runtime: Make,
) -> None:
    rt = runtime(CATALOG)
    await detect(rt)
    (page,) = rt.decoded(rt.names.pages, Page)
    log = rt.pipeline.tables.notification_log
    # A worker stopped after its lane sent this outcome, before its stream read it.
    log[page.dedup_key] = {
        "outcome": "pending", "page": page.model_dump(mode="json"),
        "source": [rt.names.pages, 0, 0], "held": [],
    }  # fmt: skip
    outcome = DeliveryOutcome(
        destination="ann/console", entries={page.dedup_key: {"outcome": "delivered"}}
    )
    await rt.send(rt.names.deliveries, b"ann/console", encode(outcome))
    await rt.timer("resume_deliveries")
    assert len(rt.notifier.attempts) == 1
    await rt.settle()
    await rt.timer("resume_deliveries")
    await rt.settle()
    assert len(rt.notifier.attempts) == 1
    assert log[page.dedup_key]["outcome"] == "delivered"
    assert rt.pipeline.counters.get("deliveries_resumed", 0) == 0


async def test_a_resumed_digest_settles_the_pages_it_holds(runtime: Make) -> None:
    rt = runtime(SHARED)
    await detect(rt, 1, service="api")
    (held,) = rt.decoded(rt.names.pages, Page)
    digest = held.model_copy(update={"dedup_key": "digest/ann/console/1", "kind": "digest"})
    log = rt.pipeline.tables.notification_log
    log[digest.dedup_key] = {
        "outcome": "pending", "page": digest.model_dump(mode="json"),
        "source": [rt.names.deliveries, 0, 3], "held": [["held-1", held.incident_id]],
    }  # fmt: skip
    await rt.timer("resume_deliveries")
    await rt.settle()
    assert rt.notifier.delivered[-1].dedup_key == digest.dedup_key
    assert log[digest.dedup_key]["outcome"] == "delivered"
    assert log["held-1"]["outcome"] == "digested"
    assert receipts(rt, "held-1") == [("digested", 1, f"in {digest.dedup_key}")]
    assert rt.pipeline.counters["deliveries_resumed"] == 1


async def test_a_notification_log_entry_is_forgotten_after_its_retention(runtime: Make) -> None:
    rt = runtime(CATALOG, delivery_log_retention_s=3600)
    await detect(rt)
    (page,) = rt.decoded(rt.names.pages, Page)
    log = rt.pipeline.tables.notification_log
    await rt.timer("prune_notification_log")
    await rt.settle()
    assert page.dedup_key in log
    rt.clock.advance(3601)
    await rt.timer("prune_notification_log")
    await rt.settle()
    assert page.dedup_key not in log
    assert rt.pipeline.counters["notification_log_forgotten"] == 1


async def test_a_page_for_a_channel_whose_notifier_raises_is_dead_lettered_with_the_source(
    runtime: Make,
) -> None:
    rt = runtime(CATALOG, delivery_attempts=1)
    rt.notifier.scripted["ann"] = [ValueError("no address")]
    await detect(rt)
    (letter,) = rt.dead_letters(rt.names.deliveries)
    # The page as the delivery stream read it: the first record of its topic.
    assert (letter.source_topic, letter.partition, letter.offset) == (rt.names.deliveries, 0, 0)
    assert letter.error == "undeliverable: ValueError: no address"
    assert base64.b64decode(letter.key_b64 or "") == b"ann/console"
    assert Page.model_validate_json(base64.b64decode(letter.value_b64)).recipient == "ann"
