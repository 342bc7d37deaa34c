"""``warroom bench lognoise``: log detections raised by a steady stream of ordinary logs.

Each generated family (:mod:`devtools.bench.logfamilies`: nginx, kubelet and containerd, a JVM
service, sshd, PostgreSQL, a Kafka broker) is one service logging at a steady rate, its lines
drawn from the same mix of events all along, at the level each event's text says. Nothing
happens in such a stream, so every detection is noise; the bench prints them per million lines,
by family and by detector. Seeded, so a run is repeatable. The log detectors' target is at most
one detection per million lines.
"""

from __future__ import annotations

import argparse
import json
import random
import time
from collections import Counter

from detectors.logs import LogSource
from devtools.bench import machine, machine_line
from devtools.bench.logfamilies import FAMILIES, generate, level_of
from schemas import LogRecord
from streams.argtypes import positive_float, positive_int

START = 1_700_000_000.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--lines", type=positive_int, default=1_000_000, help="lines in all, across the families"
    )
    parser.add_argument(
        "--rate", type=positive_float, default=20.0, help="lines per second of each service"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the generated logs")


def family_detections(family: str, lines: int, rate: float, seed: int) -> Counter[str]:
    """Detections by kind over ``lines`` steady lines of ``family`` at ``rate`` lines/s."""
    source = LogSource.create()
    arrivals = random.Random(f"arrivals:{family}:{seed}")
    ts = START
    fired: Counter[str] = Counter()
    for line in generate(family, lines, seed):
        ts += arrivals.expovariate(rate)
        record = LogRecord(
            ts=ts, service=family, level=level_of(line.pattern), message=line.message
        )
        for detection in source.observe(record)[1]:
            fired[detection.detector] += 1
    return fired


def main(args: argparse.Namespace) -> int:
    families = sorted(FAMILIES)
    each = max(1, args.lines // len(families))
    print(machine_line(host := machine()))
    print(f"{each} lines a family at {args.rate:g} lines/s, seed {args.seed}")
    print(f"{'family':<10} {'lines':>8} {'detections':>10} {'per 1M':>8}  by detector")
    total: Counter[str] = Counter()
    started = time.process_time()
    per_family: dict[str, dict[str, int]] = {}
    for family in families:
        fired = family_detections(family, each, args.rate, args.seed)
        total.update(fired)
        per_family[family] = dict(sorted(fired.items()))
        count = sum(fired.values())
        print(
            f"{family:<10} {each:>8} {count:>10} {count * 1e6 / each:>8.2f}  "
            f"{per_family[family] or '-'}"
        )
    lines = each * len(families)
    count = sum(total.values())
    elapsed = time.process_time() - started
    per_million = count * 1e6 / lines
    print(f"{'all':<10} {lines:>8} {count:>10} {per_million:>8.2f}  {dict(sorted(total.items()))}")
    print(f"{lines / elapsed:.0f} lines/s generated, mined and checked (CPU time)")
    summary = {
        "lines": lines,
        "detections": count,
        "per_million": per_million,
        "by_detector": dict(sorted(total.items())),
        "families": per_family,
        "rate": args.rate,
        "seed": args.seed,
        "machine": host,
    }
    print(json.dumps(summary, sort_keys=True))
    return 0
