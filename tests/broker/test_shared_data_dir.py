"""Two workers on one data directory with the disk store: the second refuses to start, naming
WARROOM_DATA_DIR, and leaves the running worker's databases alone (it would otherwise take them
for those of a worker that crashed, and delete them under the one that has them open)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

import pytest

from devtools.kafka_local import free_port
from tests.harness import RunningWorker, eventually

pytestmark = pytest.mark.broker


async def test_a_second_worker_on_a_data_directory_in_use_refuses_to_start(
    start_worker: Callable[..., RunningWorker],
) -> None:
    first = start_worker(None, table_store="rocksdb")
    data_dir = Path(first.env["WARROOM_DATA_DIR"])
    dbs = sorted(data_dir.rglob("*.db"))
    assert dbs, "the disk store's databases"
    port = free_port()
    second = dataclasses.replace(
        first, env={**first.env, "WARROOM_WEB_PORT": str(port)},
        base_url=f"http://127.0.0.1:{port}", log_path=first.log_path.with_name("second.log"),
        proc=None,
    )  # fmt: skip
    second.start(ready=False)
    assert second.proc is not None
    proc = second.proc

    async def exited() -> int | None:
        return proc.poll()

    code = await eventually(exited, 60, "the second worker to exit")
    assert code != 0
    said = second.log_text()
    assert "WARROOM_DATA_DIR" in said and "Traceback" not in said, said
    assert all(db.exists() for db in dbs)
    assert first.proc is not None and first.proc.poll() is None
