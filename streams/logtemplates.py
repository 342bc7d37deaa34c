"""``warroom logs templates``: mine templates from a file of messages, one row per input line."""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

from detectors.logs import TemplateMiner


def main(args: argparse.Namespace) -> int:
    """Write ``line,template_id,template`` for every line of ``args.input`` to ``args.output``.

    Lines are mined in order; each row carries the template its line's group ended up in.
    """
    source = Path(args.input)
    try:
        with source.open(encoding="utf-8", errors="replace", newline="") as fh:
            messages = [line.rstrip("\r\n") for line in fh]
    except OSError as exc:
        print(f"warroom logs templates: cannot read {source}: {exc.strerror}", file=sys.stderr)
        return 1
    miner = TemplateMiner()
    ids = [miner.add(message).template_id for message in messages]
    texts = {t.id: t.text for t in miner.templates}
    try:
        with Path(args.output).open("w", encoding="utf-8", newline="") as out:
            writer = csv.writer(out)
            writer.writerow(["line", "template_id", "template"])
            for number, tid in enumerate(ids, start=1):
                current = miner.resolve(tid)
                writer.writerow([number, current, texts.get(current, "")])
    except OSError as exc:
        print(
            f"warroom logs templates: cannot write {args.output}: {exc.strerror}", file=sys.stderr
        )
        return 1
    print(f"{len(ids)} lines, {len(texts)} templates -> {args.output}")
    return 0
