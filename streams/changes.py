"""The recent changes of every service (``changes.v1``), kept in memory by every worker: what the
review's "changes before impact" and ``GET /api/changes`` read. A plain consumer reads the topic
from the beginning (the topic's retention bounds it), keeping at most ``KEPT_PER_SERVICE``
changes a service."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from typing import TYPE_CHECKING, Any

from aiokafka import AIOKafkaConsumer
from mode import Service
from pydantic import ValidationError

from schemas.changes import Change

if TYPE_CHECKING:
    from streams.settings import Settings

log = logging.getLogger(__name__)

KEPT_PER_SERVICE = 1000


class ChangeLog(Service):
    """Changes by service, newest last, each id once."""

    def __init__(self, settings: Settings, **kwargs: Any) -> None:
        self.settings = settings
        self.by_service: dict[str, deque[Change]] = {}
        self._ids: set[str] = set()
        super().__init__(**kwargs)

    def add(self, change: Change) -> None:
        if change.id in self._ids:
            return
        kept = self.by_service.setdefault(change.service, deque())
        if len(kept) >= KEPT_PER_SERVICE:
            self._ids.discard(kept.popleft().id)
        kept.append(change)
        self._ids.add(change.id)

    def of(self, services: set[str]) -> list[Change]:
        return [c for s in sorted(services) for c in list(self.by_service.get(s, ()))]

    def all(self) -> list[Change]:
        return [c for kept in list(self.by_service.values()) for c in list(kept)]

    @Service.task
    async def _follow(self) -> None:
        topic = self.settings.topics.changes
        while not self.should_stop:
            consumer = AIOKafkaConsumer(
                topic, **self.settings.kafka_client_kwargs(),
                group_id=None, auto_offset_reset="earliest", enable_auto_commit=False,
            )  # fmt: skip
            try:
                await consumer.start()
                while not self.should_stop:
                    batch = await consumer.getmany(timeout_ms=500)
                    for records in batch.values():
                        for r in records:
                            # An invalid change: the join agent dead-letters it with the reason.
                            with contextlib.suppress(ValidationError):
                                self.add(Change.model_validate_json(r.value or b""))
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("change log consumer failed; reconnecting")
                await self.sleep(2.0)
            finally:
                await consumer.stop()
