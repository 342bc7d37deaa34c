"""Retention of the ``notification-log`` and the ``automation-log`` (``delivery_log_retention_s``):
the shell around :mod:`responders.retention`.

Both tables are written by a stream keyed otherwise than the table (pages by destination, the
timeline by routing key), and a table row may only be written from inside the stream that owns
its partition: its changelog record goes to the partition of the message being processed. So a
timer never deletes an entry itself. Every :func:`~responders.retention.scan_interval_s` (a
minute) it reads the table, picks the entries whose retention has run out or whose age is
unknown (:func:`~responders.retention.to_prune`, at most 1,000 a scan), and sends each a
:class:`~schemas.retention.PruneEntry` to the partition that holds it
(:meth:`streams.tables.OwnedTable.partition_of`); the stream, when it reads the request, checks
again and deletes the entry (a tombstone on the changelog) or stamps it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from responders.retention import (
    WRITTEN_AT,
    Prune,
    never,
    on_prune,
    scan_interval_s,
    stamp,
    to_prune,
)
from schemas.retention import PruneEntry
from streams.codec import encode

if TYPE_CHECKING:
    from streams.pipeline import Pipeline


class LogRetention:
    """The retention of one log ``table``, whose owning stream reads ``topic``."""

    def __init__(
        self,
        p: Pipeline,
        table: Any,
        topic: Any,
        counter: str,
        pinned: Callable[[Mapping[str, Any]], bool] = never,
    ) -> None:
        self.p, self.table, self.topic, self.counter, self.pinned = p, table, topic, counter, pinned
        self.retention_s = p.settings.delivery_log_retention_s
        #: Entries asked about and not yet answered, with the write time they had then.
        self._asked: dict[str, object] = {}

    @property
    def interval_s(self) -> float:
        return scan_interval_s(self.retention_s)

    def write(self, key: str, entry: Mapping[str, Any], now: datetime) -> dict[str, Any]:
        """Write ``entry`` (inside the owning stream) with the time; the entry as written."""
        stamped = stamp(entry, now)
        self.table[key] = stamped
        return stamped

    async def scan(self, now: datetime) -> int:
        """Ask the owning stream about each entry that is due; how many were asked about."""
        if self.retention_s <= 0:
            return 0
        self._asked = {k: v for k, v in self._asked.items() if k in self.table}
        entries = list(self.table.items())
        sent = 0
        for key in to_prune(entries, self.retention_s, now, self._asked, self.pinned):
            partition = self.table.partition_of(key)
            entry = self.table.get(key)
            if partition is None or entry is None:
                continue
            self._asked[key] = entry.get(WRITTEN_AT)
            request = PruneEntry(key=key, at=now)
            await self.topic.send(key=key.encode(), value=encode(request), partition=partition)
            sent += 1
        return sent

    def on_request(self, request: PruneEntry, now: datetime) -> Prune:
        """Act on a request (inside the owning stream): forget, stamp or keep the entry."""
        self._asked.pop(request.key, None)
        entry = self.table.get(request.key)
        verdict = on_prune(entry, self.retention_s, now, entry is not None and self.pinned(entry))
        if verdict is Prune.FORGET:
            del self.table[request.key]  # a tombstone on the changelog
            self.p.count(self.counter)
        elif verdict is Prune.STAMP and entry is not None:
            self.write(request.key, entry, now)
        return verdict
