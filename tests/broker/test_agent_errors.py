"""One input that makes an agent raise never stops it: the input is dead-lettered with the
agent's stage and the reason, counted, and the next input is processed."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from tests.harness import RunningWorker, consume, counters, eventually, produce

pytestmark = pytest.mark.broker


def contribution(incident_id: str, value: str, detect_s: float) -> bytes:
    return json.dumps(
        {"incident_id": incident_id, "dimension": "service", "value": value,
         "opened_at": "2026-03-29T07:00:00Z", "detect_s": detect_s}
    ).encode()  # fmt: skip


async def test_a_contribution_that_breaks_the_aggregation_is_dead_lettered_and_the_next_counts(
    start_worker: Callable[..., RunningWorker],
) -> None:
    """Two durations near the largest float decode, but their mean overflows: the aggregator
    crashed on the second (Faust restarted it) and the input was lost, with no dead letter and
    no count."""
    worker = start_worker()
    huge, group = 1.7e308, b"service=huge"
    await produce(
        worker.bootstrap,
        worker.topics.contributions,
        [
            (group, contribution("inc-big-1", "huge", huge)),
            (group, contribution("inc-big-2", "huge", huge)),
            (b"service=ab", contribution("inc-good", "ab", 30.0)),
        ],
    )

    def published(values: list[dict[str, Any]]) -> bool:
        return any(v["value"] == "ab" and v["window"] == "24h" for v in values)

    aggregates = await consume(worker.bootstrap, worker.topics.aggregates, published, 30)
    good = next(v for v in aggregates if v["value"] == "ab" and v["window"] == "24h")
    assert good["incidents"] == 1 and good["time_to_detect"]["mean_s"] == 30.0

    [letter] = await consume(
        worker.bootstrap, f"{worker.topics.contributions}.dlq", lambda v: len(v) >= 1, 20
    )
    assert letter["stage"] == "aggregate_mttr"
    assert letter["error"].startswith("OverflowError")
    assert json.loads(letter["value_preview"])["incident_id"] == "inc-big-2"

    async def counted() -> dict[str, float] | None:
        found = await counters(worker)
        return found if found.get("warroom_aggregate_errors_total") == 1 else None

    await eventually(counted, 10, "warroom_aggregate_errors_total at 1")
