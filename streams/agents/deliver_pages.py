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

The decisions (a page duplicate, held or sent; what a last attempt settles; what an outcome
counts; when a pending entry is past the end of its partition) are
:mod:`responders.delivery`'s; this module reads, sends and writes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import TYPE_CHECKING, Any, cast

from responders.delivery import (
    PENDING,
    Notice,
    arrive,
    delivery_failed,
    outcome_counts,
    pending,
    read_past,
    receipt,
    settle,
)
from responders.ports import DeliveryResult
from responders.throttle import Bucket, Limit, flush, flush_due, throttle_key
from schemas import Page, ReceiptOutcome
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

#: How often unfinished deliveries (pending entries no lane works on) are looked for.
RESUME_INTERVAL_S = 2.0


@dataclass(frozen=True)
class Source:
    """Where a page was read, for its dead letter (the lane outlives the stream's message)."""

    topic: str
    partition: int | None
    offset: int | None
    key: bytes | None
    value: bytes

    @classmethod
    def of(cls, message: Any) -> Source:
        key = message.key if isinstance(message.key, bytes) else None
        return cls(message.topic, message.partition, message.offset, key, message.value or b"")


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
    s = p.settings
    retention = LogRetention(
        p, p.tables.notification_log, p.topics.deliveries, counter="notification_log_forgotten"
    )
    courier = Courier(p, Lanes(), Backoff.for_delivery(s), retention)
    rate = s.page_rate_per_recipient
    throttle = Throttle(p, courier, Limit(rate, s.page_rate_window_s) if rate > 0 else None)
    resume = Resume(p, courier)

    async def on_delivery(event: Any) -> None:
        resume.read(event.message)
        await dispatch(p, courier, throttle, event)

    @p.app.agent(p.topics.pages, name="deliver_pages")
    async def deliver_pages(stream: Any) -> None:
        await each_input(p, stream, "deliver_pages", partial(rekey, p),
                         stage="deliver", errors="delivery_errors")  # fmt: skip

    @p.app.agent(p.topics.deliveries, name="deliver_to_recipients")
    async def deliver_to_recipients(stream: Any) -> None:
        await each_input(p, stream, "deliver_to_recipients", on_delivery,
                         stage="deliver", errors="delivery_errors")  # fmt: skip

    @p.app.timer(interval=RESUME_INTERVAL_S)
    async def resume_deliveries() -> None:
        await resume.scan()

    # mode types a signal's handler so that no function matches it; the handler is as documented.
    @cast(Any, p.app.on_before_shutdown).connect
    async def close_lanes(app: Any, **kwargs: Any) -> None:
        await courier.lanes.close()

    @p.app.timer(interval=0.5)
    async def flush_digests() -> None:
        await throttle.request_flushes(datetime.now(tz=UTC))

    if retention.retention_s > 0:

        @p.app.timer(interval=retention.interval_s)
        async def prune_notification_log() -> None:
            await retention.scan(datetime.now(tz=UTC))


async def rekey(p: Pipeline, event: Any) -> None:
    """Validate a page (or dead-letter it) and send it on under its destination's key."""
    page = await p.dead_letters.decoded(event, Page)
    if page is not None:
        await p.topics.deliveries.send(key=throttle_key(page).encode(), value=event.value)


async def dispatch(p: Pipeline, courier: Courier, throttle: Throttle, event: Any) -> None:
    """Act on one record of ``mobilization.deliveries.v1``: an outcome, a digest's flush, a
    prune request, or a page."""
    now = datetime.now(tz=UTC)
    report = decode_one(event.value, DeliveryOutcome)
    if report.items:
        courier.settled(report.items[0])
        return
    flush_request = decode_one(event.value, FlushDigest)
    if flush_request.items:
        throttle.on_flush(flush_request.items[0].key, Source.of(event.message), now)
        return
    prune_request = decode_one(event.value, PruneEntry)
    if prune_request.items:
        courier.retention.on_request(prune_request.items[0], now)
        return
    page = await p.dead_letters.decoded(event, Page)
    if page is not None:
        await throttle.on_page(page, Source.of(event.message), now)


class Throttle:
    """Each destination's rate limit (the ``page-throttle`` table): a page arriving is sent,
    held or answered as a duplicate; a held digest is flushed when a token is free."""

    def __init__(self, p: Pipeline, courier: Courier, limit: Limit | None) -> None:
        self.p, self.courier, self.limit = p, courier, limit
        #: Destinations asked to flush, with the due time they were asked for.
        self.flushing: dict[str, datetime] = {}

    async def on_page(self, page: Page, source: Source, now: datetime) -> None:
        """A duplicate, held for a digest, or handed over (inside the stream)."""
        p, key = self.p, throttle_key(page)
        saved = p.tables.page_throttle.get(key) if self.limit is not None else None
        logged = p.tables.notification_log.get(page.dedup_key) is not None
        bucket = Bucket.from_dict(saved) if saved else None
        arrival = arrive(page, logged, bucket, self.limit, now)
        if arrival.bucket is not None:
            p.tables.page_throttle[key] = arrival.bucket.to_dict()
        if arrival.duplicate is not None:
            duplicate = Notice(
                page.dedup_key, page.incident_id, ReceiptOutcome.DUPLICATE, 1, arrival.duplicate
            )
            await send_receipt(p, duplicate, page, now)
        elif not arrival.send:
            p.count("pages_held")
        else:
            self.courier.hand_over(Job(page, source))

    def on_flush(self, key: str, source: Source, now: datetime) -> None:
        """Hand over the digest of what destination ``key`` holds, if a token is free."""
        self.flushing.pop(key, None)
        buckets = self.p.tables.page_throttle
        saved = buckets.get(key)
        if self.limit is None or saved is None:
            return
        flushed = flush(Bucket.from_dict(saved), self.limit, now)
        digest = flushed.digest
        if digest is None:
            return
        if self.p.tables.notification_log.get(digest.dedup_key) is None:  # else: replayed
            held = tuple((h.dedup_key, h.incident_id) for h in flushed.held)
            self.courier.hand_over(Job(digest, source, held))
        buckets[key] = flushed.bucket.to_dict()

    async def request_flushes(self, now: datetime) -> None:
        """Ask the stream to flush each destination whose digest is due (once per due time)."""
        if self.limit is None:
            return
        for key, value in list(self.p.tables.page_throttle.items()):
            due = flush_due(Bucket.from_dict(value), self.limit)
            if due is None or due > now or self.flushing.get(key) == due:
                continue
            self.flushing[key] = due
            request = FlushDigest(key=key, at=now)
            await self.p.topics.deliveries.send(key=key.encode(), value=encode(request))


async def send_receipt(p: Pipeline, notice: Notice, to: Page, at: datetime) -> None:
    r = receipt(notice, to, at)
    await p.topics.receipts.send(key=notice.incident_id.encode(), value=encode(r))


class Courier:
    """Hands deliveries to their destinations' lanes and, in the lane, sends them with
    retries and reports their outcome; writes the notification log."""

    def __init__(
        self, p: Pipeline, lanes: Lanes, backoff: Backoff, retention: LogRetention
    ) -> None:
        self.p, self.lanes, self.backoff, self.retention = p, lanes, backoff, retention

    def log(self, key: str, entry: dict[str, Any]) -> None:
        self.retention.write(key, entry, datetime.now(tz=UTC))

    def hand_over(self, job: Job) -> None:
        """Record ``job`` as pending (inside the stream) and queue it on its lane."""
        self.log(job.page.dedup_key, job.pending_entry())
        self.lanes.submit(throttle_key(job.page), job.page.dedup_key, partial(self.run, job))

    def resubmit(self, key: str, job: Job) -> bool:
        """Queue an unfinished ``job`` on its lane again; False if a lane has it already."""
        return self.lanes.submit(throttle_key(job.page), key, partial(self.run, job))

    def settled(self, report: DeliveryOutcome) -> None:
        """Write a delivery's outcome over its pending entries (inside the stream)."""
        for key, entry in report.entries.items():
            self.log(key, dict(entry))
            self.lanes.settled(key)
        for name, n in outcome_counts(report.entries):
            self.p.count(name, n)

    async def run(self, job: Job) -> None:
        """In the lane: send with retries, a receipt per attempt, then report the outcome.

        The pending entry :meth:`hand_over` wrote is on the broker before the first attempt:
        table writes wait in the producer's buffer while the outcome is sent at once, so a
        worker killed after the outcome reached the broker could restart without the entry,
        read the page again before its outcome and send it a second time (seen under load)."""
        page = job.page
        await self.p.app.producer.flush()
        result, tries = await retry(
            partial(self.attempt, page), lambda r: not r.delivered and r.retryable, self.backoff
        )
        done = settle(page, job.held, result, tries)
        if done.lost is not None:
            await send_receipt(self.p, done.lost, page, datetime.now(tz=UTC))
            await self.p.dead_letters.send(job.source, "deliver", done.reason or "undeliverable")
        if done.escalate:
            await escalate(self.p, page, result.detail)
        for notice in done.folded:
            await send_receipt(self.p, notice, page, datetime.now(tz=UTC))
        report = DeliveryOutcome(destination=throttle_key(page), entries=done.entries)
        sent = await self.p.topics.deliveries.send(
            key=report.destination.encode(), value=encode(report)
        )
        await sent  # the lane's work is done only once the broker has its outcome

    async def attempt(self, page: Page, n: int) -> DeliveryResult:
        """Attempt ``n`` to deliver ``page``, with its receipt."""
        result = await deliver(self.p, page)
        if result.delivered:
            faults.reached("after-2xx-before-log")
        outcome = ReceiptOutcome.DELIVERED if result.delivered else ReceiptOutcome.FAILED
        notice = Notice(page.dedup_key, page.incident_id, outcome, n, result.detail)
        await send_receipt(self.p, notice, page, datetime.now(tz=UTC))
        return result


async def deliver(p: Pipeline, page: Page) -> DeliveryResult:
    """``page`` through its channel's notifier; a notifier that raises fails the page."""
    try:
        return await p.notifiers[page.channel].deliver(page)
    except Exception as exc:  # a notifier's bug: this page fails, the lane goes on
        return DeliveryResult(False, False, f"{type(exc).__name__}: {exc}"[:500])


async def escalate(p: Pipeline, page: Page, detail: str | None) -> None:
    """Tell the incident that this page reached nobody, and wait until the broker has it."""
    failed = delivery_failed(page, detail, datetime.now(tz=UTC))
    sent = await p.topics.commands.send(key=page.routing_key.encode(), value=encode(failed))
    await sent


class Resume:
    """Finds the pending entries no lane works on (the worker stopped, or the partition moved
    here) and hands them to their lanes again, once the stream has read their partition up to
    where it ended when they were found: the outcome a stopped worker sent may be unread."""

    def __init__(self, p: Pipeline, courier: Courier) -> None:
        self.p, self.courier = p, courier
        #: The last offset of each ``mobilization.deliveries.v1`` partition this stream processed.
        self.read_to: dict[int, int] = {}
        #: For each pending entry found with no lane on it: its partition's end offset then.
        self.end_when_found: dict[str, int] = {}

    def read(self, message: Any) -> None:
        self.read_to[message.partition] = message.offset

    async def scan(self) -> None:
        """Not during a rebalance: a partition's rows are then being restored, and a pending
        entry may be back before the outcome written over it."""
        if self.p.app.rebalancing:
            return
        log = self.p.tables.notification_log
        for key in [k for k in self.end_when_found if not pending(log.recent.get(k))]:
            del self.end_when_found[key]
        for key, entry in list(log.recent.items()):
            if not pending(entry) or key in self.courier.lanes.busy:
                continue
            # The outcome of a delivery a stopped worker finished may be on the partition still
            # unread: resuming now would send the page a second time.
            if not self.past_end(key):
                continue
            if self.courier.resubmit(key, Job.from_pending(entry)):
                self.p.count("deliveries_resumed")

    def past_end(self, key: str) -> bool:
        """Whether this stream has processed every record the entry's partition had when the
        entry was first found pending, so that an outcome sent for it before then (by a worker
        that stopped) has been read. The end is taken once: traffic after it does not delay
        the resume."""
        partition = self.p.tables.notification_log.partition_of(key)
        if partition is None:
            return False
        consumer: Any = self.p.app.consumer  # Faust private state: its committed offsets
        tp = consumer._new_topicpartition(self.p.settings.topics.deliveries, partition)
        if key not in self.end_when_found:
            high = consumer.highwater(tp)
            if high is None:
                return False
            self.end_when_found[key] = int(high)
        committed = consumer._committed_offset.get(tp)
        return read_past(self.read_to.get(partition), committed, self.end_when_found[key])
