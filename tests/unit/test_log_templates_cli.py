"""``warroom logs templates``: one CSV row per input line, in order."""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

from streams.logtemplates import main


def test_one_row_per_line(tmp_path: Path) -> None:
    lines = ["Found child 1 in slot 2", "", "Found child 3 in slot 4", "shutting down"]
    source, out = tmp_path / "in.log", tmp_path / "out.csv"
    source.write_text("\n".join(lines) + "\n")
    assert main(argparse.Namespace(input=str(source), output=str(out))) == 0
    with out.open(newline="") as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == ["line", "template_id", "template"]
    assert [r[0] for r in rows[1:]] == ["1", "2", "3", "4"]
    assert rows[1][1] == rows[3][1] and rows[1][2] == "Found child <*> in slot <*>"
    assert rows[4][2] == "shutting down"


def test_missing_input_is_an_error(tmp_path: Path) -> None:
    args = argparse.Namespace(input=str(tmp_path / "nope"), output=str(tmp_path / "o.csv"))
    assert main(args) == 1
