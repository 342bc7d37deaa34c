"""``detect``'s watch over silent series (:mod:`detectors.silence`), one per assigned points
partition, and the detections it sends to ``detections.v1`` when a silence begins or ends."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

import numpy as np
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from numpy.typing import NDArray

from detectors.bank import Rows
from detectors.silence import Deadlines, SilenceParams, SilenceWatch, Silent
from detectors.silence import detection as silence_detection
from responders.lifecycle import routing_key
from schemas import Catalog
from streams.codec import encode

if TYPE_CHECKING:
    from streams.pipeline import Pipeline

log = logging.getLogger(__name__)


class Silences:
    """The silence watches of the assigned partitions, and the detections they send."""

    def __init__(self, p: Pipeline, producer: AIOKafkaProducer) -> None:
        self.p = p
        self.producer = producer
        #: Each assigned partition's watch over silent series.
        self.watches: dict[int, SilenceWatch] = {}
        self._deadlines: tuple[Catalog, Deadlines] | None = None

    def params(self) -> SilenceParams:
        s = self.p.settings
        return SilenceParams(
            factor=s.silence_factor, floor_s=s.silence_floor_s,
            min_intervals=s.silence_min_intervals, live_lag_s=s.silence_live_lag_s,
            learned=s.silence_learned, forget_s=s.series_idle_s,
        )  # fmt: skip

    def deadlines(self) -> Deadlines:
        """The catalog's heartbeats (read again when the catalog object changes)."""
        catalog = self.p.catalog
        if self._deadlines is None or self._deadlines[0] is not catalog:
            self._deadlines = (catalog, Deadlines.of(catalog))
        return self._deadlines[1]

    def watch(self, partition: int) -> SilenceWatch:
        """The partition's watch, a new one if it has none."""
        watch = self.watches.get(partition)
        if watch is None:
            watch = self.watches[partition] = SilenceWatch(self.params())
        return watch

    def forget(self, partitions: Iterable[int]) -> None:
        for part in partitions:
            self.watches.pop(part, None)

    async def observe(
        self,
        partition: int,
        rows: Rows,
        ts: NDArray[np.float64],
        series: Callable[[int], str],
        received_s: float,
    ) -> None:
        """Note the points of ``rows`` at ``ts`` (received by ``received_s``); send the end of
        each silence they end."""
        ended = self.watch(partition).observe_rows(
            rows, ts, series, received_s, time.time(), self.deadlines()
        )
        if ended:
            await asyncio.gather(*[await self.send(e) for e in ended])

    async def send(self, silent: Silent) -> Any:
        """Send the detection of a silence beginning or ending; the broker's future."""
        found = silence_detection(silent)
        key = routing_key(found, self.p.settings.group_by).encode()
        self.p.count("silences_resolved" if silent.status == "resolved" else "silences_detected")
        log.info("detect: %s %s (last point %s)", silent.key, silent.status, silent.last_ts)
        return await self.producer.send(self.p.settings.topics.detections, encode(found), key=key)

    async def check(self) -> None:
        """Send a detection for each silence that began by each partition's event time."""
        deadlines, wall = self.deadlines(), time.time()
        for partition, watch in list(self.watches.items()):
            begun = watch.check(wall, deadlines)
            try:
                await asyncio.gather(*[await self.send(b) for b in begun])
            except KafkaError:
                log.warning("detect: partition %d: silences not sent; tried again", partition)
                watch.unfire([b.key for b in begun])
