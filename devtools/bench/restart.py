"""``warroom bench restart``: how long a worker takes to be ready with N incidents in its tables.

Against a real broker (a local one started in a temporary folder, or
``WARROOM_BOOTSTRAP_SERVERS``):

1. a template: a real ``warroom worker`` opens one incident from a detection, pages it (console),
   and an acknowledge, a mitigate and a resolve command take it to resolved; the worker stops;
2. the changelog rows of every table keyed by that incident (``incidents``,
   ``incident-projection``, ``incident-timelines``, ``mttr-rows``, ``notification-log``,
   ``automation-log``) are read back and written again ``--incidents`` times under fresh incident
   ids, spread over the partitions: the changelog of N resolved incidents as a worker leaves it;
3. for each table store (``--stores``, default both): a fresh worker of the same app (an empty
   data directory, as after a crash or a move to another machine) is started and timed from its
   spawn until ``/readyz`` answers 200, with its resident memory then; with ``rocksdb`` the worker
   is then stopped and started again on the same data directory (a clean restart), timed the
   same way. The workers hold resolved incidents in memory for 60 s after their resolution
   (``WARROOM_RESOLVED_IN_MEMORY_S``), so the cloned ones count as resolved long ago. The same
   is timed first with the template's single incident, for comparison.

``--incidents`` may name several counts (``10000,100000``): the rows are written up to each in
turn and every store is timed at each.

Prints a table, and as its last line one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import yaml
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from devtools.bench import machine, machine_line
from devtools.kafka_local import LocalBroker, free_port
from responders.lifecycle import incident_id_for
from streams.argtypes import positive_int
from streams.settings import TopicNames

#: The tables whose rows are keyed by an incident (or a page of it): the ones that grow with N.
PER_INCIDENT_TABLES = (
    "incidents",
    "incident-projection",
    "incident-timelines",
    "mttr-rows",
    "notification-log",
    "automation-log",
)
SERVICE = "benchsvc"
PARTITIONS = 2


class BenchError(Exception):
    """The run could not measure what it set out to."""


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _env(
    bootstrap: str, app_id: str, home: Path, port: int, store: str = "memory", data: str = ""
) -> dict[str, str]:
    catalog = home / "catalog.yaml"
    catalog.write_text(
        yaml.safe_dump(
            {
                "services": {SERVICE: {"team": "ops", "tier": 1}},
                "teams": {"ops": {"members": ["ann"], "escalation": [{"targets": ["ann"]}]}},
                "people": {"ann": {"contacts": [{"channel": "console", "address": "ann"}]}},
            }
        )
    )
    topics = TopicNames(**{k: f"{app_id}.{v}" for k, v in TopicNames().model_dump().items()})
    env = {k: v for k, v in os.environ.items() if not k.startswith("WARROOM_")}
    env.update(
        {
            "WARROOM_APP_ID": app_id,
            "WARROOM_BOOTSTRAP_SERVERS": bootstrap,
            "WARROOM_PARTITIONS": str(PARTITIONS),
            "WARROOM_DATA_DIR": str(home / (data or f"data-{uuid.uuid4().hex[:6]}")),
            "WARROOM_TABLE_STORE": store,
            # The incidents are resolved minutes before the restarts: measured as old ones (with
            # the default hour they would all be held in memory as recently resolved).
            "WARROOM_RESOLVED_IN_MEMORY_S": "60",
            "WARROOM_WEB_PORT": str(port),
            "WARROOM_API_TOKEN": uuid.uuid4().hex + uuid.uuid4().hex,
            "WARROOM_TOPICS": topics.model_dump_json(),
            "WARROOM_GROUP_WAIT_S": "0",
            "WARROOM_SESSION_TIMEOUT_S": "6",
            "WARROOM_CATALOG_PATH": str(catalog),
            "WARROOM_LOG_LEVEL": "warning",
        }
    )
    return env


def _get(port: int, path: str) -> tuple[int, Any]:
    """GET a path of the worker's API on loopback: (status, JSON body); (0, None) if no answer."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        body = response.read()
        return response.status, json.loads(body) if response.status == 200 and body else None
    except (OSError, ValueError, http.client.HTTPException):
        return 0, None
    finally:
        connection.close()


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _start(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "streams.cli", "worker"],
            env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )  # fmt: skip


def _wait_ready(proc: subprocess.Popen[bytes], port: int, timeout_s: float) -> float:
    """Seconds from now until ``/readyz`` answers 200 (the worker was just spawned)."""
    began = time.monotonic()
    while time.monotonic() - began < timeout_s:
        if proc.poll() is not None:
            raise BenchError(f"the worker exited with {proc.returncode}")
        if _get(port, "/readyz")[0] == 200:
            return time.monotonic() - began
        time.sleep(0.05)
    raise BenchError(f"the worker was not ready within {timeout_s:g}s")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


async def _produce(bootstrap: str, topic: str, records: list[tuple[bytes, bytes]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for key, value in records:
            await producer.send_and_wait(topic, value, key=key)
    finally:
        await producer.stop()


async def _read(bootstrap: str, topic: str) -> list[tuple[int, bytes, bytes | None]]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        out: list[tuple[int, bytes, bytes | None]] = []
        while [tp for tp in tps if await consumer.position(tp) < ends[tp]]:
            for batch in (await consumer.getmany(timeout_ms=500)).values():
                out.extend((r.partition, r.key, r.value) for r in batch if r.key is not None)
        return out
    finally:
        await consumer.stop()


def _template(bootstrap: str, app_id: str, home: Path) -> str:
    """Run one incident to resolved with a real worker; its id."""
    port = free_port()
    env = _env(bootstrap, app_id, home, port)
    topics = TopicNames.model_validate_json(env["WARROOM_TOPICS"])
    proc = _start(env, home / "template.log")
    try:
        _wait_ready(proc, port, 180)
        now = time.time()
        incident = incident_id_for(SERVICE, "bench-d1")
        detection = {"id": "bench-d1", "ts": now - 600, "service": SERVICE, "signal": "errors",
                     "detector": "manual", "score": 1.0, "severity": "critical"}  # fmt: skip
        asyncio.run(_produce(bootstrap, topics.detections,
                             [(SERVICE.encode(), json.dumps(detection).encode())]))  # fmt: skip
        for n, kind in enumerate(("acknowledge", "mitigate", "resolve")):
            _until(port, incident, lambda found: found is not None, f"the incident ({kind})")
            at = now - 500 + 60 * n
            command = {
                "id": f"bench-{kind}",
                "kind": kind,
                "routing_key": SERVICE,
                "incident_id": incident,
                "actor": "ann",
                "issued_at": at,
                "at": at,
            }
            asyncio.run(_produce(bootstrap, topics.commands,
                                 [(SERVICE.encode(), json.dumps(command).encode())]))  # fmt: skip
        _until(port, incident, lambda found: found and found["status"] == "resolved", "resolved")
        asyncio.run(_until_written(bootstrap, app_id, incident))
    finally:
        _stop(proc)
    return incident


def _until(port: int, incident: str, ok: Any, what: str, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        status, body = _get(port, f"/api/incidents/{incident}")
        if ok(body if status == 200 else None):
            return
        time.sleep(0.2)
    raise BenchError(f"timed out waiting for {what}")


async def _until_written(bootstrap: str, app_id: str, incident: str, timeout_s: float = 60) -> None:
    """Wait until the incident's resolution is in the changelog of every per-incident table that
    records its status."""
    deadline = time.monotonic() + timeout_s
    for table in ("incidents", "incident-projection", "incident-timelines"):
        topic = f"{app_id}-{table}-changelog"
        while not any(
            incident.encode() in key and value is not None and b'"resolved"' in value
            for _, key, value in await _read(bootstrap, topic)
        ):
            if time.monotonic() > deadline:
                raise BenchError(f"the resolution never reached {topic}")
            await asyncio.sleep(0.2)


async def _clone(
    bootstrap: str, app_id: str, incident: str, first: int, end: int
) -> tuple[int, int]:
    """Write the incident's rows again under the fresh ids ``first`` to ``end`` (the template
    itself is number 0); (records, bytes) written."""
    pattern = re.compile(re.escape(incident).encode())
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", linger_ms=50, max_batch_size=512 * 1024,
        compression_type="gzip",
    )  # fmt: skip
    await producer.start()
    records = size = 0
    try:
        for table in PER_INCIDENT_TABLES:
            topic = f"{app_id}-{table}-changelog"
            rows: dict[bytes, tuple[int, bytes | None]] = {}
            for partition, key, value in await _read(bootstrap, topic):
                if incident.encode() in key:
                    rows[key] = (partition, value)
            for key, (_, value) in rows.items():
                if value is None:
                    continue
                sends = []
                for n in range(max(first, 1), end):
                    fresh = f"inc-bench{n:010d}".encode()
                    k, v = pattern.sub(fresh, key), pattern.sub(fresh, value)
                    sends.append(await producer.send(topic, v, key=k, partition=n % PARTITIONS))
                    records, size = records + 1, size + len(k) + len(v)
                await asyncio.gather(*sends)
    finally:
        await producer.stop()
    return records, size


def _restart(
    bootstrap: str, app_id: str, home: Path, store: str, data: str = ""
) -> tuple[float, float]:
    """A worker of the app (a fresh data directory unless ``data`` names one): seconds from
    spawn to ready, and its RSS (MiB) then."""
    port = free_port()
    proc = _start(_env(bootstrap, app_id, home, port, store, data), home / "restart.log")
    try:
        ready_s = _wait_ready(proc, port, 1800)
        return ready_s, _rss_mib(proc.pid)
    finally:
        _stop(proc)


def _time_store(bootstrap: str, app_id: str, home: Path, store: str, n: int) -> dict[str, Any]:
    """The figures of one store at ``n`` incidents: a fresh worker, and with rocksdb a clean
    restart on the data directory it left."""
    data = f"data-{store}-{n}"
    ready_s, rss = _restart(bootstrap, app_id, home, store, data)
    row: dict[str, Any] = {"store": store, "incidents": n, "ready_s": round(ready_s, 2),
                           "rss_mib": round(rss)}  # fmt: skip
    _say(f"{store}, {n} incidents: ready after {ready_s:.1f}s, {rss:.0f} MiB")
    if store == "rocksdb":
        again_s, again_rss = _restart(bootstrap, app_id, home, store, data)
        row.update(restart_ready_s=round(again_s, 2), restart_rss_mib=round(again_rss))
        _say(f"{store}, {n} incidents, same data directory: ready after {again_s:.1f}s, "
             f"{again_rss:.0f} MiB")  # fmt: skip
    return row


def run(args: argparse.Namespace, bootstrap: str, home: Path) -> dict[str, Any]:
    app_id = f"bench-restart-{uuid.uuid4().hex[:8]}"
    _say("template: one incident opened, paged and resolved by a worker")
    incident = _template(bootstrap, app_id, home)
    rows = [_time_store(bootstrap, app_id, home, store, 1) for store in args.stores]
    written = records = size = 0
    for n in sorted(set(args.incidents)):
        began = time.monotonic()
        more, more_bytes = asyncio.run(_clone(bootstrap, app_id, incident, written, n))
        written, records, size = n, records + more, size + more_bytes
        _say(f"wrote {more} changelog records in {time.monotonic() - began:.0f}s: "
             f"{n} incidents, {records} records, {size / 2**20:.0f} MiB in all")  # fmt: skip
        for store in args.stores:
            row = _time_store(bootstrap, app_id, home, store, n)
            rows.append({**row, "changelog_records": records,
                         "changelog_mib": round(size / 2**20, 1)})  # fmt: skip
    return {"runs": rows, **machine()}


def main(args: argparse.Namespace) -> int:
    """Run the benchmark; the last output line is one JSON object with the figures."""
    configured = os.environ.get("WARROOM_BOOTSTRAP_SERVERS")
    with tempfile.TemporaryDirectory(prefix="warroom-bench-") as tmp:
        home = Path(tmp)
        broker: LocalBroker | None = None
        bootstrap = configured or ""
        if not configured:
            broker = LocalBroker(home / "kafka")
            bootstrap = broker.start(progress=_say)
        try:
            report = run(args, bootstrap, home)
        except BenchError as exc:
            print(f"warroom bench restart: not measured: {exc}", file=sys.stderr)
            return 1
        finally:
            if broker is not None:
                broker.stop()
    print(machine_line(report))
    print("| store | incidents | changelog records | MiB | fresh worker ready after | RSS "
          "| restart on its data ready after | RSS |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|")
    for r in report["runs"]:
        again = (f"{r['restart_ready_s']} s | {r['restart_rss_mib']} MiB"
                 if "restart_ready_s" in r else "- | -")  # fmt: skip
        print(f"| {r['store']} | {r['incidents']} | {r.get('changelog_records', '-')} "
              f"| {r.get('changelog_mib', '-')} | {r['ready_s']} s | {r['rss_mib']} MiB "
              f"| {again} |")  # fmt: skip
    print(json.dumps(report))
    return 0


def _counts(text: str) -> list[int]:
    """An argparse type: one count or several, comma-separated."""
    return [positive_int(part.strip()) for part in text.split(",")]


def _stores(text: str) -> list[str]:
    """An argparse type: table stores, comma-separated."""
    stores = [part.strip() for part in text.split(",")]
    unknown = [s for s in stores if s not in ("memory", "rocksdb")]
    if unknown or not stores:
        raise argparse.ArgumentTypeError(f"unknown store {unknown[0]!r} (memory, rocksdb)")
    return stores


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--incidents", type=_counts, default="100000",
        help="resolved incidents in the tables; several counts comma-separated",
    )  # fmt: skip
    parser.add_argument(
        "--stores", type=_stores, default="memory,rocksdb",
        help="table stores to time, comma-separated (memory, rocksdb)",
    )  # fmt: skip
