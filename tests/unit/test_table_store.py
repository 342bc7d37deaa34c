"""The table store setting, the clean-stop mark of the disk store, and what stays in memory."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from responders.delivery import pending
from streams.settings import Settings
from streams.tables import (
    TABLE_DIR_LOCK,
    TableDirInUse,
    mark_clean_stop,
    open_table_dir,
    per_incident_store,
    prepare_table_dir,
    recent_incident,
)


def _db(tabledir: Path, name: str) -> Path:
    path = tabledir / name
    path.mkdir(parents=True)
    (path / "CURRENT").write_text("MANIFEST-000001\n")
    return path


def test_a_clean_stop_keeps_the_databases_once(tmp_path: Path) -> None:
    db = _db(tmp_path, "incidents-0.db")
    mark_clean_stop(tmp_path)
    assert open_table_dir(tmp_path) is False
    assert db.exists()
    # The mark is consumed at the start: a crash from then on deletes them.
    assert open_table_dir(tmp_path) is True
    assert not db.exists()


def test_no_mark_deletes_every_database_and_nothing_else(tmp_path: Path) -> None:
    dbs = [_db(tmp_path, "incidents-0.db"), _db(tmp_path, "incident-timelines-1.db")]
    other = tmp_path / "notes.txt"
    other.write_text("kept")
    assert open_table_dir(tmp_path) is True
    assert not any(db.exists() for db in dbs)
    assert other.read_text() == "kept"


def test_a_first_start_has_nothing_to_delete(tmp_path: Path) -> None:
    assert open_table_dir(tmp_path / "absent") is False


def test_the_store_of_the_tables_that_grow_with_incidents() -> None:
    assert per_incident_store(Settings(table_store="memory"), "incidents") == {}
    found = per_incident_store(Settings(table_store="rocksdb"), "incidents")
    # The URL names the table: Faust takes "rocksdb://" (no host, no path) for no store at all.
    assert found == {"store": "rocksdb:incidents", "options": {"driver": "rocksdict"}}


@pytest.mark.parametrize("bad", ["disk", "RocksDB", ""], ids=["other", "case", "empty"])
def test_an_unknown_store_is_refused_naming_the_setting(bad: str) -> None:
    with pytest.raises(ValidationError, match="table_store"):
        Settings(table_store=bad)


def test_a_negative_retention_in_memory_is_refused() -> None:
    with pytest.raises(ValidationError, match="resolved_in_memory_s"):
        Settings(resolved_in_memory_s=-1)


def _resolved(ago_s: float) -> dict[str, Any]:
    at = datetime.now(tz=UTC) - timedelta(seconds=ago_s)
    return {"id": "inc-1", "status": "resolved", "resolved_at": at.isoformat()}


@pytest.mark.parametrize(
    ("row", "retention_s", "kept"),
    [
        ({"id": "inc-1", "status": "triggered"}, 0, True),
        ({"id": "inc-1", "status": "mitigated"}, 60, True),
        (_resolved(10), 3600, True),
        (_resolved(7200), 3600, False),
        (_resolved(10), 0, False),
        ({"id": "inc-1", "status": "resolved", "resolved_at": "yesterday"}, 3600, False),
        ({"id": "inc-1", "status": "resolved", "resolved_at": None}, 3600, False),
    ],
    ids=["open", "mitigated", "resolved-recently", "resolved-long-ago", "no-retention",
         "unreadable-time", "no-time"],
)  # fmt: skip
def test_which_incidents_stay_in_memory(
    row: dict[str, Any], retention_s: float, kept: bool
) -> None:
    assert recent_incident(retention_s)(row) is kept


@pytest.mark.parametrize(
    ("entry", "kept"),
    [({"outcome": "pending"}, True), ({"outcome": "delivered"}, False), ("pending", False)],
    ids=["pending", "delivered", "not-an-entry"],
)
def test_which_deliveries_stay_in_memory(entry: Any, kept: bool) -> None:
    assert pending(entry) is kept


def test_a_table_directory_in_use_by_another_worker_is_left_alone(tmp_path: Path) -> None:
    # A second worker started on the data directory of a running one (a shared volume, a copy
    # of the same settings) finds no clean-stop mark: the running worker consumed it. It must
    # not delete the databases the running worker has open, and must say why it stops.
    import fcntl

    db = _db(tmp_path, "incidents-0.db")
    settings = Settings(table_store="rocksdb", data_dir=tmp_path)
    with (tmp_path / TABLE_DIR_LOCK).open("a") as running:
        fcntl.flock(running, fcntl.LOCK_EX | fcntl.LOCK_NB)  # as the running worker holds it
        with pytest.raises(TableDirInUse, match="WARROOM_DATA_DIR"):
            prepare_table_dir(settings, tmp_path)
        assert db.exists()
    # Once that worker has stopped, the directory is this worker's.
    assert prepare_table_dir(settings, tmp_path) is True
    assert not db.exists()


def test_a_mark_that_is_not_a_file_counts_as_none(tmp_path: Path) -> None:
    # Whatever sits under the mark's name (a directory, a dangling link), the start goes on:
    # the databases are restored from their changelogs, and the next clean stop marks again.
    db = _db(tmp_path, "incidents-0.db")
    (tmp_path / "clean-stop").mkdir()
    assert open_table_dir(tmp_path) is True
    assert not db.exists()
    mark_clean_stop(tmp_path)
    assert open_table_dir(tmp_path) is False
    db = _db(tmp_path, "incidents-0.db")
    (tmp_path / "clean-stop").symlink_to(tmp_path / "nowhere")
    assert open_table_dir(tmp_path) is True
    assert not db.exists()
    mark_clean_stop(tmp_path)
    assert open_table_dir(tmp_path) is False
