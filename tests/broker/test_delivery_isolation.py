"""A black-holed endpoint (it accepts connections and never answers) delays only its own pages:
every other destination's pages are delivered while its first attempts are still timing out.
When its attempts run out, the incident records ``delivery_failed`` and pages its next step at
once, without waiting for the step's delay."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

import pytest

from devtools.kafka_local import free_port
from tests.harness import Api, RunningWorker, WebhookServer, eventually, produce, read_all

pytestmark = pytest.mark.broker

HEALTHY_SERVICES = [f"shop-{n}" for n in range(6)]


def catalog(dead_url: str, live_url: str) -> dict[str, Any]:
    services = {"vault": {"team": "dead-end", "tier": 1}}
    services.update({name: {"team": "shop", "tier": 1} for name in HEALTHY_SERVICES})
    return {
        "services": services,
        "teams": {
            "dead-end": {
                "members": ["dave", "alice"],
                # The second step would fall due in an hour: only the failed delivery brings it on.
                "escalation": [{"targets": ["dave"]}, {"delay_s": 3600, "targets": ["alice"]}],
            },
            "shop": {"members": ["alice"], "escalation": [{"targets": ["alice"]}]},
        },
        "people": {
            "dave": {"contacts": [{"channel": "webhook", "address": dead_url}]},
            "alice": {"contacts": [{"channel": "webhook", "address": live_url}]},
        },
    }


def detection(det_id: str, service: str) -> tuple[bytes, bytes]:
    body = {"id": det_id, "ts": time.time(), "service": service, "signal": "latency",
            "detector": "surprise", "score": 0.99, "severity": "critical"}  # fmt: skip
    return service.encode(), json.dumps(body).encode()


class BlackHole:
    """A TCP server that accepts every connection and never answers a byte."""

    def __init__(self) -> None:
        self.port = free_port()
        self.connections = 0
        self._server: asyncio.Server | None = None
        self._held: list[asyncio.StreamWriter] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    async def _accept(self, _: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self._held.append(writer)

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)

    async def stop(self) -> None:
        for writer in self._held:
            writer.close()
        if self._server is not None:
            self._server.close()


async def test_a_black_holed_webhook_holds_up_only_its_own_pages(
    start_worker: Callable[..., RunningWorker], webhook_server: WebhookServer
) -> None:
    hole = BlackHole()
    await hole.start()
    try:
        # Each attempt on the black hole takes its full 10 s timeout: its page is busy for at
        # least 30 s (three attempts) before it can be dead-lettered.
        worker = start_worker(
            catalog(hole.url, webhook_server.url),
            notifier_timeout_s="10", delivery_attempts="3", delivery_backoff_s="0.05",
        )  # fmt: skip
        await produce(worker.bootstrap, worker.topics.detections, [detection("d-dead", "vault")])

        async def first_attempt_hanging() -> bool | None:
            return True if hole.connections >= 1 else None

        await eventually(first_attempt_hanging, 30, "the black hole to be called")
        await produce(
            worker.bootstrap,
            worker.topics.detections,
            [detection(f"d-{name}", name) for name in HEALTHY_SERVICES],
        )
        # Every healthy page arrives while the black-holed one is still being attempted.
        await webhook_server.wait_for(len(HEALTHY_SERVICES), timeout_s=25)
        receipts = await read_all(worker.bootstrap, worker.topics.receipts)
        dave = [r for r in receipts if r["recipient"] == "dave"]
        assert not [r for r in dave if r["outcome"] in ("delivered", "dead_lettered")], dave
        delivered = [r for r in receipts if r["outcome"] == "delivered"]
        assert sorted(r["recipient"] for r in delivered) == ["alice"] * len(HEALTHY_SERVICES)

        # The black-holed page runs out of attempts in its own time and is dead-lettered once.
        async def dead_lettered() -> list[dict[str, Any]] | None:
            found = await read_all(worker.bootstrap, worker.topics.receipts)
            out = [r for r in found if r["recipient"] == "dave" and r["outcome"] == "dead_lettered"]
            return out or None

        [letter] = await eventually(dead_lettered, 90, "the black-holed page's dead letter")
        assert letter["attempt"] == 3
        assert hole.connections == 3
        # The incident escalates to its next step at once: alice gets the vault page.
        requests = await webhook_server.wait_for(len(HEALTHY_SERVICES) + 1, timeout_s=30)
        escalated = requests[-1]["json"]
        assert escalated["incident_id"] == letter["incident_id"]
        assert (escalated["recipient"], escalated["step"]) == ("alice", 1)
        api = Api(worker)
        _, timeline = await api.get(f"/api/incidents/{letter['incident_id']}/timeline")
        kinds = [e["kind"] for e in timeline["events"]]
        assert kinds[-2:] == ["delivery_failed", "escalated"], kinds
        failed = timeline["events"][-2]["data"]
        assert (failed["recipient"], failed["step"]) == ("dave", 0)
        assert failed["detail"] == "timed out"
        # Nothing was sent twice.
        keys = [r["json"]["dedup_key"] for r in webhook_server.requests]
        assert len(keys) == len(set(keys)) == len(HEALTHY_SERVICES) + 1
    finally:
        await hole.stop()


#: Pages per phase of the dead-endpoint measurement, spread over three healthy destinations.
MEASURED_PAGES = 15


def measured_catalog(dead_url: str, live_url: str) -> dict[str, Any]:
    people = ["alice", "bob", "carol"]
    services: dict[str, Any] = {"vault": {"team": "dead-end", "tier": 1}}
    for phase in ("healthy", "dead"):
        for n in range(MEASURED_PAGES):
            services[f"{phase}-{n}"] = {"team": people[n % 3], "tier": 1}
    teams: dict[str, Any] = {
        "dead-end": {"members": ["dave"], "escalation": [{"targets": ["dave"]}]}
    }
    teams.update({p: {"members": [p], "escalation": [{"targets": [p]}]} for p in people})
    contacts = {p: {"contacts": [{"channel": "webhook", "address": live_url}]} for p in people}
    return {
        "services": services,
        "teams": teams,
        "people": {"dave": {"contacts": [{"channel": "webhook", "address": dead_url}]},
                   **contacts},
    }  # fmt: skip


def delays_s(requests: list[dict[str, Any]], phase: str) -> list[float]:
    """Seconds from each page's creation to its arrival, for the pages of ``phase``."""
    out = []
    for r in requests:
        page = r["json"]
        if page["routing_key"].startswith(f"{phase}-"):
            created = datetime.fromisoformat(page["created_at"].replace("Z", "+00:00"))
            out.append(r["at"] - created.timestamp())
    return sorted(out)


def p99(values: list[float]) -> float:
    return values[min(len(values) - 1, round(0.99 * (len(values) - 1)))]


async def test_page_delay_to_healthy_destinations_while_one_is_black_holed(
    start_worker: Callable[..., RunningWorker], webhook_server: WebhookServer
) -> None:
    """The dead-endpoint figure: p99 delay of pages to healthy destinations in a healthy run and
    then, in the same worker, while one destination is black-holed (target: within 1 s of the
    healthy run). Asserts only a generous bound (5 s): the figure is printed."""
    hole = BlackHole()
    await hole.start()
    try:
        worker = start_worker(
            measured_catalog(hole.url, webhook_server.url),
            notifier_timeout_s="10", delivery_attempts="3", page_rate_per_recipient="0",
        )  # fmt: skip
        healthy = [detection(f"d-h{n}", f"healthy-{n}") for n in range(MEASURED_PAGES)]
        await produce(worker.bootstrap, worker.topics.detections, healthy)
        await webhook_server.wait_for(MEASURED_PAGES, timeout_s=60)
        await produce(worker.bootstrap, worker.topics.detections, [detection("d-dead", "vault")])

        async def hanging() -> bool | None:
            return True if hole.connections >= 1 else None

        await eventually(hanging, 30, "the black hole to be called")
        dead = [detection(f"d-d{n}", f"dead-{n}") for n in range(MEASURED_PAGES)]
        await produce(worker.bootstrap, worker.topics.detections, dead)
        await webhook_server.wait_for(2 * MEASURED_PAGES, timeout_s=25)
        assert hole.connections < 3, "the measurement outlasted the black-holed page"
        before = delays_s(webhook_server.requests, "healthy")
        during = delays_s(webhook_server.requests, "dead")
        assert len(before) == len(during) == MEASURED_PAGES
        print(
            f"\ndead-endpoint figure ({MEASURED_PAGES} pages to 3 healthy destinations per run): "
            f"p99 delay healthy run {p99(before):.3f} s, with one destination black-holed "
            f"{p99(during):.3f} s (p50 {before[len(before) // 2]:.3f} s / "
            f"{during[len(during) // 2]:.3f} s)"
        )
        assert p99(during) - p99(before) < 5.0
    finally:
        await hole.stop()
