"""The points path's results, pinned: what the detector bank scores and fires, and what the
silence watch reports and keeps, over a seeded fleet of series fed in uneven batches.

The digests were taken from the code before the points path was made cheaper per series; a
change that alters a score by one bit, an order of reports or a checkpointed value fails here.
``transcript`` is the text hashed, for looking at what changed.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import numpy as np

from detectors import SeriesBank
from detectors.silence import Deadlines, SilenceParams, SilenceWatch, heartbeat_series

SERIES = 300
ROUNDS = 60


def fleet(seed: int) -> list[tuple[list[str], np.ndarray, np.ndarray]]:
    """Batches of points: regular series with jitter, a few that stop and come back, a few
    with several points a batch, some late and repeated points, new series midway."""
    rng = np.random.default_rng(seed)
    ids = [f"svc{i % 7}|m{i}" for i in range(SERIES)]
    ids[5] = heartbeat_series("svc5", "nightly")
    out = []
    for r in range(ROUNDS):
        names: list[str] = []
        ts: list[float] = []
        for i, sid in enumerate(ids):
            if i > SERIES * 2 // 3 and r < ROUNDS // 3:
                continue  # new series midway
            if i % 11 == 3 and ROUNDS // 3 < r < ROUNDS // 2:
                continue  # a silence
            if (i % 7 == 3 or i == 5) and ROUNDS // 2 + 3 < r < ROUNDS // 2 + 8:
                continue  # a whole service silent, and a named heartbeat
            if i % 29 == 0 and r > ROUNDS * 3 // 4:
                continue  # gone for good
            k = 1 + int(i % 13 == 0) * int(rng.integers(0, 4))
            for j in range(k):
                ts.append(1.7e9 + 10.0 * r + j * 2.5 + float(rng.uniform(0, 1)))
                names.append(sid)
            if i % 17 == 0 and r > 2:
                ts.append(1.7e9 + 10.0 * (r - 2))  # late: at or before its last point
                names.append(sid)
        x = 100.0 + rng.normal(0, 5, len(ts))
        x[rng.random(len(ts)) < 0.01] *= 8.0  # spikes
        out.append((names, x, np.asarray(ts)))
    return out


def _digest(lines: list[str]) -> str:
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()


def bank_transcript(seed: int) -> list[str]:
    bank = SeriesBank("tolerant_novelty")
    lines = []
    for names, x, ts in fleet(seed):
        scores, fired = bank.observe(names, x, ts, ends=True)
        lines.append(scores.tobytes().hex())
        lines += [
            json.dumps([f.index, f.score, f.decision.resolved, f.decision.repeat, f.recent, f.why])
            for f in fired
        ]
    for key, state in sorted(bank.take_dirty_blocks().items()):
        lines.append(key + " " + _state_text(state))
    return lines


def _state_text(state: Any) -> str:
    def plain(v: Any) -> Any:
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        if isinstance(v, list):
            return [plain(x) for x in v]
        if isinstance(v, bytes | bytearray | memoryview):
            return bytes(v).hex()
        return v

    return json.dumps(plain(state), sort_keys=True)


def watch_transcript(seed: int) -> list[str]:
    deadlines = Deadlines(
        services={"svc3": 25.0},
        series={heartbeat_series("svc5", "nightly"): 40.0, "svc1|m99999": 5.0},
    )
    params = SilenceParams(factor=3.0, floor_s=20.0, min_intervals=3, forget_s=150.0)
    watch = SilenceWatch(params)
    names_seen: list[str] = []
    lines = []
    for r, (names, _, ts) in enumerate(fleet(seed)):
        wall = float(ts.max()) + 1.0
        received = float(ts.max())
        given = deadlines if r % 5 else None
        if r % 2:
            ended = watch.observe(names, ts, received, wall, given)
        else:
            for n in names:
                if n not in names_seen:
                    names_seen.append(n)
            rows = np.array([names_seen.index(n) for n in names], dtype=np.intp)
            ended = watch.observe_rows(rows, ts, names_seen.__getitem__, received, wall, given)
        lines += [repr(s) for s in ended]
        begun = watch.check(wall + 15.0, given)
        lines += [repr(s) for s in begun]
        if r % 9 == 4 and begun:
            watch.unfire([begun[0].key])
        if r % 10 == 7:
            state = watch.to_state()
            lines.append(json.dumps(state, sort_keys=True))
            watch = SilenceWatch.from_state(params, json.loads(json.dumps(state)))
        lines.append(f"{len(watch)} {watch.now(wall)!r}")
        lines.append(repr([watch.expected_s(k) for k in ("svc0|m0", "svc2|m13", "svc1|m99999")]))
    lines.append(json.dumps(watch.to_state(), sort_keys=True))
    return lines


def test_bank_scores_and_firings_are_as_pinned() -> None:
    assert _digest(bank_transcript(11)) == BANK


def test_silence_watch_reports_and_state_are_as_pinned() -> None:
    assert _digest(watch_transcript(12)) == WATCH


BANK = "af5f2d8f6ae5a802b3b7bc481d7d06112a00cd9c7d8d1b1fceb759ca130739a9"
WATCH = "d32040b58178831bd8351584ab097f61f12026669719395ce990b27dc20cdb3f"


def test_silence_watch_blocks_are_the_json_they_were() -> None:
    from streams.detect.checkpoints import WATCH_BLOCK_BYTES, watch_blocks

    state = json.loads(watch_transcript(12)[-1])
    assert len(state["series"]) > 200
    for most in (WATCH_BLOCK_BYTES, 2000):
        assert watch_blocks(state, most) == _blocks_as_they_were(state, most)


def _blocks_as_they_were(state: dict[str, Any], most: int) -> list[bytes]:
    """How the watch's blocks were written before: each one's dict dumped whole."""
    head = {k: v for k, v in state.items() if k != "series"}
    chunks: list[dict[str, Any]] = [{}]
    size = 0
    for key, value in state["series"].items():
        n = len(json.dumps({key: value}, separators=(",", ":")))
        if n > most:
            continue
        if size + n > most:
            chunks.append({})
            size = 0
        chunks[-1][key] = value
        size += n
    out = []
    for i, chunk in enumerate(chunks):
        block = (
            {**head, "part": i, "of": len(chunks), "series": chunk}
            if i == 0
            else {"part": i, "series": chunk}
        )
        out.append(json.dumps(block, separators=(",", ":")).encode())
    return out
