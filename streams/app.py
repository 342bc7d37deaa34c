"""Composition root: one Faust app, its topics and tables, the notifiers, and the agents.

Tests and production build the pipeline through the same :func:`build`.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, cast

import faust
from pydantic import ValidationError

from responders.ports import Notifier
from schemas import Catalog, Channel, format_errors
from streams import faults, faust_acks, faust_flush, yaml_guard
from streams.changes import ChangeLog
from streams.deadletter import DeadLetters
from streams.directory import Directory
from streams.faust_lifecycle import PromptTableManager
from streams.live import Live
from streams.live_catalog import LiveCatalog
from streams.liveness import Delivered, StreamWatchdog, stalled_streams
from streams.notifiers.console import ConsoleNotifier
from streams.notifiers.email import EmailNotifier, SmtpConfig
from streams.notifiers.links import ActionLinks, incident_template
from streams.notifiers.slack import SlackNotifier
from streams.notifiers.webhook import WebhookNotifier
from streams.pipeline import Pipeline as Pipeline
from streams.pipeline import Table, Tables, Topics
from streams.settings import Settings
from streams.tables import (
    OwnedTable,
    RecoveryWatchdog,
    per_incident_store,
    recent_incident,
)

log = logging.getLogger(__name__)


class ConfigError(ValueError):
    """Configuration that cannot be used, with the field and the problem."""


def load_catalog(path: Path | None) -> Catalog:
    """Read and validate the catalog YAML (an empty catalog if no path is configured)."""
    if path is None:
        return Catalog()
    try:
        with path.open(encoding="utf-8") as file:
            data = yaml_guard.load(file.read(yaml_guard.MAX_CHARS + 1)) or {}
    except OSError as exc:
        raise ConfigError(f"catalog {path}: cannot read: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"catalog {path}: not UTF-8 text ({exc.reason} at byte {exc.start})"
        ) from None
    except yaml_guard.YamlRefused as exc:
        raise ConfigError(f"catalog {path}: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"catalog {path}: expected a mapping at the top level")
    try:
        return Catalog.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"catalog {path}: {format_errors(exc)}") from None


def catalog_for_command(path: str | None, prog: str) -> Catalog | None:
    """The catalog a command works on: ``path``, else ``WARROOM_CATALOG_PATH``; on any problem
    the reason is printed to stderr (prefixed with ``prog``) and None returned."""
    from streams.settings import Settings

    try:
        found = Path(path) if path else Settings().catalog_path
    except ValidationError as exc:
        print(f"{prog}: invalid settings: {format_errors(exc, 'WARROOM')}", file=sys.stderr)
        return None
    if found is None:
        print(f"{prog}: no catalog (--catalog FILE or WARROOM_CATALOG_PATH)", file=sys.stderr)
        return None
    try:
        return load_catalog(found)
    except ConfigError as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return None


def broker_credentials(settings: Settings) -> Any:
    """Faust's ``broker_credentials`` for the configured security protocol (None: plaintext)."""
    context = settings.ssl_context()
    if settings.security_protocol.startswith("SASL_"):
        assert settings.sasl_password is not None
        return faust.SASLCredentials(
            username=settings.sasl_username,
            password=settings.sasl_password.get_secret_value(),
            ssl_context=context,
            mechanism=settings.sasl_mechanism,
        )
    if context is not None:
        return faust.SSLCredentials(context)
    return None


def _base_url(settings: Settings) -> str:
    """How people reach this API: ``public_url``, else this worker's address."""
    return (settings.public_url or f"http://{settings.web_bind}:{settings.web_port}").rstrip("/")


def _incident_url(settings: Settings) -> str:
    """Where a page's reader finds the incident: its page for people, under ``public_url``,
    else under this worker's own address."""
    return incident_template(_base_url(settings))


def _action_links(settings: Settings) -> ActionLinks | None:
    """The signed action links pages carry, if ``action_link_key`` is set."""
    key = settings.action_link_key
    if key is None:
        return None
    return ActionLinks(_base_url(settings), key.get_secret_value().encode(),
                       settings.action_link_ttl_s)  # fmt: skip


def notifiers_for(settings: Settings) -> dict[Channel, Notifier]:
    """The notifier of every channel, configured from ``settings``."""
    actions = _action_links(settings)
    smtp_password = settings.smtp_password
    webhook_secret = settings.webhook_secret
    return {
        Channel.CONSOLE: ConsoleNotifier(incident_url=_incident_url(settings)),
        Channel.WEBHOOK: WebhookNotifier(
            timeout_s=settings.notifier_timeout_s,
            secret=webhook_secret.get_secret_value() if webhook_secret is not None else None,
            actions=actions,
        ),
        Channel.SLACK: SlackNotifier(
            timeout_s=settings.notifier_timeout_s,
            incident_url=_incident_url(settings),
            actions=actions,
            buttons=settings.slack_signing_secret is not None,
        ),
        Channel.EMAIL: EmailNotifier(
            SmtpConfig(
                host=settings.smtp_host,
                port=settings.smtp_port,
                sender=settings.smtp_from,
                starttls=settings.smtp_starttls,
                username=settings.smtp_username,
                password=smtp_password.get_secret_value() if smtp_password is not None else None,
                timeout_s=max(settings.notifier_timeout_s, 10.0),
            ),
            incident_url=_incident_url(settings),
            actions=actions,
        ),
    }


def _faust_app(settings: Settings) -> faust.App:
    return faust.App(
        settings.app_id,
        broker=settings.broker_urls(),
        broker_credentials=broker_credentials(settings),
        store="memory://",
        # Rows of partitions given away in a rebalance are dropped, not served stale.
        Table=OwnedTable,
        TableManager=PromptTableManager,  # no fixed pause before recovery
        datadir=str(settings.data_dir),
        autodiscover=False,
        web_enabled=False,
        topic_partitions=settings.partitions,
        topic_replication_factor=settings.replication_factor,
        topic_allow_declare=True,
        consumer_auto_offset_reset="earliest",
        producer_acks=-1,
        table_standby_replicas=0,
        broker_commit_interval=1.0,
        # Faust's default waits, on a rebalance and on shutdown, for every message handed to a
        # stream to be acknowledged; one it never acknowledges (seen on incidents.events.v1)
        # hangs the worker for minutes. Every agent's processing is deterministic and
        # idempotent (an input processed again writes the same bytes), so a message caught in
        # flight is simply processed again by the partition's next owner.
        stream_wait_empty=False,
        broker_session_timeout=settings.session_timeout_s,
        broker_heartbeat_interval=settings.session_timeout_s / 10,
        logging_config=None,
    )


def _topics(app: faust.App, settings: Settings) -> Topics:
    names = settings.topics

    def topic(*topic_names: str) -> faust.TopicT:
        return app.topic(
            *topic_names,
            partitions=settings.partitions,
            key_serializer="raw",
            value_serializer="raw",
        )

    return Topics(
        metrics=topic(names.metrics),
        logs=topic(names.logs),
        detections=topic(names.detections),
        commands=topic(names.commands),
        incident_inputs=topic(names.detections, names.commands),
        events=topic(names.events),
        pages=topic(names.pages),
        receipts=topic(names.receipts),
        aggregates=topic(names.aggregates),
        contributions=topic(names.contributions),
        otlp_metrics=topic(names.otlp_metrics),
        otlp_logs=topic(names.otlp_logs),
        prometheus=topic(names.prometheus),
        json_logs=topic(names.json_logs),
        deliveries=topic(names.deliveries),
        automation_retention=topic(names.automation_retention),
        automation_inputs=topic(names.events, names.automation_retention),
        changes=topic(names.changes),
    )


def _tables(app: faust.App, settings: Settings) -> Tables:
    from streams.agents import deliver_pages

    def table(name: str, **kwargs: Any) -> Table:
        # No key/value types: Faust serializes both as JSON (str keys, plain-data values).
        return cast(Table, app.Table(name, partitions=settings.partitions, **kwargs))

    def big(name: str, **kwargs: Any) -> Table:
        """A table that grows with every incident, in the configured store."""
        return table(name, **per_incident_store(settings, name), **kwargs)

    return Tables(
        log_state=table("log-state"),
        incidents=big("incidents", keep=recent_incident(settings.resolved_in_memory_s)),
        open_incidents=table("open-incidents"),
        notification_log=big("notification-log", keep=deliver_pages.pending),
        incident_projection=big("incident-projection"),
        timelines=big("incident-timelines"),
        mttr_rows=big("mttr-rows"),
        mttr_latest=table("mttr-latest"),
        automation_log=big("automation-log"),
        page_throttle=table("page-throttle"),
    )


def assemble(
    app: faust.App,
    settings: Settings,
    catalog: Catalog,
    notifiers: Mapping[Channel, Notifier] | None = None,
) -> Pipeline:
    """The pipeline over ``app``: its topics, tables, dead letters, notifiers and services, with
    no agent attached yet. ``notifiers`` replaces the configured notifier of each channel it
    names (the others stay as configured)."""
    live = Live()
    # The live catalog tells the pipeline (made just below) of each catalog put in force.
    catalogs = LiveCatalog(catalog, on_change=lambda in_force: pipeline.put_in_force(in_force))
    pipeline = Pipeline(
        settings=settings,
        catalog=catalog,
        app=app,
        topics=_topics(app, settings),
        tables=_tables(app, settings),
        dead_letters=DeadLetters(app),
        notifiers={**notifiers_for(settings), **(notifiers or {})},
        catalogs=catalogs,
        directory=Directory(settings, live, catalogs),
        changes=ChangeLog(settings),
        live=live,
    )
    pipeline.put_in_force(catalogs.in_force)
    return pipeline


def build(
    settings: Settings,
    catalog: Catalog,
    notifiers: Mapping[Channel, Notifier] | None = None,
) -> Pipeline:
    """Create the Faust app, :func:`assemble` the pipeline over it and attach the agents."""
    faust_flush.install()  # offsets never run ahead of buffered changelog records
    faust_acks.install()  # nor of messages skipped during a rebalance
    faults.arm(settings.fault_point, settings.data_dir)  # off unless a fault test sets it
    app = _faust_app(settings)
    pipeline = assemble(app, settings, catalog, notifiers)
    from streams import detect
    from streams.agents import (
        aggregate_mttr,
        deliver_pages,
        ingest_jsonlogs,
        ingest_otlp,
        ingest_prometheus,
        join_changes,
        mine_logs,
        open_incidents,
        project_timeline,
        run_automation,
    )

    for agent in (
        detect, mine_logs, open_incidents, deliver_pages, project_timeline, aggregate_mttr,
        ingest_otlp, ingest_prometheus, ingest_jsonlogs, run_automation, join_changes,
    ):  # fmt: skip
        agent.attach(pipeline)

    @app.task
    async def restart_stalled_recovery() -> None:
        dog = RecoveryWatchdog(settings.recovery_stall_s)
        recovery: Any = getattr(app.tables, "recovery")  # noqa: B009 (not in Faust's types)
        while not app.should_stop:
            await asyncio.sleep(1.0)
            remaining = recovery.active_remaining_total() if recovery.in_recovery else 0
            if dog.check(time.monotonic(), recovery.in_recovery and remaining > 0, remaining):
                log.warning(
                    "table recovery made no progress for %gs with %d changelog records left "
                    "to read; starting it over",
                    settings.recovery_stall_s,
                    remaining,
                )
                recovery.signal_recovery_start.set()

    @app.timer(interval=60.0)
    async def sweep_recent_rows() -> None:
        # Resolved incidents leave memory resolved_in_memory_s after their resolution.
        pipeline.tables.incidents.sweep()

    # Before the app starts: a sensor added while records are being sent misses their start.
    delivered = Delivered()
    app.sensors.add(delivered)

    @app.task
    async def reseek_stalled_streams() -> None:
        dog = StreamWatchdog(settings.stream_stall_s, max_wait_s=300.0)
        while not app.should_stop:
            await asyncio.sleep(1.0)
            stalled = stalled_streams(app, dog, delivered, time.monotonic(), pipeline.ready)
            if stalled:
                log.warning(
                    "%s: unread messages and no progress; seeking to the committed offsets",
                    ", ".join(f"{topic}[{partition}]" for topic, partition in stalled),
                )
                await app.consumer.perform_seek()

    faults.watch_rebalances(app, lambda: pipeline.ready)

    @app.task
    async def mark_ready() -> None:
        # Faust starts app tasks once table recovery has completed.
        pipeline.ready = True
        log.info("worker ready: tables recovered, agents running")

    return pipeline
