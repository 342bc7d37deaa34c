"""``warroom bench throughput`` times the pipeline by the worker's own batch clock, up to the end
of the batch that processed the last point, and refuses a run whose times do not measure it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from devtools.bench.throughput import (
    BenchError,
    Progress,
    measured_rate,
    pipeline_rate,
)

N = 200_000

RATES = {
    "one batch, ended": ([Progress(100.0, 100.5, N)], (N, 0.5)),
    "several batches": ([Progress(100.0, 104.0, N)], (N, 4.0)),
    "two workers: first start to last end": (
        [Progress(100.0, 101.0, N // 2), Progress(100.5, 102.5, N // 2)], (N, 2.5)
    ),
    "a worker that got nothing": ([Progress(100.0, 101.0, N), Progress(0.0, 0.0, 0)], (N, 1.0)),
}  # fmt: skip


@pytest.mark.parametrize(("progress", "expected"), RATES.values(), ids=RATES.keys())
def test_measured_rate(progress: list[Progress], expected: tuple[int, float]) -> None:
    assert measured_rate(progress, N) == expected


REFUSED = {
    "points counted, their batch not yet ended": ([Progress(100.0, 0.0, 0)], "only 0 of"),
    "an earlier batch ended, not the last one": ([Progress(100.0, 100.2, N - 100)], "only"),
    "no batch began": ([Progress(0.0, 100.0, N)], "no worker recorded"),
    "ended before it began": ([Progress(100.0, 100.0, N)], "not after the first began"),
}


@pytest.mark.parametrize(("progress", "why"), REFUSED.values(), ids=REFUSED.keys())
def test_runs_that_do_not_measure_the_rate_are_refused(progress: list[Progress], why: str) -> None:
    with pytest.raises(BenchError, match=why):
        measured_rate(progress, N)


class FakeWorker:
    """A worker that scores every point in one batch: its count moves before the batch ends,
    as ``detect`` counts a batch's points before writing its detections and checkpoint."""

    def __init__(self) -> None:
        self.polls: Iterator[Progress] = iter(
            [Progress(100.0, 0.0, 0), Progress(100.0, 0.0, 0), Progress(100.0, 100.8, N)]
        )
        self.last = Progress(100.0, 0.0, 0)

    async def processed(self, session: Any) -> int:
        return N  # counted already

    async def batch_times(self, session: Any) -> tuple[float, float]:
        return self.last.first_batch_at, self.last.last_batch_at

    async def progress(self, session: Any) -> Progress:
        self.last = next(self.polls, self.last)
        return self.last


async def test_a_single_batch_is_timed_to_its_end_not_to_when_its_count_moved() -> None:
    worker: Any = FakeWorker()
    points, seconds, by_worker = await pipeline_rate([worker], N, timeout_s=10)
    assert (points, by_worker) == (N, [N])
    assert seconds == pytest.approx(0.8)
    assert points / seconds < 1e6
