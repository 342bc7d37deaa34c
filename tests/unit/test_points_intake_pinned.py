"""The points intake, pinned from raw message bytes to scores: what ``detect`` does with each
chunk of a partition's records (``decode_points_many``, idle eviction, ``RoutedBanks.admit``
with its series limits, the detectors' domains, ``observe_rows``), over a seeded stream of
messages that mixes good points with every kind of bad one.

The digest was taken from the code before the intake was made cheaper per point; a change
that alters a decoded column, a rejection's reason or bytes, a row, a refusal, a score by one
bit or a firing fails here. ``transcript`` is the text hashed, for looking at what changed.
"""

from __future__ import annotations

import hashlib
import json
import random
from typing import Any

import numpy as np

from detectors.cardinality import SeriesLimits
from detectors.routing import DetectorRule, RoutedBanks
from streams.codec import decode_points, decode_points_many

CHUNK = 50  # messages per decode, as ``streams.detect.scoring.DECODE_MESSAGES``
BASE = 1.7e9
MAX_FUTURE_S = 300.0
# Series ids of these shapes (a service with a space inside, a metric with a "|") split more
# than one way: only one of them is valid.
AWKWARD = [("a b", "m|x"), ("svc1", "m|y")]


def _point(rng: random.Random, service: str, metric: str, ts: float, labels: int) -> dict[str, Any]:
    point: dict[str, Any] = {"ts": ts, "service": service, "metric": metric,
                             "value": round(100.0 + rng.gauss(0, 5), 3)}  # fmt: skip
    if rng.random() < 0.01:
        point["value"] *= 9.0  # a spike
    if labels:
        point["labels"] = {f"k{j}": f"v{(j * 7 + len(metric)) % 13}" for j in range(labels)}
    return point


def _bad(rng: random.Random, good: dict[str, Any], r: int) -> Any:
    """One bad (or merely unusual, still valid) entry, each kind in turn."""
    kinds: list[Any] = [
        {**good, "value": None},
        {**good, "value": "12"},
        {k: v for k, v in good.items() if k != "metric"},
        {**good, "ts": "2023-11-14T22:13:20+00:00"},  # valid: an RFC 3339 time
        {**good, "ts": "2023-11-14T22:13:20"},  # no offset
        {**good, "ts": -5.0},
        {**good, "ts": 0.0},  # valid: the epoch itself
        {**good, "ts": BASE + 10 * 86_400.0},  # too far ahead of its arrival
        {**good, "service": good["service"] + " "},
        {**good, "metric": "se\u0001en"},
        {**good, "labels": {"": "x"}},
        {**good, "labels": {"k": "v" * 2000}},
        {**good, "labels": {f"l{j}": "x" * 40 for j in range(40)}},
        {**good, "labels": None},
        {**good, "value": 1e308 * 10 if r % 2 else 2.5e300},
        [1, 2, 3],
        "text",
        {**good, "service": "", "metric": "m"},
        {**good, "service": "x" * 201},
        {**good, "value": 3.5, "metric": "error_ratio"},  # outside the rule's domain [0, 1]
        {**good, "value": 0.25, "metric": "error_ratio"},
    ]
    return kinds[rng.randrange(len(kinds))]


def messages(seed: int) -> list[tuple[bytes | None, float]]:
    """(value, received_s) of each message, in partition order."""
    rng = random.Random(seed)
    series = [(f"svc{i % 9}", f"m{i}", (i % 5 == 0) * (1 + i % 4)) for i in range(240)]
    out: list[tuple[bytes | None, float]] = []
    for r in range(40):
        t = BASE + 60.0 * r
        received = t + 1.0
        order = list(range(len(series)))
        rng.shuffle(order)
        at = 0
        while at < len(order):
            size = rng.choice([1, 1, 3, 17, 50, 100, 130])
            entries: list[Any] = []
            for i in order[at : at + size]:
                if i > 200 and r < 10:
                    continue  # new series midway
                if i % 13 == 5 and 12 <= r < 26:
                    continue  # idle long enough to be evicted; back later, in new rows
                service, metric, labels = series[i]
                reps = 1 + int(i % 31 == 0) * 2  # several points of one series in a message
                for j in range(reps):
                    entries.append(_point(rng, service, metric, t + j * 5.0, labels))
                if i % 23 == 0 and r > 1:
                    entries.append(_point(rng, service, metric, t - 120.0, labels))  # late
            at += size
            if rng.random() < 0.15 and entries:
                entries.insert(rng.randrange(len(entries)), _bad(rng, entries[0], r))
            if rng.random() < 0.03:
                service, metric = AWKWARD[rng.randrange(len(AWKWARD))]
                entries.append(_point(rng, service, metric, t, 0))
            if not entries:
                continue
            body = entries[0] if len(entries) == 1 else {"points": entries}
            text = json.dumps(body, separators=(",", ":"))
            if rng.random() < 0.05:
                text = text.replace(",", ", ")  # whitespace between tokens
            out.append((text.encode(), received))
        # A service with more series than it may have; error ratios, some outside [0, 1].
        wide = [_point(rng, "svc-wide", f"w{j}", t, 0) for j in range(30)]
        ratios = [{**_point(rng, f"svc{j}", "error_ratio", t, 0), "value": rng.uniform(0, 1.3)}
                  for j in range(3)]  # fmt: skip
        for entries in (wide, ratios):
            out.append((json.dumps({"points": entries}).encode(), received))
        # Whole messages that are wrong, and one received at an unknown time.
        out.append((b'{"points": []}', received))
        out.append((b"not json", received))
        out.append((b"[1]", received))
        out.append((b"\xff\xfe{}", received))
        out.append((None, received))
        out.append((b'{"points": {"a": 1}}', received))
        one = _point(rng, "svc-unknown-time", "m", t, 0)
        out.append((json.dumps(one).encode(), -0.001))
    return out


def banks() -> RoutedBanks:
    rule = DetectorRule("slo", "slo_burn_rate", metrics=("error_ratio",))
    # Small limits, so new series are refused by each of them along the way; a short idle
    # time, so series are evicted and come back.
    limits = SeriesLimits(per_service=28, per_partition=260, idle_s=600.0, sweep_s=120.0)
    return RoutedBanks("tolerant_novelty", {}, {}, [rule], limits)


def transcript(seed: int) -> list[str]:
    bank = banks()
    stream = messages(seed)
    lines: list[str] = []
    for c in range(0, len(stream), CHUNK):
        chunk = stream[c : c + CHUNK]
        raws = [raw for raw, _ in chunk]
        received = [at for _, at in chunk]
        d = decode_points_many(raws, received, MAX_FUTURE_S)
        lines.append(json.dumps([d.series, d.spans]))
        lines.append(d.values.tobytes().hex() + " " + d.ts.tobytes().hex())
        for rejected in d.rejected:
            lines += [json.dumps([r.reason, r.payload.hex()]) for r in rejected]
        if len(d.ts):
            lines.append(repr(bank.evict_idle(float(d.ts.max()))))
        rows, over = bank.admit(d.series)
        lines.append(rows.tobytes().hex())
        lines.append(repr(sorted((i, o.limit, o.reason) for i, o in over.items())))
        refused = bank.refused(rows, d.values)
        out = np.zeros(len(rows), dtype=np.bool_) if refused is None else refused
        out[list(over)] = True
        lines.append(out.tobytes().hex())
        lines += [bank.why_refused(int(rows[i]), float(d.values[i])) for i in np.flatnonzero(out)]
        keep = np.flatnonzero(~out)
        scores, fired = bank.observe_rows(rows[keep], d.values[keep], d.ts[keep], ends=True)
        lines.append(scores.tobytes().hex())
        lines += [
            json.dumps([int(keep[f.index]), f.score, f.decision.resolved, f.recent, f.why])
            for f in fired
        ]
    for key, state in sorted(bank.take_dirty_blocks().items()):
        lines.append(key + " " + json.dumps(_plain(state), sort_keys=True))
    return lines


def single_transcript(seed: int) -> list[str]:
    """``decode_points``, one message at a time (the path of a firing point's names)."""
    lines = []
    for raw, received in messages(seed)[::7]:
        one = decode_points(raw, received, MAX_FUTURE_S)
        lines.append(json.dumps([one.series, [r.reason for r in one.rejected]]))
        lines.append(one.values.tobytes().hex() + " " + one.ts.tobytes().hex())
        lines.append(repr([(p.service, p.metric, p.value, p.labels or {}) for p in one.points]))
    return lines


def _plain(v: Any) -> Any:
    if isinstance(v, dict):
        return {k: _plain(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_plain(x) for x in v]
    if isinstance(v, bytes | bytearray | memoryview):
        return bytes(v).hex()
    return v


def _digest(lines: list[str]) -> str:
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()


def test_the_stream_has_every_kind_of_outcome() -> None:
    text = "\n".join(transcript(21))
    kinds = ("not JSON", "not UTF-8", "expected a JSON object", "per_service", "per_partition",
             "outside [0, 1]", ".labels", ".ts", ".value", ".service")  # fmt: skip
    for found in kinds:
        assert found in text, found
    assert ", true, " in text  # an episode that ended


def test_points_intake_is_as_pinned() -> None:
    assert _digest(transcript(21)) == INTAKE


def test_points_intake_is_as_pinned_whatever_came_before() -> None:
    # Names found valid are remembered across calls: a second pass over the same stream (its
    # names all remembered now) must give the same results.
    transcript(22)
    assert _digest(transcript(22)) == _digest(transcript(22)) == INTAKE_22


def test_single_message_decoding_is_as_pinned() -> None:
    assert _digest(single_transcript(21)) == SINGLE


INTAKE = "b059091f23a882b1975ac39302f27f25d4cd1086099c5bd04f64d0877ada40e3"
INTAKE_22 = "b7e964b37e1727b0b34c65139cc7ee9267d4f43e303b64f27951adcceb269b8f"
SINGLE = "3e009297ef27c91e434c6ce1cf13604cdcfb3a8dfef33cf4171f1ef2b6b9f83d"
