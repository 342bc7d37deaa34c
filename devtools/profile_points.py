"""Where the points path's CPU time goes, in process, without a broker.

Runs the throughput bench's workload (``devtools.bench.throughput.workload``) through what
``detect`` does with each partition's records, stage by stage, and prints the CPU time
(``time.process_time``) of each stage: decoding (``decode_points_many``), the idle sweep,
admitting series (``RoutedBanks.admit``), the detectors' domains, scoring and deciding
(``observe_rows``), the silence watch, and checkpoints (``take_dirty_blocks`` and
``blocks.encode``, paced as ``detect`` paces them, with the CPU clock standing in for the wall
clock).

    python -m devtools.profile_points --points 2000000 --series 100000 --batch 100
"""

from __future__ import annotations

import argparse
import json
import time
from collections import defaultdict
from typing import Any

import numpy as np
from aiokafka.partitioner import murmur2

from detectors import blocks
from detectors.routing import RoutedBanks
from detectors.silence import SilenceParams, SilenceWatch
from devtools.bench.throughput import PARTITIONS, workload
from streams.codec import decode_points_many
from streams.settings import Settings

DECODE_MESSAGES = 50  # as ``streams.agents.detect``; --chunk to try others


def partitioned(n: int, k: int, batch: int, base: float) -> dict[int, list[bytes]]:
    """The workload's messages by partition, as the default partitioner places them."""
    out: dict[int, list[bytes]] = defaultdict(list)
    for key, value, _ in workload(n, k, batch, base, min(k, 200)):
        out[(murmur2(key) & 0x7FFFFFFF) % PARTITIONS].append(value)
    return out


def run(
    n: int,
    k: int,
    batch: int,
    per_batch: int,
    interval_s: float,
    share: float,
    deciding_only: bool = True,
    chunk_size: int = DECODE_MESSAGES,
) -> None:
    deciding_only = deciding_only and hasattr(RoutedBanks, "take_deciding_blocks")
    base = time.time() - n // k - 10  # as the bench: times with 17 significant digits
    parts = partitioned(n, k, batch, base)
    s = Settings()
    banks = {p: s.detector_banks() for p in parts}
    for bank in banks.values():
        bank.observe(["warm-up|kernels"], np.zeros(1), np.zeros(1))
    watches = {p: SilenceWatch(SilenceParams(forget_s=s.series_idle_s)) for p in parts}
    # Compiled kernels are loaded (or compiled) on their first call: not part of the figures.
    SilenceWatch().observe(["warm-up|kernels"], np.zeros(1), 0.0, 0.0)
    blocks.encode(banks[next(iter(parts))].take_dirty_blocks().get("0") or {})
    decode_points_many([b'{"ts":1,"service":"warm-up","metric":"kernels","value":1}'])
    spent: dict[str, float] = defaultdict(float)
    clock = time.process_time
    saved_at = dict.fromkeys(parts, clock())
    pause = 0.0
    written = checkpoints = urgent_checkpoints = 0
    points = 0
    began = clock()
    cursors = dict.fromkeys(parts, 0)
    while any(cursors[p] < len(parts[p]) for p in parts):
        for p, messages in parts.items():
            records = messages[cursors[p] : cursors[p] + per_batch]
            cursors[p] += per_batch
            if not records:
                continue
            bank = banks[p]
            rows, ts, xs = [], [], []
            for i in range(0, len(records), chunk_size):
                chunk = records[i : i + chunk_size]
                t0 = clock()
                decoded = decode_points_many(chunk, [base + 1e6] * len(chunk), 300.0)
                t1 = clock()
                if i == 0 and len(decoded.ts):
                    bank.evict_idle(float(decoded.ts.max()))
                t2 = clock()
                got, _ = bank.admit(decoded.series)
                t3 = clock()
                bank.refused(got, decoded.values)
                t4 = clock()
                spent["decode"] += t1 - t0
                spent["sweep"] += t2 - t1
                spent["admit"] += t3 - t2
                spent["domains"] += t4 - t3
                rows.append(got)
                ts.append(decoded.ts)
                xs.append(decoded.values)
            t5 = clock()
            at, t_all, x = np.concatenate(rows), np.concatenate(ts), np.concatenate(xs)
            spent["concat"] += clock() - t5
            t6 = clock()
            _, fired = bank.observe_rows(at, x, t_all, ends=True)
            t7 = clock()
            watches[p].observe_rows(at, t_all, bank.series, float(t_all.max()), 0.0)
            t8 = clock()
            spent["observe"] += t7 - t6
            spent["watch"] += t8 - t7
            points += len(t_all)
            # At once when a policy fired or is deciding, as ``detect`` does; else on its pace.
            urgent = bool(fired) or bank.deciding
            due = clock() - saved_at[p] >= max(interval_s, pause)
            if urgent and not due and deciding_only:
                t9 = clock()
                for state in bank.take_deciding_blocks().values():
                    written += len(blocks.encode(state))
                spent["checkpoint_deciding"] += clock() - t9
                urgent_checkpoints += 1
            elif urgent or due:
                urgent_checkpoints += urgent and not due
                t9 = clock()
                for state in bank.take_dirty_blocks().values():
                    written += len(blocks.encode(state))
                took = clock() - t9
                spent["checkpoint"] += took
                checkpoints += 1
                saved_at[p] = clock()
                pause = min(took / share, 60.0)
    total = clock() - began
    series = sum(len(b) for b in banks.values())
    result: dict[str, Any] = {
        "points": points,
        "series": series,
        "batch": batch,
        "cpu_s": round(total, 3),
        "points_per_cpu_s": round(points / total),
        "checkpoints": checkpoints,
        "urgent_checkpoints": urgent_checkpoints,
        "checkpoint_bytes": written,
        "stages_s": {k: round(v, 3) for k, v in sorted(spent.items(), key=lambda kv: -kv[1])},
    }
    result["stages_s"]["other"] = round(total - sum(spent.values()), 3)
    print(json.dumps(result))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=2_000_000)
    parser.add_argument("--series", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--records", type=int, default=2500, help="records per partition batch")
    parser.add_argument("--interval", type=float, default=1.0, help="checkpoint_interval_s")
    parser.add_argument("--share", type=float, default=0.2, help="checkpoint_max_share")
    parser.add_argument(
        "--whole-when-deciding",
        action="store_true",
        help="write every changed block when a policy is deciding (as before)",
    )
    parser.add_argument("--chunk", type=int, default=DECODE_MESSAGES, help="messages a decode")
    parser.add_argument("--profile", action="store_true", help="cProfile's top functions too")
    a = parser.parse_args()
    args = (a.points, a.series, a.batch, a.records, a.interval, a.share)
    if not a.profile:
        run(*args, not a.whole_when_deciding, a.chunk)
        return
    import cProfile
    import pstats

    with cProfile.Profile() as profile:
        run(*args, not a.whole_when_deciding, a.chunk)
    pstats.Stats(profile).sort_stats("tottime").print_stats(25)


if __name__ == "__main__":
    main()
