"""Fault points: a worker that SIGKILLs itself at a named crash window, for the fault suite.

Off unless ``WARROOM_FAULT_POINT`` (the ``fault_point`` setting) is ``<point>[:<nth>]``: the
worker then kills itself with SIGKILL the ``nth`` time (the first by default) it reaches that
point, right after appending a line (``<point> <nth> <pid> <epoch s>``) to
``<data_dir>/fault-points.log``, so a test can tell that the kill came from the point. Unset, a
point is a call that returns at once. The points:

- ``after-events-before-tables``: ``open_incidents``, once an input's timeline events and pages
  have reached the broker, before its table writes (and before its offset is committed).
- ``after-2xx-before-log``: delivery, once a notifier has reported a page delivered (a webhook's
  2xx), before the outcome is sent to the ``notification-log``.
- ``mid-checkpoint``: the ``detect`` service, once a block of a checkpoint has reached the broker,
  before the checkpoint's next block (if any) is sent and before the points' offsets are
  committed.
- ``after-checkpoint-commit``: the ``detect`` service, once the offsets of a checkpoint written
  behind the scoring are committed (the batches scored since, and their detections, are not
  covered by it).
- ``mid-rebalance``: a ready worker inside a rebalance, when Faust has revoked partitions from
  it (its agents drained, the new assignment not yet received).
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

POINTS = (
    "after-events-before-tables",
    "after-2xx-before-log",
    "mid-checkpoint",
    "after-checkpoint-commit",
    "mid-rebalance",
)
#: The file in the data directory where each kill is recorded before it happens.
MARKER = "fault-points.log"


def parse(spec: str) -> tuple[str, int] | None:
    """``<point>[:<nth>]`` as (point, nth); None for an empty spec.

    >>> parse("mid-checkpoint"), parse("after-2xx-before-log:3"), parse("")
    (('mid-checkpoint', 1), ('after-2xx-before-log', 3), None)
    >>> parse("mid-nowhere")
    Traceback (most recent call last):
    ...
    ValueError: unknown fault point 'mid-nowhere' (one of after-events-before-tables, \
after-2xx-before-log, mid-checkpoint, after-checkpoint-commit, mid-rebalance)
    """
    if not spec:
        return None
    point, _, nth = spec.partition(":")
    if point not in POINTS:
        raise ValueError(f"unknown fault point {point!r} (one of {', '.join(POINTS)})")
    if nth and (not nth.isdigit() or int(nth) < 1):
        raise ValueError(f"{nth!r} is not a positive count of hits (<point>:<nth>)")
    return point, int(nth or 1)


@dataclass
class _Armed:
    point: str
    nth: int
    marker: Path
    hits: int = 0


_armed: _Armed | None = None


def arm(spec: str, data_dir: Path) -> None:
    """Arm the point ``spec`` names (nothing for an empty spec); called once, at build."""
    global _armed
    parsed = parse(spec)
    _armed = None if parsed is None else _Armed(parsed[0], parsed[1], data_dir / MARKER)


def reached(point: str) -> None:
    """The worker is at ``point``: kill it if that is the armed point's ``nth`` hit."""
    armed = _armed
    if armed is None or armed.point != point:
        return
    armed.hits += 1
    if armed.hits >= armed.nth:
        _kill(armed)


async def reached_after(point: str, durable: Sequence[Awaitable[Any]]) -> None:
    """As :func:`reached`, counted only once something was ``durable`` (sent before the point),
    which is awaited first, so that it has reached the broker when the worker dies."""
    armed = _armed
    if armed is None or armed.point != point or not durable:
        return
    await asyncio.gather(*durable)
    reached(point)


def watch_rebalances(app: Any, ready: Callable[[], bool]) -> None:
    """Count ``mid-rebalance`` when a ready worker has partitions revoked (only when armed)."""
    if _armed is None or _armed.point != "mid-rebalance":
        return

    @app.on_partitions_revoked.connect
    async def revoked(sender: Any, revoked: Any, **kwargs: Any) -> None:
        if revoked and ready():
            reached("mid-rebalance")


def _kill(armed: _Armed) -> None:
    armed.marker.parent.mkdir(parents=True, exist_ok=True)
    with armed.marker.open("a") as out:
        out.write(f"{armed.point} {armed.hits} {os.getpid()} {time.time():.3f}\n")
        out.flush()
        os.fsync(out.fileno())
    os.kill(os.getpid(), signal.SIGKILL)
