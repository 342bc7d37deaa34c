"""``detect``: metric points in (``metrics.points.v1``), detections out (``detections.v1``).

Points are the one high-volume stream, so ``detect`` reads them with its own aiokafka consumer
(group ``<app_id>-detect``) instead of a Faust agent: Faust hands an agent one message at a time
at a fixed cost of about a hundred microseconds each, more than scoring a hundred points costs.
Here each ``getmany`` batch is decoded into columns and every partition's points of the batch
are scored together by that partition's banks (points are keyed by service, so a series stays
on one partition), in a few vectorized rounds: a ``SeriesBank`` per detector rule and one for
the default detector (``detectors.routing``).

Where a series' episode ends (its policy's ``clear_points`` normal points in a row), the same
signal is sent as a ``resolved`` detection, so its incident learns the signal has recovered
(unless ``detect_resolves`` is off).

Exactly what a changelog-backed table gives, kept by hand because a Faust table can only be
written while a Faust stream is processing an event of the same partition: each partition's bank
is checkpointed in blocks of rows to partition ``p`` of the compacted topic
``<app_id>-detector-blocks`` (key: the block number, after ``<rule>/`` for a rule's bank), and a
partition newly assigned to this worker is rebuilt from that partition of the topic before its
points are read.

Per partition, in this order: the batch's detections are acknowledged by the broker; then the
changed blocks are written (every ``checkpoint_interval_s``); then the partition's offset is
committed. When a policy fired or is deciding, the blocks of its rows are written at once,
without a commit, so a handover never drops a run in progress.

A checkpoint that took ``d`` seconds puts the next timed one at least
``d / checkpoint_max_share`` away: with a hundred thousand series changing every second, writing
them all every second would cost more than scoring them, and the price of a longer pause is
only a longer replay after a crash. Committed offsets never run ahead of the checkpoint, so after
a crash the points after it are read again and scored from the state before them; a checkpoint
that got ahead of its commit is harmless too: points at or before a series' checkpointed time
are skipped, and a detection's id derives from its series and time, so a replayed detection is
the same one.

A partition whose records fail (anything but the broker being away) goes back to its
checkpoint and takes the records since one at a time; a record that fails
``detect_max_attempts`` times is dead-lettered with the reason and skipped, and the partition's
other records proceed. Failures of the broker itself are retried, never counted against a
record.

The modules: :mod:`~streams.detect.service` (the consumer, the run loop, rebalances),
:mod:`~streams.detect.scoring` (a partition's records scored and their detections sent),
:mod:`~streams.detect.checkpoints` (banks and silence watches written and read back),
:mod:`~streams.detect.offsets` (what is processed and committed),
:mod:`~streams.detect.failures` (the one-by-one replay of a failing partition) and
:mod:`~streams.detect.silences` (the watch over silent series).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from streams.codec import warm_up_points
from streams.detect.service import Detect

if TYPE_CHECKING:
    from streams.pipeline import Pipeline

__all__ = ["Detect", "attach"]


def attach(p: Pipeline) -> None:
    s = p.settings
    # A bank's first points compile its kernels (about a second): at start, not on live points.
    for bank in s.detector_banks().banks:
        bank.observe(["warm-up|kernels"], np.zeros(1), np.zeros(1))
    warm_up_points()
    detect = Detect(p)
    p.detect = detect

    @p.app.task
    async def start_detect() -> None:
        # Tasks start once the app runs: its producer (dead letters) is up by then.
        await p.app.add_runtime_dependency(detect)
