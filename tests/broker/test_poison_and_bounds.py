"""Hostile and oversized input on the points path: nothing stalls, every output fits the broker.

A record that cannot be processed is dead-lettered (bounded: a prefix, its length, a digest) and
the partition's other records proceed; checkpoint blocks of long series ids are split under the
bound and restore after a restart; an episode that ends resolves its signal on the incident.
"""

from __future__ import annotations

import base64
import hashlib
import json
import random
import time
from collections.abc import Callable
from typing import Any

import aiohttp
import pytest

from tests.harness import (
    Api,
    RunningWorker,
    consume,
    consumed_all,
    counters,
    eventually,
    produce,
    read_timed_records,
)

pytestmark = pytest.mark.broker

KIB = 1024
BLOCK_BOUND = 512 * KIB
DEAD_LETTER_BOUND = 256 * KIB


def _points(service: str, base: float, values: list[float], **extra: Any) -> list[dict[str, Any]]:
    return [
        {"ts": base + 60 * i, "service": service, "metric": "latency_ms", "value": v, **extra}
        for i, v in enumerate(values)
    ]


async def _metric(worker: RunningWorker, name: str) -> float:
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{worker.base_url}/metrics") as response,
    ):
        text = await response.text()
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            total += float(line.rsplit(" ", 1)[1])
    return total


async def _detections(worker: RunningWorker, want: Callable[[dict[str, Any]], bool]) -> Any:
    found = await consume(
        worker.bootstrap,
        worker.topics.detections,
        lambda vs: any(want(v) for v in vs),
        timeout_s=60,
    )
    return [v for v in found if want(v)]


async def test_poison_records_are_dead_lettered_and_never_stall_detection(
    start_worker: Callable[..., RunningWorker],
) -> None:
    rules = [
        {"name": "disk", "detector": "static_threshold", "metrics": ["disk_used"],
         "params": {"upper": 0.9}, "policy": {"for_points": 1}},
    ]  # fmt: skip
    worker = start_worker(
        detector="ewma",
        policy_params={"for_points": 2},
        detector_rules=rules,
        detect_max_attempts=3,
    )
    api = Api(worker)
    rng = random.Random(3)
    base = float(int(time.time()) - 12 * 3600)  # the spike, 643 minutes on, is still past
    warm = _points("checkout", base, [100.0 + rng.gauss(0, 2) for _ in range(40)])
    # ~900 KB that is not UTF-8: its dead letter as it was (base64 of it all) is over 1 MB.
    not_utf8 = b'{"ts": 1, "service": "' + b"\xff" * 900_000 + b'"}'
    # ~900 KB of valid JSON that is not a point either.
    not_a_point = json.dumps({"ts": base, "note": "y" * 900_000}).encode()
    # Valid JSON and a valid point, but a label that is a lone surrogate: the detection it
    # fires cannot be encoded, every time (before, the whole worker's scoring stopped on it).
    unencodable = (
        b'{"ts": %d, "service": "checkout", "metric": "disk_used", "value": 0.95,'
        b' "labels": {"pod": "\\ud800"}}' % int(base)
    )
    after = _points("checkout", base + 60 * 40, [100.0 + rng.gauss(0, 2) for _ in range(600)])
    spike = _points("checkout", base + 60 * 640, [900.0, 950.0, 925.0])
    await produce(
        worker.bootstrap,
        worker.topics.metrics,
        [
            (b"checkout", json.dumps({"points": warm}).encode()),
            (b"checkout", not_utf8),
            (b"checkout", not_a_point),
            (b"checkout", unencodable),
        ],
    )

    async def failed_once() -> float | None:
        errors = await _metric(worker, "warroom_detect_errors_total")
        return errors if errors >= 1 else None

    # The ordinary points arrive while the failing record is retried, so they are fetched
    # with it: they are scored after it, not dropped with the rest of its batch.
    await eventually(failed_once, 30, "the unencodable record's first failure")
    await produce(
        worker.bootstrap,
        worker.topics.metrics,
        [
            (b"checkout", json.dumps({"points": after[:300]}).encode()),
            (b"checkout", json.dumps({"points": after[300:]}).encode()),
            (b"checkout", json.dumps({"points": spike}).encode()),
        ],
    )

    [firing, *_] = await _detections(
        worker, lambda d: d["status"] == "firing" and d["context"]["value"] >= 900
    )
    assert firing["service"] == "checkout" and firing["context"]["value"] == 950.0

    async def all_scored() -> float | None:
        done = await _metric(worker, "warroom_points_processed_total")
        return done if done >= len(warm) + len(after) + len(spike) else None

    assert await eventually(all_scored, 30, "every ordinary point scored") >= 643

    letters = await consume(
        worker.bootstrap, f"{worker.topics.metrics}.dlq", lambda v: len(v) >= 3, timeout_s=30
    )
    by_digest = {letter["value_sha256"]: letter for letter in letters}
    for original, reason in [(not_utf8, "not UTF-8"), (not_a_point, "")]:
        letter = by_digest[hashlib.sha256(original).hexdigest()]
        assert letter["error"].startswith(reason) and letter["error"], letter["error"]
        assert letter["stage"] == "decode"
        assert letter["value_length"] == len(original)
        kept = base64.b64decode(letter["value_b64"])
        assert original.startswith(kept) and 0 < len(kept) < len(original)
        assert letter["value_truncated"] is True
    letter = by_digest[hashlib.sha256(unencodable).hexdigest()]
    assert letter["stage"] == "detect" and letter["value_length"] == len(unencodable)
    assert letter["error"].startswith("failed 3 times, skipped:"), letter["error"]
    assert "surrogates not allowed" in letter["error"]
    assert base64.b64decode(letter["value_b64"]) == unencodable and not letter["value_truncated"]
    assert await _metric(worker, "warroom_detect_records_skipped_total") == 1
    raw = await read_timed_records(worker.bootstrap, f"{worker.topics.metrics}.dlq")
    assert all(r.value is not None and len(r.value) <= DEAD_LETTER_BOUND for r in raw)
    assert (await api.get("/readyz"))[0] == 200


async def test_long_series_ids_are_checkpointed_in_bounded_blocks_and_restored(
    start_worker: Callable[..., RunningWorker],
) -> None:
    # The default detector: 256 such series made one 1,072,238-byte block, which the producer
    # refused, so nothing was ever committed.
    worker = start_worker()
    rng = random.Random(5)
    base = float(int(time.time()) - 3 * 3600)
    # Three labels of 1,000 characters (each within a label's 1,024) make a 3,000-character id.
    labels = [
        {"pod": f"{i:04d}-" + "x" * 995, "node": "n" * 1000, "zone": "z" * 1000} for i in range(256)
    ]
    messages = []
    for t in range(30):
        for half in (labels[:128], labels[128:]):
            batch = [
                {
                    "ts": base + 60 * t,
                    "service": "checkout",
                    "metric": "latency_ms",
                    "value": 100.0 + rng.gauss(0, 2),
                    "labels": lab,
                }
                for lab in half
            ]
            messages.append((b"checkout", json.dumps({"points": batch}).encode()))
    await produce(worker.bootstrap, worker.topics.metrics, messages)

    async def committed() -> bool | None:
        group = worker.group_of(worker.topics.metrics)
        return True if await consumed_all(worker.bootstrap, group, worker.topics.metrics) else None

    # Offsets are committed only once the partition's blocks are written.
    await eventually(committed, 60, "every point checkpointed and committed")
    blocks = await read_timed_records(worker.bootstrap, f"{worker.app_id}-detector-blocks")
    sizes = [len(r.value) for r in blocks if r.value is not None]
    assert len(sizes) >= 2 and max(sizes) <= BLOCK_BOUND, sizes
    # What /metrics says was written is what the topic holds (silence watches included; read
    # again until both are taken between two checkpoints).

    async def accounted() -> bool | None:
        found = await read_timed_records(worker.bootstrap, f"{worker.app_id}-detector-blocks")
        held = sum(len(r.value) for r in found if r.value is not None)
        seen = await counters(worker)
        ok = seen["warroom_checkpoint_bytes_total"] == held
        return True if ok and seen["warroom_checkpoints_written_total"] >= 1 else None

    await eventually(accounted, 30, "the checkpoint bytes counted to be those on the topic")
    worker.restart()

    # A fresh detector has no history (no score): a detection proves the restored state.
    spike = [
        {
            "ts": base + 60 * (30 + i),
            "service": "checkout",
            "metric": "latency_ms",
            "value": v,
            "labels": labels[200],
        }
        for i, v in enumerate([900.0, 950.0])
    ]
    await produce(
        worker.bootstrap,
        worker.topics.metrics,
        [(b"checkout", json.dumps({"points": spike}).encode())],
    )
    [found, *_] = await _detections(worker, lambda d: d["status"] == "firing")
    # The detection itself is bounded: its labels are cut, and it says so.
    assert found["labels"] == {k: v[:256] for k, v in labels[200].items()}
    assert found["context"]["truncated"] is True
    assert found["context"]["value"] in (900.0, 950.0)


def _catalog() -> dict[str, Any]:
    return {
        "services": {"checkout": {"team": "payments", "tier": 1}},
        "teams": {"payments": {"members": ["alice"], "escalation": [{"targets": ["alice"]}]}},
        "people": {"alice": {"contacts": [{"channel": "console", "address": "alice"}]}},
    }


async def test_an_ended_metric_episode_recovers_its_signal_on_the_incident(
    start_worker: Callable[..., RunningWorker],
) -> None:
    worker = start_worker(
        _catalog(), detector="ewma", policy_params={"for_points": 2, "clear_points": 3}
    )
    api = Api(worker)
    rng = random.Random(9)
    base = float(int(time.time()) - 3600)
    normal = [100.0 + rng.gauss(0, 2) for _ in range(40)]
    fault = [900.0, 950.0, 925.0]
    recovered = [100.0 + rng.gauss(0, 2) for _ in range(6)]
    series = _points("checkout", base, [*normal, *fault, *recovered])
    await produce(
        worker.bootstrap,
        worker.topics.metrics,
        [(b"checkout", json.dumps(p).encode()) for p in series],
    )

    resolved = await _detections(worker, lambda d: d["status"] == "resolved")
    [ended] = resolved
    firing = await _detections(worker, lambda d: d["status"] == "firing")
    assert ended["signal"] == firing[0]["signal"] == "latency_ms"
    assert ended["service"] == "checkout" and ended["id"] != firing[0]["id"]
    # Resolved on the third normal point after the fault, at that point's time.
    assert ended["ts"].startswith(
        time.strftime("%Y-%m-%dT%H:%M", time.gmtime(base + 60 * (len(normal) + len(fault) + 2)))
    )

    async def recovered_on_timeline() -> list[str] | None:
        _, body = await api.get("/api/incidents")
        if not body["incidents"]:
            return None
        incident_id = body["incidents"][0]["id"]
        _, timeline = await api.get(f"/api/incidents/{incident_id}/timeline")
        kinds = [e["kind"] for e in timeline["events"]]
        return kinds if "signals_recovered" in kinds else None

    kinds = await eventually(recovered_on_timeline, 60, "signals_recovered on the incident")
    assert kinds[0] == "opened"
    assert await _metric(worker, "warroom_detections_resolved_total") == 1


async def test_with_detect_resolves_off_an_ended_episode_sends_nothing(
    start_worker: Callable[..., RunningWorker],
) -> None:
    worker = start_worker(
        detector="ewma",
        policy_params={"for_points": 2, "clear_points": 3},
        detect_resolves="false",
    )
    rng = random.Random(9)
    base = float(int(time.time()) - 3600)
    values = [100.0 + rng.gauss(0, 2) for _ in range(40)] + [900.0, 950.0, 925.0]
    values += [100.0 + rng.gauss(0, 2) for _ in range(6)]
    series = _points("checkout", base, values)
    await produce(
        worker.bootstrap,
        worker.topics.metrics,
        [(b"checkout", json.dumps({"points": series}).encode())],
    )
    group = worker.group_of(worker.topics.metrics)

    async def done() -> bool | None:
        return True if await consumed_all(worker.bootstrap, group, worker.topics.metrics) else None

    await eventually(done, 60, "every point scored and committed")
    found = await consume(
        worker.bootstrap, worker.topics.detections, lambda vs: len(vs) >= 1, timeout_s=30
    )
    assert [d["status"] for d in found] == ["firing"]
