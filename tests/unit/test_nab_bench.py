"""``warroom bench nab`` on a corpus it is pointed at: a table and one JSON line of figures."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pytest

from devtools.bench.nab import Series, main, worker_alerts


def _corpus(root: Path) -> None:
    (root / "data" / "demo").mkdir(parents=True)
    (root / "labels").mkdir()
    (root / "config").mkdir()
    rows = ["timestamp,value"]
    for i in range(600):
        value = 100.0 + (i % 7) + (500.0 if i == 450 else 0.0)
        rows.append(f"2024-01-01 {i // 60:02d}:{i % 60:02d}:00,{value}")
    (root / "data" / "demo" / "spike.csv").write_text("\n".join(rows) + "\n")
    windows = {"demo/spike.csv": [["2024-01-01 07:20:00.000000", "2024-01-01 07:40:00.000000"]]}
    (root / "labels" / "combined_windows.json").write_text(json.dumps(windows))
    cost = {"tpWeight": 1.0, "fpWeight": 0.11, "fnWeight": 1.0}
    (root / "config" / "profiles.json").write_text(json.dumps({"standard": {"CostMatrix": cost}}))


def test_scores_the_corpus_at_the_optimum_and_as_the_worker_decides(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _corpus(tmp_path)
    args = argparse.Namespace(
        root=str(tmp_path), detector=["tolerant_novelty"], detector_params="{}", baseline=True
    )
    assert main(args) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[1].startswith("machine: ") and "worker" in lines[2]
    summary = json.loads(lines[-1])
    assert summary["machine"]["cores"] >= 1
    # River's Half-Space Trees as shipped, measured in the same run, in the table and the JSON.
    assert lines[4].startswith("river HST (baseline)")
    assert summary["baseline_river_hst"]["us_per_point"] > 0
    figures = summary["detectors"]["tolerant_novelty"]
    # Batch mode: a thousand series stepped together, as the worker's bank does.
    assert figures["batch_series"] == 1000 and 0 < figures["batch_us_per_point"] < 100
    assert figures["windows"] == 1 and figures["windows_found"] == 1
    # The spike is the one alert the worker's policy raises, as early as the best threshold.
    assert figures["worker_policy_alerts"] == 1
    assert figures["score_standard_worker_policy"] == figures["score_standard"] > 90.0


def test_the_worker_column_counts_episode_starts_not_their_reminders() -> None:
    # Twenty high scores five minutes apart: the policy starts one episode and then repeats it
    # every five minutes (reminders join its incident); one alert, on the second point.
    scores = np.array([0.0] * 10 + [0.9] * 20 + [0.0] * 10)
    ts = 1.7e9 + 300.0 * np.arange(len(scores))
    series = Series(file=None, values=np.zeros(len(scores)), ts=ts)  # type: ignore[arg-type]
    [alerts] = worker_alerts("ewma", [series], [scores])
    assert np.flatnonzero(alerts).tolist() == [11]


def test_a_root_without_labels_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = argparse.Namespace(root=str(tmp_path), detector=[], detector_params="{}", baseline=True)
    assert main(args) == 2
    assert str(tmp_path) in capsys.readouterr().err


def test_detector_params_reach_every_measurement(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _corpus(tmp_path)
    sizes = {}
    for params in ("{}", '{"scales": [], "day_parts": 0, "deviation": 0}'):
        args = argparse.Namespace(
            root=str(tmp_path), detector=["tolerant_novelty"], detector_params=params,
            baseline=False,
        )  # fmt: skip
        assert main(args) == 0
        summary = json.loads(capsys.readouterr().out.splitlines()[-1])
        assert summary["detector_params"] == json.loads(params)
        sizes[params] = summary["detectors"]["tolerant_novelty"]["state_json_bytes"]
    # One memory instead of three, none by time of day, no deviation arm: the state measured
    # is the configured detector's.
    assert sizes['{"scales": [], "day_parts": 0, "deviation": 0}'] * 2 < sizes["{}"]


@pytest.mark.parametrize(
    ("params", "problem"),
    [('{"scales": 4}', "scales"), ('{"nope": 1}', "nope"), ("[1]", "JSON object"), ("{", "")],
)
def test_bad_detector_params_are_refused_before_any_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], params: str, problem: str
) -> None:
    _corpus(tmp_path)
    args = argparse.Namespace(
        root=str(tmp_path), detector=["tolerant_novelty"], detector_params=params, baseline=True
    )
    assert main(args) == 2
    captured = capsys.readouterr()
    assert problem in captured.err and "warroom bench nab" in captured.err
    assert "NAB corpus" not in captured.out


def _two_categories(root: Path) -> None:
    """Two categories of one file each: a spike in ``demo`` and one in ``other``."""
    _corpus(root)
    (root / "data" / "other").mkdir()
    spike = (root / "data" / "demo" / "spike.csv").read_text()
    (root / "data" / "other" / "spike.csv").write_text(spike)
    windows = json.loads((root / "labels" / "combined_windows.json").read_text())
    windows["other/spike.csv"] = windows["demo/spike.csv"]
    (root / "labels" / "combined_windows.json").write_text(json.dumps(windows))


def _cv_args(root: Path, **extra: object) -> argparse.Namespace:
    return argparse.Namespace(
        root=str(root), detector=["tolerant_novelty"], detector_params="{}", baseline=False,
        cv=True, grid="{}", **extra,
    )  # fmt: skip


def test_cv_scores_each_category_with_the_threshold_of_the_others(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _two_categories(tmp_path)
    assert main(_cv_args(tmp_path)) == 0
    lines = capsys.readouterr().out.splitlines()
    header = next(line for line in lines if line.startswith("detector"))
    assert header.split()[1:3] == ["standard", "cv_std"]
    summary = json.loads(lines[-1])
    assert summary["cv"]["categories"] == ["demo", "other"]
    figures = summary["detectors"]["tolerant_novelty"]
    cv = figures["cv_standard"]
    assert set(cv["folds"]) == {"demo", "other"}
    # The same spike in both: the threshold one chooses finds the other's.
    assert all(f["windows_found"] == 1 for f in cv["folds"].values())
    assert cv["score"] == figures["score_standard"]


def test_cv_chooses_from_a_grid_on_the_other_categories(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _two_categories(tmp_path)
    # A warm-up longer than the file sees nothing; the grid's other choice is chosen.
    args = _cv_args(tmp_path)
    args.grid = '{"warmup": [5000, 30]}'
    assert main(args) == 0
    summary = json.loads(capsys.readouterr().out.splitlines()[-1])
    folds = summary["detectors"]["tolerant_novelty"]["cv_standard"]["folds"]
    assert [f["choice"] for f in folds.values()] == [1, 1]
    assert [c["warmup"] for c in summary["cv"]["grid"]] == [5000, 30]


@pytest.mark.parametrize(
    ("grid", "problem"),
    [('{"warmup": 30}', "lists of values"), ('{"nope": [1]}', "nope"), ("{", "")],
    ids=["not-a-list", "unknown-parameter", "not-json"],
)
def test_a_bad_grid_is_refused_before_any_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], grid: str, problem: str
) -> None:
    _two_categories(tmp_path)
    args = _cv_args(tmp_path)
    args.grid = grid
    assert main(args) == 2
    captured = capsys.readouterr()
    assert problem in captured.err and "warroom bench nab" in captured.err
    assert "NAB corpus" not in captured.out


def test_cv_of_one_category_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _corpus(tmp_path)
    assert main(_cv_args(tmp_path)) == 2
    assert "at least two categories" in capsys.readouterr().err


def test_the_command_line_takes_cv_and_grid(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from streams.cli import main as cli

    _two_categories(tmp_path)
    command = ["bench", "nab", "--root", str(tmp_path), "--detector", "tolerant_novelty",
               "--no-baseline", "--cv", "--grid", '{"warmup": [30, 60]}']  # fmt: skip
    assert cli(command) == 0
    summary = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert len(summary["cv"]["grid"]) == 2
    # A grid is chosen per left-out category: without --cv there is nothing to choose it on.
    assert cli(command[:-3] + command[-2:]) == 2
    assert "--grid is for --cv" in capsys.readouterr().err
