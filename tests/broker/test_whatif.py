"""``warroom whatif`` on a recorded week (generated here with a seed): the table, and a proposal
that removes a team's second escalation step takes that person's pages away."""

from __future__ import annotations

import asyncio
import json
import os
import random
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from streams.settings import Settings, TopicNames
from streams.topics import ensure_topics
from tests.harness import produce

pytestmark = pytest.mark.broker

WEEK_S = 7 * 86400
SECOND_STEP_S = 300.0


def catalog(steps: int) -> dict[str, Any]:
    targets = [["ann"], ["bob"]][:steps]
    return {
        "services": {"api": {"team": "core"}, "web": {"team": "core"}},
        "teams": {"core": {"escalation_policy": "core"}},
        "people": {
            "ann": {"contacts": [{"channel": "console"}], "time_zone": "Europe/Berlin"},
            "bob": {"contacts": [{"channel": "console"}]},
        },
        "escalation_policies": {
            "core": {
                "steps": [
                    {"delay_s": 0 if i == 0 else SECOND_STEP_S, "targets": t}
                    for i, t in enumerate(targets)
                ]
            }
        },
    }


def recorded_week(
    seed: int,
) -> tuple[list[tuple[bytes, bytes]], list[tuple[bytes, bytes]], list[float]]:
    """Detections at random times of the last week, each resolved by a person 20 minutes later
    (so each opens its own incident); the times bob's second-step page would go out."""
    rng = random.Random(seed)
    now = time.time()
    starts = sorted(now - WEEK_S + rng.uniform(0, WEEK_S - 3600) for _ in range(30))
    detections, commands, bob_pages = [], [], []
    for n, at in enumerate(starts):
        service = rng.choice(["api", "web"])
        d = {"id": f"wk-{n}", "ts": at, "service": service, "signal": "errors",
             "detector": "external", "score": 1.0, "severity": "error"}  # fmt: skip
        c = {"id": f"res-{n}", "kind": "resolve", "incident_id": f"recorded-{n}",
             "routing_key": service, "actor": "ann", "issued_at": at + 1200}  # fmt: skip
        detections.append((service.encode(), json.dumps(d).encode()))
        commands.append((service.encode(), json.dumps(c).encode()))
        bob_pages.append(at + 30 + SECOND_STEP_S)  # after the default 30 s group wait
    return detections, commands, bob_pages


async def test_whatif_on_a_recorded_week_prints_its_table_and_counts_the_removed_step(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    app_id = f"t-whatif-{uuid.uuid4().hex[:8]}"
    topics = TopicNames(**{k: f"{app_id}.{v}" for k, v in TopicNames().model_dump().items()})
    settings = Settings(bootstrap_servers=kafka_bootstrap, app_id=app_id, topics=topics,
                        partitions=2)  # fmt: skip
    await ensure_topics(settings)
    detections, commands, bob_pages = recorded_week(seed=27)
    await produce(kafka_bootstrap, topics.detections, detections)
    await produce(kafka_bootstrap, topics.commands, commands)
    current, proposal = tmp_path / "current.yaml", tmp_path / "proposal.yaml"
    current.write_text(yaml.safe_dump(catalog(steps=2)))
    proposal.write_text(yaml.safe_dump(catalog(steps=1)))
    env = {k: v for k, v in os.environ.items() if not k.startswith("WARROOM_")}
    env.update(
        WARROOM_BOOTSTRAP_SERVERS=kafka_bootstrap,
        WARROOM_APP_ID=app_id,
        WARROOM_TOPICS=topics.model_dump_json(),
        WARROOM_CATALOG_PATH=str(current),
    )

    def whatif(*extra: str) -> subprocess.CompletedProcess[str]:
        argv = [sys.executable, "-m", "streams.cli", "whatif", "--catalog", str(proposal),
                "--since", "7d", *extra]  # fmt: skip
        return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120)

    done = await asyncio.to_thread(whatif, "--json")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["detections"] == 30 and result["commands"] == 30
    services = {r["name"]: r for r in result["services"]}
    assert sum(r["incidents_now"] for r in services.values()) == 30
    assert all(r["incidents_now"] == r["incidents_proposed"] for r in services.values())
    people = {r["name"]: r for r in result["people"]}
    assert people["ann"]["pages_now"] == people["ann"]["pages_proposed"] == 30
    assert people["bob"]["pages_now"] == 30 and people["bob"]["pages_proposed"] == 0
    night = sum(3 <= datetime.fromtimestamp(t, UTC).hour < 7 for t in bob_pages)
    assert people["bob"]["night_pages_now"] == night  # bob has no time zone: UTC
    assert people["bob"]["night_pages_proposed"] == 0

    table = await asyncio.to_thread(whatif)
    assert table.returncode == 0, table.stderr
    print(table.stdout)
    lines = table.stdout.splitlines()
    header = next(line for line in lines if line.startswith("person"))
    assert header.split() == ["person", "pages", "now", "pages", "proposed", "pages", "03-07",
                              "now", "pages", "03-07", "proposed"]  # fmt: skip
    bob = next(line for line in lines if line.startswith("bob "))
    assert bob.split() == ["bob", "30", "0", str(night), "0"]

    # A proposal that is not a valid catalog is refused with the field, and nothing is read.
    proposal.write_text(yaml.safe_dump({"services": {"api": {"team": "nobody"}}}))
    bad = await asyncio.to_thread(whatif)
    assert bad.returncode == 2 and "services.api.team" in bad.stderr


async def test_whatif_with_detector_params_rescores_the_recorded_points(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    app_id = f"t-whatif-points-{uuid.uuid4().hex[:8]}"
    topics = TopicNames(**{k: f"{app_id}.{v}" for k, v in TopicNames().model_dump().items()})
    settings = Settings(bootstrap_servers=kafka_bootstrap, app_id=app_id, topics=topics,
                        partitions=2)  # fmt: skip
    await ensure_topics(settings)
    # Recorded points with an obvious fault, and no detection recorded for them (the detector
    # in force missed it, say): with the proposed parameters, the fault opens an incident.
    rng = random.Random(5)
    base = time.time() - 300  # recent: the worker records late data without paging for it
    points = [
        {"ts": base + i, "service": "api", "metric": "latency_ms",
         "value": 900.0 if 200 <= i < 203 else 100.0 + rng.gauss(0.0, 3.0)}
        for i in range(240)
    ]  # fmt: skip
    batches = [points[i : i + 10] for i in range(0, len(points), 10)]
    await produce(
        kafka_bootstrap,
        topics.metrics,
        [(b"api", json.dumps({"points": b}).encode()) for b in batches],
    )
    path = tmp_path / "catalog.yaml"
    path.write_text(yaml.safe_dump(catalog(steps=1)))
    env = {k: v for k, v in os.environ.items() if not k.startswith("WARROOM_")}
    # The points were all sent at once, so their detections arrive together: without a group
    # wait, the fault's firing opens its incident before its end resolves it.
    env.update(WARROOM_BOOTSTRAP_SERVERS=kafka_bootstrap, WARROOM_APP_ID=app_id,
               WARROOM_TOPICS=topics.model_dump_json(), WARROOM_GROUP_WAIT_S="0")  # fmt: skip
    argv = [sys.executable, "-m", "streams.cli", "whatif", "--catalog", str(path), "--current",
            str(path), "--since", "1d", "--detector-params", "{}", "--json"]  # fmt: skip
    done = await asyncio.to_thread(
        subprocess.run, argv, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["detections"] == 0 and result["detections_proposed"] >= 1
    [api] = result["services"]
    assert (api["incidents_now"], api["incidents_proposed"]) == (0, 1)

    argv[argv.index("{}")] = '{"no_such_parameter": 1}'
    bad = await asyncio.to_thread(
        subprocess.run, argv, env=env, capture_output=True, text=True, timeout=120
    )
    assert bad.returncode == 2 and "--detector-params" in bad.stderr
