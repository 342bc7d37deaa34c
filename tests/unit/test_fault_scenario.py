"""The fault suite's mid-checkpoint scenario played without a broker: the detections the
worker's default detector sends for its points, decided with the default timing the suite runs
with, open one incident per fault.

Every point of that scenario is a backfill read at once, so every detection it gives reaches
``open_incidents`` within moments of the others: a fault whose resolved detection follows its
firing one within the group wait is a flap, which opens nothing by design, and the broker test
would wait in vain for its incident.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

from detectors.bank import detection
from detectors.routing import service_metric
from responders.correlation import Group, Step, Timing, on_detection_in_group, on_tick
from schemas import Catalog, Detection, Incident
from streams.codec import decode_points_many
from streams.settings import Settings
from tests.broker.test_fault_points import checkpoint_scenario
from tests.broker.test_faults import SERVICES, catalog

BASE = 1.7e9
#: When the worker reads the backfill: ten minutes after its first point, as in the suite.
READ_AT = datetime.fromtimestamp(BASE + 600, tz=UTC)


def _detections(stages: list[list[tuple[bytes, bytes]]], settings: Settings) -> list[Detection]:
    """What ``detect`` sends for the messages, in order, scored by the default banks."""
    banks = settings.detector_banks()
    out = []
    for stage in stages:
        for _, value in stage:
            batch = decode_points_many([value], [READ_AT.timestamp()], settings.max_future_s)
            _, fired = banks.observe(
                batch.series, batch.values, batch.ts, ends=settings.detect_resolves
            )
            for f in fired:
                series = batch.series[f.index]
                service, metric = service_metric(series)
                row = banks.rows_for([series])[0]
                out.append(
                    detection(
                        f, detector=banks.detector(int(row)), series=series, service=service,
                        metric=metric, labels={}, ts=float(batch.ts[f.index]),
                        value=float(batch.values[f.index]),
                    ).model_copy(update={"received_at": READ_AT})
                )  # fmt: skip
    return out


def _opened(detections: list[Detection], settings: Settings) -> Counter[str]:
    """Incidents opened per service: every detection decided at ``READ_AT`` (one instant, as
    a backfill's are), then the tick of the group wait."""
    s = settings
    timing = Timing(s.group_wait_s, s.group_interval_s, s.repeat_interval_s, s.ack_timeout_s,
                    s.auto_resolve_s)  # fmt: skip
    cat = Catalog.model_validate(catalog("http://127.0.0.1:9/hook"))
    groups = {svc: Group(svc) for svc in SERVICES}
    incidents: dict[str, Incident | None] = dict.fromkeys(SERVICES)
    opened: Counter[str] = Counter()

    def took(svc: str, step: Step) -> None:
        groups[svc] = step.group
        incidents[svc] = step.outcome.incident or incidents[svc]
        opened[svc] += sum(e.kind.value == "opened" for e in step.outcome.events)

    for d in detections:
        took(d.service, on_detection_in_group(groups[d.service], incidents[d.service], d, cat,
                                              timing, READ_AT))  # fmt: skip
    tick_at = READ_AT + timedelta(seconds=s.group_wait_s)
    for svc in SERVICES:
        took(svc, on_tick(groups[svc], incidents[svc], cat, timing, tick_at))
    return opened


def test_the_mid_checkpoint_scenario_opens_one_incident_per_fault_with_default_timing() -> None:
    settings = Settings()
    fault_at, stages = checkpoint_scenario(BASE)
    detections = _detections(stages, settings)
    firing = [d for d in detections if d.status.value == "firing"]
    assert sorted(d.service for d in firing) == SERVICES, detections
    assert all(d.ts.timestamp() == BASE + fault_at[d.service] for d in firing), firing
    assert _opened(detections, settings) == dict.fromkeys(SERVICES, 1), detections
