"""Real-broker test helpers: workers as subprocesses, produce/consume, deadline-bounded polls."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import yaml
from aiohttp import web
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from prometheus_client.parser import text_string_to_metric_families

from devtools.kafka_local import free_port
from streams.settings import TopicNames

T = TypeVar("T")


async def eventually(
    probe: Callable[[], Awaitable[T | None]], timeout_s: float, what: str, interval_s: float = 0.1
) -> T:
    """Poll ``probe`` until it returns something other than None, or fail after the deadline."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = await probe()
        if value is not None:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")
        await asyncio.sleep(interval_s)


#: Every worker process started by this harness, for the failure report's task dumps.
STARTED: list[RunningWorker] = []


@dataclass
class RunningWorker:
    """A ``warroom worker`` process with its own app id, topics, data dir and port."""

    env: dict[str, str]
    topics: TopicNames
    app_id: str
    bootstrap: str
    base_url: str
    token: str
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None

    def group_of(self, topic: str) -> str:
        """The consumer group that reads ``topic``: points have their own (``detect``)."""
        return f"{self.app_id}-detect" if topic == self.topics.metrics else self.app_id

    def start(self, timeout_s: float = 90.0, ready: bool = True) -> None:
        """Start the worker and wait until it is ready (with ``ready`` False: do not wait, for a
        worker that may kill itself at a fault point before it answers)."""
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "streams.cli", "worker"],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        log.close()
        if self not in STARTED:
            STARTED.append(self)
        if not ready:
            return
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"worker exited with {self.proc.returncode}:\n{self.log_tail()}"
                )
            if _ready(self.base_url):
                return
            time.sleep(0.1)
        raise AssertionError(f"worker not ready within {timeout_s}s:\n{self.log_tail()}")

    def stop(self, timeout_s: float = 30.0) -> None:
        """SIGTERM, and fail if the worker has not exited ``timeout_s`` later: a shutdown hang
        is a bug. The hung worker is SIGKILLed before the failure, so nothing outlives the test."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(
                f"worker hung on shutdown: still running {timeout_s}s after SIGTERM "
                f"(SIGKILLed):\n{self.log_tail()}"
            ) from None

    def kill(self) -> bool:
        """SIGKILL the worker; True when it was running until this kill ended it."""
        if self.proc is None or self.proc.poll() is not None:
            return False
        self.proc.kill()
        return self.proc.wait() == -signal.SIGKILL

    def dump_tasks(self, wait_s: float = 2.0) -> str:
        """Where the running worker's tasks that pass through this project's code are waiting
        (the worker writes every task's chain of awaits on SIGUSR1); empty when it is not
        running."""
        if self.proc is None or self.proc.poll() is not None:
            return ""
        before = self.log_path.stat().st_size
        self.proc.send_signal(signal.SIGUSR1)
        time.sleep(wait_s)
        with self.log_path.open("rb") as f:
            f.seek(before)
            dump = f.read().decode(errors="replace")
        blocks = re.split(r"\n(?=TASK |SUSPENDED )", dump)
        return "\n".join(b for b in blocks if "/streams/" in b or "CONSUMER " in b)

    def restart(self) -> None:
        self.stop()
        self.start()

    def log_tail(self, lines: int = 60) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


def _ready(base_url: str) -> bool:
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(f"{base_url}/readyz", timeout=1) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def new_worker(
    bootstrap: str,
    tmp_path: Path,
    test_name: str,
    catalog: dict[str, Any] | None,
    settings: dict[str, Any],
) -> RunningWorker:
    """A worker configured for one test: fresh topics and group, so tests never share state."""
    suffix = uuid.uuid4().hex[:8]
    slug = re.sub(r"[^A-Za-z0-9]+", "-", test_name)[:40].strip("-")
    app_id = f"t-{slug}-{suffix}"
    topics = TopicNames(**{k: f"{app_id}.{v}" for k, v in TopicNames().model_dump().items()})
    port = free_port()
    token = uuid.uuid4().hex
    home = tmp_path / app_id
    home.mkdir(parents=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("WARROOM_")}
    env.update(
        {
            "WARROOM_APP_ID": app_id,
            "WARROOM_BOOTSTRAP_SERVERS": bootstrap,
            "WARROOM_PARTITIONS": "2",
            "WARROOM_DATA_DIR": str(home / "data"),
            "WARROOM_WEB_PORT": str(port),
            "WARROOM_API_TOKEN": token,
            "WARROOM_TOPICS": topics.model_dump_json(),
            "WARROOM_DELIVERY_BACKOFF_S": "0.05",
            # A killed worker's partitions move to its replacement after this long.
            "WARROOM_SESSION_TIMEOUT_S": "6",
            # Open incidents at once unless a test is about grouping (the default is 30 s).
            "WARROOM_GROUP_WAIT_S": "0",
            # WARROOM_TEST_TABLE_STORE=rocksdb runs every test's workers on the disk store.
            "WARROOM_TABLE_STORE": os.environ.get("WARROOM_TEST_TABLE_STORE", "memory"),
        }
    )
    if catalog is not None:
        path = home / "catalog.yaml"
        path.write_text(yaml.safe_dump(catalog))
        env["WARROOM_CATALOG_PATH"] = str(path)
    for key, value in settings.items():
        env[f"WARROOM_{key.upper()}"] = value if isinstance(value, str) else json.dumps(value)
    return RunningWorker(
        env=env,
        topics=topics,
        app_id=app_id,
        bootstrap=bootstrap,
        base_url=f"http://127.0.0.1:{port}",
        token=token,
        log_path=home / "worker.log",
    )


def same_group(worker: RunningWorker, home: Path, name: str) -> RunningWorker:
    """Another worker of ``worker``'s app: same app id, topics, settings and consumer group,
    with its own port, data dir and log, so the two share the partitions between them."""
    port = free_port()
    folder = home / f"{worker.app_id}-{name}"
    folder.mkdir(parents=True)
    env = {
        **worker.env,
        "WARROOM_WEB_PORT": str(port),
        "WARROOM_DATA_DIR": str(folder / "data"),
    }
    return RunningWorker(
        env=env,
        topics=worker.topics,
        app_id=worker.app_id,
        bootstrap=worker.bootstrap,
        base_url=f"http://127.0.0.1:{port}",
        token=worker.token,
        log_path=folder / "worker.log",
    )


async def produce(
    bootstrap: str, topic: str, messages: Sequence[tuple[bytes | None, bytes]]
) -> None:
    """Send (key, value) pairs in order and wait until the broker has them all."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for key, value in messages:
            await producer.send_and_wait(topic, value, key=key)
    finally:
        await producer.stop()


async def consume(
    bootstrap: str,
    topic: str,
    until: Callable[[list[Any]], bool],
    timeout_s: float,
    decode: Callable[[bytes], Any] = json.loads,
) -> list[Any]:
    """Read ``topic`` from the beginning until ``until(values)`` holds, or fail at the deadline."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        group_id=None,
    )
    await consumer.start()
    values: list[Any] = []
    deadline = time.monotonic() + timeout_s
    try:
        while not until(values):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(
                    f"timed out after {timeout_s}s reading {topic}; got {len(values)}: "
                    f"{values[-3:]!r}"
                )
            batch = await consumer.getmany(timeout_ms=int(min(remaining, 0.5) * 1000))
            for records in batch.values():
                values.extend(decode(r.value) for r in records if r.value is not None)
        return values
    finally:
        await consumer.stop()


async def partitions_of(bootstrap: str, topic: str) -> list[int]:
    """The partition numbers of an existing topic."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        [described] = await admin.describe_topics([topic])
        return sorted(p["partition"] for p in described["partitions"])
    finally:
        await admin.close()


async def read_all(
    bootstrap: str, topic: str, decode: Callable[[bytes], Any] = json.loads
) -> list[Any]:
    """Every value on ``topic`` right now (reads up to the end offsets seen at the start)."""
    return [decode(value) for _, value in await read_records(bootstrap, topic) if value is not None]


async def read_records(bootstrap: str, topic: str) -> list[tuple[bytes | None, bytes | None]]:
    """Every record on ``topic`` right now as ``(key, value)``, tombstones (value None) included,
    in order within each partition (reads up to the end offsets seen at the start)."""
    return [(r.key, r.value) for r in await read_timed_records(bootstrap, topic)]


@dataclass(frozen=True)
class Record:
    """One record as the broker holds it; ``value`` None is a tombstone."""

    partition: int
    key: bytes | None
    value: bytes | None
    #: The record's timestamp (set by its producer when it sent it), in epoch seconds.
    at: float
    offset: int = -1


async def read_timed_records(bootstrap: str, topic: str) -> list[Record]:
    """Every record on ``topic`` right now, with its partition and timestamp, tombstones
    included, in order within each partition (reads up to the end offsets seen at the start)."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None
    )
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in await partitions_of(bootstrap, topic)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        records: list[Record] = []
        deadline = time.monotonic() + 30
        while [tp for tp in tps if await consumer.position(tp) < ends[tp]]:
            if time.monotonic() > deadline:
                raise AssertionError(f"could not read {topic} to its end within 30s")
            batch = await consumer.getmany(timeout_ms=200)
            for batch_records in batch.values():
                records.extend(
                    Record(r.partition, r.key, r.value, r.timestamp / 1000, r.offset)
                    for r in batch_records
                )
        return records
    finally:
        await consumer.stop()


async def consumed_all(bootstrap: str, group: str, topic: str) -> bool:
    """True when ``group`` has committed offsets at the end of every partition of ``topic``."""
    return not await lagging(bootstrap, group, topic)


async def every_input_consumed(
    worker: RunningWorker,
    topics: Sequence[str],
    timeout_s: float = 120.0,
    context: Callable[[], Awaitable[str]] | None = None,
) -> None:
    """Wait until the worker's groups have committed every one of ``topics`` to its end; on
    timeout, fail saying which partitions lag (committed offset, end offset), and what
    ``context`` says then."""

    async def probe() -> bool | None:
        for topic in topics:
            if not await consumed_all(worker.bootstrap, worker.group_of(topic), topic):
                return None
        return True

    try:
        await eventually(probe, timeout_s, "the worker to consume every input")
    except AssertionError as timed_out:
        behind = {t: await lagging(worker.bootstrap, worker.group_of(t), t) for t in topics}
        said = f"; {await context()}" if context is not None else ""
        raise AssertionError(f"{timed_out}: lagging {behind}{said}") from None


async def lagging(bootstrap: str, group: str, topic: str) -> dict[int, tuple[int, int]]:
    """The partitions of ``topic`` where ``group`` has not committed up to the end:
    partition -> (committed offset, end offset)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
    await admin.start()
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in await partitions_of(bootstrap, topic)]
        ends = await consumer.end_offsets(tps)
        committed = await admin.list_consumer_group_offsets(group, partitions=tps)
        behind = {}
        for tp in tps:
            meta = committed.get(tp)
            done = meta.offset if meta is not None and meta.offset >= 0 else 0
            if done < ends[tp]:
                behind[tp.partition] = (done, ends[tp])
        return behind
    finally:
        await consumer.stop()
        await admin.close()


async def group_state(bootstrap: str, group: str) -> tuple[str, int]:
    """A consumer group's state (``Stable``, ``PreparingRebalance``, ...) and member count."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        [response] = await admin.describe_consumer_groups([group])
        [described] = response.to_object()["groups"]
        return str(described["state"]), len(described["members"])
    finally:
        await admin.close()


@dataclass
class WebhookServer:
    """A real HTTP server on loopback that records each request (headers and JSON body)."""

    requests: list[dict[str, Any]] = field(default_factory=list)
    status: int = 200
    _runner: web.AppRunner | None = None
    port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    async def _hook(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.requests.append(
            {"headers": dict(request.headers), "json": json.loads(body or b"null"),
             "at": time.time()}
        )  # fmt: skip
        return web.Response(status=self.status, text="ok")

    async def start(self) -> None:
        await self.start_on(free_port())

    async def start_on(self, port: int) -> None:
        app = web.Application()
        app.router.add_post("/hook", self._hook)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        self.port = port
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def wait_for(self, count: int, timeout_s: float) -> list[dict[str, Any]]:
        async def probe() -> list[dict[str, Any]] | None:
            return self.requests if len(self.requests) >= count else None

        return await eventually(probe, timeout_s, f"{count} webhook request(s)")


class Api:
    """A small client for the worker's HTTP API."""

    def __init__(self, worker: RunningWorker) -> None:
        self.worker = worker

    async def get(self, path: str) -> tuple[int, Any]:
        async with (
            aiohttp.ClientSession() as session,
            session.get(self.worker.base_url + path) as response,
        ):
            return response.status, await response.json()

    async def delete(self, path: str) -> tuple[int, Any]:
        async with (
            aiohttp.ClientSession() as session,
            session.delete(self.worker.base_url + path, headers=self.worker.headers()) as response,
        ):
            return response.status, await response.json()

    async def post(
        self,
        path: str,
        body: dict[str, Any] | None = None,
        token: str | None = "default",
        actor: str | None = None,
    ) -> tuple[int, Any]:
        """POST ``body``; ``actor`` names who acts with the shared token (``X-Warroom-Actor``):
        a body's ``actor`` is not read."""
        headers = {}
        if token == "default":
            headers = self.worker.headers()
        elif token is not None:
            headers = {"Authorization": f"Bearer {token}"}
        if actor is not None:
            headers["X-Warroom-Actor"] = actor
        async with (
            aiohttp.ClientSession() as session,
            session.post(self.worker.base_url + path, json=body, headers=headers) as response,
        ):
            return response.status, await response.json()


async def counters(worker: RunningWorker) -> dict[str, float]:
    """Every sample of the worker's ``/metrics``, by name and labels."""
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{worker.base_url}/metrics") as response,
    ):
        text = await response.text()
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
            out[f"{sample.name}{{{labels}}}" if labels else sample.name] = sample.value
    return out
