"""``warroom bench loghub``: template mining accuracy on Loghub-2k and log detection on BGL.

For each system under ``--root`` with a corrected ground truth
(``<S>/<S>_2k.log_structured_corrected.csv``), every line's ``Content`` is mined in order with
the one default configuration, then scored: grouping accuracy (GA), parsing accuracy (PA), and
the F1 of exactly-right groups (FGA) and of exactly-right groups with the right template (FTA).
Then the log detectors run over BGL_2k and are scored per window of 20 lines against its alert
labels. The last output line is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import sys
import time
from collections import defaultdict
from collections.abc import Hashable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from detectors.logs import LogSource, MinerConfig, TemplateMiner
from devtools.bench import machine, machine_line
from devtools.bench.logfamilies import FAMILIES, generate
from schemas import LogRecord

_TRUTH = "_2k.log_structured_corrected.csv"
_SPACES = re.compile(r"\s+")
_WILDCARDS = re.compile(r"<\*>(?:\s*<\*>)+")
FAMILY_LINES = 2000


@dataclass(frozen=True)
class Accuracy:
    """Template mining accuracy of one system."""

    lines: int
    truth_groups: int
    mined_groups: int
    ga: float
    pa: float
    fga: float
    fta: float


def normalize_template(template: str) -> str:
    """Whitespace collapsed and runs of ``<*>`` written once, for comparing templates.

    >>> normalize_template("a  <*> <*>  b")
    'a <*> b'
    """
    return _WILDCARDS.sub("<*>", _SPACES.sub(" ", template.strip()))


def _f1(correct: int, predicted: int, truth: int) -> float:
    p = correct / predicted if predicted else 0.0
    r = correct / truth if truth else 0.0
    return 2 * p * r / (p + r) if p + r else 0.0


def accuracy(
    truth_groups: Sequence[Hashable],
    truth_templates: Sequence[str],
    mined_groups: Sequence[Hashable],
    mined_templates: Sequence[str],
) -> Accuracy:
    """GA, PA, FGA and FTA of mined groups and templates against the ground truth, line by line.

    A line is grouped right when its mined group holds exactly the lines of its true group, and
    parsed right when its mined template equals its true one (after :func:`normalize_template`).

    >>> acc = accuracy(["A", "A", "B", "C"], ["x <*>", "x <*>", "y", "z"],
    ...                [1, 1, 2, 2], ["x <*>", "x <*>", "<*>", "<*>"])
    >>> acc.ga, acc.pa, acc.fga, acc.fta
    (0.5, 0.5, 0.4, 0.4)
    """
    n = len(truth_groups)
    if not n == len(truth_templates) == len(mined_groups) == len(mined_templates):
        raise ValueError("ground truth and mined results must have one entry per line")
    truth_members: dict[Hashable, list[int]] = defaultdict(list)
    mined_members: dict[Hashable, list[int]] = defaultdict(list)
    for i, (t, m) in enumerate(zip(truth_groups, mined_groups, strict=True)):
        truth_members[t].append(i)
        mined_members[m].append(i)
    grouped_right = right_groups = right_templates = 0
    for lines in mined_members.values():
        truths = {truth_groups[i] for i in lines}
        if len(truths) == 1 and len(truth_members[truths.pop()]) == len(lines):
            grouped_right += len(lines)
            right_groups += 1
            first = lines[0]
            if normalize_template(mined_templates[first]) == normalize_template(
                truth_templates[first]
            ):
                right_templates += 1
    parsed_right = sum(
        normalize_template(a) == normalize_template(b)
        for a, b in zip(truth_templates, mined_templates, strict=True)
    )
    return Accuracy(
        lines=n,
        truth_groups=len(truth_members),
        mined_groups=len(mined_members),
        ga=grouped_right / n if n else 0.0,
        pa=parsed_right / n if n else 0.0,
        fga=_f1(right_groups, len(mined_members), len(truth_members)),
        fta=_f1(right_templates, len(mined_members), len(truth_members)),
    )


def _read_truth(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def family_rows(family: str, lines: int = FAMILY_LINES, seed: int = 0) -> list[dict[str, str]]:
    """A generated family as ground-truth rows (``Content``, ``EventId``, ``EventTemplate``)."""
    return [
        {"Content": x.message, "EventId": x.event, "EventTemplate": x.template}
        for x in generate(family, lines, seed)
    ]


def mine_system(
    rows: list[dict[str, str]], config: MinerConfig | None = None
) -> tuple[Accuracy, float]:
    """Accuracy of the miner (the default one unless ``config``) on one system, and the CPU
    seconds spent mining."""
    messages = [row["Content"] for row in rows]
    miner = TemplateMiner(config)
    # CPU time of this process: lines per second of one core, whatever else the machine runs.
    started = time.process_time()
    ids = [miner.add(message).template_id for message in messages]
    elapsed = time.process_time() - started
    # Each line is scored with the template its group ended up in (groups merge as values show).
    ids = [miner.resolve(i) for i in ids]
    final = {t.id: t.text for t in miner.templates}
    templates = [final.get(i, "") for i in ids]
    acc = accuracy(
        [row["EventId"] for row in rows], [row["EventTemplate"] for row in rows], ids, templates
    )
    return acc, elapsed


def config_grid() -> list[MinerConfig]:
    """Every miner configuration the leave-one-system-out run chooses from."""
    return [
        MinerConfig(similarity=s, siblings=n)
        for s in (0.6, 0.7, 0.8, 0.9, 1.0)
        for n in (2, 3, 4, 6, 8)
    ]


def config_label(config: MinerConfig) -> str:
    """A short name of a configuration's tunable settings.

    >>> config_label(MinerConfig())
    'sim=1,sib=4'
    """
    return f"sim={config.similarity:g},sib={config.siblings}"


def leave_one_out(scores: Sequence[Sequence[Accuracy]]) -> list[int]:
    """For each case, the configuration with the best mean GA over every other case.

    ``scores[c][k]`` is case ``k`` mined with configuration ``c``; ties go to the earlier
    configuration. The case itself never weighs in its own choice.

    >>> a = lambda ga: Accuracy(1, 1, 1, ga, 0.0, 0.0, 0.0)
    >>> leave_one_out([[a(1.0), a(0.0), a(0.0)], [a(0.0), a(0.6), a(0.6)]])
    [1, 0, 0]
    """
    cases = len(scores[0])
    chosen: list[int] = []
    for held_out in range(cases):
        means = [
            sum(row[k].ga for k in range(cases) if k != held_out) / max(1, cases - 1)
            for row in scores
        ]
        chosen.append(max(range(len(scores)), key=lambda c: (means[c], -c)))
    return chosen


@dataclass(frozen=True)
class WindowScore:
    """Detections against alert labels, per window of consecutive lines."""

    windows: int
    alert_windows: int
    flagged_windows: int
    precision: float
    recall: float
    detections: dict[str, int]


def detect_windows(rows: list[dict[str, str]], window: int = 20) -> WindowScore:
    """Run the log detectors over labelled rows (``Label`` '-' is normal) and score per window.

    A window is an alert window if any of its lines carries an alert label, and flagged if any of
    its lines triggered a detection.
    """
    source = LogSource.create()
    flagged: set[int] = set()
    by_kind: dict[str, int] = defaultdict(int)
    service = "bench"
    for i, row in enumerate(rows):
        record = LogRecord(
            ts=float(row["Timestamp"]), service=service, level=row["Level"], message=row["Content"]
        )
        for detection in source.observe(record)[1]:
            flagged.add(i // window)
            by_kind[detection.detector] += 1
    alerts = {i // window for i, row in enumerate(rows) if row["Label"] != "-"}
    windows = (len(rows) + window - 1) // window
    hits = len(alerts & flagged)
    return WindowScore(
        windows=windows,
        alert_windows=len(alerts),
        flagged_windows=len(flagged),
        precision=hits / len(flagged) if flagged else 0.0,
        recall=hits / len(alerts) if alerts else 0.0,
        detections=dict(sorted(by_kind.items())),
    )


def _cases(root: Path, family_lines: int) -> list[tuple[str, str, list[dict[str, str]]]]:
    """Every case as (kind, name, rows): the Loghub systems under ``root``, then the families."""
    found = root.iterdir() if root.is_dir() else iter(())
    systems = sorted(p.name for p in found if (p / f"{p.name}{_TRUTH}").is_file())
    cases = [("loghub", s, _read_truth(root / s / f"{s}{_TRUTH}")) for s in systems]
    return cases + [("generated", f, family_rows(f, family_lines)) for f in sorted(FAMILIES)]


def _row(name: str, acc: Accuracy, extra: str = "") -> str:
    return (
        f"{name:<12} {acc.lines:>6} {acc.truth_groups:>6} {acc.mined_groups:>6} "
        f"{acc.ga:>6.3f} {acc.pa:>6.3f} {acc.fga:>6.3f} {acc.fta:>6.3f}{extra}"
    )


def _mean(accs: Sequence[Accuracy]) -> dict[str, float]:
    keys = ("ga", "pa", "fga", "fta")
    return {k: sum(getattr(a, k) for a in accs) / len(accs) if accs else 0.0 for k in keys}


def _averages(
    cases: Sequence[tuple[str, str, object]], accs: Sequence[Accuracy]
) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for kind in ("loghub", "generated"):
        chosen = [a for (k, _, _), a in zip(cases, accs, strict=True) if k == kind]
        if chosen:
            out[kind] = _mean(chosen)
    return out


def _print_averages(
    averages: dict[str, dict[str, float]], extra: dict[str, str] | None = None
) -> None:
    for kind, avg in averages.items():
        print(
            f"{'avg ' + kind:<12} {'':>6} {'':>6} {'':>6} {avg['ga']:>6.3f} {avg['pa']:>6.3f} "
            f"{avg['fga']:>6.3f} {avg['fta']:>6.3f}{(extra or {}).get(kind, '')}"
        )


def _header(extra: str) -> str:
    names = ("lines", "truth", "mined", "GA", "PA", "FGA", "FTA")
    return f"{'system':<12} " + " ".join(f"{n:>6}" for n in names) + extra


def _cross_validate(
    cases: list[tuple[str, str, list[dict[str, str]]]],
) -> tuple[list[Accuracy], list[MinerConfig]]:
    """Leave one case out: each case mined with the configuration the others chose."""
    grid = config_grid()
    scores = [[mine_system(rows, config)[0] for _, _, rows in cases] for config in grid]
    chosen = leave_one_out(scores)
    return [scores[c][k] for k, c in enumerate(chosen)], [grid[c] for c in chosen]


def main(args: argparse.Namespace) -> int:
    root = Path(args.root)
    cases = _cases(root, getattr(args, "family_lines", FAMILY_LINES))
    if not any(kind == "loghub" for kind, _, _ in cases):
        print(f"warroom bench loghub: no Loghub-2k systems under {root}", file=sys.stderr)
        return 1
    results: list[Accuracy] = []
    total_lines, total_s = 0, 0.0
    kind_lines: dict[str, int] = defaultdict(int)
    kind_s: dict[str, float] = defaultdict(float)
    print(machine_line(host := machine()))
    print("default configuration (" + config_label(MinerConfig()) + ")")
    print(_header(f" {'lines/s':>9}"))
    for kind, name, rows in cases:
        acc, elapsed = mine_system(rows)
        results.append(acc)
        total_lines += acc.lines
        total_s += elapsed
        kind_lines[kind] += acc.lines
        kind_s[kind] += elapsed
        print(_row(name, acc, f" {acc.lines / elapsed if elapsed else 0.0:>9.0f}"))
    throughput = total_lines / total_s if total_s else 0.0
    averages = _averages(cases, results)
    rates = {k: kind_lines[k] / kind_s[k] if kind_s[k] else 0.0 for k in kind_lines}
    _print_averages(averages, {k: f" {r:>9.0f}" for k, r in rates.items()})
    print(f"{'all cases':<12} {total_lines:>6} lines, {throughput:.0f} lines/s")
    summary: dict[str, object] = {
        "systems": {name: asdict(a) for (_, name, _), a in zip(cases, results, strict=True)},
        "average": averages["loghub"],
        "generated_average": averages.get("generated", {}),
        "lines_per_s": round(throughput),
        "lines_per_s_by_kind": {k: round(r) for k, r in rates.items()},
        "machine": host,
    }
    if getattr(args, "cv", False):
        cv, configs = _cross_validate(cases)
        print("leave one system out (each case mined with the configuration the others chose)")
        print(_header(" configuration"))
        for (_, name, _), acc, config in zip(cases, cv, configs, strict=True):
            print(_row(name, acc, " " + config_label(config)))
        cv_averages = _averages(cases, cv)
        _print_averages(cv_averages)
        summary["cv"] = {
            "systems": {
                name: {**asdict(a), "config": config_label(c)}
                for (_, name, _), a, c in zip(cases, cv, configs, strict=True)
            },
            "average": cv_averages["loghub"],
            "generated_average": cv_averages.get("generated", {}),
        }
    bgl = root / "BGL" / f"BGL{_TRUTH}"
    if bgl.is_file():
        score = detect_windows(_read_truth(bgl))
        print(
            f"BGL detection, windows of 20 lines: {score.alert_windows}/{score.windows} with "
            f"alerts, {score.flagged_windows} flagged, precision {score.precision:.3f}, "
            f"recall {score.recall:.3f}, detections {score.detections}"
        )
        summary["bgl_detection"] = asdict(score)
    print(json.dumps(summary, sort_keys=True))
    return 0
