"""``detect``: metric points in (``metrics.points.v1``), detections out (``detections.v1``).

Per-series detector state lives in the ``detector-state`` table, keyed by series id and
co-partitioned with the points (which are keyed by service), so it survives restarts.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from detectors import SeriesDetector
from schemas import MetricPoint
from streams.codec import decode_batchable, encode

if TYPE_CHECKING:
    from streams.app import Pipeline


def attach(p: Pipeline) -> None:
    s, state = p.settings, p.tables.detector_state

    @p.app.agent(p.topics.metrics, name="detect")
    async def detect(stream: Any) -> None:
        async for event in stream.events():
            message = event.message
            decoded = decode_batchable(event.value, MetricPoint, "points")
            for bad in decoded.rejected:
                await p.dead_letters.send(message, "decode", bad.reason, bad.payload)
            for point in decoded.items:
                try:
                    saved = state.get(point.series_id)
                    series = (
                        SeriesDetector.from_state(saved)
                        if saved is not None
                        else SeriesDetector.create(s.detector, s.detector_params, s.policy_params)
                    )
                    observed = series.observe(point)
                    state[point.series_id] = series.to_state()
                except Exception as exc:
                    p.count("detect_errors")
                    await p.dead_letters.send(message, "detect", f"{type(exc).__name__}: {exc}",
                                              point.model_dump_json().encode())  # fmt: skip
                    continue
                p.count("points_processed")
                if observed.detection is not None:
                    p.count("detections_emitted")
                    await p.topics.detections.send(
                        key=point.service.encode(), value=encode(observed.detection)
                    )
            p.counters["last_point_processed_at"] = int(datetime.now(tz=UTC).timestamp())
