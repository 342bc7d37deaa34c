"""The live catalog: ``warroom config apply`` puts a catalog in force on a running worker (the next
page goes to whom it names, without a restart, and the open incident records the new version on
its timeline); a catalog that fails the checks is refused whole, with the field, and changes
nothing: neither the topic nor whom the worker pages."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from aiokafka.partitioner import DefaultPartitioner
from prometheus_client.parser import text_string_to_metric_families

from tests.harness import (
    Api,
    RunningWorker,
    WebhookServer,
    eventually,
    produce,
    read_records,
    same_group,
)

pytestmark = pytest.mark.broker


def catalog(hook_url: str, pager: str) -> dict[str, Any]:
    """Services ``api`` and ``web`` of team ``core``, whose escalation pages ``pager``."""
    return {
        "services": {"api": {"team": "core", "tier": 1}, "web": {"team": "core", "tier": 1}},
        "teams": {"core": {"escalation": [{"targets": [pager]}]}},
        "people": {
            name: {"contacts": [{"channel": "webhook", "address": f"{hook_url}?to={name}"}]}
            for name in ("ann", "ben")
        },
        "default_team": "core",
    }


def apply(worker: RunningWorker, path: Path) -> subprocess.CompletedProcess[str]:
    """``warroom config apply`` with the worker's settings (broker and topic names)."""
    return subprocess.run(
        [sys.executable, "-m", "streams.cli", "config", "apply", str(path), "--by", "test"],
        env=worker.env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


async def detect(worker: RunningWorker, service: str, detection_id: str) -> None:
    body = {"id": detection_id, "ts": time.time(), "service": service, "signal": "errors",
            "detector": "external", "score": 1.0, "severity": "critical"}  # fmt: skip
    await produce(
        worker.bootstrap, worker.topics.detections, [(service.encode(), json.dumps(body).encode())]
    )


async def events_of(api: Api, incident_id: str, kind: str) -> list[dict[str, Any]] | None:
    _, found = await api.get(f"/api/incidents/{incident_id}/timeline")
    events = [e for e in found.get("events") or [] if e["kind"] == kind]
    return events or None


async def metrics(worker: RunningWorker) -> dict[str, float]:
    """Each unlabelled sample of the worker's ``/metrics``."""
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{worker.base_url}/metrics") as response,
    ):
        text = await response.text()
    return {
        s.name: s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if not s.labels
    }


async def paged_by(api: Api, service: str, person: str) -> bool | None:
    """True once the worker's catalog in force pages ``person`` first for ``service``."""
    _, found = await api.get(f"/api/oncall?service={service}")
    return True if found.get("steps", [{}])[0].get("people") == [person] else None


async def test_a_catalog_applied_while_running_pages_the_new_recipient_without_a_restart(
    start_worker: Callable[..., RunningWorker], webhook_server: WebhookServer, tmp_path: Path
) -> None:
    worker = start_worker(catalog(webhook_server.url, "ann"))
    api = Api(worker)
    await detect(worker, "api", "d-before")
    [first] = await webhook_server.wait_for(1, timeout_s=30)
    assert first["json"]["recipient"] == "ann"
    before = first["json"]["incident_id"]

    path = tmp_path / "new.yaml"
    path.write_text(yaml.safe_dump(catalog(webhook_server.url, "ben")))
    done = apply(worker, path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("applied: version "), done.stdout
    version = int(done.stdout.split()[2])
    pid = worker.proc.pid if worker.proc else None

    # The open incident records the catalog now in force (it opened under the file's).
    [recorded] = await eventually(
        lambda: events_of(api, before, "catalog_applied"), 30, "the version on the timeline"
    )
    assert recorded["data"]["version"] == version and recorded["data"]["previous"] is None
    await detect(worker, "web", "d-after")
    second = (await webhook_server.wait_for(2, timeout_s=30))[1]
    assert second["json"]["recipient"] == "ben"
    assert worker.proc is not None and worker.proc.pid == pid and worker.proc.poll() is None
    after = second["json"]["incident_id"]
    [opened_under] = await eventually(
        lambda: events_of(api, after, "catalog_applied"), 30, "the new incident's version"
    )
    assert opened_under["data"]["version"] == version
    assert opened_under["data"]["digest"] == recorded["data"]["digest"]

    found = await metrics(worker)
    assert found["warroom_catalog_version"] == version
    assert found["warroom_catalogs_applied_total"] == 1

    # The same content again writes nothing.
    again = apply(worker, path)
    assert again.returncode == 0 and again.stdout.startswith(f"unchanged: version {version} ")
    assert len(await read_records(worker.bootstrap, worker.topics.catalog)) == 1


Change = Callable[[dict[str, Any]], Any]


def _no_default_team(c: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in c.items() if k != "default_team"}


BAD: dict[str, tuple[Change, str]] = {
    "an unknown person": (
        lambda c: {**c, "teams": {"core": {"escalation": [{"targets": ["ann", "zed"]}]}}},
        "teams.core.escalation.0.targets.1: unknown person 'zed'",
    ),
    "a gap nobody pages": (
        _no_default_team,
        "fallback_policy: required, since an incident could page nobody",
    ),
    "not a mapping": (lambda c: ["services"], "expected a mapping at the top level"),
}


async def test_a_bad_catalog_is_refused_whole_and_changes_nothing(
    start_worker: Callable[..., RunningWorker], webhook_server: WebhookServer, tmp_path: Path
) -> None:
    worker = start_worker(catalog(webhook_server.url, "ann"))
    good = tmp_path / "good.yaml"
    good.write_text(yaml.safe_dump(catalog(webhook_server.url, "ben")))
    assert apply(worker, good).returncode == 0
    topic_before = await read_records(worker.bootstrap, worker.topics.catalog)
    assert len(topic_before) == 1

    for name, (change, reason) in BAD.items():
        # Each bad catalog would page ann again: none of it may be applied.
        path = tmp_path / f"{name.replace(' ', '-')}.yaml"
        path.write_text(yaml.safe_dump(change(catalog(webhook_server.url, "ann"))))
        refused = apply(worker, path)
        assert refused.returncode == 1, (name, refused.stdout, refused.stderr)
        assert refused.stderr.startswith("refused, nothing applied: "), refused.stderr
        assert reason in refused.stderr, (name, refused.stderr)
        assert refused.stdout == ""

    assert await read_records(worker.bootstrap, worker.topics.catalog) == topic_before
    await eventually(lambda: paged_by(Api(worker), "api", "ben"), 30, "ben in force")
    await detect(worker, "api", "d-after-refusals")
    [page] = await webhook_server.wait_for(1, timeout_s=30)
    assert page["json"]["recipient"] == "ben"


async def test_every_worker_of_the_app_applies_it(
    start_worker: Callable[..., RunningWorker], webhook_server: WebhookServer, tmp_path: Path
) -> None:
    a = start_worker(catalog(webhook_server.url, "ann"))
    b = same_group(a, tmp_path, "b")
    b.start()
    try:
        path = tmp_path / "new.yaml"
        path.write_text(yaml.safe_dump(catalog(webhook_server.url, "ben")))
        done = apply(a, path)
        assert done.returncode == 0, done.stderr
        version = int(done.stdout.split()[2])
        for worker in (a, b):

            async def applied(worker: RunningWorker = worker) -> bool | None:
                found = await metrics(worker)
                return True if found.get("warroom_catalog_version") == version else None

            await eventually(applied, 30, f"version {version} in force on {worker.base_url}")
            assert await paged_by(Api(worker), "api", "ben")

        # Services on both partitions (so on both workers, once the group is balanced): every
        # page goes to ben.
        services = ["api", "cache", "db", "queue"]
        partitioner = DefaultPartitioner()
        assert {partitioner(s.encode(), [0, 1], [0, 1]) for s in services} == {0, 1}
        for service in services:
            await detect(a, service, f"d-{service}")
        pages = await webhook_server.wait_for(len(services), timeout_s=60)
        assert {p["json"]["recipient"] for p in pages} == {"ben"}
        assert len({p["json"]["incident_id"] for p in pages}) == len(services)
    finally:
        b.stop()
