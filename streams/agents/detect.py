"""``detect``: metric points in (``metrics.points.v1``), detections out (``detections.v1``).

Per-series detector state lives in the ``detector-state`` table, keyed by series id and
co-partitioned with the points (which are keyed by service), so it survives restarts.

Two things keep the per-point cost low: the decoded detector of each series is kept in memory
next to the table value it was written as (reused only while the table still holds that very
value, and dropped on every partition revocation), and a message's points update the table
once per series at the end of the message rather than once per point. A crash before that
write replays the whole message from the last written state; the detection ids are derived
from the series and the point's time, so replayed detections dedup downstream.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from detectors import SeriesDetector
from responders.lifecycle import routing_key
from schemas import MetricPoint
from streams.codec import decode_batchable, encode

if TYPE_CHECKING:
    from streams.app import Pipeline


def attach(p: Pipeline) -> None:
    s, state = p.settings, p.tables.detector_state
    # series id -> (the table value last written for it, the detector that value came from)
    decoded: dict[str, tuple[Any, SeriesDetector]] = {}

    @p.app.on_partitions_revoked.connect
    async def forget(app: Any, revoked: Any, **kwargs: Any) -> None:
        decoded.clear()

    def load(series_id: str) -> SeriesDetector:
        saved = state.get(series_id)
        cached = decoded.get(series_id)
        if cached is not None and saved is not None and cached[0] is saved:
            return cached[1]
        if saved is not None:
            return SeriesDetector.from_state(saved)
        return SeriesDetector.create(s.detector, s.detector_params, s.policy_params)

    @p.app.agent(p.topics.metrics, name="detect")
    async def detect(stream: Any) -> None:
        async for event in stream.events():
            message = event.message
            decoded_points = decode_batchable(event.value, MetricPoint, "points")
            for bad in decoded_points.rejected:
                await p.dead_letters.send(message, "decode", bad.reason, bad.payload)
            touched: dict[str, SeriesDetector] = {}
            for point in decoded_points.items:
                sid = point.series_id
                try:
                    series = touched.get(sid) or load(sid)
                    observed = series.observe(point)
                    touched[sid] = series
                except Exception as exc:
                    # The detector may be half-updated: continue from the last written state.
                    touched.pop(sid, None)
                    decoded.pop(sid, None)
                    p.count("detect_errors")
                    await p.dead_letters.send(message, "detect", f"{type(exc).__name__}: {exc}",
                                              point.model_dump_json().encode())  # fmt: skip
                    continue
                p.count("points_processed")
                if observed.detection is not None:
                    p.count("detections_emitted")
                    key = routing_key(observed.detection, s.group_by)
                    await p.topics.detections.send(
                        key=key.encode(), value=encode(observed.detection)
                    )
            for sid, series in touched.items():
                value = series.to_state()
                state[sid] = value
                decoded[sid] = (value, series)
            p.counters["last_point_processed_at"] = int(datetime.now(tz=UTC).timestamp())
