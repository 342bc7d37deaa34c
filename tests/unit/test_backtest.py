"""``warroom detect``: one NAB-format output row per input row, and bad input named by line."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from streams.cli import main


def _write(path: Path, rows: list[tuple[str, str]]) -> Path:
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["timestamp", "value"])
        writer.writerows(rows)
    return path


def test_every_row_is_scored_in_input_order(tmp_path: Path) -> None:
    values = [10.0 + (i % 5) for i in range(300)] + [90.0] + [10.0 + (i % 5) for i in range(20)]
    rows = [(f"2026-01-01 00:{i // 60:02d}:{i % 60:02d}", f"{v}") for i, v in enumerate(values)]
    out = tmp_path / "out.csv"
    code = main(["detect", "--input", str(_write(tmp_path / "in.csv", rows)),
                 "--output", str(out), "--detector", "median_mad"])  # fmt: skip
    assert code == 0
    with out.open(newline="") as f:
        got = list(csv.DictReader(f))
    assert [(r["timestamp"], r["value"]) for r in got] == rows
    scores = [float(r["anomaly_score"]) for r in got]
    assert all(0.0 <= s <= 1.0 for s in scores)
    assert max(scores) == scores[300] and scores[300] > 0.9


@pytest.mark.parametrize(
    ("rows", "args", "problem"),
    [
        ([("1", "0.5"), ("2", "lots")], [], "in.csv:3: bad value 'lots' (not a number)"),
        ([("1", "0.5"), ("2", "")], [], "in.csv:3: bad value '' (not a number)"),
        ([("1", "0.5"), ("yesterday", "1")], [], "in.csv:3: bad timestamp 'yesterday'"),
        ([("1", "0.01"), ("2", "12.5")], ["--detector", "slo_burn_rate"],
         "in.csv:3: value 12.5 is outside [0, 1], the values detector 'slo_burn_rate' accepts"),
        ([("1", "0.5")], ["--detector", "nope"], "unknown detector 'nope'"),
        ([("1", "0.5")], ["--detector", "static_threshold", "--param", "upper=high"],
         "upper"),
    ],
)  # fmt: skip
def test_bad_input_is_named_and_exits_2(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    rows: list[tuple[str, str]],
    args: list[str],
    problem: str,
) -> None:
    src = _write(tmp_path / "in.csv", rows)
    assert main(["detect", "--input", str(src), "--output", str(tmp_path / "o.csv"), *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("warroom detect: ") and problem in err
    assert "Traceback" not in err


def test_a_failed_run_leaves_no_partial_output_and_an_earlier_one_untouched(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out.csv"
    good = _write(tmp_path / "good.csv", [("1", "0.5"), ("2", "0.6")])
    assert main(["detect", "--input", str(good), "--output", str(out)]) == 0
    before = out.read_bytes()
    bad = _write(tmp_path / "bad.csv", [("1", "0.5")] * 50 + [("2", "lots")])
    assert main(["detect", "--input", str(bad), "--output", str(out)]) == 2
    assert out.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.csv", "good.csv", "out.csv"]
    fresh = tmp_path / "fresh.csv"
    assert main(["detect", "--input", str(bad), "--output", str(fresh)]) == 2
    assert not fresh.exists()
    assert "Traceback" not in capsys.readouterr().err


def test_an_output_that_cannot_be_written_is_named_and_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = _write(tmp_path / "in.csv", [("1", "0.5")])
    out = tmp_path / "missing" / "o.csv"
    assert main(["detect", "--input", str(src), "--output", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"warroom detect: {out}: ") and "Traceback" not in err


def test_a_byte_order_mark_before_the_header_is_not_part_of_a_column_name(
    tmp_path: Path,
) -> None:
    src = tmp_path / "in.csv"
    src.write_bytes("\ufefftimestamp,value\r\n1,0.5\r\n2,0.7\r\n".encode())
    out = tmp_path / "o.csv"
    assert main(["detect", "--input", str(src), "--output", str(out)]) == 0
    with out.open(newline="") as f:
        assert [(r["timestamp"], r["value"]) for r in csv.DictReader(f)] == [
            ("1", "0.5"),
            ("2", "0.7"),
        ]


def test_a_param_value_is_read_as_json_so_lists_and_booleans_reach_the_detector(
    tmp_path: Path,
) -> None:
    from detectors.transition import TolerantNovelty

    values = [10.0 + (i * 7 % 5) for i in range(400)] + [12.2] * 40 + [10.0] * 60
    src = _write(tmp_path / "in.csv", [(str(i), f"{v}") for i, v in enumerate(values)])
    params = {"scales": (), "records": False}
    out = tmp_path / "o.csv"
    args = ["--param", "scales=[]", "--param", "records=false"]
    assert main(["detect", "--input", str(src), "--output", str(out), *args]) == 0
    with out.open(newline="") as f:
        got = [float(r["anomaly_score"]) for r in csv.DictReader(f)]

    def scores(model: TolerantNovelty) -> list[float]:
        out = []
        for i, v in enumerate(values):
            out.append(round(model.score_one(v, float(i)), 6))
            model.learn_one(v, float(i))
        return out

    assert got == scores(TolerantNovelty(**params))
    assert got != scores(TolerantNovelty())  # the parameters made a difference


def test_alerts_mark_where_the_workers_policy_would_start_an_episode(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from detectors.bank import recommended_policy
    from detectors.transition import TolerantNovelty

    values = [10.0 + (i * 7 % 5) for i in range(600)]
    values[300], values[450] = 90.0, -70.0  # two new values, more than a rest period apart
    src = _write(tmp_path / "in.csv", [(str(60 * i), f"{v}") for i, v in enumerate(values)])
    out = tmp_path / "o.csv"
    assert main(["detect", "--input", str(src), "--output", str(out), "--alerts"]) == 0
    with out.open(newline="") as f:
        got = list(csv.DictReader(f))
    assert list(got[0]) == ["timestamp", "value", "anomaly_score", "alert"]
    fired = [i for i, r in enumerate(got) if r["alert"] == "1"]
    assert fired == [300, 450]
    assert "2 alerts (episodes started) under the policy: threshold 0.33" in capsys.readouterr().err
    # The same as the worker's policy deciding the same scores.
    model, policy, want = TolerantNovelty(), recommended_policy("tolerant_novelty"), []
    for i, v in enumerate(values):
        score = model.score_one(v, 60.0 * i)
        model.learn_one(v, 60.0 * i)
        decision = policy.decide(score, 60.0 * i)
        want.append(decision is not None and not decision.repeat)
    assert [r["alert"] == "1" for r in got] == want
    # A stricter policy, as a detector rule would set it, raises none of them.
    args = ["--policy", "for_points=3"]
    assert main(["detect", "--input", str(src), "--output", str(out), *args]) == 0
    with out.open(newline="") as f:
        assert all(r["alert"] == "0" for r in csv.DictReader(f))


@pytest.mark.parametrize(
    ("policy", "problem"),
    [
        ("for=3", "bad policy: for: Extra inputs are not permitted"),
        ("for_points=many", "bad policy: for_points: Input should be a valid integer"),
        ("threshold=2", "threshold must be in (0, 1]"),
    ],
)
def test_a_bad_policy_setting_is_named_and_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], policy: str, problem: str
) -> None:
    src = _write(tmp_path / "in.csv", [("1", "0.5")])
    out = tmp_path / "o.csv"
    assert main(["detect", "--input", str(src), "--output", str(out), "--policy", policy]) == 2
    err = capsys.readouterr().err
    assert err.startswith("warroom detect: ") and problem in err and "Traceback" not in err
    assert not out.exists()


def test_input_that_is_not_utf8_text_and_an_output_that_is_a_directory_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    latin = tmp_path / "latin.csv"
    latin.write_bytes(b"timestamp,value\n1,0.5\n2,\xe9\n")
    assert main(["detect", "--input", str(latin), "--output", str(tmp_path / "o.csv")]) == 2
    good = _write(tmp_path / "good.csv", [("1", "0.5")])
    (tmp_path / "dir").mkdir()
    assert main(["detect", "--input", str(good), "--output", str(tmp_path / "dir")]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith(f"warroom detect: {latin}: unreadable as UTF-8 CSV")
    assert err[1] == f"warroom detect: {tmp_path / 'dir'}: Is a directory"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dir", "good.csv", "latin.csv"]


def test_a_series_column_scores_each_series_on_its_own_in_input_order(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    quiet = [10.0 + (i * 7 % 5) for i in range(400)]
    spiky = [100.0 + (i * 3 % 7) for i in range(400)]
    spiky[350] = 400.0
    rows = []
    for i in range(400):  # interleaved, as an export of many series is
        rows += [("quiet", str(60 * i), f"{quiet[i]}"), ("spiky", str(60 * i), f"{spiky[i]}")]
    src = tmp_path / "in.csv"
    with src.open("w", newline="") as f:
        csv.writer(f).writerows([("host", "timestamp", "value"), *rows])
    out = tmp_path / "o.csv"
    args = ["--series-column", "host", "--alerts"]
    assert main(["detect", "--input", str(src), "--output", str(out), *args]) == 0
    with out.open(newline="") as f:
        got = list(csv.DictReader(f))
    assert list(got[0]) == ["host", "timestamp", "value", "anomaly_score", "alert"]
    assert [(r["host"], r["timestamp"], r["value"]) for r in got] == rows
    err = capsys.readouterr().err
    assert "scored 800 rows of 2 series" in err and "1 alerts (episodes started) in 1 series" in err
    # Each series scored as if it were alone in its own file.
    for host, values in (("quiet", quiet), ("spiky", spiky)):
        alone = _write(
            tmp_path / f"{host}.csv", [(str(60 * i), f"{v}") for i, v in enumerate(values)]
        )
        assert main(["detect", "--input", str(alone), "--output", str(tmp_path / "a.csv")]) == 0
        with (tmp_path / "a.csv").open(newline="") as f:
            want = [r["anomaly_score"] for r in csv.DictReader(f)]
        assert [r["anomaly_score"] for r in got if r["host"] == host] == want
    assert [r["timestamp"] for r in got if r["alert"] == "1"] == [str(60 * 350)]


def test_a_missing_series_column_is_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = _write(tmp_path / "in.csv", [("1", "0.5")])
    args = ["--series-column", "host"]
    assert main(["detect", "--input", str(src), "--output", str(tmp_path / "o.csv"), *args]) == 2
    assert "expected a header with the columns 'host', 'timestamp', 'value'" in (
        capsys.readouterr().err
    )
