"""``warroom demo``: the whole pipeline end to end, with a fault, responders and a summary.

Starts a local broker (unless ``WARROOM_BOOTSTRAP_SERVERS`` is set), a worker process, a local
webhook receiver standing in for people's phones, and a generator streaming realistic metrics
for a few services; injects a latency fault into one of them; prints incidents as they open,
pages as they arrive and aggregates as they change; drives each incident through acknowledge,
mitigate and resolve over the HTTP API as responders would; saves each resolved incident's
review (``.warroom/demo/review-<id>.md`` and its chart); then shuts everything down. The last
line of output is one JSON object with the counts.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import yaml
from aiohttp import web
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from pydantic import ValidationError

from devtools.kafka_local import LocalBroker, free_port
from schemas import format_errors
from streams.settings import Settings, TopicNames

HOME = Path(".warroom/demo")
TICK_S = 0.2
SERVICES = {
    # service: (metric, baseline, noise sd)
    "checkout": [("latency_ms", 120.0, 6.0), ("error_rate", 0.5, 0.05)],
    "search": [("latency_ms", 45.0, 3.0), ("error_rate", 0.2, 0.03)],
    "auth": [("latency_ms", 30.0, 2.0), ("error_rate", 0.1, 0.02)],
}
FAULT_SERVICE = "checkout"


def _catalog(hook: str) -> dict[str, Any]:
    return {
        "services": {
            "checkout": {"team": "payments", "tier": 1, "runbook": "https://runbooks/checkout"},
            "search": {"team": "discovery", "tier": 2},
            "auth": {"team": "identity", "tier": 1},
        },
        "teams": {
            "payments": {"members": ["alice", "bob"], "escalation": [{"targets": ["alice"]}]},
            "discovery": {"members": ["carol"], "escalation": [{"targets": ["carol"]}]},
            "identity": {"members": ["bob"], "escalation": [{"targets": ["bob"]}]},
        },
        "people": {
            "alice": {"contacts": [{"channel": "webhook", "address": f"{hook}/alice"}]},
            "bob": {"contacts": [{"channel": "webhook", "address": f"{hook}/bob"}]},
            "carol": {
                "contacts": [
                    {"channel": "webhook", "address": f"{hook}/carol"},
                    {"channel": "console"},
                ]
            },
        },
    }


@dataclass
class Demo:
    """State shared by the demo's tasks."""

    duration_s: float
    started: float = field(default_factory=time.monotonic)
    topics: TopicNames = field(default_factory=TopicNames)
    bootstrap: str = ""
    client: dict[str, Any] = field(default_factory=dict)
    api: str = ""
    token: str = field(default_factory=lambda: uuid.uuid4().hex)
    fault: tuple[float, float] = (0.0, 0.0)
    opened: dict[str, str] = field(default_factory=dict)
    resolved: set[str] = field(default_factory=set)
    pages_received: int = 0
    pages_delivered: int = 0
    aggregates: dict[str, dict[str, Any]] = field(default_factory=dict)
    shown: dict[str, dict[str, Any]] = field(default_factory=dict)
    aggregate_messages: int = 0
    done: asyncio.Event = field(default_factory=asyncio.Event)

    def say(self, text: str) -> None:
        print(f"[{time.monotonic() - self.started:6.1f}s] {text}", flush=True)

    @property
    def fault_over(self) -> bool:
        return time.monotonic() > self.fault[1]


async def _receiver(demo: Demo) -> web.AppRunner:
    async def hook(request: web.Request) -> web.Response:
        page = await request.json()
        demo.pages_received += 1
        demo.say(
            f"PAGE  -> {request.match_info['who']} (webhook): {page['subject']} "
            f"[dedup {page['dedup_key']}]"
        )
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/hook/{who}", hook)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    return runner


async def _generate(demo: Demo) -> None:
    producer = AIOKafkaProducer(**demo.client, linger_ms=5)
    await producer.start()
    rng = random.Random(42)
    try:
        while not demo.done.is_set():
            now = time.time()
            in_fault = demo.fault[0] <= time.monotonic() < demo.fault[1]
            for service, metrics in SERVICES.items():
                points = []
                for metric, base, sd in metrics:
                    value = base + rng.gauss(0, sd) + 0.05 * base * math.sin(now / 60)
                    if in_fault and service == FAULT_SERVICE:
                        value = value * (6.0 if metric == "latency_ms" else 12.0)
                    points.append(
                        {"ts": now, "service": service, "metric": metric, "value": max(0, value)}
                    )
                await producer.send(
                    demo.topics.metrics,
                    json.dumps({"points": points}).encode(),
                    key=service.encode(),
                )
            await asyncio.sleep(TICK_S)
    finally:
        await producer.stop()


async def _command(demo: Demo, incident_id: str, action: str, text: str) -> None:
    headers = {"Authorization": f"Bearer {demo.token}"}
    body = {"actor": "on-call", "text": text}
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            f"{demo.api}/api/incidents/{incident_id}/{action}", json=body, headers=headers
        ) as response,
    ):
        answer = await response.json()
    if response.status != 202:
        demo.say(f"      {action} {incident_id}: HTTP {response.status} {answer.get('error')}")


async def _respond(demo: Demo, incident_id: str, service: str) -> None:
    """What a responder does: acknowledge, wait for the signals to recover, mitigate, resolve."""
    await asyncio.sleep(3.0)
    demo.say(f"ACK   {incident_id} by on-call (via POST /api/incidents/{{id}}/acknowledge)")
    await _command(demo, incident_id, "acknowledge", "looking")
    if service == FAULT_SERVICE:
        await asyncio.sleep(max(0.0, demo.fault[1] - time.monotonic()) + 2.0)
        note = "rolled back the bad deploy"
    else:
        await asyncio.sleep(2.0)
        note = "false alarm"
    demo.say(f"MITIG {incident_id}: {note}")
    await _command(demo, incident_id, "mitigate", note)
    await asyncio.sleep(3.0)
    demo.say(f"RESLV {incident_id}")
    await _command(demo, incident_id, "resolve", "fixed")


async def _watch(demo: Demo) -> None:
    t = demo.topics
    consumer = AIOKafkaConsumer(
        t.events, t.receipts, t.aggregates,
        **demo.client, group_id=None, auto_offset_reset="earliest",
    )  # fmt: skip
    await consumer.start()
    responders: list[asyncio.Task[None]] = []
    try:
        while not demo.done.is_set():
            batch = await consumer.getmany(timeout_ms=200)
            for records in batch.values():
                for record in records:
                    if record.value is not None:
                        _on_record(demo, record.topic, json.loads(record.value), responders)
            settled = all(a["open_incidents"] == 0 for a in demo.shown.values())
            if demo.opened and demo.fault_over and demo.resolved >= set(demo.opened) and settled:
                demo.done.set()
    finally:
        for task in responders:
            task.cancel()
        await consumer.stop()


def _on_record(demo: Demo, topic: str, value: dict[str, Any], tasks: list[Any]) -> None:
    t = demo.topics
    if topic == t.events:
        kind, incident_id = value["kind"], value["incident_id"]
        if kind == "opened":
            incident = value["data"]["incident"]
            demo.opened[incident_id] = incident["service"]
            demo.say(f"OPEN  {incident_id} [{incident['severity']}] {incident['title']}")
            tasks.append(asyncio.ensure_future(_respond(demo, incident_id, incident["service"])))
        elif kind == "resolved":
            demo.resolved.add(incident_id)
        if kind != "opened":
            demo.say(f"      timeline {incident_id} #{value['seq']} {kind} by {value['actor']}")
    elif topic == t.receipts:
        if value["outcome"] == "delivered":
            demo.pages_delivered += 1
    elif topic == t.aggregates:
        demo.aggregate_messages += 1
        demo.aggregates[value["key"]] = value
        # Print the per-service 24h view when it changes; all keys are counted in the summary.
        if value["dimension"] != "service" or value["window"] != "24h":
            return
        shown = {k: v for k, v in value.items() if k not in ("window_start", "window_end")}
        if demo.shown.get(value["key"]) == shown:
            return
        demo.shown[value["key"]] = shown

        def mean(name: str) -> str:
            m = value[name]["mean_s"]
            return "-" if m is None else f"{m:.1f}s"

        demo.say(
            f"MTTR  {value['value']}: incidents {value['incidents']} "
            f"(open {value['open_incidents']}), MTTD {mean('time_to_detect')}, "
            f"MTTA {mean('time_to_acknowledge')}, restore {mean('time_to_restore')}, "
            f"resolve {mean('time_to_resolve')}"
        )


def _start_worker(
    demo: Demo, catalog_path: Path, port: int, external: bool
) -> subprocess.Popen[bytes]:
    # With an external broker its connection settings (security, credentials) pass through.
    env = {k: v for k, v in os.environ.items() if external or not k.startswith("WARROOM_")}
    app_id = f"warroom-demo-{uuid.uuid4().hex[:6]}" if external else "warroom-demo"
    env.update(
        {
            "WARROOM_APP_ID": app_id,
            "WARROOM_BOOTSTRAP_SERVERS": demo.bootstrap,
            "WARROOM_PARTITIONS": "2",
            "WARROOM_DATA_DIR": str(HOME / "worker"),
            "WARROOM_CATALOG_PATH": str(catalog_path),
            "WARROOM_WEB_PORT": str(port),
            "WARROOM_API_TOKEN": demo.token,
            "WARROOM_TOPICS": demo.topics.model_dump_json(),
            # Hold a new group's first detection briefly, so a burst opens one incident.
            "WARROOM_GROUP_WAIT_S": "3",
        }
    )
    log = (HOME / "worker.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "streams.cli", "worker"],
        env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    log.close()
    return proc


async def _wait_ready(demo: Demo, proc: subprocess.Popen[bytes], timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                async with session.get(f"{demo.api}/readyz") as response:
                    if response.status == 200:
                        return True
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.2)
    return False


async def _save_reviews(demo: Demo) -> None:
    """Write each resolved incident's review to ``review-<id>.md``, its chart to ``.svg``."""
    async with aiohttp.ClientSession() as session:
        for incident_id in sorted(demo.resolved):
            url = f"{demo.api}/api/incidents/{incident_id}"
            chart = HOME / f"review-{incident_id}.svg"
            try:
                deadline = time.monotonic() + 10.0  # the read model may trail the topic a little
                while time.monotonic() < deadline:
                    async with session.get(f"{url}/timeline") as response:
                        kinds = [e["kind"] for e in (await response.json())["events"]]
                    if "resolved" in kinds:
                        break
                    await asyncio.sleep(0.2)
                async with session.get(f"{url}/review.svg") as response:
                    svg = await response.text() if response.status == 200 else None
                query = {"chart": chart.name} if svg else {}
                async with session.get(f"{url}/review", params=query) as response:
                    markdown = await response.text()
                    response.raise_for_status()
            except (aiohttp.ClientError, KeyError, ValueError) as exc:
                demo.say(f"      review {incident_id}: not saved ({exc})")
                continue
            (HOME / f"review-{incident_id}.md").write_text(markdown)
            if svg:
                chart.write_text(svg)
            demo.say(f"REVIEW {incident_id} -> {HOME}/review-{incident_id}.md")


async def _run(demo: Demo, external: bool) -> dict[str, Any]:
    receiver = await _receiver(demo)
    hook_port = free_port()
    await web.TCPSite(receiver, "127.0.0.1", hook_port).start()
    catalog_path = HOME / "catalog.yaml"
    catalog_path.write_text(yaml.safe_dump(_catalog(f"http://127.0.0.1:{hook_port}/hook")))
    api_port = free_port()
    demo.api = f"http://127.0.0.1:{api_port}"
    demo.say("starting a worker (log: .warroom/demo/worker.log)")
    proc = _start_worker(demo, catalog_path, api_port, external)
    summary: dict[str, Any] = {}
    try:
        if not await _wait_ready(demo, proc, timeout_s=min(90.0, demo.duration_s)):
            demo.say("the worker did not become ready; see .warroom/demo/worker.log")
            return summary
        ready_at = time.monotonic() - demo.started
        demo.say(f"worker ready; dashboard and API at {demo.api}/")
        demo.say(f"streaming metrics for {', '.join(SERVICES)}")
        start = time.monotonic() + 12.0
        demo.fault = (start, start + 20.0)
        demo.say(f"fault: {FAULT_SERVICE} latency x6 from +12s for 20s")
        tasks = [asyncio.ensure_future(_generate(demo)), asyncio.ensure_future(_watch(demo))]
        remaining = demo.duration_s - (time.monotonic() - demo.started)
        try:
            await asyncio.wait_for(demo.done.wait(), timeout=max(1.0, remaining))
        except TimeoutError:
            demo.say("duration reached")
        demo.done.set()
        await asyncio.gather(*tasks, return_exceptions=True)
        await _save_reviews(demo)
        summary["worker_ready_s"] = round(ready_at, 1)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
        await receiver.cleanup()
    return summary


def run_demo(duration_s: float = 90.0) -> int:
    """Run the demo; exit code 0 if an incident was opened, paged, resolved and aggregated."""
    demo = Demo(duration_s=duration_s)
    external = bool(os.environ.get("WARROOM_BOOTSTRAP_SERVERS"))
    broker: LocalBroker | None = None
    broker_s = 0.0
    if external:
        try:
            settings = Settings()
        except ValidationError as exc:
            print(f"warroom demo: invalid settings: {format_errors(exc, 'WARROOM')}")
            return 2
        demo.bootstrap = settings.bootstrap_servers
        demo.client = settings.kafka_client_kwargs()
        run = uuid.uuid4().hex[:6]
        demo.topics = TopicNames(
            **{k: f"demo-{run}.{v}" for k, v in TopicNames().model_dump().items()}
        )
    else:
        broker = LocalBroker(HOME / "kafka")
        t0 = time.monotonic()
        demo.bootstrap = broker.start()
        demo.client = {"bootstrap_servers": demo.bootstrap}
        broker_s = time.monotonic() - t0
        demo.say(f"local Kafka broker at {demo.bootstrap} ({broker_s:.1f}s)")
    HOME.mkdir(parents=True, exist_ok=True)
    try:
        extra = asyncio.run(_run(demo, external))
    finally:
        if broker is not None:
            broker.stop()
    summary = {
        "incidents_opened": len(demo.opened),
        "pages_sent": demo.pages_delivered,
        "pages_received": demo.pages_received,
        "incidents_resolved": len(demo.resolved),
        "mttr_aggregates": len(demo.aggregates),
        "aggregate_messages": demo.aggregate_messages,
        "broker_start_s": round(broker_s, 1),
        "elapsed_s": round(time.monotonic() - demo.started, 1),
        **extra,
    }
    ok = (
        summary["incidents_opened"] >= 1
        and summary["pages_sent"] >= 1
        and summary["incidents_resolved"] >= 1
        and summary["mttr_aggregates"] >= 1
    )
    print(json.dumps(summary), flush=True)
    return 0 if ok else 1
