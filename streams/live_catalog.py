"""The live catalog on ``catalog.v1``: what every worker follows, what ``warroom config apply``
writes, and what ``warroom oncall`` reads.

The catalog file (``WARROOM_CATALOG_PATH``) is the bootstrap: it is in force until the topic has
a catalog. From then on the newest revision on the topic is, with the on-call overrides taken at
run time added to its schedules. A revision's version is its offset on the topic (one
partition), so it only grows. Records that do not validate are logged and skipped: the catalog
in force stays the last good one.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError
from pydantic import ValidationError

from responders.oncall import with_overrides
from schemas import Catalog, format_errors
from schemas.live_catalog import (
    CATALOG_KEY,
    OVERRIDE_PREFIX,
    CatalogRevision,
    ShiftOverride,
    catalog_digest,
)
from streams.settings import Settings
from streams.tools import read_to_end

log = logging.getLogger(__name__)

#: ``catalog.v1`` has one partition: one order for every revision and override.
CATALOG_PARTITIONS = 1
CATALOG_CONFIGS = {"cleanup.policy": "compact"}


@dataclass(frozen=True)
class InForce:
    """The catalog in force (overrides included), its version (None: the bootstrap file) and the
    digest of the catalog it was made from."""

    catalog: Catalog
    version: int | None
    digest: str

    def describe(self) -> str:
        where = "the catalog file" if self.version is None else f"version {self.version}"
        return f"{where} (digest {self.digest[:12]})"


class LiveCatalog:
    """A fold of ``catalog.v1`` records over the bootstrap catalog. ``apply`` each record, then
    ``settle``: the catalog in force changes once per batch, whole, and ``on_change`` hears it."""

    def __init__(
        self, bootstrap: Catalog, on_change: Callable[[InForce], None] | None = None
    ) -> None:
        self.bootstrap = bootstrap
        self.revision: CatalogRevision | None = None
        self.version: int | None = None
        self.overrides: dict[str, ShiftOverride] = {}
        self.in_force = InForce(bootstrap, None, catalog_digest(bootstrap))
        self._on_change = on_change
        self._dirty = False
        #: Records that did not validate (or had an unknown key), skipped.
        self.skipped = 0

    @property
    def base(self) -> Catalog:
        """The catalog without run-time overrides."""
        return self.revision.catalog if self.revision is not None else self.bootstrap

    def apply(self, key: bytes | None, value: bytes | None, offset: int) -> None:
        """Take one record of ``catalog.v1`` into account (at ``settle``)."""
        if key == CATALOG_KEY:
            if value is None:
                log.warning("ignoring a tombstone of the catalog at offset %d", offset)
                return
            try:
                revision = CatalogRevision.model_validate_json(value)
            except ValidationError as exc:
                log.warning("ignoring an invalid catalog at offset %d: %s", offset,
                            format_errors(exc)[:500])  # fmt: skip
                self.skipped += 1
                return
            self.revision, self.version = revision, offset
        elif key is not None and key.startswith(OVERRIDE_PREFIX.encode()):
            override_id = key[len(OVERRIDE_PREFIX) :].decode(errors="replace")
            if value is None:
                self.overrides.pop(override_id, None)
            else:
                try:
                    override = ShiftOverride.model_validate_json(value)
                except ValidationError as exc:
                    log.warning("ignoring an invalid override at offset %d: %s", offset,
                                format_errors(exc)[:500])  # fmt: skip
                    self.skipped += 1
                    return
                if override.id != override_id:  # it could never be deleted by its id
                    log.warning("ignoring override %r stored under the key of %r at offset %d",
                                override.id, override_id, offset)  # fmt: skip
                    self.skipped += 1
                    return
                self.overrides[override_id] = override
        else:
            log.warning("ignoring a record with an unknown key on the catalog topic (offset %d)",
                        offset)  # fmt: skip
            self.skipped += 1
            return
        self._dirty = True

    def settle(self) -> InForce:
        """The catalog in force after the records applied so far (rebuilt if they changed it)."""
        if self._dirty:
            self._dirty = False
            digest = self.revision.digest if self.revision is not None else self.in_force.digest
            catalog = with_overrides(self.base, self.overrides.values())
            changed = self.version != self.in_force.version
            self.in_force = InForce(catalog, self.version, digest)
            if changed:
                log.info("catalog in force: %s", self.in_force.describe())
            if self._on_change is not None:
                self._on_change(self.in_force)
        return self.in_force

    def active_overrides(self, now: datetime) -> list[ShiftOverride]:
        """The overrides that have not ended by ``now``, earliest first."""
        found = [o for o in self.overrides.values() if o.end > now]
        return sorted(found, key=lambda o: (o.start, o.id))


async def ensure_catalog_topic(settings: Settings) -> None:
    """Create ``catalog.v1`` (one partition, compacted) unless it exists."""
    admin = AIOKafkaAdminClient(**settings.kafka_client_kwargs())
    await admin.start()
    try:
        if settings.topics.catalog in set(await admin.list_topics()):
            return
        topic = NewTopic(
            name=settings.topics.catalog,
            num_partitions=CATALOG_PARTITIONS,
            replication_factor=settings.replication_factor,
            topic_configs=dict(CATALOG_CONFIGS),
        )
        with contextlib.suppress(TopicAlreadyExistsError):
            await admin.create_topics([topic])
    finally:
        await admin.close()


async def read_live(settings: Settings, bootstrap: Catalog, timeout_s: float) -> LiveCatalog:
    """``catalog.v1`` read to its end: the catalog in force now. Raises ``TimeoutError`` when the
    end is not reached within ``timeout_s``."""
    live = LiveCatalog(bootstrap)
    consumer = AIOKafkaConsumer(
        **settings.kafka_client_kwargs(), group_id=None, enable_auto_commit=False
    )
    await consumer.start()
    try:
        if settings.topics.catalog not in await consumer.topics():
            return live
        # Every record is written to partition 0 (:func:`publish`; one partition when created).
        tps = [TopicPartition(settings.topics.catalog, 0)]
        async for r in read_to_end(consumer, tps, timeout_s):
            live.apply(r.key, r.value, r.offset)
        live.settle()
        return live
    finally:
        await consumer.stop()


async def publish(settings: Settings, key: bytes, value: bytes | None) -> int:
    """Write one record to ``catalog.v1`` and wait for every in-sync replica; its offset."""
    producer = AIOKafkaProducer(**settings.kafka_client_kwargs(), acks="all")
    await producer.start()
    try:
        meta = await producer.send_and_wait(settings.topics.catalog, value, key=key, partition=0)
        return int(meta.offset)
    finally:
        await producer.stop()
