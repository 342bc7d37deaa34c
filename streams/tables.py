"""The table class of every changelog-backed table: it holds only the partitions this worker owns.

Faust's in-memory store forgets, after a rebalance, the rows it restored from a changelog for
partitions the worker no longer owns, but it does not know the partition of a row the worker
wrote itself, so those rows stay. With two workers, the one that gave a partition away would go
on serving that partition's incidents (frozen at the moment of the handover, and also served by
their new owner), counting them in its gauges and ticking their groups from stale deadlines.
:class:`OwnedTable` remembers the partition of every row it writes and drops the rows of the
partitions it no longer owns once a rebalance's recovery has completed.
"""

from __future__ import annotations

from typing import Any

import faust
from faust.types import TP


class OwnedTable(faust.Table):
    """A :class:`faust.Table` whose rows are those of the partitions assigned to this worker."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._written_in: dict[Any, int | None] = {}

    def on_key_set(self, key: Any, value: Any) -> None:
        # Same partition as the changelog record: the partition of the event being processed.
        self._written_in[key] = self.partition_for_key(key)
        super().on_key_set(key, value)

    def on_key_del(self, key: Any) -> None:
        self._written_in.pop(key, None)
        super().on_key_del(key)

    async def on_recovery_completed(self, active_tps: set[TP], standby_tps: set[TP]) -> None:
        owned = {tp.partition for tp in active_tps}  # as the store does for restored rows
        gone = [k for k, partition in self._written_in.items() if partition not in owned]
        for key in gone:
            del self._written_in[key]
            # The store's own delete: a local forget, no tombstone on the changelog.
            self.data.pop(key, None)
        await super().on_recovery_completed(active_tps, standby_tps)
