"""The table class of every changelog-backed table: it holds only the partitions this worker owns.

Faust's in-memory store forgets, after a rebalance, the rows it restored from a changelog for
partitions the worker no longer owns, but it does not know the partition of a row the worker
wrote itself, so those rows stay. With two workers, the one that gave a partition away would go
on serving that partition's incidents (frozen at the moment of the handover, and also served by
their new owner), counting them in its gauges and ticking their groups from stale deadlines.
:class:`OwnedTable` remembers the partition of every row it writes and drops the rows of the
partitions it no longer owns once a rebalance's recovery has completed.

It also remembers the partition of every row it restores, so that it can say which partition's
changelog holds any row (:meth:`OwnedTable.partition_of`): a table keyed otherwise than the
stream that writes it (the ``notification-log``, by dedup key, written by a stream keyed by
destination) can only be changed by a message sent to that partition.
"""

from __future__ import annotations

from typing import Any

import faust
from faust.types import TP, EventT


class OwnedTable(faust.Table):
    """A :class:`faust.Table` whose rows are those of the partitions assigned to this worker."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._partitions: dict[Any, int | None] = {}

    def partition_of(self, key: Any) -> int | None:
        """The partition whose changelog holds the row ``key`` (None: no such row here)."""
        return self._partitions.get(key)

    def on_key_set(self, key: Any, value: Any) -> None:
        # Same partition as the changelog record: the partition of the event being processed.
        self._partitions[key] = self.partition_for_key(key)
        super().on_key_set(key, value)

    def on_key_del(self, key: Any) -> None:
        self._partitions.pop(key, None)
        super().on_key_del(key)

    async def on_changelog_event(self, event: EventT) -> None:
        # A row read back from the changelog (recovery) lives in the partition it was read from.
        key = self._to_key(event.key)
        if event.message.value is None:
            self._partitions.pop(key, None)
        else:
            self._partitions[key] = event.message.partition
        await super().on_changelog_event(event)

    async def on_recovery_completed(self, active_tps: set[TP], standby_tps: set[TP]) -> None:
        owned = {tp.partition for tp in active_tps}  # as the store does for restored rows
        gone = [k for k, partition in self._partitions.items() if partition not in owned]
        for key in gone:
            del self._partitions[key]
            # The store's own delete: a local forget, no tombstone on the changelog.
            self.data.pop(key, None)
        await super().on_recovery_completed(active_tps, standby_tps)


class RecoveryWatchdog:
    """Restarts a table recovery that has stopped making progress.

    Faust's recovery after a rebalance can wait forever for changelog records that its consumer
    never fetches (the "No event received for active tp" warning, then nothing). Asking the
    recovery to start over, as a new rebalance would, seeks and resumes the changelog partitions
    again. ``check`` is called about once a second with the remaining record count.
    """

    def __init__(self, stall_s: float) -> None:
        self.stall_s = stall_s
        self._last: tuple[int, float] | None = None

    def check(self, now: float, in_recovery: bool, remaining: int) -> bool:
        """True when the recovery should be restarted.

        >>> dog = RecoveryWatchdog(stall_s=10)
        >>> dog.check(0, True, 5), dog.check(4, True, 3), dog.check(13, True, 3)
        (False, False, False)
        >>> dog.check(15, True, 3), dog.check(16, True, 3)
        (True, False)
        >>> dog.check(17, False, 0), dog.check(40, True, 3)
        (False, False)
        """
        if not in_recovery:
            self._last = None
            return False
        if self._last is None or self._last[0] != remaining:
            self._last = (remaining, now)
            return False
        if now - self._last[1] > self.stall_s:
            self._last = (remaining, now)
            return True
        return False
