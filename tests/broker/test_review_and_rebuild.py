"""The review of a live incident, and incidents rebuilt from ``incidents.events.v1`` alone."""

from __future__ import annotations

import asyncio
import json
import random
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from streams.settings import Settings
from streams.tools import differences, rebuild
from tests.harness import Api, RunningWorker, eventually

pytestmark = pytest.mark.broker

CATALOG = {
    "services": {"checkout": {"team": "payments", "tier": 1}},
    "teams": {"payments": {"members": ["alice"], "escalation": [{"targets": ["alice"]}]}},
    "people": {"alice": {"contacts": [{"channel": "console"}]}},
}


def ts(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


async def get_text(worker: RunningWorker, path: str) -> tuple[int, str, str]:
    async with (
        aiohttp.ClientSession() as session,
        session.get(worker.base_url + path) as response,
    ):
        return response.status, response.content_type, await response.text()


def stage_seconds(markdown: str) -> dict[str, float | None]:
    """The seconds column of the review's stage durations table."""
    body = markdown.split("## Stage durations\n", 1)[1].split("\n## ", 1)[0]
    out: dict[str, float | None] = {}
    for row in body.splitlines()[3:]:
        cells = [c.strip() for c in row.strip("|").split("|")]
        if len(cells) == 5:
            out[cells[0]] = float(cells[4]) if cells[4] else None
    return out


async def cli(worker: RunningWorker, *args: str) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "streams.cli", *args],
        env=worker.env, capture_output=True, text=True, timeout=90,
    )  # fmt: skip


async def test_review_durations_and_rebuild_equal_the_live_state(
    start_worker: Callable[..., RunningWorker], tmp_path: Path
) -> None:
    worker = start_worker(CATALOG, detector="median_mad", policy_params={"for_points": 2})
    api = Api(worker)
    rng = random.Random(11)
    base = float(int(time.time()) - 300)
    values = [100.0 + rng.gauss(0, 2) for _ in range(40)] + [400.0, 410.0, 405.0, 100.0]
    series = [
        {"ts": base + i, "service": "checkout", "metric": "latency_ms", "value": v}
        for i, v in enumerate(values)
    ]
    # Sent with `warroom replay --input`, keyed by service, to the worker's metrics topic.
    lines = tmp_path / "points.jsonl"
    lines.write_text("".join(json.dumps(p) + "\n" for p in series))
    done = await cli(worker, "replay", "--input", str(lines), "--topic", "metrics",
                     "--key-field", "service")  # fmt: skip
    assert done.returncode == 0 and "sent 44 messages" in done.stderr, done.stderr

    async def opened() -> dict[str, Any] | None:
        _, body = await api.get("/api/incidents")
        return body["incidents"][0] if body["incidents"] else None

    incident = await eventually(opened, 30, "an incident")
    path = f"/api/incidents/{incident['id']}"
    note = {"text": "follow-up: alert on p99 before the median moves"}
    assert (await api.post(f"{path}/notes", note, actor="alice"))[0] == 202
    for action, status_after in [
        ("acknowledge", "acknowledged"),
        ("mitigate", "mitigated"),
        ("resolve", "resolved"),
    ]:
        code, accepted = await api.post(f"{path}/{action}", {"text": action}, actor="alice")
        assert code == 202, accepted

        async def reached(status_after: str = status_after) -> dict[str, Any] | None:
            _, current = await api.get(path)
            return current if current["status"] == status_after else None

        incident = await eventually(reached, 15, f"status {status_after}")

    # The projection has the whole timeline once it holds the resolved event.
    async def projected() -> list[dict[str, Any]] | None:
        _, tl = await api.get(f"{path}/timeline")
        return tl["events"] if tl["events"] and tl["events"][-1]["kind"] == "resolved" else None

    events = await eventually(projected, 15, "the resolved event on the timeline")

    # (a) The review's stage durations are the incident's own.
    status, content_type, markdown = await get_text(worker, f"{path}/review")
    assert status == 200 and content_type == "text/markdown"
    impact, opened_at = ts(incident["impact_started_at"]), ts(incident["opened_at"])
    expected = {
        "detect": ts(incident["detected_at"]) - impact,
        "mobilize": ts(incident["first_paged_at"]) - opened_at,
        "acknowledge": ts(incident["acknowledged_at"]) - opened_at,
        "restore": ts(incident["mitigated_at"]) - impact,
        "resolve": ts(incident["resolved_at"]) - impact,
    }
    got = stage_seconds(markdown)
    assert got.keys() == expected.keys()
    for stage, seconds in expected.items():
        assert got[stage] == pytest.approx(seconds, abs=0.0006), stage
    assert got["detect"] == pytest.approx(1.0)
    timeline_rows = markdown.split("## Timeline\n", 1)[1].split("\n## ", 1)[0].splitlines()[3:]
    assert [int(r.split("|")[1]) for r in timeline_rows if r] == [e["seq"] for e in events]
    assert "- [ ] alert on p99 before the median moves (noted by alice" in markdown
    assert "| alice | - | step 0 |" in markdown
    status, content_type, svg = await get_text(worker, f"{path}/review.svg")
    assert status == 200 and content_type == "image/svg+xml"
    assert ET.fromstring(svg).tag == "{http://www.w3.org/2000/svg}svg"
    assert (await get_text(worker, "/api/incidents/inc-nope/review"))[0] == 404

    # `warroom review ID --output FILE` writes the Markdown and the chart it links to.
    out = tmp_path / "review.md"
    done = await cli(
        worker, "review", incident["id"], "--api", worker.base_url, "--output", str(out)
    )
    assert done.returncode == 0, done.stderr
    assert "](review-chart.svg)" in out.read_text()
    ET.fromstring((tmp_path / "review-chart.svg").read_text())

    done = await cli(worker, "incidents", "--api", worker.base_url, "--status", "resolved")
    assert done.returncode == 0, done.stderr
    [header, row] = done.stdout.splitlines()
    assert header.split()[:3] == ["ID", "STATUS", "SEV"]
    assert row.split()[:4] == [incident["id"], "resolved", "SEV1", "checkout"]

    # (b) Incidents rebuilt from the timeline topic alone equal the live ones, field for field.
    _, live = await api.get("/api/incidents")
    settings = Settings(bootstrap_servers=worker.bootstrap, topics=worker.topics)
    rebuilt = await rebuild(settings)
    assert rebuilt.problems == [] and rebuilt.undecodable == 0
    assert [i.model_dump(mode="json") for i in rebuilt.incidents.values()] == live["incidents"]
    assert differences(rebuilt.incidents, live["incidents"]) == []
    changed = {**live["incidents"][0], "severity": "SEV4"}
    assert differences(rebuilt.incidents, [changed]) == [
        f"{incident['id']}: severity: rebuilt 'SEV1', API 'SEV4'"
    ]

    # ... and through the command line, which exits 1 on any difference.
    done = await cli(worker, "replay", "--rebuild", "--compare-api", worker.base_url)
    assert done.returncode == 0, done.stderr
    assert [json.loads(line) for line in done.stdout.splitlines()] == live["incidents"]
    assert "equal" in done.stderr
