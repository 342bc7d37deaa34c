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

With the disk store (``table_store=rocksdb``: Faust's RocksDB store through ``rocksdict``) the
store keeps one database per owned partition and closes those it gives away, so a table keeps
no per-row map in memory: only the rows its ``keep`` predicate picks (the incidents the API lists
and counts without reading the whole store) and Faust's bounded key index. A database written by
a worker that did not stop cleanly may hold rows whose changelog record never reached the
broker: :func:`open_table_dir` deletes it then, and the tables are restored from their
changelogs, which are the truth (as Kafka Streams does after an unclean stop).
"""

from __future__ import annotations

import fcntl
import logging
import shutil
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import faust
from faust.types import TP, EventT

if TYPE_CHECKING:
    from streams.settings import Settings

log = logging.getLogger(__name__)

#: The file a worker that stopped cleanly leaves in its table directory.
CLEAN_STOP = "clean-stop"
#: The file whose lock a worker on the disk store holds on its table directory while it runs.
TABLE_DIR_LOCK = "worker.lock"


class TableDirInUse(ValueError):
    """Another running worker holds the table directory."""


def open_table_dir(tabledir: Path) -> bool:
    """Before the disk store opens its databases: delete them unless the worker that wrote them
    stopped cleanly (True: deleted). The mark is consumed, so a crash from now on counts.

    >>> import tempfile
    >>> d = Path(tempfile.mkdtemp())
    >>> (d / "incidents-0.db").mkdir()
    >>> mark_clean_stop(d); open_table_dir(d), (d / "incidents-0.db").exists()
    (False, True)
    >>> open_table_dir(d), (d / "incidents-0.db").exists()
    (True, False)
    """
    marker = tabledir / CLEAN_STOP
    clean = marker.is_file()  # anything else under its name (a directory) is no mark
    if marker.is_dir() and not marker.is_symlink():
        shutil.rmtree(marker, ignore_errors=True)
    else:
        marker.unlink(missing_ok=True)
    if clean:
        return False
    stale = sorted(tabledir.glob("*.db")) if tabledir.is_dir() else []
    for path in stale:
        shutil.rmtree(path, ignore_errors=True)
    return bool(stale)


def mark_clean_stop(tabledir: Path) -> None:
    """After a clean stop (every changelog record flushed): the databases may be reused."""
    tabledir.mkdir(parents=True, exist_ok=True)
    (tabledir / CLEAN_STOP).touch()


def _keep_none(value: Any) -> bool:
    return False


class OwnedTable(faust.Table):
    """A :class:`faust.Table` whose rows are those of the partitions assigned to this worker.

    ``keep`` picks the rows also held in :attr:`recent` (in memory, whatever the store), so that
    they can be listed without reading the store; :meth:`sweep` lets go of those it no longer
    picks.
    """

    def __init__(self, *args: Any, keep: Callable[[Any], bool] = _keep_none, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.keep = keep
        self.on_disk = str(self._store or self.app.conf.store).startswith("rocksdb:")
        #: The partition of each row in memory: every row (memory store), else ``recent``'s.
        self._partitions: dict[Any, int | None] = {}
        #: The rows ``keep`` picks, by key.
        self.recent: dict[Any, Any] = {}
        #: Owned partitions whose database has been read for ``recent`` (disk store).
        self._recalled: set[int] = set()

    def partition_of(self, key: Any) -> int | None:
        """The partition whose changelog holds the row ``key`` (None: no such row here)."""
        found = self._partitions.get(key)
        if found is not None or not self.on_disk:
            return found
        store: Any = self.data  # Faust's RocksDB store: one database per owned partition
        raw = store._encode_key(key)
        for partition, db in list(store._dbs.items()):
            if db.get(raw) is not None:
                return int(partition)
        return None

    def resident_rows(self) -> int:
        """Rows held in memory: every row with the memory store, the recent rows with the disk
        store (whose key index, Faust's, holds at most ``table_key_index_size`` partition
        numbers and no row)."""
        return len(self._partitions) if not self.on_disk else len(self.recent)

    def sweep(self) -> int:
        """Let go of the recent rows ``keep`` no longer picks; how many."""
        gone = [k for k, v in self.recent.items() if not self.keep(v)]
        for key in gone:
            self._forget_recent(key)
        return len(gone)

    def _remember(self, key: Any, value: Any, partition: int | None) -> None:
        if self.keep(value):
            self.recent[key] = value
            self._partitions[key] = partition
        else:
            self._forget_recent(key)
            if not self.on_disk:
                self._partitions[key] = partition

    def _forget_recent(self, key: Any) -> None:
        self.recent.pop(key, None)
        if self.on_disk:
            self._partitions.pop(key, None)

    def _forget(self, key: Any) -> None:
        self.recent.pop(key, None)
        self._partitions.pop(key, None)

    def on_key_set(self, key: Any, value: Any) -> None:
        # Same partition as the changelog record: the partition of the event being processed.
        self._remember(key, value, self.partition_for_key(key))
        super().on_key_set(key, value)

    def on_key_del(self, key: Any) -> None:
        self._forget(key)
        super().on_key_del(key)

    async def on_changelog_event(self, event: EventT) -> None:
        # A row read back from the changelog (recovery) lives in the partition it was read from.
        key = self._to_key(event.key)
        if event.message.value is None:
            self._forget(key)
        else:
            self._remember(key, event.value, event.message.partition)
        await super().on_changelog_event(event)

    async def on_recovery_completed(self, active_tps: set[TP], standby_tps: set[TP]) -> None:
        owned = {tp.partition for tp in active_tps}  # as the store does for restored rows
        gone = [k for k, partition in self._partitions.items() if partition not in owned]
        for key in gone:
            self._forget(key)
            if not self.on_disk:
                # The store's own delete: a local forget, no tombstone on the changelog. (The
                # disk store closes the databases of the partitions it gave away itself.)
                self.data.pop(key, None)
        self._recalled &= owned
        if self.on_disk and self.keep is not _keep_none:
            self._recall(owned - self._recalled)
            self._recalled |= owned
        await super().on_recovery_completed(active_tps, standby_tps)

    def _recall(self, partitions: set[int]) -> None:
        """Read the databases of newly owned partitions once for the rows ``keep`` picks: a
        recovery from a database kept on disk reads only the changelog records written since,
        so the rows in :attr:`recent` before the stop are found there."""
        store: Any = self.data
        for partition in sorted(partitions):
            db = store._dbs.get(partition)
            if db is None:
                continue
            for raw_key, raw_value in store._visible_items(db):
                value = store._decode_value(raw_value)
                if self.keep(value):
                    self._remember(store._decode_key(raw_key), value, partition)


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


def per_incident_store(settings: Settings, name: str) -> dict[str, Any]:
    """The ``app.Table`` arguments of the table ``name`` that grows with every incident: none for
    the memory store; the URL and driver of Faust's RocksDB store for the disk store. The URL
    names the table: Faust takes a store URL with neither host nor path (``rocksdb://``) for
    none and falls back to the app's store (memory) silently."""
    if settings.table_store == "memory":
        return {}
    return {"store": f"rocksdb:{name}", "options": {"driver": "rocksdict"}}


def prepare_table_dir(settings: Settings, tabledir: Path) -> bool:
    """Before any table opens: with the disk store, take the table directory for this process
    (:func:`lock_table_dir`), then delete the databases a worker that did not stop cleanly left
    (see :func:`open_table_dir`); True when it did."""
    if settings.table_store == "memory":
        return False
    lock_table_dir(tabledir, settings.data_dir)
    return open_table_dir(tabledir)


#: The open lock file of each table directory this process holds (held until it exits).
_HELD: dict[Path, IO[str]] = {}


def lock_table_dir(tabledir: Path, data_dir: Path) -> None:
    """Hold an exclusive lock on ``tabledir`` for as long as this process runs; raise
    :class:`TableDirInUse` if another process holds it. Without it, a second worker on the same
    data directory would take the running one's databases for those of a crashed worker and
    delete them under it. The operating system releases the lock when the process ends, however
    it ends."""
    if tabledir in _HELD:
        return
    tabledir.mkdir(parents=True, exist_ok=True)
    handle = (tabledir / TABLE_DIR_LOCK).open("a")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise TableDirInUse(
            f"another worker is running on the data directory {data_dir} (WARROOM_DATA_DIR): "
            f"its table store {tabledir} is locked; give each worker a data directory of its own"
        ) from None
    _HELD[tabledir] = handle


def recent_incident(resolved_in_memory_s: float) -> Callable[[Any], bool]:
    """The ``keep`` of the ``incidents`` table: an incident not resolved, or resolved less than
    ``resolved_in_memory_s`` ago (by this worker's clock: it only decides what is listed from
    memory)."""

    def keep(row: Any) -> bool:
        if not isinstance(row, dict) or row.get("status") != "resolved":
            return True
        try:
            at = datetime.fromisoformat(str(row.get("resolved_at")).replace("Z", "+00:00"))
        except ValueError:
            return False
        return (datetime.now(tz=UTC) - at).total_seconds() < resolved_in_memory_s

    return keep
