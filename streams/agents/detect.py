"""``detect``: metric points in (``metrics.points.v1``), detections out (``detections.v1``).

The series of each partition of the points topic (points are keyed by service, so a series stays
on one partition) are held in one ``SeriesBank``: detector, policy and recent points of every
series in arrays, so a message's points are scored in a few vectorized steps, not one by one.
(Messages are taken one at a time: Faust's ``take_events`` would share the array work between
messages, but a worker using it stalled in table recovery after rebalances, in about one run in
ten of the scale-out test.)

The bank is checkpointed to the ``detector-blocks`` table in blocks of rows (key
``"<partition>/<block>"``, on that partition of the changelog), every ``checkpoint_interval_s``
and at once when a series' policy state changed (a run of high scores started, an episode is
active or fired). The checkpoint is written before the message's offset can be committed. After a
restart or a rebalance the bank is rebuilt from its blocks: a crash loses at most that interval
of the detectors' learning, never a run in progress or a detection. Points at or before a
series' last checkpointed time are skipped and detection ids derive from the series and the
point's time, so replayed points neither train twice nor page twice.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from detectors.bank import SeriesBank, detection
from responders.lifecycle import routing_key
from streams.codec import PointColumns, decode_points, encode

if TYPE_CHECKING:
    from streams.app import Pipeline

log = logging.getLogger(__name__)


def attach(p: Pipeline) -> None:
    s, blocks = p.settings, p.tables.detector_blocks
    banks: dict[int, SeriesBank] = {}
    saved_at: dict[int, float] = {}

    @p.app.on_partitions_revoked.connect
    async def forget(app: Any, revoked: Any, **kwargs: Any) -> None:
        banks.clear()
        saved_at.clear()

    def bank_for(partition: int) -> SeriesBank:
        bank = banks.get(partition)
        if bank is None:
            bank = SeriesBank(s.detector, s.detector_params, s.policy_params)
            prefix = f"{partition}/"
            found = {int(k[len(prefix) :]): v for k, v in blocks.items() if k.startswith(prefix)}
            stale = bank.load_blocks(found)
            if stale:
                log.warning(
                    "partition %d: %d detector blocks were written under another detector "
                    "configuration; their series start afresh",
                    partition,
                    stale,
                )
            banks[partition] = bank
        return bank

    def checkpoint(partition: int, bank: SeriesBank) -> None:
        for block, value in bank.take_dirty_blocks().items():
            blocks[f"{partition}/{block}"] = value
        saved_at[partition] = time.monotonic()

    async def observe(event: Any, points: PointColumns) -> None:
        partition = event.message.partition
        series, values, ts = points.series, points.values, points.ts
        bank = bank_for(partition)
        try:
            _, fired = bank.observe(series, values, ts)
        except Exception as exc:
            # The bank may be half-updated: continue from its last checkpoint.
            banks.pop(partition, None)
            p.count("detect_errors")
            await p.dead_letters.send(event.message, "detect", f"{type(exc).__name__}: {exc}",
                                      event.value or b"")  # fmt: skip
            return
        p.count("points_processed", len(series))
        sent = []
        for f in fired:
            point = points.points[f.index]
            found = detection(
                f,
                detector=s.detector,
                series=series[f.index],
                service=point.service,
                metric=point.metric,
                labels=point.labels,
                ts=float(ts[f.index]),
                value=point.value,
            )
            p.count("detections_emitted")
            key = routing_key(found, s.group_by)
            sent.append(await p.topics.detections.send(key=key.encode(), value=encode(found)))
        # The checkpoint records these points as seen: it must not reach the changelog before
        # their detections reach the broker, or a crash in between would skip them for good.
        for delivery in sent:
            await delivery
        due = time.monotonic() - saved_at.get(partition, -1e18) >= s.checkpoint_interval_s
        if fired or bank.deciding or due:
            checkpoint(partition, bank)

    @p.app.agent(p.topics.metrics, name="detect")
    async def detect(stream: Any) -> None:
        async for event in stream.events():
            decoded = decode_points(event.value)
            for bad in decoded.rejected:
                await p.dead_letters.send(event.message, "decode", bad.reason, bad.payload)
            if decoded.series:
                await observe(event, decoded)
            p.counters["last_point_processed_at"] = int(datetime.now(tz=UTC).timestamp())
