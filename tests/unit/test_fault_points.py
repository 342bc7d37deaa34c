"""Fault points (``streams.faults``): off unless armed; armed, the nth hit of the point kills the
process with SIGKILL after recording it; a bad spec is refused naming the setting; and the test
harness fails a test whose worker hangs on shutdown instead of quietly killing it."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from pydantic import ValidationError

from streams import faults
from streams.settings import Settings, TopicNames
from tests.harness import RunningWorker


def run(script: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    code = textwrap.dedent(script).format(data=str(tmp_path))
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )


def test_an_armed_point_kills_at_its_nth_hit_after_recording_it(tmp_path: Path) -> None:
    done = run(
        """
        from pathlib import Path
        from streams import faults
        faults.arm("after-2xx-before-log:3", Path({data!r}))
        faults.reached("mid-checkpoint")  # another point: not counted
        for n in range(1, 5):
            print("hit", n, flush=True)
            faults.reached("after-2xx-before-log")
        print("survived", flush=True)
        """,
        tmp_path,
    )
    assert done.returncode == -signal.SIGKILL, done.stderr
    assert done.stdout.split("\n")[:-1] == ["hit 1", "hit 2", "hit 3"]
    [line] = (tmp_path / faults.MARKER).read_text().splitlines()
    assert line.split()[:2] == ["after-2xx-before-log", "3"]


def test_reached_after_awaits_what_was_sent_and_counts_only_between_writes(
    tmp_path: Path,
) -> None:
    done = run(
        """
        import asyncio
        from pathlib import Path
        from streams import faults
        faults.arm("mid-checkpoint", Path({data!r}))

        async def main():
            await faults.reached_after("mid-checkpoint", [])  # nothing written yet: no hit
            print("first block", flush=True)
            written = asyncio.get_running_loop().create_future()
            asyncio.get_running_loop().call_later(0.05, written.set_result, None)
            await faults.reached_after("mid-checkpoint", [written])
            print("survived", flush=True)

        asyncio.run(main())
        """,
        tmp_path,
    )
    assert done.returncode == -signal.SIGKILL, done.stderr
    assert done.stdout == "first block\n"
    assert (tmp_path / faults.MARKER).read_text().startswith("mid-checkpoint 1 ")


def test_unarmed_points_do_nothing(tmp_path: Path) -> None:
    faults.arm("", tmp_path)
    for point in faults.POINTS:
        faults.reached(point)
    assert not (tmp_path / faults.MARKER).exists()


@pytest.mark.parametrize(
    "spec", ["mid-nowhere", "mid-checkpoint:0", "mid-checkpoint:x"], ids=["name", "zero", "nth"]
)
def test_a_bad_fault_point_is_refused_naming_the_setting(
    spec: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WARROOM_FAULT_POINT", spec)
    with pytest.raises(ValidationError, match="fault_point"):
        Settings()


def test_fault_points_are_off_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WARROOM_FAULT_POINT", raising=False)
    assert Settings().fault_point == ""


def test_stop_fails_on_a_shutdown_hang_and_still_kills_the_worker(tmp_path: Path) -> None:
    worker = RunningWorker(
        env={}, topics=TopicNames(), app_id="hang", bootstrap="127.0.0.1:1",
        base_url="http://127.0.0.1:1", token="-", log_path=tmp_path / "worker.log",
    )  # fmt: skip
    worker.proc = subprocess.Popen(
        [sys.executable, "-c",
         "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
         "print('up', flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE,
    )  # fmt: skip
    assert worker.proc.stdout is not None and worker.proc.stdout.readline() == b"up\n"
    with pytest.raises(AssertionError, match="hung on shutdown"):
        worker.stop(timeout_s=1.0)
    assert worker.proc.poll() == -signal.SIGKILL
