"""``warroom bench throughput``: points per second through ``detect`` against the raw ceiling.

Against a real broker (a local one started in a temporary folder, or
``WARROOM_BOOTSTRAP_SERVERS``), in one run:

(a) raw ceiling: a plain aiokafka consumer reads and JSON-decodes (msgspec) the points topic, no
    processing; measured before and after the pipeline's run, the faster counts;
(b) pipeline: a real ``warroom worker`` process scores the same points, timed by its own clock
    from the start of its first batch of points to the end of the batch that processed the last
    one (``warroom_points_processed_by_last_batch``, polled); a run whose times do not measure
    that (no batch ended after the first began) is refused, never printed; with
    ``--workers N``, then N workers sharing one consumer group (a fresh app id) score the same
    messages, timed from the first to the last point processed by any of them;
(c) end-to-end latency at a fixed offered load: from an anomalous point being produced (its ``ts``
    is the wall clock at production) to its detection on ``detections.v1``, to the ``opened``
    event on ``incidents.events.v1`` and to the page reaching a local webhook server;
(d) memory per series: the worker's RSS growth after warming 10k and 100k series with
    ``--memory-labels`` labels each (default 20), and the encoded size of one series' checkpointed
    detector state with a full window and as many labels in its id.

Prints a table, and as its last line one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
import msgspec
import numpy as np
import yaml
from aiohttp import web
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from detectors.registry import DEFAULT_DETECTOR, make_batch
from devtools.bench import add_detector_params, detector_params, machine
from devtools.kafka_local import LocalBroker, free_port
from streams.argtypes import positive_float, positive_int
from streams.settings import TopicNames

PARTITIONS = 4
POLL_S = 0.2


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


@dataclass
class Worker:
    """A ``warroom worker`` subprocess with its own app id, topics, data dir and port."""

    bootstrap: str
    home: Path
    settings: dict[str, Any] = field(default_factory=dict)
    catalog: dict[str, Any] | None = None
    app_id: str = field(default_factory=lambda: f"bench-{uuid.uuid4().hex[:8]}")
    #: Tells apart the workers of one app id (their data dirs and logs).
    instance: int = 0
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def topics(self) -> TopicNames:
        names = TopicNames().model_dump()
        return TopicNames(**{k: f"{self.app_id}.{v}" for k, v in names.items()})

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def folder(self) -> Path:
        return self.home / (f"{self.app_id}-{self.instance}" if self.instance else self.app_id)

    def start(self) -> None:
        folder = self.folder
        folder.mkdir(parents=True, exist_ok=True)
        env = {k: v for k, v in os.environ.items() if not k.startswith("WARROOM_")}
        env.update(
            {
                "WARROOM_APP_ID": self.app_id,
                "WARROOM_BOOTSTRAP_SERVERS": self.bootstrap,
                "WARROOM_PARTITIONS": str(PARTITIONS),
                "WARROOM_DATA_DIR": str(folder / "data"),
                "WARROOM_WEB_PORT": str(self.port),
                "WARROOM_API_TOKEN": uuid.uuid4().hex,
                "WARROOM_TOPICS": self.topics.model_dump_json(),
                "WARROOM_LOG_LEVEL": "warning",
                # Configured waits are not part of the measured latency.
                "WARROOM_GROUP_WAIT_S": "0",
            }
        )
        if self.catalog is not None:
            path = folder / "catalog.yaml"
            path.write_text(yaml.safe_dump(self.catalog))
            env["WARROOM_CATALOG_PATH"] = str(path)
        for key, value in self.settings.items():
            env[f"WARROOM_{key.upper()}"] = value if isinstance(value, str) else json.dumps(value)
        log = (folder / "worker.log").open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "streams.cli", "worker"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        log.close()

    async def wait_ready(self, timeout_s: float = 120.0) -> None:
        deadline = time.monotonic() + timeout_s
        async with aiohttp.ClientSession() as session:
            while time.monotonic() < deadline:
                assert self.proc is not None
                if self.proc.poll() is not None:
                    raise RuntimeError(f"worker exited; see {self.folder}")
                try:
                    async with session.get(f"{self.base_url}/readyz") as response:
                        if response.status == 200:
                            return
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.1)
        raise RuntimeError(f"worker not ready within {timeout_s}s")

    async def ready(self, session: aiohttp.ClientSession) -> bool:
        try:
            async with session.get(f"{self.base_url}/readyz") as response:
                return response.status == 200
        except aiohttp.ClientError:
            return False

    async def processed(self, session: aiohttp.ClientSession) -> int:
        try:
            async with session.get(f"{self.base_url}/metrics") as response:
                text = await response.text()
        except aiohttp.ClientError:
            return 0
        found = re.search(r"^warroom_points_processed_total (\S+)$", text, re.MULTILINE)
        return int(float(found.group(1))) if found else 0

    async def progress(self, session: aiohttp.ClientSession) -> Progress:
        """The worker's batch clock: when its first batch of points began and its last one
        ended (Unix times), and the points processed by then."""
        try:
            async with session.get(f"{self.base_url}/metrics") as response:
                text = await response.text()
        except aiohttp.ClientError:
            return Progress(0.0, 0.0, 0)
        values = {}
        for name in ("first_batch_at", "last_batch_at", "processed_by_last_batch"):
            found = re.search(rf"^warroom_points_{name} (\S+)$", text, re.MULTILINE)
            values[name] = float(found.group(1)) if found else 0.0
        return Progress(
            values["first_batch_at"],
            values["last_batch_at"],
            int(values["processed_by_last_batch"]),
        )

    def rss_bytes(self) -> int:
        assert self.proc is not None
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        return 0

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class BenchError(Exception):
    """A phase could not measure what it reports: refused, never printed as a figure."""


@dataclass(frozen=True)
class Progress:
    """One worker's batch clock (``Worker.progress``): Unix times its first batch of points
    began and its last one ended (0: none yet), and the points processed by that end."""

    first_batch_at: float
    last_batch_at: float
    processed_by_last_batch: int


def measured_rate(progress: list[Progress], expected: int) -> tuple[int, float]:
    """(points, seconds) from the first batch any worker began to the last batch any ended,
    once finished batches hold ``expected`` points; ``BenchError`` when they do not measure it.

    >>> measured_rate([Progress(100.0, 102.0, 5000), Progress(100.5, 101.0, 5000)], 10_000)
    (10000, 2.0)
    >>> measured_rate([Progress(100.0, 0.0, 0)], 10_000)
    Traceback (most recent call last):
    ...
    devtools.bench.throughput.BenchError: only 0 of 10000 points were processed by a finished batch
    """
    done = sum(p.processed_by_last_batch for p in progress)
    if done < expected:
        raise BenchError(f"only {done} of {expected} points were processed by a finished batch")
    began = [p.first_batch_at for p in progress if p.first_batch_at > 0]
    if not began:
        raise BenchError("no worker recorded when its first batch of points began")
    first, last = min(began), max(p.last_batch_at for p in progress)
    if last <= first:
        raise BenchError(
            f"the last batch ended at {last:.6f}, not after the first began at {first:.6f}"
        )
    return done, last - first


def series_name(s: int, services: int) -> tuple[str, str]:
    return f"svc{s % services:04d}", f"m{s // services}"


def series_labels(s: int, labels: int) -> dict[str, str]:
    """``labels`` labels for series ``s``, of the length Kubernetes and cloud labels have.

    >>> series_labels(7, 2)
    {'label_00': 'value-007', 'label_01': 'value-014'}
    """
    return {f"label_{j:02d}": f"value-{s * (j + 1) % 1000:03d}" for j in range(labels)}


def workload(
    n: int, k: int, batch: int, base: float, services: int, labels: int = 0
) -> Iterator[tuple[bytes, bytes, int]]:
    """(key, value, points) messages: ``n`` points over ``k`` series, ``batch`` per message,
    each series with ``labels`` labels.

    Each service's points go out in time order, chunked into messages of ``batch`` points.
    """
    rng = random.Random(1)
    per_service: list[list[int]] = [[] for _ in range(services)]
    for s in range(k):
        per_service[s % services].append(s)
    rounds = max(1, n // k)
    pending: dict[int, list[dict[str, Any]]] = {i: [] for i in range(services)}
    sent = 0
    for r in range(rounds):
        for svc, members in enumerate(per_service):
            for s in members:
                if sent >= n:
                    break
                service, metric = series_name(s, services)
                value = 100.0 + rng.gauss(0, 5)
                point = {"ts": base + r, "service": service, "metric": metric,
                         "value": round(value, 3)}  # fmt: skip
                if labels:
                    point["labels"] = series_labels(s, labels)
                pending[svc].append(point)
                sent += 1
                if len(pending[svc]) == batch:
                    yield _message(service, pending[svc])
                    pending[svc] = []
    for svc, rest in pending.items():
        if rest:
            yield _message(series_name(svc, services)[0], rest)


def _message(service: str, points: list[dict[str, Any]]) -> tuple[bytes, bytes, int]:
    body = points[0] if len(points) == 1 else {"points": points}
    return service.encode(), json.dumps(body, separators=(",", ":")).encode(), len(points)


Messages = Iterator[tuple[bytes, bytes, int]]


async def produce_workload(bootstrap: str, topic: str, messages: Messages) -> int:
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", linger_ms=20, max_batch_size=512 * 1024
    )
    await producer.start()
    total = 0
    try:
        futures = []
        for key, value, count in messages:
            futures.append(await producer.send(topic, value, key=key))
            total += count
            if len(futures) >= 5000:
                await asyncio.gather(*futures)
                futures = []
        await asyncio.gather(*futures)
    finally:
        await producer.stop()
    return total


async def raw_ceiling(bootstrap: str, topic: str) -> tuple[int, float]:
    """Read and JSON-decode the whole topic with a plain consumer; (points, seconds).

    Decoding uses the fastest JSON decoder at hand (msgspec, untyped: about three times faster
    than ``json.loads``), so the ceiling is what reading alone allows.
    """
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None,
        max_partition_fetch_bytes=4 * 1024 * 1024, fetch_max_bytes=16 * 1024 * 1024,
    )  # fmt: skip
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        points = 0
        started = time.perf_counter()
        remaining = {tp for tp in tps if ends[tp] > 0}
        while remaining:
            batch = await consumer.getmany(timeout_ms=500, max_records=10_000)
            for tp, records in batch.items():
                for r in records:
                    assert r.value is not None
                    data = msgspec.json.decode(r.value)
                    points += len(data["points"]) if "points" in data else 1
                if records and records[-1].offset + 1 >= ends[tp]:
                    remaining.discard(tp)
        return points, time.perf_counter() - started
    finally:
        await consumer.stop()


async def pipeline_rate(
    workers: list[Worker], expected: int, timeout_s: float
) -> tuple[int, float, list[int]]:
    """Poll the workers' counters until together they have processed ``expected``; (points,
    seconds from the first batch any of them began to the last one any finished, points by
    worker)."""
    progress = [Progress(0.0, 0.0, 0)] * len(workers)
    deadline = time.monotonic() + timeout_s
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            # The workers' own clocks: from the first batch any of them began to the end of
            # the batch that processed the last point (a batch's points are counted before it
            # ends, so the count alone would stop the clock early).
            progress = list(await asyncio.gather(*(w.progress(session) for w in workers)))
            if sum(p.processed_by_last_batch for p in progress) >= expected:
                break
            await asyncio.sleep(POLL_S)
    done, took = measured_rate(progress, expected)
    return done, took, [p.processed_by_last_batch for p in progress]


async def group_formed(bootstrap: str, workers: list[Worker], timeout_s: float = 120.0) -> None:
    """Wait until every worker is ready and their consumer group is stable with all of them."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    deadline = time.monotonic() + timeout_s
    try:
        async with aiohttp.ClientSession() as session:
            while time.monotonic() < deadline:
                # Faust's group, and the points consumers' own (``detect``).
                app_id = workers[0].app_id
                groups = []
                for name in (app_id, f"{app_id}-detect"):  # one at a time: aiokafka's admin
                    # client drops the connection on concurrent requests to one coordinator
                    [response] = await admin.describe_consumer_groups([name])
                    groups += response.to_object()["groups"]
                stable = len(groups) == 2 and all(
                    g["state"] == "Stable" and len(g["members"]) == len(workers) for g in groups
                )
                if stable and all(await asyncio.gather(*(w.ready(session) for w in workers))):
                    return
                await asyncio.sleep(0.2)
    finally:
        await admin.close()
    raise RuntimeError(f"{len(workers)} workers did not form one group within {timeout_s}s")


async def _ensure_topics(bootstrap: str, worker: Worker) -> None:
    from streams.settings import Settings
    from streams.topics import ensure_topics

    await ensure_topics(
        Settings(bootstrap_servers=bootstrap, partitions=PARTITIONS, topics=worker.topics)
    )


async def throughput(
    bootstrap: str,
    home: Path,
    n: int,
    k: int,
    batch: int,
    settings: dict[str, Any],
    workers: int = 1,
) -> dict[str, Any]:
    worker = Worker(bootstrap, home, settings=settings)
    topic = worker.topics.metrics
    await _ensure_topics(bootstrap, worker)
    services = min(k, 200)
    base = time.time() - n // k - 10
    sent = await produce_workload(bootstrap, topic, workload(n, k, batch, base, services))
    raw_points, raw_s = await raw_ceiling(bootstrap, topic)
    worker.start()
    try:
        # Polled from the start: the first sample with a processed point bounds when it began.
        done, took, _ = await pipeline_rate([worker], sent, timeout_s=600)
    finally:
        worker.stop()
    # The ceiling again, after the pipeline read the topic too: the faster of the two counts,
    # so neither a cold first read nor the order of the runs flatters the pipeline.
    again_points, again_s = await raw_ceiling(bootstrap, topic)
    raw = max(raw_points / raw_s if raw_s else 0.0, again_points / again_s if again_s else 0.0)
    result = {
        "batch": batch,
        "points": sent,
        "series": k,
        "raw_points_per_s": raw,
        "points_per_s": done / took,
        "processed": done,
        "workers": 1,
    }
    if workers > 1:
        result.update(await scale_out(bootstrap, home, (n, k, batch, base), sent, settings,
                                      workers))  # fmt: skip
    return result


async def scale_out(
    bootstrap: str,
    home: Path,
    shape: tuple[int, int, int, float],
    expected: int,
    settings: dict[str, Any],
    workers: int,
) -> dict[str, Any]:
    """The same messages through ``workers`` workers of one fresh app id (one consumer group).

    The workers start first, on an empty points topic, and the messages are sent once all of
    them are ready and both their groups are stable: otherwise the first worker up would score
    much of the backlog alone, and the measurement would be of start-up and rebalancing. So
    the figure is bounded by how fast one producer sends, too (it is printed beside it).
    """
    n, k, batch, base = shape
    app_id = f"bench-{uuid.uuid4().hex[:8]}"
    group = [
        Worker(bootstrap, home, settings=settings, app_id=app_id, instance=i + 1)
        for i in range(workers)
    ]  # fmt: skip
    await _ensure_topics(bootstrap, group[0])
    # Encoded up front: encoding while sending would make the sender, not the workers, the limit.
    messages = list(workload(n, k, batch, base, min(k, 200)))
    for w in group:
        w.start()
    try:
        await group_formed(bootstrap, group)

        async def send() -> tuple[int, float]:
            began = time.perf_counter()
            total = await produce_workload(bootstrap, group[0].topics.metrics, iter(messages))
            return total, time.perf_counter() - began

        sending = asyncio.ensure_future(send())
        done, took, by_worker = await pipeline_rate(group, expected, timeout_s=600)
        sent, send_s = await sending
    finally:
        for w in group:
            w.stop()
    return {
        "workers": workers,
        "sent_points_per_s_workers": sent / send_s if send_s else 0.0,
        "points_workers": sent,
        "processed_workers": done,
        "processed_by_worker": by_worker,
        "points_per_s_workers": done / took,
    }


def _catalog(hook: str, services: list[str]) -> dict[str, Any]:
    return {
        "services": {s: {"team": "ops", "tier": 1} for s in services},
        "teams": {"ops": {"members": ["oncall"], "escalation": [{"targets": ["oncall"]}]}},
        "people": {"oncall": {"contacts": [{"channel": "webhook", "address": hook}]}},
    }


def _pct(values: list[float], p: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, round(p / 100 * len(ordered) + 0.5) - 1))]


def _ts(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


async def latency(
    bootstrap: str,
    home: Path,
    rate: float,
    k: int,
    batch: int,
    duration_s: float,
    detector: dict[str, Any],
) -> dict[str, Any]:
    """Offer ``rate`` points/s over ``k`` series; inject anomalies, one per service."""
    services = [f"lat{i:03d}" for i in range(20)]  # 20 anomalies, one per service
    pages: dict[str, float] = {}

    async def hook(request: web.Request) -> web.Response:
        page = await request.json()
        pages.setdefault(page["incident_id"], time.time())
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/hook", hook)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    worker = Worker(
        bootstrap, home,
        # One on-call person gets every page: lift the per-recipient rate limit, which would
        # fold most of them into a digest (throttling is not part of the measured latency).
        settings={**detector, "page_rate_per_recipient": 0},
        catalog=_catalog(f"http://127.0.0.1:{port}/hook", services),
    )  # fmt: skip
    from streams.settings import Settings
    from streams.topics import ensure_topics

    await ensure_topics(
        Settings(bootstrap_servers=bootstrap, partitions=PARTITIONS, topics=worker.topics)
    )
    worker.start()
    detections: dict[str, float] = {}
    opened: dict[str, float] = {}
    detected_at: dict[str, float] = {}
    stop = asyncio.Event()

    async def watch(topic: str, into: dict[str, float], opened_only: bool) -> None:
        consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=None,
                                    auto_offset_reset="earliest")  # fmt: skip
        await consumer.start()
        try:
            while not stop.is_set():
                got = await consumer.getmany(timeout_ms=20)
                now = time.time()
                for records in got.values():
                    for r in records:
                        assert r.value is not None
                        v = json.loads(r.value)
                        if opened_only:
                            if v["kind"] == "opened":
                                inc = v["data"]["incident"]
                                detected_at.setdefault(inc["id"], _ts(inc["detected_at"]))
                                into.setdefault(inc["id"], now - detected_at[inc["id"]])
                        else:
                            into.setdefault(v["service"], now - _ts(v["ts"]))
        finally:
            await consumer.stop()

    try:
        await worker.wait_ready()
        watchers = [
            asyncio.create_task(watch(worker.topics.detections, detections, False)),
            asyncio.create_task(watch(worker.topics.events, opened, True)),
        ]
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=2)
        await producer.start()
        rng = random.Random(3)
        per_service = max(1, k // len(services))
        anomalous: dict[str, int] = {}  # service -> anomalous points still to send
        injected = 0
        sent = 0
        started = time.monotonic()
        # Every series past its warm-up (the detector's own, and five points more).
        made = make_batch(detector["detector"], 1, **detector.get("detector_params", {}))
        warmup = int(made.params().get("warmup", 20))
        warm_s = (warmup + 5) / (rate / k)
        next_anomaly = started + warm_s
        spacing = (duration_s - warm_s) / len(services)
        order = list(services)
        try:
            while time.monotonic() - started < duration_s:
                t0 = time.monotonic()
                if t0 >= next_anomaly and order:
                    anomalous[order.pop(0)] = 2
                    injected += 1
                    next_anomaly += spacing
                now = time.time()
                for service in services:
                    points = []
                    spike = anomalous.get(service, 0) > 0
                    for m in range(min(batch, per_service)):
                        value = 100.0 + rng.gauss(0, 5)
                        if spike and m == 0:
                            value = 1000.0
                        points.append({"ts": now, "service": service, "metric": f"m{m}",
                                       "value": value})  # fmt: skip
                    if spike:
                        anomalous[service] -= 1
                    body = {"points": points}
                    await producer.send(worker.topics.metrics, json.dumps(body).encode(),
                                        key=service.encode())  # fmt: skip
                    sent += len(points)
                wait = started + sent / rate - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
            offered = sent / (time.monotonic() - started)
            await producer.flush()
        finally:
            await producer.stop()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and len(pages) < injected:  # noqa: ASYNC110
            await asyncio.sleep(0.1)
        stop.set()
        await asyncio.gather(*watchers)
    finally:
        worker.stop()
        await runner.cleanup()
    page_lat = [at - detected_at[i] for i, at in pages.items() if i in detected_at]
    return {
        "offered_points_per_s": offered,
        "series": k,
        "anomalies": injected,
        "detection_s": list(detections.values()),
        "opened_s": list(opened.values()),
        "page_s": page_lat,
    }


async def memory(
    bootstrap: str,
    home: Path,
    counts: list[int],
    per_series: int,
    detector: dict[str, Any],
    labels: int = 0,
) -> dict[str, Any]:
    """RSS of one worker before and after warming each number of series (``labels`` each)."""
    worker = Worker(bootstrap, home, settings=detector)
    from streams.settings import Settings
    from streams.topics import ensure_topics

    await ensure_topics(
        Settings(bootstrap_servers=bootstrap, partitions=PARTITIONS, topics=worker.topics)
    )
    worker.start()
    rows: dict[str, Any] = {}
    try:
        await worker.wait_ready()
        await asyncio.sleep(1.0)
        baseline = worker.rss_bytes()
        rows["baseline_rss"] = baseline
        produced = 0
        base = time.time() - 1000
        for k in counts:
            n = k * per_series
            produced += await produce_workload(
                bootstrap, worker.topics.metrics, workload(n, k, 100, base, min(k, 500), labels)
            )
            base += per_series
            async with aiohttp.ClientSession() as session:
                deadline = time.monotonic() + 600
                scored = 0
                while time.monotonic() < deadline:
                    scored = await worker.processed(session)
                    if scored >= produced:
                        break
                    await asyncio.sleep(0.2)
            if scored < produced:
                raise BenchError(
                    f"memory: {scored} of {produced} points were scored (the reasons of the "
                    f"others are on {worker.topics.dlq(worker.topics.metrics)})"
                )
            rss = worker.rss_bytes()
            rows[str(k)] = {"rss": rss, "bytes_per_series": (rss - baseline) / k}
    finally:
        worker.stop()
    return rows


def state_size(
    detector: dict[str, Any], series: int = 1024, points: int = 200, labels: int = 0
) -> dict[str, float]:
    """Detector state per series after ``points`` points each (windows full): the bytes of its
    arrays in memory, and of its share of the checkpointed blocks as written
    (``detectors.blocks``), with ``labels`` labels in each series' id."""
    from detectors import SeriesBank, blocks
    from schemas.metrics import series_id

    bank = SeriesBank(detector["detector"], detector.get("detector_params"))
    rng = np.random.default_rng(5)
    ids = [series_id("svc", f"m{i}", series_labels(i, labels)) for i in range(series)]
    for t in range(points):
        bank.observe(ids, 100.0 + rng.normal(0, 5, series), np.full(series, 1.7e9 + t))
    parts = bank.take_dirty_blocks()
    stored = sum(len(blocks.encode(v)) for v in parts.values())
    return {"array_bytes": bank.bytes_per_series(), "checkpoint_bytes": stored / series}


async def run(args: argparse.Namespace, bootstrap: str, home: Path) -> dict[str, Any]:
    report: dict[str, Any] = {"machine": machine()}
    detector = {"detector": args.detector, "detector_params": args.detector_params}
    report["detector"] = detector
    _say(
        f"throughput: {args.points} points over {args.series} series, batch {args.batch}"
        + (f"; then {args.workers} workers in one group" if args.workers > 1 else "")
    )
    report["batched"] = await throughput(
        bootstrap, home, args.points, args.series, args.batch, detector, workers=args.workers
    )
    _say(f"  {report['batched']}")
    single = max(1000, args.points // 10)
    _say(f"throughput: {single} points, batch 1")
    report["single"] = await throughput(bootstrap, home, single, args.series, 1, detector)
    _say(f"  {report['single']}")
    _say(f"latency at {args.rate:.0f} points/s offered")
    lat = await latency(bootstrap, home, args.rate, args.latency_series, args.batch,
                        args.latency_duration, detector)  # fmt: skip
    report["latency"] = lat
    _say(
        f"memory: {args.memory_series} series, {args.memory_points} points each, "
        f"{args.memory_labels} labels"
    )
    report["memory"] = await memory(
        bootstrap, home, args.memory_series, args.memory_points, detector, args.memory_labels
    )
    report["memory_labels"] = args.memory_labels
    report["state"] = state_size(detector, labels=args.memory_labels)
    return report


def _fmt(value: float | None, unit: str = "") -> str:
    return (
        "n/a" if value is None else f"{value:,.3f}{unit}" if value < 100 else f"{value:,.0f}{unit}"
    )


def summarize(report: dict[str, Any]) -> dict[str, Any]:
    batched, single, lat, mem = (report[k] for k in ("batched", "single", "latency", "memory"))
    counts = [k for k in mem if k != "baseline_rss"]
    # One worker: the N-worker figures are those of the one-worker run.
    workers_rate = batched.get("points_per_s_workers", batched["points_per_s"])
    return {
        "points_per_s": round(batched["points_per_s"], 1),
        "raw_points_per_s": round(batched["raw_points_per_s"], 1),
        "ratio": round(batched["points_per_s"] / batched["raw_points_per_s"], 4)
        if batched["raw_points_per_s"]
        else None,
        "batch": batched["batch"],
        "points": batched["points"],
        "series": batched["series"],
        "workers": batched["workers"],
        "points_per_s_workers": round(workers_rate, 1),
        "scale_out_ratio": round(workers_rate / batched["points_per_s"], 3)
        if batched["points_per_s"]
        else None,
        "processed_by_worker": batched.get("processed_by_worker", [batched["processed"]]),
        "sent_points_per_s_workers": round(batched.get("sent_points_per_s_workers", 0.0), 1),
        "b1_points_per_s": round(single["points_per_s"], 1),
        "b1_raw_points_per_s": round(single["raw_points_per_s"], 1),
        "offered_points_per_s": round(lat["offered_points_per_s"], 1),
        "anomalies": lat["anomalies"],
        "pages": len(lat["page_s"]),
        "latency_detect_p50_s": _round(_pct(lat["detection_s"], 50)),
        "latency_detect_p99_s": _round(_pct(lat["detection_s"], 99)),
        "latency_open_p50_s": _round(_pct(lat["opened_s"], 50)),
        "latency_open_p99_s": _round(_pct(lat["opened_s"], 99)),
        "latency_p50_s": _round(_pct(lat["page_s"], 50)),
        "latency_p99_s": _round(_pct(lat["page_s"], 99)),
        "bytes_per_series": round(mem[counts[-1]]["bytes_per_series"]) if counts else None,
        "rss_bytes_per_series": {k: round(mem[k]["bytes_per_series"]) for k in counts},
        "memory_labels": report.get("memory_labels", 0),
        "state_bytes_per_series": round(report["state"]["array_bytes"]),
        "checkpoint_bytes_per_series": round(report["state"]["checkpoint_bytes"]),
        **{f"machine_{k}": v for k, v in report["machine"].items()},
        **report.get("detector", {}),
    }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def print_table(report: dict[str, Any], out: dict[str, Any]) -> None:
    m = report["machine"]
    rows = [
        ("machine", f"{m['cpu']}, {m['cores']} cores, Python {m['python']}"),
        (f"raw ceiling, B={out['batch']} (points/s)", _fmt(out["raw_points_per_s"])),
        (f"pipeline, B={out['batch']} (points/s)", _fmt(out["points_per_s"])),
        ("pipeline / raw", _fmt(out["ratio"])),
        *([(f"pipeline, {out['workers']} workers in one group, B={out['batch']} (points/s)",
            _fmt(out["points_per_s_workers"])),
           (f"{out['workers']} workers / one worker", _fmt(out["scale_out_ratio"])),
           ("  sent to them by one producer at (points/s)",
            _fmt(out["sent_points_per_s_workers"])),
           ("points scored by each worker",
            " / ".join(f"{c:,}" for c in out["processed_by_worker"]))]
          if out["workers"] > 1 else []),
        ("raw ceiling, B=1 (points/s)", _fmt(out["b1_raw_points_per_s"])),
        ("pipeline, B=1 (points/s)", _fmt(out["b1_points_per_s"])),
        ("offered load (points/s)", _fmt(out["offered_points_per_s"])),
        ("anomalies injected / paged", f"{out['anomalies']} / {out['pages']}"),
        ("point -> detection p50 / p99 (s)",
         f"{_fmt(out['latency_detect_p50_s'])} / {_fmt(out['latency_detect_p99_s'])}"),
        ("point -> incident opened p50 / p99 (s)",
         f"{_fmt(out['latency_open_p50_s'])} / {_fmt(out['latency_open_p99_s'])}"),
        ("point -> page at webhook p50 / p99 (s)",
         f"{_fmt(out['latency_p50_s'])} / {_fmt(out['latency_p99_s'])}"),
        *[(f"worker RSS growth per series, {k} series, {out['memory_labels']} labels (bytes)",
           _fmt(float(v)))
          for k, v in out["rss_bytes_per_series"].items()],
        ("detector state per series, in memory (bytes)",
         _fmt(float(out["state_bytes_per_series"]))),
        ("detector state per series, checkpointed (bytes)",
         _fmt(float(out["checkpoint_bytes_per_series"]))),
    ]  # fmt: skip
    width = max(len(label) for label, _ in rows)
    for label, value in rows:
        print(f"{label:<{width}}  {value}")


def main(args: argparse.Namespace) -> int:
    """Run the benchmark; the last output line is one JSON object with the figures."""
    try:
        params = detector_params(args.detector_params, [args.detector])
    except ValueError as exc:
        print(f"warroom bench throughput: {exc}", file=sys.stderr)
        return 2
    args.detector_params = params  # checked, and parsed once for every phase
    configured = os.environ.get("WARROOM_BOOTSTRAP_SERVERS")
    with tempfile.TemporaryDirectory(prefix="warroom-bench-") as tmp:
        home = Path(tmp)
        broker: LocalBroker | None = None
        if configured:
            bootstrap = configured
        else:
            broker = LocalBroker(home / "kafka")
            bootstrap = broker.start(progress=_say)
        try:
            report = asyncio.run(run(args, bootstrap, home))
        except BenchError as exc:
            print(f"warroom bench throughput: not measured: {exc}", file=sys.stderr)
            return 1
        finally:
            if broker is not None:
                broker.stop()
    out = summarize(report)
    print_table(report, out)
    print(json.dumps(out))
    return 0


def labels_count(text: str) -> int:
    """An argparse type: labels per series, 0 to 100."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if not 0 <= value <= 100:
        raise argparse.ArgumentTypeError(f"{text!r} must be between 0 and 100")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--points", type=positive_int, default=200_000, help="points (B=1 runs a tenth)"
    )
    parser.add_argument("--series", type=positive_int, default=1_000, help="series K")
    parser.add_argument("--batch", type=positive_int, default=100, help="points per message B")
    parser.add_argument(
        "--workers",
        type=positive_int,
        default=1,
        help="then N workers in one group on the same points",
    )
    parser.add_argument(
        "--rate", type=positive_float, default=10_000, help="offered points/s (latency)"
    )
    parser.add_argument("--latency-series", type=positive_int, default=1_000)
    parser.add_argument("--latency-duration", type=positive_float, default=30.0, help="seconds")
    parser.add_argument("--memory-series", type=positive_int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--memory-points", type=positive_int, default=2, help="points per series")
    parser.add_argument(
        "--memory-labels", type=labels_count, default=20, help="labels per series (memory)"
    )
    parser.add_argument("--detector", default=DEFAULT_DETECTOR, help="the workers' detector")
    add_detector_params(parser)
