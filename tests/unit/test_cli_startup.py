"""The command line answers light commands without importing the heavy machinery, and a worker
without a reachable broker says which address it tried and how to start one."""

from __future__ import annotations

import json
import os
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

from devtools.kafka_local import free_port
from streams.cli import parser

HEAVY = ["faust", "numba", "river", "detectors.registry", "aiokafka", "streams.app"]


def _imported_after(argv: list[str], watched: list[str] = HEAVY) -> set[str]:
    code = (
        "import json, sys\n"
        "from streams.cli import main\n"
        "try:\n"
        f"    main({argv!r})\n"
        "except SystemExit:\n"
        "    pass\n"
        f"print(json.dumps(sorted(m for m in {watched!r} if m in sys.modules)), file=sys.stderr)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    return set(json.loads(done.stderr.strip().splitlines()[-1]))


@pytest.mark.parametrize(
    "argv",
    [["--help"], ["bench", "--help"], ["kafka", "--help"], ["review", "--help"]],
    ids=["top-level", "bench", "kafka", "review"],
)
def test_help_imports_none_of_the_heavy_modules(argv: list[str]) -> None:
    assert _imported_after(argv) == set()


def _dev_tooling() -> list[str]:
    import devtools

    inside = pkgutil.walk_packages(devtools.__path__, "devtools.")
    return ["devtools", *sorted(m.name for m in inside)]


@pytest.mark.parametrize(
    "argv",
    [["--help"], ["worker", "--help"], ["detect", "--help"], ["replay", "--help"]],
    ids=["top-level", "worker", "detect", "replay"],
)
def test_runtime_commands_import_none_of_the_dev_tooling(argv: list[str]) -> None:
    # Benchmarks, the demo and the local broker live in ``devtools``; the CLI reaches them only
    # when one of their commands is chosen.
    assert _imported_after(argv, _dev_tooling()) == set()


def test_the_dev_commands_still_answer() -> None:
    for argv in (["bench", "nab", "--help"], ["demo", "--help"], ["kafka", "--help"]):
        with pytest.raises(SystemExit) as done:
            parser(argv).parse_args(argv)
        assert done.value.code == 0


def test_a_worker_does_not_import_river_unless_its_detector_is_used() -> None:
    # river takes about a second to import; only the ``river_hst`` detector needs it, and every
    # worker start (and every broker test) would pay for it.
    code = (
        "import sys\n"
        "import streams.worker, streams.app, detectors.registry\n"
        "print('river' in sys.modules)\n"
        "from detectors.multivariate import RiverHalfSpaceTrees\n"
        "RiverHalfSpaceTrees()\n"
        "print('river' in sys.modules)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.split() == ["False", "True"]


def test_the_full_parser_still_has_every_heavy_commands_options() -> None:
    # Built without argv (as documentation generators and tests do), nothing is left out.
    help_text = parser().format_help()
    assert "bench" in help_text
    bench = parser(["bench", "throughput"])
    args = bench.parse_args(["bench", "throughput", "--points", "1000"])
    assert args.points == 1000


def test_the_description_is_plain_text() -> None:
    assert "``" not in (parser().description or "")


def test_a_worker_without_a_broker_names_the_address_and_the_setting() -> None:
    address = f"127.0.0.1:{free_port()}"  # nothing listens there
    env = {**os.environ, "WARROOM_BOOTSTRAP_SERVERS": address}
    env.pop("WARROOM_CATALOG_PATH", None)
    done = subprocess.run(
        [sys.executable, "-m", "streams.cli", "worker"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )
    assert done.returncode == 2
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr  # one line, nothing else
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("warroom worker: no Kafka broker answered at " + address)
    assert "WARROOM_BOOTSTRAP_SERVERS" in last
    assert "warroom kafka start" in last
    assert "Traceback" not in done.stderr


def test_replay_without_a_broker_or_to_an_unknown_topic_says_so_in_one_line(
    tmp_path: Path,
) -> None:
    points = tmp_path / "points.jsonl"
    points.write_text('{"ts": 1, "service": "api", "metric": "m", "value": 1}\n')
    address = f"127.0.0.1:{free_port()}"
    env = {**os.environ, "WARROOM_BOOTSTRAP_SERVERS": address}
    done = subprocess.run(
        [sys.executable, "-m", "streams.cli", "replay", "--input", str(points), "--topic",
         "metrics"],
        capture_output=True, text=True, timeout=120, env=env, check=False,
    )  # fmt: skip
    assert done.returncode == 2
    assert done.stderr.strip() == (
        f"warroom replay: no Kafka broker answered at {address} (WARROOM_BOOTSTRAP_SERVERS); "
        "start one with `warroom kafka start`"
    )


def test_an_invalid_setting_is_named_by_its_variable() -> None:
    env = {**os.environ, "WARROOM_PARTITIONS": "zero"}
    done = subprocess.run(
        [sys.executable, "-m", "streams.cli", "worker"],
        capture_output=True, text=True, timeout=60, env=env, check=False,
    )  # fmt: skip
    assert done.returncode == 1
    assert done.stderr.strip().startswith("warroom: invalid settings: WARROOM_PARTITIONS: ")
