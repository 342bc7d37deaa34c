"""``deliver_pages``: pages in (``mobilization.pages.v1``), deliveries and receipts out.

Two stages. ``deliver_pages`` validates each page (or dead-letters it) and re-keys it by its
destination, ``<recipient>/<channel>``, onto the internal ``mobilization.deliveries.v1``;
``deliver_to_recipients`` reads that topic, so each destination's rate limit (the
``page-throttle`` table, :mod:`responders.throttle`) is kept in exactly one partition. A page
within the limit is delivered; one over it is held and folded into a digest. A timer sends a
``FlushDigest`` (keyed by destination, like the pages) when a held digest may go, so the digest
is sent even if no further page arrives, and every table write happens inside the stream.

Sending happens off the stream, in the destination's lane (:mod:`streams.lanes`): the stream
records the page as ``pending`` in the ``notification-log`` table (keyed by its ``dedup_key``),
hands it to the lane and reads on, so a slow or dead endpoint delays only its own pages. The lane
tries, retries with capped exponential backoff and jitter within ``delivery_deadline_s``
(:mod:`streams.retry`; sleeping in the lane, never in the stream), then sends a
``DeliveryOutcome`` keyed by the destination, and the stream writes the outcome (``delivered``
or ``dead_lettered``) over the pending entry. A page whose attempts run
out is dead-lettered with the reason. A pending entry nobody is working on (the worker crashed,
or the partition moved here) is found by a timer and handed to its lane again: delivery is at
least once per dedup key, and only a crash between a notifier's answer and the outcome reaching
the broker sends a page twice, under the same key (``Idempotency-Key``), so idempotent receivers
see it once. Every attempt gets a receipt on ``mobilization.receipts.v1``, and every held page
one more when its digest has gone (``digested``).

Each notification-log entry records when it was written and is forgotten
``delivery_log_retention_s`` (120 h) later (:mod:`streams.retention`): a timer sends a
``PruneEntry`` for each due entry to the partition of this topic that holds it, and this stream
deletes it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import TYPE_CHECKING, Any, cast

from responders.ports import DeliveryResult
from responders.throttle import Bucket, Limit, admit, flush, flush_due, throttle_key
from schemas import Command, CommandKind, Page, Receipt, ReceiptOutcome
from schemas.mobilization import DeliveryOutcome, FlushDigest
from schemas.retention import PruneEntry
from streams import faults
from streams.agents import each_input
from streams.codec import decode_one, encode
from streams.lanes import Lanes
from streams.retention import LogRetention
from streams.retry import Backoff, retry

if TYPE_CHECKING:
    from streams.pipeline import Pipeline

PENDING = "pending"
#: How often unfinished deliveries (pending entries no lane works on) are looked for.
RESUME_INTERVAL_S = 2.0


def pending(entry: Any) -> bool:
    """The ``keep`` of the ``notification-log``: the deliveries not finished, held in memory
    whatever the table store, for :func:`attach`'s resume timer to find them."""
    return isinstance(entry, dict) and entry.get("outcome") == PENDING


def read_past(done: int | None, committed: int | None, end: int) -> bool:
    """Whether a partition has been processed up to ``end`` (exclusive), given the last offset
    this worker's stream processed on it (``done``) and its committed offset: what was
    committed was processed, here or by the partition's owner while it was away from here
    (``done`` is then an offset read before it went away).

    >>> read_past(None, 4, 9), read_past(8, 4, 9), read_past(100, 151, 151)
    (False, True, True)
    """
    return max(done + 1 if done is not None else 0, committed or 0) >= end


@dataclass(frozen=True)
class Source:
    """Where a page was read, for its dead letter (the lane outlives the stream's message)."""

    topic: str
    partition: int | None
    offset: int | None
    key: bytes | None
    value: bytes


@dataclass(frozen=True)
class Job:
    """One delivery for a lane: a page (or a digest, with the held pages it folds in)."""

    page: Page
    source: Source
    held: tuple[tuple[str, str], ...] = ()  # (dedup key, incident id) of each folded page

    def pending_entry(self) -> dict[str, Any]:
        return {
            "outcome": PENDING,
            "page": self.page.model_dump(mode="json"),
            "source": [self.source.topic, self.source.partition, self.source.offset],
            "held": [list(h) for h in self.held],
        }

    @classmethod
    def from_pending(cls, entry: dict[str, Any]) -> Job:
        page = Page.model_validate(entry["page"])
        topic, partition, offset = entry["source"]
        source = Source(
            topic, partition, offset, throttle_key(page).encode(), page.model_dump_json().encode()
        )
        held = tuple((str(k), str(i)) for k, i in entry.get("held", []))
        return cls(page, source, held)


def attach(p: Pipeline) -> None:
    log_table, buckets, s = p.tables.notification_log, p.tables.page_throttle, p.settings
    rate = s.page_rate_per_recipient
    limit = Limit(rate, s.page_rate_window_s) if rate > 0 else None
    flushing: dict[str, datetime] = {}
    retention = LogRetention(
        p, log_table, p.topics.deliveries, counter="notification_log_forgotten"
    )
    lanes = Lanes()
    backoff = Backoff.for_delivery(s)

    def log(key: str, entry: dict[str, Any]) -> None:
        retention.write(key, entry, datetime.now(tz=UTC))

    async def receipt(
        dedup_key: str,
        incident_id: str,
        to: Page,
        outcome: ReceiptOutcome,
        attempt: int,
        detail: str | None,
    ) -> None:
        r = Receipt(
            dedup_key=dedup_key,
            incident_id=incident_id,
            recipient=to.recipient,
            channel=to.channel,
            outcome=outcome,
            attempt=attempt,
            at=datetime.now(tz=UTC),
            detail=detail,
        )
        await p.topics.receipts.send(key=incident_id.encode(), value=encode(r))

    def hand_over(job: Job) -> None:
        """Record ``job`` as pending (inside the stream) and queue it on its lane."""
        log(job.page.dedup_key, job.pending_entry())
        lanes.submit(throttle_key(job.page), job.page.dedup_key, partial(run, job))

    async def run(job: Job) -> None:
        """In the lane: send with retries, a receipt per attempt, then report the outcome.

        The pending entry :func:`hand_over` wrote is on the broker before the first attempt:
        table writes wait in the producer's buffer while the outcome is sent at once, so a
        worker killed after the outcome reached the broker could restart without the entry,
        read the page again before its outcome and send it a second time (seen under load)."""
        page = job.page
        await p.app.producer.flush()

        async def attempt(n: int) -> DeliveryResult:
            result = await deliver(page)
            if result.delivered:
                faults.reached("after-2xx-before-log")
            outcome = ReceiptOutcome.DELIVERED if result.delivered else ReceiptOutcome.FAILED
            await receipt(page.dedup_key, page.incident_id, page, outcome, n, result.detail)
            return result

        result, tries = await retry(attempt, lambda r: not r.delivered and r.retryable, backoff)
        delivered, detail = result.delivered, result.detail
        outcome = ReceiptOutcome.DELIVERED if delivered else ReceiptOutcome.DEAD_LETTERED
        entries: dict[str, dict[str, str | int | None]] = {
            page.dedup_key: {"outcome": outcome.value, "attempts": tries}
        }
        if not delivered:
            await receipt(page.dedup_key, page.incident_id, page, outcome, tries, detail)
            await p.dead_letters.send(job.source, "deliver", f"undeliverable: {detail}")
            if page.kind == "page":
                await escalate(page, detail)
        if job.held:
            folded = ReceiptOutcome.DIGESTED if delivered else ReceiptOutcome.DEAD_LETTERED
            for key, incident_id in job.held:
                await receipt(key, incident_id, page, folded, tries, f"in {page.dedup_key}")
                entries[key] = {"outcome": folded.value, "in": page.dedup_key}
        report = DeliveryOutcome(destination=throttle_key(page), entries=entries)
        sent = await p.topics.deliveries.send(key=report.destination.encode(), value=encode(report))
        await sent  # the lane's work is done only once the broker has its outcome

    async def deliver(page: Page) -> DeliveryResult:
        try:
            return await p.notifiers[page.channel].deliver(page)
        except Exception as exc:  # a notifier's bug: this page fails, the lane goes on
            return DeliveryResult(False, False, f"{type(exc).__name__}: {exc}"[:500])

    async def escalate(page: Page, detail: str | None) -> None:
        """Tell the incident that this page reached nobody: its timeline records it, and the
        next escalation step is paged at once if this was the current one."""
        failed = Command(
            id="dlv-" + hashlib.sha256(page.dedup_key.encode()).hexdigest()[:24],
            kind=CommandKind.DELIVERY_FAILED,
            incident_id=page.incident_id,
            routing_key=page.routing_key,
            actor="warroom",
            issued_at=datetime.now(tz=UTC),
            text=(detail or "undeliverable")[:1000],
            person=page.recipient,
            page=page.dedup_key,
            step=page.step,
        )
        sent = await p.topics.commands.send(key=page.routing_key.encode(), value=encode(failed))
        await sent

    def on_outcome(report: DeliveryOutcome) -> None:
        for key, entry in report.entries.items():
            log(key, dict(entry))
            lanes.settled(key)
        sent = [e for e in report.entries.values() if "in" not in e]  # the page or digest sent
        delivered = any(e.get("outcome") == ReceiptOutcome.DELIVERED.value for e in sent)
        p.count("pages_delivered" if delivered else "pages_dead_lettered")
        if len(sent) < len(report.entries):
            p.count("digests_sent", int(delivered))

    async def on_page(page: Page, source: Source, now: datetime) -> None:
        if log_table.get(page.dedup_key) is not None:
            await receipt(page.dedup_key, page.incident_id, page, ReceiptOutcome.DUPLICATE, 1,
                          "already handled")  # fmt: skip
            return
        if limit is not None:
            key = throttle_key(page)
            saved = buckets.get(key)
            admitted = admit(Bucket.from_dict(saved) if saved else None, page, limit, now)
            buckets[key] = admitted.bucket.to_dict()
            if admitted.already_held:
                await receipt(page.dedup_key, page.incident_id, page, ReceiptOutcome.DUPLICATE,
                              1, "held for a digest")  # fmt: skip
                return
            if not admitted.send:
                p.count("pages_held")
                return
        hand_over(Job(page, source))

    def on_flush(key: str, source: Source, now: datetime) -> None:
        flushing.pop(key, None)
        saved = buckets.get(key)
        if limit is None or saved is None:
            return
        flushed = flush(Bucket.from_dict(saved), limit, now)
        digest = flushed.digest
        if digest is None:
            return
        if log_table.get(digest.dedup_key) is None:  # else: handed over before, and replayed
            held = tuple((h.dedup_key, h.incident_id) for h in flushed.held)
            hand_over(Job(digest, source, held))
        buckets[key] = flushed.bucket.to_dict()

    def source_of(message: Any) -> Source:
        key = message.key if isinstance(message.key, bytes) else None
        return Source(message.topic, message.partition, message.offset, key, message.value or b"")

    async def rekey(event: Any) -> None:
        page = await p.dead_letters.decoded(event, Page)
        if page is not None:
            await p.topics.deliveries.send(key=throttle_key(page).encode(), value=event.value)

    #: The last offset of each ``mobilization.deliveries.v1`` partition this stream processed.
    read_to: dict[int, int] = {}
    #: For each pending entry found with no lane on it: its partition's end offset then.
    end_when_found: dict[str, int] = {}

    def read_past_end(key: str) -> bool:
        """Whether this stream has processed every record the entry's partition had when the
        entry was first found pending, so that an outcome sent for it before then (by a worker
        that stopped) has been read. The end is taken once: traffic after it does not delay
        the resume."""
        partition = log_table.partition_of(key)
        if partition is None:
            return False
        consumer: Any = p.app.consumer  # Faust private state: its committed offsets
        tp = consumer._new_topicpartition(p.settings.topics.deliveries, partition)
        if key not in end_when_found:
            high = consumer.highwater(tp)
            if high is None:
                return False
            end_when_found[key] = int(high)
        committed = consumer._committed_offset.get(tp)
        return read_past(read_to.get(partition), committed, end_when_found[key])

    async def on_delivery(event: Any) -> None:
        read_to[event.message.partition] = event.message.offset
        now = datetime.now(tz=UTC)
        report = decode_one(event.value, DeliveryOutcome)
        if report.items:
            on_outcome(report.items[0])
            return
        flush_request = decode_one(event.value, FlushDigest)
        if flush_request.items:
            on_flush(flush_request.items[0].key, source_of(event.message), now)
            return
        prune_request = decode_one(event.value, PruneEntry)
        if prune_request.items:
            retention.on_request(prune_request.items[0], now)
            return
        page = await p.dead_letters.decoded(event, Page)
        if page is not None:
            await on_page(page, source_of(event.message), now)

    @p.app.agent(p.topics.pages, name="deliver_pages")
    async def deliver_pages(stream: Any) -> None:
        await each_input(p, stream, "deliver_pages", rekey,
                         stage="deliver", errors="delivery_errors")  # fmt: skip

    @p.app.agent(p.topics.deliveries, name="deliver_to_recipients")
    async def deliver_to_recipients(stream: Any) -> None:
        await each_input(p, stream, "deliver_to_recipients", on_delivery,
                         stage="deliver", errors="delivery_errors")  # fmt: skip

    @p.app.timer(interval=RESUME_INTERVAL_S)
    async def resume_deliveries() -> None:
        """Hand unfinished deliveries (a crash, a partition moved here) to their lanes again,
        once the stream has read their partition up to where it ended when they were found.
        Not during a rebalance: a partition's rows are then being restored, and a pending entry
        may be back before the outcome written over it."""
        if p.app.rebalancing:
            return
        for key in [k for k in end_when_found if not pending(log_table.recent.get(k))]:
            del end_when_found[key]
        for key, entry in list(log_table.recent.items()):
            if not pending(entry):
                continue
            if key in lanes.busy:
                continue
            # The outcome of a delivery a stopped worker finished may be on the partition still
            # unread: resuming now would send the page a second time.
            if not read_past_end(key):
                continue
            job = Job.from_pending(entry)
            if lanes.submit(throttle_key(job.page), key, partial(run, job)):
                p.count("deliveries_resumed")

    # mode types a signal's handler so that no function matches it; the handler is as documented.
    @cast(Any, p.app.on_before_shutdown).connect
    async def close_lanes(app: Any, **kwargs: Any) -> None:
        await lanes.close()

    @p.app.timer(interval=0.5)
    async def flush_digests() -> None:
        if limit is None:
            return
        now = datetime.now(tz=UTC)
        for key, value in list(buckets.items()):
            due = flush_due(Bucket.from_dict(value), limit)
            if due is None or due > now or flushing.get(key) == due:
                continue
            flushing[key] = due
            request = FlushDigest(key=key, at=now)
            await p.topics.deliveries.send(key=key.encode(), value=encode(request))

    if retention.retention_s > 0:

        @p.app.timer(interval=retention.interval_s)
        async def prune_notification_log() -> None:
            await retention.scan(datetime.now(tz=UTC))
