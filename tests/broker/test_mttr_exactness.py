"""The MTTR aggregates equal a batch recomputation from the timeline: live, after a SIGKILL and a
restart, and after the whole timeline is replayed; ``/metrics`` parses as Prometheus text."""

from __future__ import annotations

import contextlib
import json
import math
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.harness import Api, RunningWorker, consumed_all, eventually, produce, read_all

pytestmark = pytest.mark.broker

TIMELINES = Path(__file__).parent.parent / "fixtures" / "timelines.jsonl"
STAGES = ("time_to_detect", "time_to_acknowledge", "time_to_restore", "time_to_resolve")


def t(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def nearest_rank(values: list[float], p: float) -> float | None:
    return values[max(1, math.ceil(p / 100 * len(values))) - 1] if values else None


def batch_aggregates(events: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """A straightforward recomputation, independent of the streaming code."""
    incidents: dict[str, dict[str, Any]] = {}
    for e in sorted(events, key=lambda e: (e["incident_id"], e["seq"])):
        inc = incidents.setdefault(e["incident_id"], {})
        if e["kind"] == "opened":
            inc.update(e["data"]["incident"])
        elif e["kind"] in ("acknowledged", "mitigated", "resolved"):
            inc[f"{e['kind']}_at"] = e["at"]
    groups: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for inc in incidents.values():
        opened, impact = t(inc["opened_at"]), t(inc["impact_started_at"])
        mitigated = inc.get("mitigated_at") or inc.get("resolved_at")
        row = {
            "opened": opened,
            "open": inc.get("resolved_at") is None,
            "time_to_detect": (t(inc["detected_at"]) - impact).total_seconds(),
            "time_to_acknowledge": (t(inc["acknowledged_at"]) - opened).total_seconds()
            if inc.get("acknowledged_at") else None,
            "time_to_restore": (t(mitigated) - impact).total_seconds() if mitigated else None,
            "time_to_resolve": (t(inc["resolved_at"]) - impact).total_seconds()
            if inc.get("resolved_at") else None,
        }  # fmt: skip
        for dim in ("service", "team", "severity", "detector"):
            groups[(dim, inc[dim] or "none")].append(row)

    def summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {
            "incidents": len(rows),
            "open_incidents": sum(r["open"] for r in rows),
        }
        for stage in STAGES:
            vs = sorted(r[stage] for r in rows if r[stage] is not None)
            out[stage] = {
                "count": len(vs),
                "mean_s": sum(vs) / len(vs) if vs else None,
                "p50_s": nearest_rank(vs, 50),
                "p90_s": nearest_rank(vs, 90),
                "p99_s": nearest_rank(vs, 99),
            }
        return out

    result: dict[str, dict[str, Any]] = {}
    for (dim, value), rows in groups.items():
        for window in ("hour", "day", "week"):
            buckets: dict[datetime, list[dict[str, Any]]] = defaultdict(list)
            for r in rows:
                o = r["opened"]
                day = datetime(o.year, o.month, o.day, tzinfo=UTC)
                start = {
                    "hour": datetime(o.year, o.month, o.day, o.hour, tzinfo=UTC),
                    "day": day,
                    "week": day - timedelta(days=day.weekday()),
                }[window]
                buckets[start].append(r)
            for start, inside in buckets.items():
                result[f"{dim}={value}|{window}@{start.isoformat()}"] = summary(inside)
        newest = max(r["opened"] for r in rows)
        for window, span in (("24h", 1), ("7d", 7), ("30d", 30)):
            inside = [r for r in rows if r["opened"] > newest - timedelta(days=span)]
            result[f"{dim}={value}|{window}"] = summary(inside)
    return result


def latest_per_key(messages: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {m["key"]: m for m in messages}


def assert_equal(streamed: dict[str, dict[str, Any]], expected: dict[str, dict[str, Any]]) -> None:
    assert set(streamed) == set(expected)
    for key, want in expected.items():
        got = streamed[key]
        assert (got["incidents"], got["open_incidents"]) == (
            want["incidents"], want["open_incidents"],
        ), key  # fmt: skip
        for stage in STAGES:
            for field, value in want[stage].items():
                assert got[stage][field] == pytest.approx(value, abs=1e-6), (key, stage, field)


async def converged(worker: RunningWorker, expected: dict[str, dict[str, Any]]) -> None:
    """Wait until everything is consumed and the topic's latest values match, then compare."""

    async def probe() -> bool | None:
        for topic in (worker.topics.events, worker.topics.contributions):
            if not await consumed_all(worker.bootstrap, worker.group_of(topic), topic):
                return None
        streamed = latest_per_key(await read_all(worker.bootstrap, worker.topics.aggregates))
        try:
            assert_equal(streamed, expected)
        except AssertionError:
            return None
        return True

    with contextlib.suppress(AssertionError):  # the comparison below says what differs
        await eventually(probe, 60, "the aggregates to match the batch recomputation")
    streamed = latest_per_key(await read_all(worker.bootstrap, worker.topics.aggregates))
    assert_equal(streamed, expected)


async def test_aggregates_equal_batch_recomputation_across_kill_and_replay(
    start_worker: Callable[..., RunningWorker],
) -> None:
    events = [json.loads(line) for line in TIMELINES.read_text().splitlines()]
    by_incident: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for e in events:
        by_incident[e["incident_id"]].append(e)
    ids = sorted(by_incident)
    first = [e for i in ids[: len(ids) // 2] for e in by_incident[i]]
    rest = [e for i in ids[len(ids) // 2 :] for e in by_incident[i]]

    def messages(evs: list[dict[str, Any]]) -> list[tuple[bytes | None, bytes]]:
        return [(e["routing_key"].encode(), json.dumps(e).encode()) for e in evs]

    worker = start_worker()
    await produce(worker.bootstrap, worker.topics.events, messages(first))
    await converged(worker, batch_aggregates(first))
    streamed = latest_per_key(await read_all(worker.bootstrap, worker.topics.aggregates))

    # Mid-stream: SIGKILL while the second half is being processed, then restart.
    await produce(worker.bootstrap, worker.topics.events, messages(rest))

    async def some_progress() -> bool | None:
        seen = await read_all(worker.bootstrap, worker.topics.aggregates)
        return True if len(seen) > len(streamed) + 20 else None

    await eventually(some_progress, 30, "the worker to start on the second half")
    worker.kill()
    worker.start()
    # And the whole timeline replayed on top (a producer retrying everything).
    await produce(worker.bootstrap, worker.topics.events, messages(first + rest))
    expected = batch_aggregates(first + rest)
    await converged(worker, expected)

    # The API serves the same values, and /metrics parses as Prometheus text with them.
    _, body = await Api(worker).get("/api/mttr?dimension=service&window=30d")
    assert_equal({a["key"]: a for a in body["aggregates"]}, {
        k: v for k, v in expected.items() if k.startswith("service=") and k.endswith("|30d")
    })  # fmt: skip
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{worker.base_url}/metrics") as response,
    ):
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain")
        text = await response.text()
    families = {f.name: f for f in text_string_to_metric_families(text)}
    label_names = ("dimension", "value", "window", "stage", "stat")
    samples = {
        tuple(s.labels[n] for n in label_names): s.value
        for s in families["warroom_mttr_seconds"].samples
    }
    want = expected["team=payments|7d"]["time_to_resolve"]["p90_s"]
    assert samples[("team", "payments", "7d", "resolve", "p90")] == pytest.approx(want)
    incidents = {
        (s.labels["dimension"], s.labels["value"], s.labels["window"]): s.value
        for s in families["warroom_mttr_incidents"].samples
    }
    assert (
        incidents[("service", "checkout", "30d")] == expected["service=checkout|30d"]["incidents"]
    )
    assert families["warroom_ready"].samples[0].value == 1.0
