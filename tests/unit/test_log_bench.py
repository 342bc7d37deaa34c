"""Loghub scoring: GA, PA, FGA and FTA on small hand-computed examples."""

from __future__ import annotations

import argparse
import csv
import json
import re
from pathlib import Path

import pytest

from devtools.bench.logfamilies import FAMILIES, generate
from devtools.bench.loghub import Accuracy, accuracy, family_rows, leave_one_out, main, mine_system

# truth groups, truth templates, mined groups, mined templates, (GA, PA, FGA, FTA)
CASES = [
    (
        "perfect",
        ["A", "A", "B"],
        ["x <*>", "x <*>", "y"],
        [1, 1, 2],
        ["x <*>", "x <*>", "y"],
        (1.0, 1.0, 1.0, 1.0),
    ),
    (
        # mined group 2 mixes B and C: lines 3 and 4 are grouped wrong; GT groups 3, mined 2,
        # one right group: FGA = 2 * (1/2 * 1/3) / (1/2 + 1/3) = 0.4
        "merged-groups",
        ["A", "A", "B", "C"],
        ["x <*>", "x <*>", "y", "z"],
        [1, 1, 2, 2],
        ["x <*>", "x <*>", "<*>", "<*>"],
        (0.5, 0.5, 0.4, 0.4),
    ),
    (
        # A split in two: only group B (1 line) is right; PA counts lines, not groups.
        "split-group",
        ["A", "A", "A", "B"],
        ["x <*>", "x <*>", "x <*>", "y"],
        [1, 1, 3, 2],
        ["x <*>", "x <*>", "x 7", "y"],
        (0.25, 0.75, 0.4, 0.4),
    ),
    (
        # grouping right but the template is wrong: GA 1, PA 1/2, FTA counts only group B.
        "right-groups-wrong-template",
        ["A", "A", "B", "B"],
        ["x <*>", "x <*>", "y <*>", "y <*>"],
        [1, 1, 2, 2],
        ["x 1", "x 1", "y  <*>  <*>", "y <*>"],
        (1.0, 0.5, 1.0, 0.5),
    ),
]


@pytest.mark.parametrize(
    ("truth", "truth_templates", "mined", "mined_templates", "expected"),
    [c[1:] for c in CASES],
    ids=[c[0] for c in CASES],
)
def test_accuracy(
    truth: list[str],
    truth_templates: list[str],
    mined: list[int],
    mined_templates: list[str],
    expected: tuple[float, float, float, float],
) -> None:
    acc = accuracy(truth, truth_templates, mined, mined_templates)
    assert (acc.ga, acc.pa, acc.fga, acc.fta) == pytest.approx(expected)


def test_bench_runs_on_a_tiny_system(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    system = tmp_path / "Tiny"
    system.mkdir()
    rows = [("Found child 1 in slot 2", "E1", "Found child <*> in slot <*>")] * 3 + [
        ("done", "E2", "done")
    ]
    with (system / "Tiny_2k.log_structured_corrected.csv").open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["LineId", "Content", "EventId", "EventTemplate"])
        for i, row in enumerate(rows, start=1):
            writer.writerow([i, *row])
    assert main(argparse.Namespace(root=str(tmp_path))) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["systems"]["Tiny"]["ga"] == 1.0
    assert summary["systems"]["Tiny"]["pa"] == 1.0


def test_bench_without_data_fails(tmp_path: Path) -> None:
    assert main(argparse.Namespace(root=str(tmp_path / "missing"))) == 1


def test_leave_one_out_never_lets_a_case_choose_for_itself() -> None:
    # Configuration 0 is perfect on case 0 only; configuration 1 is good on the others. Case 0
    # must be scored with configuration 1, the choice of the cases that are not case 0.
    def acc(ga: float) -> Accuracy:
        return Accuracy(1, 1, 1, ga, 0.0, 0.0, 0.0)

    scores = [[acc(1.0), acc(0.1), acc(0.1)], [acc(0.0), acc(0.9), acc(0.9)]]
    assert leave_one_out(scores) == [1, 0, 0]


def test_cv_reports_beside_the_default(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    system = tmp_path / "Tiny"
    system.mkdir()
    with (system / "Tiny_2k.log_structured_corrected.csv").open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["LineId", "Content", "EventId", "EventTemplate"])
        for i in range(5):
            writer.writerow([i, f"Found child {i} in slot 2", "E1", "Found child <*> in slot 2"])
    assert main(argparse.Namespace(root=str(tmp_path), cv=True, family_lines=40)) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["cv"]["systems"]["Tiny"]["ga"] == 1.0
    assert set(summary["cv"]["systems"]) == set(summary["systems"])
    assert {"nginx", "kubelet", "jvm", "sshd", "postgres", "kafka"} <= set(summary["systems"])


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_generated_family_is_seeded_with_its_templates(family: str) -> None:
    lines = generate(family, 300, seed=3)
    assert lines == generate(family, 300, seed=3)
    assert lines != generate(family, 300, seed=4)
    for line in lines:
        pattern = re.escape(line.template).replace(re.escape("<*>"), ".+?")
        assert re.fullmatch(pattern, line.message, re.DOTALL), (line.template, line.message)


def test_generated_families_are_grouped_as_their_ground_truth() -> None:
    # Paths, URLs, hex ids, host:port pairs, quoted strings, JSON fragments, key=value pairs
    # and word values in several positions at once: the default miner, untuned.
    ga = {family: mine_system(family_rows(family, 1500))[0].ga for family in sorted(FAMILIES)}
    assert sum(ga.values()) / len(ga) >= 0.9, ga
    assert min(ga.values()) >= 0.7, ga
