"""The pipeline's shared objects, typed: the topics, the tables, the notifiers by channel and the
services the agents and the web API read.

:mod:`streams.app` builds a :class:`Pipeline` and attaches the agents to it; the agents import
only this module, never the composition root. The notifiers are a mapping from channel to
:class:`responders.ports.Notifier`, the seam where tests put a recording notifier.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

import faust
from faust.types import TopicT

from responders.ports import Notifier
from schemas import Catalog, Channel
from streams.changes import ChangeLog
from streams.deadletter import DeadLetters
from streams.directory import Directory
from streams.live import Live
from streams.live_catalog import InForce, LiveCatalog
from streams.liveness import Partition
from streams.settings import Settings
from streams.tables import OwnedTable

#: A changelog-backed table: str keys, JSON values (Faust serializes both as JSON).
Table = OwnedTable


class DetectService(Protocol):
    """What the web API and the metrics read of the ``detect`` service
    (:class:`streams.detect.Detect`)."""

    @property
    def restoring_since(self) -> float | None: ...

    def offsets(self) -> dict[Partition, tuple[int | None, int]]: ...


@dataclass
class Topics:
    """Faust topic objects; every one reads and writes raw bytes (our codec validates)."""

    metrics: TopicT
    logs: TopicT
    detections: TopicT
    commands: TopicT
    #: What ``open_incidents`` reads: detections and commands (co-partitioned).
    incident_inputs: TopicT
    events: TopicT
    pages: TopicT
    receipts: TopicT
    aggregates: TopicT
    contributions: TopicT
    otlp_metrics: TopicT
    otlp_logs: TopicT
    prometheus: TopicT
    json_logs: TopicT
    deliveries: TopicT
    automation_retention: TopicT
    #: What ``run_automation`` reads: the timeline and its retention requests (co-partitioned).
    automation_inputs: TopicT
    changes: TopicT


@dataclass
class Tables:
    """Changelog-backed tables; names are kebab-case nouns."""

    log_state: Table
    incidents: Table
    open_incidents: Table
    notification_log: Table
    incident_projection: Table
    timelines: Table
    mttr_rows: Table
    mttr_latest: Table
    automation_log: Table
    page_throttle: Table


@dataclass
class Pipeline:
    """Everything the agents and the web API share."""

    settings: Settings
    catalog: Catalog
    app: faust.App
    topics: Topics
    tables: Tables
    dead_letters: DeadLetters
    #: How a page leaves, by channel: ``deliver_pages`` sends every page through one of these.
    notifiers: Mapping[Channel, Notifier]
    #: The live catalog (``catalog.v1`` folded over the file).
    catalogs: LiveCatalog
    #: Silences, tokens, resolved and open incidents, kept in memory.
    directory: Directory
    #: Recent changes of every service.
    changes: ChangeLog
    live: Live = field(default_factory=Live)
    #: The version of the catalog in force (its offset on ``catalog.v1``; None: the file) and
    #: the digest of its content. ``catalog`` and these change together, between inputs.
    catalog_version: int | None = None
    catalog_digest: str = ""
    #: The ``detect`` service (points consumer and detector banks), once attached.
    detect: DetectService | None = None
    ready: bool = False
    counters: dict[str, int] = field(default_factory=dict)

    def count(self, name: str, n: int = 1) -> None:
        self.counters[name] = self.counters.get(name, 0) + n

    def put_in_force(self, in_force: InForce) -> None:
        """Swap the catalog in force: one synchronous step, so that no input sees half of it."""
        if in_force.version != self.catalog_version:
            self.count("catalogs_applied")
        self.catalog = in_force.catalog
        self.catalog_version = in_force.version
        self.catalog_digest = in_force.digest
