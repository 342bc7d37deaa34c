"""What every worker must see whole, whatever partitions it owns: silences (``silences.v1``),
personal API tokens (``auth.tokens.v1``, by SHA-256), which incidents are open or resolved
(``incidents.events.v1``, for inhibition by dependencies and "until resolved" silences), and the
live catalog with its on-call overrides (``catalog.v1``, folded by
:class:`streams.live_catalog.LiveCatalog`), read by a plain consumer from the beginning. The
catalog in force changes between batches of records, never within one. It also announces
silences as they are scheduled, start and expire (in the log and as ``silence`` messages on the
dashboard's live stream)."""

from __future__ import annotations

import asyncio
import json
import logging
from collections import OrderedDict
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError
from mode import Service
from pydantic import ValidationError

from responders.silences import SilenceState, forgettable, transitions
from schemas.auth import TokenRecord
from schemas.silences import Silence

if TYPE_CHECKING:
    from streams.live import Live
    from streams.live_catalog import LiveCatalog
    from streams.settings import Settings

log = logging.getLogger(__name__)

_RESOLVED_KEPT = 100_000
#: Seconds the incident stream waits at most for the directory to catch up after a start.
CATCH_UP_WAIT_S = 120.0
#: Seconds between looks for silences to forget.
FORGET_EVERY_S = 5.0


def _when(value: Any) -> datetime | None:
    """An event's ``at`` (RFC 3339 text), or None when it cannot be read."""
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None


async def _position(consumer: AIOKafkaConsumer, tp: Any) -> int:
    """The consumer's next offset on ``tp``, or -1 while it has none (not assigned yet)."""
    if tp not in consumer.assignment():
        return -1
    try:
        return int(await asyncio.wait_for(consumer.position(tp), 1.0))
    except (TimeoutError, KafkaError):
        return -1


class Directory(Service):
    """Silences and resolved incident ids, kept up to date in memory."""

    def __init__(
        self, settings: Settings, live: Live, catalogs: LiveCatalog | None = None, **kwargs: Any
    ) -> None:
        self.settings = settings
        self.live = live
        #: The live catalog, when this directory follows ``catalog.v1``.
        self.catalogs = catalogs
        self.silences: dict[str, Silence] = {}
        #: Personal tokens by their SHA-256 (hex).
        self.tokens: dict[str, TokenRecord] = {}
        #: Resolved incident ids, with when they were resolved (None if unreadable).
        self.resolved: OrderedDict[str, datetime | None] = OrderedDict()
        self._producer: AIOKafkaProducer | None = None
        self.known: dict[str, SilenceState] = {}
        #: Open incidents by id, with their service (for inhibition by dependencies).
        self.open_incidents: dict[str, str] = {}
        self._services: OrderedDict[str, str] = OrderedDict()
        #: Routing keys of the incidents opened, bounded as ``_services``.
        self._keys: OrderedDict[str, str] = OrderedDict()
        #: Set once both topics have been read up to where they ended at the start.
        self.caught_up = asyncio.Event()
        self._announced = False
        super().__init__(**kwargs)

    def open_on(self, service: str) -> str | None:
        """An open incident on ``service``, if any (the oldest id, deterministically)."""
        ids = sorted(i for i, s in self.open_incidents.items() if s == service)
        return ids[0] if ids else None

    def open_with_keys(self, service: str) -> list[tuple[str, str]]:
        """The open incidents of ``service``, each with its routing key (oldest id first)."""
        ids = sorted(i for i, s in self.open_incidents.items() if s == service)
        return [(i, self._keys[i]) for i in ids if i in self._keys]

    def active_silences(self) -> list[Silence]:
        return list(self.silences.values())

    def _apply_token(self, key: bytes | None, value: bytes | None) -> None:
        digest = key.decode(errors="replace") if key else ""
        if value is None:
            self.tokens.pop(digest, None)
            return
        try:
            record = TokenRecord.model_validate_json(value)
        except ValidationError:
            log.warning("ignoring an invalid token record on %s", self.settings.topics.tokens)
            return
        self.tokens[record.digest] = record

    def _apply(self, topic: str, key: bytes | None, value: bytes | None) -> None:
        if topic == self.settings.topics.tokens:
            self._apply_token(key, value)
            return
        if topic == self.settings.topics.silences:
            silence_id = key.decode() if key else None
            if value is None:
                if silence_id:
                    self.silences.pop(silence_id, None)
                return
            try:
                silence = Silence.model_validate_json(value)
            except ValidationError:
                log.warning("ignoring an invalid silence on %s", topic)
                return
            self.silences[silence.id] = silence
            return
        try:
            event = json.loads(value or b"null")
        except (ValueError, RecursionError):  # invalid input: the agents dead-letter it
            return
        if not isinstance(event, dict):
            return
        kind, incident_id = event.get("kind"), str(event.get("incident_id"))
        if kind == "opened":
            service = str(((event.get("data") or {}).get("incident") or {}).get("service", ""))
            self._services[incident_id] = service
            self._keys[incident_id] = str(event.get("routing_key", ""))
            while len(self._services) > _RESOLVED_KEPT:
                self._services.popitem(last=False)
            while len(self._keys) > _RESOLVED_KEPT:
                self._keys.popitem(last=False)
            self.open_incidents[incident_id] = service
        elif kind == "resolved":
            self.open_incidents.pop(incident_id, None)
            self.resolved[incident_id] = _when(event.get("at"))
            while len(self.resolved) > _RESOLVED_KEPT:
                self.resolved.popitem(last=False)
        elif kind == "reopened":
            self.resolved.pop(incident_id, None)
            if incident_id in self._services:
                self.open_incidents[incident_id] = self._services[incident_id]

    @Service.task
    async def _follow(self) -> None:
        names = self.settings.topics
        topics: tuple[str, ...] = (names.silences, names.tokens, names.events)
        catalog_topic = names.catalog
        if self.catalogs is not None:
            topics = (*topics, catalog_topic)
        while not self.should_stop:
            consumer = AIOKafkaConsumer(
                *topics, **self.settings.kafka_client_kwargs(),
                group_id=None, auto_offset_reset="earliest", enable_auto_commit=False,
            )  # fmt: skip
            try:
                await consumer.start()
                behind = await self._ends(consumer, topics)
                while not self.should_stop:
                    batch = await consumer.getmany(timeout_ms=500)
                    for records in batch.values():
                        for r in records:
                            if r.topic == catalog_topic and self.catalogs is not None:
                                self.catalogs.apply(r.key, r.value, r.offset)
                            else:
                                self._apply(r.topic, r.key, r.value)
                    if self.catalogs is not None:
                        self.catalogs.settle()
                    # The position, not the last record: compaction and control records leave
                    # gaps below the end offset.
                    behind = {
                        tp: end for tp, end in behind.items() if await _position(consumer, tp) < end
                    }
                    if not behind and not self.caught_up.is_set():
                        self.caught_up.set()
                        log.info("directory caught up: silences and incident states loaded")
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("directory consumer failed; reconnecting")
                await self.sleep(2.0)
            finally:
                await consumer.stop()

    @Service.task
    async def _give_up_waiting(self) -> None:
        """Judging inputs without every silence is better than judging none: after
        ``CATCH_UP_WAIT_S`` the incident stream goes on, with an error in the log."""
        try:
            await asyncio.wait_for(self.caught_up.wait(), CATCH_UP_WAIT_S)
        except TimeoutError:
            log.error(
                "directory not caught up after %gs; judging inputs with the silences read so far",
                CATCH_UP_WAIT_S,
            )
            self.caught_up.set()

    @Service.timer(FORGET_EVERY_S)
    async def _forget_ended(self) -> None:
        """Delete the silences that ended a retention ago: from memory at once, and from
        ``silences.v1`` with a tombstone (every worker may send one; they are idempotent), so
        that neither the silence checks of each detection nor a start pay for them forever."""
        retention_s = self.settings.silence_retention_s
        if not self.caught_up.is_set() or retention_s <= 0:
            return
        now = datetime.now(tz=UTC)
        ended = [
            s for s in self.active_silences() if forgettable(s, now, retention_s, self.resolved)
        ]
        if not ended:
            return
        if self._producer is None:
            self._producer = AIOKafkaProducer(**self.settings.kafka_client_kwargs(), acks="all")
            await self._producer.start()
        for silence in ended:
            self.silences.pop(silence.id, None)
            self.known.pop(silence.id, None)
            await self._producer.send_and_wait(
                self.settings.topics.silences, key=silence.id.encode(), value=None
            )
        log.info("forgot %d silence(s) that ended %gs ago or more", len(ended), retention_s)

    async def on_stop(self) -> None:
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None

    @staticmethod
    async def _ends(consumer: AIOKafkaConsumer, topics: tuple[str, ...]) -> dict[Any, int]:
        """The end offset of each non-empty partition of ``topics``: what "caught up" reaches."""
        partitions = [
            TopicPartition(topic, p)
            for topic in topics
            for p in sorted(consumer.partitions_for_topic(topic) or ())
        ]
        ends = await consumer.end_offsets(partitions) if partitions else {}
        return {tp: end for tp, end in ends.items() if end > 0}

    @Service.timer(1.0)
    async def _announce(self) -> None:
        if not self.caught_up.is_set():
            return  # what was read so far is history, not news
        now = datetime.now(tz=UTC)
        first = not self._announced
        self._announced = True
        moves = transitions(self.active_silences(), self.known, now, self.resolved)
        ended = {silence.id for silence, current in moves if current is SilenceState.EXPIRED}
        for silence, current in moves:
            self.known[silence.id] = current
            if first and silence.id in ended:
                continue  # expired before this worker started: nothing to announce
            # A new pending silence (a maintenance window planned ahead) is announced as
            # scheduled: the dashboard lists it from then on, not only once it starts.
            what = {"active": "started", "expired": "expired", "pending": "scheduled"}[current]
            log.warning("silence %s %s: %s (by %s)", silence.id, what, silence.comment,
                        silence.created_by)  # fmt: skip
            self.live.publish("silence", {**silence.model_dump(mode="json"), "state": current})
