"""Test harness: one real Kafka broker per session, and workers started as real processes.

Fixtures:

- ``kafka_bootstrap``: the ``host:port`` of an Apache Kafka broker this session started itself
  (``devtools.kafka_local.LocalBroker``, the code behind ``warroom kafka start``). If it cannot
  start, tests that use it fail; they never skip.
- ``kafka_cluster``: a three-node KRaft cluster (:class:`devtools.kafka_local.LocalCluster`),
  started once per session by the first test that asks for it; it fails, never skips.
- ``start_worker(catalog=None, **settings)``: starts ``warroom worker`` as a subprocess with a
  fresh app id, fresh topic names and its own data dir, waits until ``/readyz`` answers, and
  returns a :class:`tests.harness.RunningWorker` (``base_url``, ``token``, ``settings``,
  ``topics``, ``log_tail()``, ``stop()``, ``kill()``, ``restart()``). Stopped after the test.
- ``webhook_server``: a real local HTTP server recording every request it receives
  (:class:`tests.harness.WebhookServer`: ``url``, ``requests``, ``wait_for(n, timeout_s)``).

When a test fails, the end of every worker log under its ``tmp_path`` is added to the failure
report, so a failure in CI can be read without the (already deleted) worker folders.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Generator, Iterator
from pathlib import Path
from typing import Any

import pytest

from devtools.kafka_local import LocalBroker, LocalCluster
from tests.harness import STARTED, RunningWorker, WebhookServer, new_worker

LOG_TAIL_LINES = 150


def _telling(line: str) -> bool:
    """False for the lines Faust draws its tables with and for its services' start/stop lines,
    so a failed test's log tail is about what the worker did."""
    if line[:1] in "|+〃" or not line.strip():
        return False
    return not line.rstrip().endswith(("]: Starting...", "]: Stopping..."))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    tmp_path = getattr(item, "funcargs", {}).get("tmp_path")
    if report.failed and isinstance(tmp_path, Path):
        for log in sorted(tmp_path.rglob("worker.log")):
            text = log.read_text(errors="replace")
            lines = [line for line in text.splitlines() if _telling(line)][-LOG_TAIL_LINES:]
            name = log.relative_to(tmp_path).parent
            report.sections.append(
                (f"worker log {name} (last {len(lines)} lines)", "\n".join(lines))
            )
    if report.failed and call.when == "call":
        # Where each worker still running is waiting, for a test that timed out on one.
        for worker in STARTED:
            dump = worker.dump_tasks()
            if dump:
                report.sections.append((f"worker tasks {worker.app_id} (SIGUSR1)", dump))
    if call.when == "teardown":
        STARTED.clear()
    return report


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    broker = LocalBroker(tmp_path_factory.mktemp("kafka"))
    bootstrap = broker.start(timeout_s=180)
    try:
        yield bootstrap
    finally:
        broker.stop()


@pytest.fixture(scope="session")
def kafka_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    """A three-node KRaft cluster (replication 3, min.insync.replicas 2), started only when a
    test asks for it; a test that kills a node starts it again before it ends."""
    cluster = LocalCluster(tmp_path_factory.mktemp("kafka-cluster"))
    cluster.start(timeout_s=240)
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def start_worker(
    kafka_bootstrap: str, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[Callable[..., RunningWorker]]:
    started: list[RunningWorker] = []

    def start(catalog: dict[str, Any] | None = None, **settings: Any) -> RunningWorker:
        worker = new_worker(kafka_bootstrap, tmp_path, request.node.name, catalog, settings)
        started.append(worker)
        worker.start()
        return worker

    yield start
    hung = []
    for worker in started:  # every worker is stopped, even after one hangs
        try:
            worker.stop()
        except AssertionError as exc:
            hung.append(str(exc))
    assert not hung, "\n\n".join(hung)


@pytest.fixture
async def webhook_server() -> AsyncIterator[WebhookServer]:
    server = WebhookServer()
    await server.start()
    try:
        yield server
    finally:
        await server.stop()
