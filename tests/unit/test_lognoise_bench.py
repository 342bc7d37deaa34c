"""``warroom bench lognoise``: a steady stream of the generated families raises nothing."""

from __future__ import annotations

import argparse
import json

import pytest

from devtools.bench.logfamilies import FAMILIES
from devtools.bench.lognoise import family_detections, main


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_a_steady_family_raises_no_detection(family: str) -> None:
    # 2,000 lines at one a second: a warm-up of ten minutes, then over 20 minutes of the same
    # mix of events. The previous miner and detectors raised 393 detections on these 12,000.
    assert family_detections(family, 2000, rate=1.0, seed=0) == {}


def test_bench_prints_a_summary(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argparse.Namespace(lines=10 * len(FAMILIES), rate=1.0, seed=1)) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["lines"] == 10 * len(FAMILIES) and summary["detections"] == 0
    assert set(summary["families"]) == set(FAMILIES)
