"""``GET /metrics``: the worker's counters and the MTTR aggregates in Prometheus text format.

``COUNTERS`` is the registry of the worker's counters: every name given to ``Pipeline.count``
(or to the counters of ``each_input``, ``LogRetention`` and the engine's ``Decision.counts``) is
declared here with its help text, and each is exported as ``warroom_<name>_total``
(``tests/unit/test_counters.py`` fails on a counter written but not declared). A counter
written under a name not declared is exported all the same, with a help text that says so.

Aggregates are exported for the rolling windows (24h, 7d, 30d) only, to keep label
cardinality bounded; tumbling windows are on ``aggregates.mttr.v1`` and ``/api/mttr``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from responders.mttr import ROLLING
from streams.tables import OwnedTable

if TYPE_CHECKING:
    from streams.pipeline import Pipeline

_STAGES = {
    "detect": "time_to_detect",
    "acknowledge": "time_to_acknowledge",
    "restore": "time_to_restore",
    "resolve": "time_to_resolve",
}
_STATS = {"mean": "mean_s", "p50": "p50_s", "p90": "p90_s", "p99": "p99_s"}
#: Every counter of the worker: its name (exported as ``warroom_<name>_total``) and help text.
COUNTERS = {
    "points_processed": "Metric points scored by the detectors.",
    "detections_emitted": "Detections sent to detections.v1.",
    "detections_resolved": "Of those, resolved detections: a metric episode that ended.",
    "detect_errors": "Failures while scoring points (each is retried from the checkpoint).",
    "detect_records_skipped": "Points records dead-lettered and skipped after failing "
    "detect_max_attempts times.",
    "checkpoints_written": "Detector checkpoints written (each covers the partitions due).",
    "checkpoint_bytes": "Bytes of detector checkpoint parts (and silence watches) written.",
    "checkpoint_write_ms": "Milliseconds spent writing detector checkpoints (encoding, the "
    "broker's acknowledgements), whose share of the time checkpoint_max_share bounds.",
    "checkpoint_deciding_blocks": "Detector checkpoint block parts written at once, without a "
    "commit, because a series' policy was deciding (a run began, an episode is on).",
    "checkpoints_lost": "Detector checkpoints the broker did not take (every partition went "
    "back to its last; reading again waits longer after each in a row).",
    "checkpoint_blocks_too_large": "Detector checkpoint blocks not written because one series "
    "alone encodes past the record limit (that series starts afresh after a restore).",
    "incidents_opened": "Incidents opened by this worker.",
    "incidents_unrouted": "Times an incident's own escalation policy paged nobody (an unlisted "
    "service without default_team, a step that resolves to nobody); the fallback policy, if "
    "any, was paged instead.",
    "groups_forgotten": "Idle correlation groups forgotten after their retention.",
    "notification_log_forgotten": "Notification log entries (pages by dedup key) forgotten "
    "after their retention.",
    "automation_log_forgotten": "Automation log entries (resolved incidents' runbook webhooks) "
    "forgotten after their retention.",
    "pages_delivered": "Pages delivered by a notifier.",
    "pages_dead_lettered": "Pages dead-lettered after the last retry.",
    "pages_held": "Pages held by a destination's rate limit for a digest.",
    "digests_sent": "Digests of held pages delivered.",
    "delivery_errors": "Messages of the delivery stage that failed unexpectedly (dead-lettered).",
    "automation_calls": "Runbook webhooks called (each counted once, with its retries).",
    "automation_errors": "Timeline events of the automation stage that failed unexpectedly "
    "(dead-lettered, stage automation).",
    "incident_errors": "Detections and commands whose processing failed unexpectedly after "
    "their decision (dead-lettered, stage incidents).",
    "detections_silenced": "Firing detections matched by an active silence or maintenance "
    "window: recorded, not paged.",
    "flaps_suppressed": "Flaps suppressed: every held signal of a new group recovered within "
    "group_wait_s, so no incident opened.",
    "projection_errors": "Timeline events that could not be projected (dead-lettered, stage "
    "project).",
    "aggregate_errors": "MTTR contributions that could not be aggregated (dead-lettered, stage "
    "aggregate_mttr).",
    "change_errors": "Change events that could not be joined to open incidents (dead-lettered, "
    "stage join_changes).",
    "deliveries_resumed": "Unfinished deliveries (pending after a crash or a rebalance) resumed.",
    "log_records_processed": "Log records mined.",
    "mine_logs_errors": "Services' log records (or whole messages) whose mining failed "
    "(dead-lettered, stage mine_logs).",
    "ingest_errors": "Messages an ingest agent failed to decode or publish unexpectedly "
    "(dead-lettered whole).",
    "ingest_prometheus_entries": "Samples from prometheus-kafka-adapter sent on as points.",
    "ingest_prometheus_rejected": "Samples from prometheus-kafka-adapter dead-lettered.",
    "ingest_otlp_entries": "OTLP data points and log records sent on as points and records.",
    "ingest_otlp_rejected": "OTLP data points and log records dead-lettered.",
    "ingest_jsonlogs_entries": "JSON log events sent on as log records.",
    "ingest_jsonlogs_rejected": "JSON log events dead-lettered.",
    "series_refused_per_service": "Points of new series dead-lettered: their service had "
    "max_series_per_service series.",
    "series_refused_per_partition": "Points of new series dead-lettered: their partition held "
    "max_series_per_partition series.",
    "series_evicted": "Series evicted after series_idle_s without a point.",
    "detections_late": "Firing detections on data received after WARROOM_MAX_LATENESS_S: "
    "recorded, not paged.",
    "inputs_rekeyed": "Detections and commands sent again under their correlation group's key.",
    "catalogs_applied": "Catalogs from catalog.v1 put in force by this worker.",
    "silences_detected": "Silences found: a series, service or named heartbeat whose expected "
    "points stopped (a firing detection of the silence detector).",
    "silences_resolved": "Silences ended by a returning point (a resolved silence detection).",
    "heartbeats_received": "Heartbeats received by POST /api/heartbeats/{name}.",
    "changes_received": "Change events received by POST /api/changes.",
}


#: The help text of a counter written under a name that ``COUNTERS`` does not declare.
UNDECLARED = "A counter not declared in streams.metrics.COUNTERS."


def counter_families(written: dict[str, int]) -> Iterator[Metric]:
    """Every declared counter (0 until written), then any written but not declared."""
    for name, doc in COUNTERS.items():
        yield CounterMetricFamily(f"warroom_{name}", doc, value=written.get(name, 0))
    for name in sorted(set(written) - set(COUNTERS)):
        yield CounterMetricFamily(f"warroom_{name}", UNDECLARED, value=written[name])


class _PipelineCollector(Collector):
    def __init__(self, pipeline: Pipeline) -> None:
        self.p = pipeline

    def collect(self) -> Iterator[Metric]:
        p = self.p
        yield GaugeMetricFamily("warroom_ready", "1 when tables are recovered.", value=p.ready)
        yield from counter_families(p.counters)
        detect = p.detect
        banks = getattr(detect, "banks", {})
        yield GaugeMetricFamily(
            "warroom_series",
            "Series watched by the detectors on this worker's points partitions.",
            value=sum(len(b) for b in list(banks.values())),
        )
        for name, at, doc in (
            ("first", getattr(detect, "first_batch_at", None), "began scoring"),
            ("last", getattr(detect, "last_batch_at", None), "was scored"),
        ):
            yield GaugeMetricFamily(
                f"warroom_points_{name}_batch_at",
                f"Unix time the {name} batch of points {doc} (0: none yet).",
                value=at or 0.0,
            )
        yield GaugeMetricFamily(
            "warroom_points_processed_by_last_batch",
            "Points processed when the last batch of points ended (a batch's points are counted "
            "before its detections and checkpoint are written).",
            value=getattr(detect, "processed_by_last_batch", 0),
        )
        catalogs = p.catalogs
        yield GaugeMetricFamily(
            "warroom_catalog_version",
            "Version (offset on catalog.v1) of the catalog in force; -1: the catalog file.",
            value=-1 if p.catalog_version is None else p.catalog_version,
        )
        yield GaugeMetricFamily(
            "warroom_oncall_overrides",
            "On-call overrides taken at run time that this worker holds (ended ones included).",
            value=len(catalogs.overrides) if catalogs is not None else 0,
        )
        yield CounterMetricFamily(
            "warroom_catalog_records_skipped",
            "Records of catalog.v1 that did not validate, skipped (the last good one stays).",
            value=catalogs.skipped if catalogs is not None else 0,
        )
        dlq = CounterMetricFamily(
            "warroom_dead_letters", "Messages dead-lettered.", labels=["topic", "stage"]
        )
        for (topic, stage), count in sorted(p.dead_letters.counts.items()):
            dlq.add_metric([topic, stage], count)
        yield dlq
        yield from self._incidents()
        yield from self._aggregates()
        yield self._resident_rows()

    def _resident_rows(self) -> Metric:
        gauge = GaugeMetricFamily(
            "warroom_table_rows_in_memory",
            "Rows a table holds in this worker's memory: every row of its owned partitions "
            "with the memory store; with the rocksdb store only its recent rows (open "
            "incidents and those resolved less than resolved_in_memory_s ago, deliveries "
            "not finished).",
            labels=["table"],
        )
        for table in vars(self.p.tables).values():
            if isinstance(table, OwnedTable):
                gauge.add_metric([table.name], table.resident_rows())
        return gauge

    def _incidents(self) -> Iterator[Metric]:
        gauge = GaugeMetricFamily(
            "warroom_open_incidents_current",
            "Incidents not yet resolved, by service, severity and status.",
            labels=["service", "severity", "status"],
        )
        counts: dict[tuple[str, str, str], int] = {}
        for value in list(self.p.tables.incidents.recent.values()):  # every open incident
            if value["status"] != "resolved":
                key = (value["service"], value["severity"], value["status"])
                counts[key] = counts.get(key, 0) + 1
        for labels, count in sorted(counts.items()):
            gauge.add_metric(list(labels), count)
        yield gauge

    def _aggregates(self) -> Iterator[Metric]:
        labels = ["dimension", "value", "window"]
        incidents = GaugeMetricFamily(
            "warroom_mttr_incidents", "Incidents opened in the window.", labels=labels
        )
        still_open = GaugeMetricFamily(
            "warroom_mttr_open_incidents", "Of those, not yet resolved.", labels=labels
        )
        seconds = GaugeMetricFamily(
            "warroom_mttr_seconds",
            "Time to detect/acknowledge/restore/resolve: mean and exact percentiles.",
            labels=[*labels, "stage", "stat"],
        )
        counted = GaugeMetricFamily(
            "warroom_mttr_count",
            "Incidents that reached the stage, in the window.",
            labels=[*labels, "stage"],
        )
        rows: list[dict[str, Any]] = [
            a for a in list(self.p.tables.mttr_latest.values()) if a["window"] in ROLLING
        ]
        for a in sorted(rows, key=lambda a: a["key"]):
            base = [a["dimension"], a["value"], a["window"]]
            incidents.add_metric(base, a["incidents"])
            still_open.add_metric(base, a["open_incidents"])
            for stage, field in _STAGES.items():
                stats = a[field]
                counted.add_metric([*base, stage], stats["count"])
                for stat, key in _STATS.items():
                    if stats[key] is not None:
                        seconds.add_metric([*base, stage, stat], stats[key])
        yield from (incidents, still_open, seconds, counted)


def render_metrics(pipeline: Pipeline) -> bytes:
    """The exposition text for one scrape."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_PipelineCollector(pipeline))
    return generate_latest(registry)
