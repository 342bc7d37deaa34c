"""The NAB score: window-weighted detections, one threshold per detector, normalized to 0..100.

This follows the Numenta Anomaly Benchmark's published definition. Each labelled window is worth
``tp_weight`` when its first detection falls on its first row, less the later it comes (a scaled
sigmoid of the position in the window), and ``-fn_weight`` when nothing in it is detected. A
detection outside every window costs ``fp_weight`` times a scaled sigmoid of its distance past the
previous window (the full ``fp_weight`` when no window precedes it). Rows in the probation period
(15% of the file, at most 750 rows) are ignored. One threshold per detector and profile is chosen
to maximize the corpus total, and the total is normalized so that the null detector (a constant
score) gets 0 and a detector that hits the first row of every window gets 100.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from numpy.typing import NDArray

PROBATION_FRACTION = 0.15
_PROBATION_CAP_ROWS = 5000
_NO_WINDOW = -1
_PROBATION = -2


@dataclass(frozen=True)
class CostProfile:
    """One application profile's weights."""

    name: str
    tp_weight: float
    fp_weight: float
    fn_weight: float


def profiles_from_config(
    config: Mapping[str, Mapping[str, Mapping[str, float]]],
) -> list[CostProfile]:
    """Profiles from the parsed ``config/profiles.json`` (``{name: {"CostMatrix": {...}}}``)."""
    return [
        CostProfile(
            name,
            float(body["CostMatrix"]["tpWeight"]),
            float(body["CostMatrix"]["fpWeight"]),
            float(body["CostMatrix"]["fnWeight"]),
        )
        for name, body in config.items()
    ]


def scaled_sigmoid(position: float) -> float:
    """NAB's weighting: about 0.987 at -1 (window start), 0 at the window end, -1 from 3 on.

    >>> round(scaled_sigmoid(-1.0), 5), scaled_sigmoid(0.0), scaled_sigmoid(3.0)
    (0.98661, 0.0, -1.0)
    """
    if position >= 3.0:
        return -1.0
    return 2.0 / (1.0 + math.exp(5.0 * position)) - 1.0


def probation_rows(n_rows: int) -> float:
    """Rows with an index below this are in the probation period and never scored."""
    return min(math.floor(PROBATION_FRACTION * n_rows), PROBATION_FRACTION * _PROBATION_CAP_ROWS)


def window_rows(
    timestamps: Sequence[str], windows: Sequence[tuple[str, str]]
) -> list[tuple[int, int]]:
    """Row index ranges (inclusive) of windows given by their first and last timestamps.

    Edges are matched by the first row with that exact timestamp, in row order.

    >>> window_rows(["a", "b", "c", "d"], [("b", "c")])
    [(1, 2)]
    """
    first: dict[str, int] = {}
    for i, ts in enumerate(timestamps):
        first.setdefault(ts, i)
    out: list[tuple[int, int]] = []
    for start, end in windows:
        if start not in first or end not in first:
            raise ValueError(f"window edge {start!r}..{end!r} is not a row timestamp")
        out.append((first[start], first[end]))
    return out


@dataclass(frozen=True)
class LabelledFile:
    """One data file's length and labelled windows (row ranges, inclusive, in order)."""

    name: str
    n_rows: int
    windows: tuple[tuple[int, int], ...]


@dataclass(frozen=True)
class _Weights:
    """Per-row weight of a detection and the window it would count for."""

    weight: NDArray[np.float64]
    window: NDArray[np.int64]


def _row_weights(file: LabelledFile, profile: CostProfile, window_offset: int) -> _Weights:
    """What a detection on each row of ``file`` would be worth under ``profile``, its windows
    numbered from ``window_offset``."""
    own = _file_weights(file, profile)
    return _Weights(own.weight, np.where(own.window >= 0, own.window + window_offset, own.window))


@lru_cache(maxsize=1024)
def _file_weights(file: LabelledFile, profile: CostProfile) -> _Weights:
    """``_row_weights`` with windows numbered from 0, computed once per file and profile (a
    cross-validated score asks for the same file many times). Callers never write to it."""
    n = file.n_rows
    weight = np.empty(n, dtype=np.float64)
    window = np.full(n, _NO_WINDOW, dtype=np.int64)
    max_tp = scaled_sigmoid(-1.0)
    prev_end: int | None = None
    prev_width = 0.0
    cursor = 0
    for k, (start, end) in enumerate(file.windows):
        _fill_outside(weight, cursor, start, prev_end, prev_width, profile)
        width = float(end - start + 1)
        for i in range(start, end + 1):
            position = -(end - i + 1) / width
            weight[i] = scaled_sigmoid(position) * profile.tp_weight / max_tp
            window[i] = k
        prev_end, prev_width, cursor = end, width, end + 1
    _fill_outside(weight, cursor, n, prev_end, prev_width, profile)
    window[: math.ceil(probation_rows(n))] = _PROBATION
    weight.flags.writeable = window.flags.writeable = False
    return _Weights(weight, window)


def _fill_outside(
    weight: NDArray[np.float64],
    lo: int,
    hi: int,
    prev_end: int | None,
    prev_width: float,
    profile: CostProfile,
) -> None:
    for i in range(lo, hi):
        if prev_end is None:
            position = 3.0
        elif prev_width <= 1.0:
            position = 3.0 if i > prev_end else 0.0
        else:
            position = abs(prev_end - i) / (prev_width - 1.0)
        weight[i] = scaled_sigmoid(position) * profile.fp_weight


@dataclass(frozen=True)
class FileResult:
    """One file's outcome at the chosen threshold."""

    name: str
    raw: float
    windows: int
    found: int
    false_positives: int


@dataclass(frozen=True)
class CorpusResult:
    """A detector's outcome over the corpus under one profile."""

    profile: str
    threshold: float
    raw: float
    null: float
    perfect: float
    score: float
    windows: int
    found: int
    false_positives: int
    files: tuple[FileResult, ...]


def _sweep(
    scores: NDArray[np.float64], weights: _Weights, fn_weight: float, n_windows: int
) -> tuple[float, float]:
    """Best (threshold, raw total) over every threshold, the highest threshold on ties."""
    keep = weights.window != _PROBATION
    s = scores[keep]
    w = weights.weight[keep]
    win = weights.window[keep]
    order = np.argsort(-s, kind="stable")
    s, w, win = s[order], w[order], win[order]
    delta = np.where(win == _NO_WINDOW, w, 0.0)
    in_win = np.flatnonzero(win >= 0)
    if in_win.size:
        # A window counts its best (earliest) detection so far: the running maximum of its
        # weights in the order the threshold admits them, starting from the missed value.
        by_window = in_win[np.argsort(win[in_win], kind="stable")]
        ids = win[by_window]
        bounds = np.flatnonzero(np.diff(ids)) + 1
        for group in np.split(by_window, bounds):
            best = np.maximum.accumulate(np.concatenate(([-fn_weight], w[group])))
            delta[group] = np.diff(best)
    base = -fn_weight * n_windows
    totals = base + np.cumsum(delta)
    # Only the last row of each run of equal scores is a reachable threshold.
    ends = np.flatnonzero(np.append(s[1:] != s[:-1], True)) if s.size else np.array([], int)
    candidates = np.concatenate(([base], totals[ends]))
    thresholds = np.concatenate(([math.inf], s[ends]))
    best_i = int(np.argmax(candidates))
    return float(thresholds[best_i]), float(candidates[best_i])


def _file_result(
    file: LabelledFile,
    scores: NDArray[np.float64],
    weights: _Weights,
    threshold: float,
    profile: CostProfile,
) -> FileResult:
    hit = (scores >= threshold) & (weights.window != _PROBATION)
    fp = hit & (weights.window == _NO_WINDOW)
    raw = float(weights.weight[fp].sum())
    scored = sorted({int(k) for k in weights.window if k >= 0})
    found = 0
    for k in scored:
        rows = hit & (weights.window == k)
        if rows.any():
            found += 1
            raw += float(weights.weight[rows].max())
        else:
            raw -= profile.fn_weight
    return FileResult(file.name, raw, len(scored), found, int(fp.sum()))


def score_corpus(
    files: Sequence[LabelledFile],
    scores: Sequence[NDArray[np.float64]],
    profile: CostProfile,
    threshold: float | None = None,
) -> CorpusResult:
    """Optimize one threshold over the corpus and score every file with it (or with
    ``threshold``, when given: the score at a detector's operating point).

    >>> f = LabelledFile("f", 100, ((40, 49),))
    >>> perfect = np.zeros(100); perfect[40] = 1.0
    >>> standard = CostProfile("standard", 1.0, 0.11, 1.0)
    >>> round(score_corpus([f], [perfect], standard).score, 6)
    100.0
    >>> score_corpus([f], [np.zeros(100)], standard).score
    0.0
    >>> score_corpus([f], [perfect], standard, threshold=2.0).score  # nothing reaches it
    0.0
    """
    if len(files) != len(scores):
        raise ValueError("one score array per file")
    parts: list[_Weights] = []
    offset = 0
    for file, sc in zip(files, scores, strict=True):
        if sc.shape != (file.n_rows,):
            raise ValueError(f"{file.name}: {sc.shape[0]} scores for {file.n_rows} rows")
        parts.append(_row_weights(file, profile, offset))
        offset += len(file.windows)
    all_w = _Weights(
        np.concatenate([p.weight for p in parts]) if parts else np.empty(0),
        np.concatenate([p.window for p in parts]) if parts else np.empty(0, np.int64),
    )
    n_windows = len({int(k) for k in all_w.window if k >= 0})
    all_s = np.concatenate(list(scores)) if scores else np.empty(0)
    raw: float | None = None  # a given threshold is scored by its files' sum, below
    if threshold is None:
        threshold, raw = _sweep(all_s.astype(np.float64), all_w, profile.fn_weight, n_windows)
    constant = np.full(all_s.shape, 0.5)
    _, null = _sweep(constant, all_w, profile.fn_weight, n_windows)
    perfect = profile.tp_weight * sum(len(f.windows) for f in files)
    results = tuple(
        _file_result(f, sc, p, threshold, profile)
        for f, sc, p in zip(files, scores, parts, strict=True)
    )
    if raw is None:
        raw = sum(r.raw for r in results)
    span = perfect - null
    score = 100.0 * (raw - null) / span if span > 0 else 0.0
    return CorpusResult(
        profile=profile.name,
        threshold=threshold,
        raw=raw,
        null=null,
        perfect=perfect,
        score=score,
        windows=sum(r.windows for r in results),
        found=sum(r.found for r in results),
        false_positives=sum(r.false_positives for r in results),
        files=results,
    )


def file_groups(files: Sequence[LabelledFile]) -> list[str]:
    """Each file's category: the folder its name starts with (NAB's seven, such as
    ``realTraffic``), empty for a file outside any folder."""
    return [f.name.split("/", 1)[0] if "/" in f.name else "" for f in files]


@dataclass(frozen=True)
class FoldResult:
    """One left-out category, scored with the choice and threshold the others made."""

    group: str
    choice: int
    threshold: float
    raw: float
    windows: int
    found: int
    false_positives: int


@dataclass(frozen=True)
class CrossValidated:
    """A leave-one-category-out score: the left-out categories' totals, normalized as the
    corpus score is (same null and perfect totals), so the two compare directly."""

    profile: str
    raw: float
    null: float
    perfect: float
    score: float
    folds: tuple[FoldResult, ...]


def cross_validate(
    files: Sequence[LabelledFile],
    groups: Sequence[str],
    candidates: Sequence[Sequence[NDArray[np.float64]]],
    profile: CostProfile,
) -> CrossValidated:
    """Leave one category out: for each category, the choice among ``candidates`` (score
    arrays of every file, one set per parameter choice) and the threshold are those that
    maximize the total of the other categories, and the category is scored with them.

    The files are scored once per choice; each fold only re-thresholds them. Ties go to the
    first choice and, as in ``score_corpus``, the highest threshold.
    """
    names = sorted(set(groups))
    if len(names) < 2:
        raise ValueError("cross-validation needs files of at least two categories")
    if not candidates:
        raise ValueError("no candidate scores")
    whole = score_corpus(files, candidates[0], profile)
    folds = []
    for name in names:
        train = [i for i, g in enumerate(groups) if g != name]
        test = [i for i, g in enumerate(groups) if g == name]
        fits = [
            score_corpus([files[i] for i in train], [c[i] for i in train], profile)
            for c in candidates
        ]
        choice = max(range(len(fits)), key=lambda k: (fits[k].raw, -k))
        threshold = fits[choice].threshold
        held = score_corpus(
            [files[i] for i in test], [candidates[choice][i] for i in test], profile, threshold
        )
        folds.append(
            FoldResult(
                name, choice, threshold, held.raw, held.windows, held.found, held.false_positives
            )
        )
    raw = sum(f.raw for f in folds)
    span = whole.perfect - whole.null
    score = 100.0 * (raw - whole.null) / span if span > 0 else 0.0
    return CrossValidated(profile.name, raw, whole.null, whole.perfect, score, tuple(folds))
