"""Settings, from ``WARROOM_*`` environment variables, loaded once in the composition root."""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

if TYPE_CHECKING:
    from detectors.routing import RoutedBanks


class TopicNames(BaseModel):
    """Topic names (defaults from the public contract); dead letters are ``<topic>.dlq``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    metrics: str = Field(
        "metrics.points.v1", description="Metric points, one or a batch, keyed by service."
    )
    logs: str = Field(
        "logs.records.v1", description="Log records, one or a batch, keyed by service."
    )
    detections: str = Field(
        "detections.v1",
        description="Detections from the detectors and from Alertmanager and PagerDuty.",
    )
    commands: str = Field(
        "incidents.commands.v1",
        description="Commands from people and automation (acknowledge, mitigate, resolve, ...).",
    )
    events: str = Field(
        "incidents.events.v1",
        description="The timeline: every change to every incident, append-only, kept for ever.",
    )
    pages: str = Field(
        "mobilization.pages.v1",
        description="One page per incident, escalation step, recipient and channel.",
    )
    receipts: str = Field(
        "mobilization.receipts.v1", description="The outcome of each delivery attempt."
    )
    #: Internal: pages (and digest flushes) re-keyed by ``<recipient>/<channel>``, so that each
    #: destination's rate limit lives in one partition of the ``page-throttle`` table.
    deliveries: str = Field(
        "mobilization.deliveries.v1",
        description="Internal: pages and digest flushes re-keyed by destination.",
    )
    #: Internal: requests to forget entries of the ``automation-log`` once their retention has
    #: run out, each sent to the partition of the timeline events that wrote the entry.
    automation_retention: str = Field(
        "incidents.automation-retention.v1",
        description="Internal: requests to forget automation-log entries.",
    )
    aggregates: str = Field(
        "aggregates.mttr.v1",
        description="MTTD, MTTA, time to restore and resolve, per window (compacted).",
    )
    contributions: str = Field(
        "aggregates.mttr-contributions.v1",
        description="Internal: what one incident contributes to one aggregate.",
    )
    silences: str = Field(
        "silences.v1", description="Silences and maintenance windows (compacted)."
    )
    tokens: str = Field(
        "auth.tokens.v1",
        description="Personal API tokens, as their SHA-256 and person (compacted).",
    )
    changes: str = Field(
        "changes.v1",
        description="Change events (deploys, config changes), keyed by service.",
    )
    # Foreign formats, decoded by the ingest agents into ``metrics`` and ``logs``. The OTLP
    # defaults are the OpenTelemetry Collector kafka exporter's own default topic names.
    otlp_metrics: str = Field(
        "otlp_metrics",
        description="OTLP metrics from the OpenTelemetry Collector's kafka exporter.",
    )
    otlp_logs: str = Field(
        "otlp_logs", description="OTLP logs from the OpenTelemetry Collector's kafka exporter."
    )
    prometheus: str = Field(
        "prometheus.metrics.v1", description="prometheus-kafka-adapter JSON samples."
    )
    json_logs: str = Field("logs.json.v1", description="JSON log events (Vector, Fluent Bit, ...).")
    catalog: str = Field(
        "catalog.v1",
        description="The live catalog and the on-call overrides taken at run time (compacted, "
        "one partition).",
    )

    def inbound(self) -> list[str]:
        """Topics read by agents; each has a dead-letter topic."""
        return [
            self.metrics, self.logs, self.detections, self.commands, self.events, self.pages,
            self.deliveries, self.automation_retention, self.contributions, self.otlp_metrics,
            self.otlp_logs, self.prometheus, self.json_logs, self.changes,
        ]  # fmt: skip

    def all(self) -> list[str]:
        names = list(self.model_dump().values())
        return names + [f"{t}.dlq" for t in self.inbound()]

    @staticmethod
    def dlq(topic: str) -> str:
        return f"{topic}.dlq"


class DetectorRuleConfig(BaseModel):
    """One per-series detector rule (``detectors.routing``): the series whose service matches one
    of ``services`` and whose metric matches one of ``metrics`` (shell patterns; empty: any) are
    watched by ``detector`` with ``params`` and decided by ``policy`` instead of the default."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(
        pattern=r"^[A-Za-z0-9_.:-]*[A-Za-z_.:-][A-Za-z0-9_.:-]*$",
        max_length=100,
        description="The rule's name: not a number, no slash, unique.",
    )
    detector: str = Field(description="The detector of the rule's series.")
    services: tuple[str, ...] = Field((), description="Shell patterns of services (empty: any).")
    metrics: tuple[str, ...] = Field((), description="Shell patterns of metrics (empty: any).")
    params: dict[str, Any] = Field(default_factory=dict, description="The detector's parameters.")
    policy: dict[str, Any] = Field(
        default_factory=dict, description="Decision policy settings, as policy_params."
    )

    @model_validator(mode="after")
    def _buildable(self) -> DetectorRuleConfig:
        from detectors.bank import SeriesBank

        if not self.services and not self.metrics:
            raise ValueError("a rule names services or metrics (for every series, set detector)")
        try:
            SeriesBank(self.detector, self.params, self.policy, capacity=1)
        except (ValueError, TypeError) as exc:
            raise ValueError(f"detector {self.detector!r}: {exc}") from None
        return self


class IngestMappings(BaseModel):
    """Where the ingest decoders find time, message, level and service in foreign records.

    Field names are tried in order; a dotted name matches a flat key (``"log.level"``) or a
    nested path (``{"log": {"level": ...}}``).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    prometheus_service_labels: tuple[str, ...] = Field(
        ("job", "service"), description="Prometheus labels naming the service, the first found."
    )
    json_time_fields: tuple[str, ...] = Field(
        ("timestamp", "@timestamp", "time", "date"), description="Where a JSON log's time is."
    )
    json_message_fields: tuple[str, ...] = Field(
        ("message", "msg", "log"), description="Where a JSON log's message is."
    )
    json_level_fields: tuple[str, ...] = Field(
        ("level", "severity", "log.level"), description="Where a JSON log's level is."
    )
    json_service_fields: tuple[str, ...] = Field(
        (
            "service",
            "service.name",
            "kubernetes.labels.app",
            "kubernetes.labels.app.kubernetes.io/name",
            "kubernetes.labels.k8s-app",
            "kubernetes.container_name",
            "host",
        ),
        description="Where a JSON log's service is.",
    )
    default_service: str | None = Field(
        default=None,
        min_length=1,
        description="Service of entries that name none (none: rejected).",
    )
    """Service for entries that name none (OTLP without ``service.name``, ...); None rejects."""


SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]
TableStore = Literal["memory", "rocksdb"]


#: Fewest characters of an API token the worker starts with.
MIN_API_TOKEN_CHARS = 32
#: Words of the placeholders that guides and shipped files use: a token holding one is a default.
_PLACEHOLDERS = ("changeme", "replaceme", "example", "password", "secret", "default", "warroom")
_GENERATE_ONE = "python -c 'import secrets; print(secrets.token_urlsafe(32))'"


def api_token_problem(token: SecretStr | None) -> str | None:
    """Why the worker must not start with this API token, in one line naming the setting; None
    when it may (a long random token, or none at all: then every write is refused with 403).

    >>> print(api_token_problem(SecretStr("change-me")))  # doctest: +ELLIPSIS
    WARROOM_API_TOKEN is too weak: 9 characters, at least 32 are needed; generate one with ...
    >>> api_token_problem(SecretStr("Yx3v9QeLr2mT8kWb1NcZ5pHd7sFg0aJu")) is None
    True
    """
    if token is None:
        return None
    value = token.get_secret_value()
    plain = "".join(c for c in value.lower() if c.isalnum())
    if len(value) < MIN_API_TOKEN_CHARS:
        why = f"{len(value)} characters, at least {MIN_API_TOKEN_CHARS} are needed"
    elif any(word in plain for word in _PLACEHOLDERS):
        why = "it holds a placeholder word"
    elif len(set(value)) < 8:
        why = f"only {len(set(value))} different characters"
    else:
        return None
    return (
        f"WARROOM_API_TOKEN is too weak: {why}; generate one with {_GENERATE_ONE}, "
        "or unset it to refuse every write"
    )


class Settings(BaseSettings):
    """Everything the worker and the CLI need; secrets are ``SecretStr`` and never printed."""

    model_config = SettingsConfigDict(
        env_prefix="WARROOM_",
        env_nested_delimiter="__",
        frozen=True,
        extra="ignore",
        allow_inf_nan=False,  # an infinite or NaN duration would overflow the deadline arithmetic
    )

    app_id: str = Field(
        default="warroom",
        min_length=1,
        pattern=r"^[A-Za-z0-9._-]+$",
        description="The consumer group and the prefix of the changelog and state topics.",
    )
    bootstrap_servers: str = Field(
        default="127.0.0.1:9092", min_length=1, description="Kafka brokers: host:port[,host:port]."
    )
    partitions: int = Field(
        default=4, ge=1, le=1024, description="Partitions of every topic the worker creates."
    )
    replication_factor: int = Field(
        default=1, ge=1, description="Replication of the topics the worker creates."
    )
    data_dir: Path = Field(Path(".warroom/worker"), description="The worker's local data.")
    table_store: TableStore = Field(
        default="memory",
        description="Where the tables that grow with every incident (incidents, "
        "incident-projection, incident-timelines, mttr-rows, notification-log, automation-log) "
        "keep their rows: memory (restored whole from the changelogs at every start) or rocksdb "
        "(on disk under data_dir, which each worker on a host needs of its own; a worker that "
        "stopped cleanly reads only the changelog records written since).",
    )
    resolved_in_memory_s: float = Field(
        default=3600.0,
        ge=0.0,
        description="A resolved incident stays this long after its resolution among the recent "
        "incidents held in memory (the open listing, the dashboard's recent events, the "
        "open-incident gauge); then it is read from the table store only.",
    )
    catalog_path: Path | None = Field(
        default=None, description="The catalog YAML (services, teams, people, policies, runbooks)."
    )
    web_bind: str = Field("127.0.0.1", description="Address the HTTP API listens on.")
    web_port: int = Field(default=8080, ge=0, le=65535, description="Port of the HTTP API.")
    web_max_body_bytes: int = Field(
        default=1_048_576,
        ge=1024,
        description="Largest request body the HTTP API accepts (413 above).",
    )
    api_token: SecretStr | None = Field(
        default=None, description="Bearer token for writes; without it, writes answer 403."
    )
    private_reads: bool = Field(
        default=False,
        description="Reads need a token too (any role); /healthz, /readyz and signed action "
        "links stay open.",
    )
    action_link_key: SecretStr | None = Field(
        default=None,
        description="Signs the acknowledge and resolve links in pages (HMAC-SHA256); none: "
        "pages carry no action links.",
    )
    action_link_ttl_s: float = Field(
        default=86_400.0,
        ge=60.0,
        le=30 * 86_400.0,
        description="How long an action link acts after its page was made.",
    )
    slack_signing_secret: SecretStr | None = Field(
        default=None,
        description="The Slack app's signing secret: Slack pages carry acknowledge and resolve "
        "buttons, and /api/slack/interactivity accepts requests it signed; none: no buttons.",
    )
    topics: TopicNames = Field(TopicNames(), description="Topic names, by key (see below).")
    detector: str = Field("tolerant_novelty", description="The default metric detector.")
    detector_params: dict[str, Any] = Field(
        default_factory=dict, description="Parameters of the default detector."
    )
    policy_params: dict[str, Any] = Field(
        default_factory=dict,
        description="Decision policy: threshold, for_points, clear_points, repeat_s.",
    )
    detector_rules: tuple[DetectorRuleConfig, ...] = Field(
        default=(), description="Per-series detectors: the first rule that matches a series wins."
    )
    max_series_per_service: int = Field(
        default=10_000,
        ge=1,
        description="Series one service may have; a point of a new series beyond is "
        "dead-lettered with the reason.",
    )
    max_series_per_partition: int = Field(
        default=200_000,
        ge=1,
        description="Series one points partition may hold; a point of a new series beyond is "
        "dead-lettered with the reason.",
    )
    series_idle_s: float = Field(
        default=3 * 86_400.0,
        ge=0.0,
        description="A series without a point for this long (event time) is evicted: its "
        "detector state is dropped, also from the checkpoint (0: kept forever).",
    )
    checkpoint_interval_s: float = Field(
        default=1.0,
        ge=0.0,
        description="How often each partition's detector state is written to its table "
        "(at the soonest: see checkpoint_max_share).",
    )
    checkpoint_max_share: float = Field(
        default=0.2,
        ge=0.01,
        le=1.0,
        description="Checkpoints are being written at most this share of the time (they are "
        "written while scoring goes on): after one that took d seconds the next waits at least "
        "d / share (with "
        "many series changing every second, the checkpoint, not the scoring, would otherwise "
        "set the pace; a crash then replays a little more). The pause is at most 60 s, "
        "whatever the share; from 0.01 to 1.",
    )
    detect_resolves: bool = Field(
        default=True,
        description="Send a resolved detection where a metric series' episode ends (its "
        "policy's clear_points normal points in a row).",
    )
    silence_learned: bool = Field(
        default=True,
        description="Watch every series seen regularly and raise a silence detection when its "
        "expected points stop (catalog heartbeats are watched either way).",
    )
    silence_factor: float = Field(
        default=5.0,
        ge=1.0,
        le=1000.0,
        description="A regular series is silent after this many of its median intervals "
        "without a point (at least silence_floor_s).",
    )
    silence_floor_s: float = Field(
        default=300.0,
        ge=1.0,
        description="The shortest silence a learned cadence can flag, in seconds of event time.",
    )
    silence_min_intervals: int = Field(
        default=5,
        ge=2,
        le=1000,
        description="Intervals between points a series needs before its cadence is learned.",
    )
    silence_live_lag_s: float = Field(
        default=300.0,
        ge=0.0,
        description="A points partition whose newest points are within this many seconds of "
        "their broker time is live: its silence counts by the wall clock too (a replay's "
        "pause does not).",
    )
    change_lookback_s: float = Field(
        default=3600.0,
        gt=0.0,
        description="How long before an incident's impact the review lists the changes to its "
        "service and what it depends on.",
    )
    detect_max_attempts: int = Field(
        default=3,
        ge=1,
        le=100,
        description="A points record whose processing fails this many times is dead-lettered "
        "with the reason and skipped.",
    )
    notifier_timeout_s: float = Field(
        default=5.0, gt=0, description="Timeout of one webhook, Slack or email delivery."
    )
    delivery_attempts: int = Field(
        default=8, ge=1, le=50, description="Tries of a page or webhook before it is dead-lettered."
    )
    delivery_backoff_s: float = Field(
        default=0.5, ge=0, description="First retry delay; it doubles, with jitter."
    )
    delivery_backoff_max_s: float = Field(default=30.0, ge=0, description="Longest retry delay.")
    delivery_deadline_s: float = Field(
        default=120.0,
        ge=0,
        description="Longest time one page or runbook webhook is retried: no retry starts "
        "after it (0: none; the attempts still bound it).",
    )
    log_level: str = Field(
        "info", description="The worker's log level: debug, info, warning, error."
    )
    group_by: tuple[str, ...] = Field(("service",), description="Correlation labels.")
    group_wait_s: float = Field(default=30.0, ge=0.0, description="Alertmanager's group_wait.")
    group_interval_s: float = Field(
        default=300.0, ge=1.0, description="Alertmanager's group_interval."
    )
    repeat_interval_s: float = Field(
        default=4 * 3600.0, ge=60.0, description="Alertmanager's repeat_interval."
    )
    ack_timeout_s: float | None = Field(
        default=None, gt=0.0, description="PagerDuty's acknowledgement timeout (none: off)."
    )
    auto_resolve_s: float | None = Field(
        default=None, gt=0.0, description="PagerDuty's auto-resolve (none: off)."
    )
    stakeholder_update_interval_s: float = Field(
        default=1800.0, ge=0.0, description="Status updates to stakeholders (0: none)."
    )
    group_retention_s: float = Field(
        default=120 * 3600.0,
        ge=0.0,
        description="An idle correlation group is forgotten this long after its last activity "
        "(0: kept forever).",
    )
    delivery_log_retention_s: float = Field(
        default=120 * 3600.0,
        ge=0.0,
        description="Entries of the notification log (pages by dedup key) and of the automation "
        "log (runbook webhooks by incident) are forgotten this long after they were last written; "
        "an incident's automation is kept while it is open (0: kept forever).",
    )
    silence_retention_s: float = Field(
        default=120 * 3600.0,
        ge=0.0,
        description="A silence is deleted from silences.v1 this long after it ended, expired or "
        "saw its incident resolved (0: kept forever).",
    )
    page_rate_per_recipient: int = Field(
        default=10, ge=0, description="Messages per destination per window (0: no limit)."
    )
    page_rate_window_s: float = Field(
        default=60.0, gt=0.0, description="The window of page_rate_per_recipient."
    )
    session_timeout_s: float = Field(
        default=30.0, ge=6.0, le=300.0, description="How soon a dead worker's partitions move."
    )
    ingest: IngestMappings = Field(
        IngestMappings(), description="Where ingest finds fields in foreign records (see below)."
    )
    max_future_s: float = Field(
        default=300.0,
        ge=0.0,
        description="Clock skew allowed: an input whose time is further ahead of the time its "
        "message was received (the Kafka record time, or the HTTP request) is dead-lettered.",
    )
    max_lateness_s: float = Field(
        default=7200.0,
        gt=0.0,
        description="A detection on a point (or log record) older than this when it was "
        "received is recorded, not paged: backfilled data trains the detectors quietly. Two "
        "hours: what Prometheus remote write delivers late from its write-ahead log after an "
        "outage still pages.",
    )
    stall_after_s: float = Field(
        default=60.0, gt=0, description="/healthz fails when a lagging partition is idle this long."
    )
    recovery_stall_s: float = Field(
        default=10.0, gt=0, description="A table recovery idle this long is started over."
    )
    recovery_timeout_s: float = Field(
        default=300.0, gt=0, description="/healthz fails when table recovery takes longer."
    )
    stream_stall_s: float = Field(
        default=10.0,
        gt=0,
        description="An input partition with unread messages that has not moved this long is "
        "sought to its committed offsets, so records the consumer dropped are read again "
        "(the wait doubles while that does not help, up to 300 s).",
    )
    fault_point: str = Field(
        default="",
        description="For fault tests only: <point>[:<nth>] makes the worker SIGKILL itself the "
        "nth time it reaches the point (after-events-before-tables, after-2xx-before-log, "
        "mid-checkpoint, after-checkpoint-commit, mid-rebalance); empty: off.",
    )
    # Kafka connection security, for Faust and for every plain aiokafka client.
    security_protocol: SecurityProtocol = Field("PLAINTEXT", description="Kafka connections.")
    sasl_mechanism: SaslMechanism = Field("PLAIN", description="For the SASL_* protocols.")
    sasl_username: str | None = Field(default=None, description="Needed by the SASL_* protocols.")
    sasl_password: SecretStr | None = Field(
        default=None, description="Needed by the SASL_* protocols."
    )
    ssl_cafile: Path | None = Field(
        default=None, description="PEM CA of the brokers' certificates (none: the system's)."
    )
    ssl_certfile: Path | None = Field(
        default=None, description="Client certificate, for brokers that require mutual TLS."
    )
    ssl_keyfile: Path | None = Field(default=None, description="The client certificate's key.")
    ssl_check_hostname: bool = Field(
        default=True, description="Check that the broker's certificate names its host."
    )
    # Page delivery channels: the webhook signature secret, and the SMTP server for email.
    webhook_secret: SecretStr | None = Field(
        default=None, description="Signs webhook pages (X-Warroom-Signature); none: unsigned."
    )
    public_url: str | None = Field(
        default=None,
        description="Base URL people reach this worker at; pages link to its /incidents/{id}.",
    )
    smtp_host: str | None = Field(
        default=None, description="SMTP server; without it, email pages fail (not retried)."
    )
    smtp_port: int = Field(default=25, ge=1, le=65535, description="SMTP port.")
    smtp_from: str = Field("warroom@localhost", description="Sender address of email pages.")
    smtp_starttls: bool = Field(
        default=False, description="Upgrade SMTP with STARTTLS, verifying the server."
    )
    smtp_username: str | None = Field(default=None, description="SMTP login.")
    smtp_password: SecretStr | None = Field(default=None, description="SMTP password.")

    @field_validator("bootstrap_servers")
    @classmethod
    def _host_ports(cls, value: str) -> str:
        for server in value.split(","):
            host, _, port = server.strip().rpartition(":")
            if not host or not port.isdigit():
                raise ValueError(f"{server!r} is not host:port")
        return value

    @field_validator("fault_point")
    @classmethod
    def _fault_point(cls, value: str) -> str:
        from streams.faults import parse

        parse(value)
        return value

    @model_validator(mode="after")
    def _detector(self) -> Settings:
        from detectors.bank import SeriesBank

        try:
            SeriesBank(self.detector, self.detector_params, self.policy_params, capacity=1)
        except (ValueError, TypeError) as exc:
            raise ValueError(f"detector {self.detector!r}: {exc}") from None
        try:
            self.detector_banks()  # each rule was checked alone; together their names must differ
        except ValueError as exc:
            raise ValueError(f"detector_rules: {exc}") from None
        return self

    def detector_banks(self) -> RoutedBanks:
        """Empty banks for one points partition: a bank per detector rule, then the default."""
        from detectors.cardinality import SeriesLimits
        from detectors.routing import DetectorRule, RoutedBanks

        rules = [
            DetectorRule(r.name, r.detector, r.services, r.metrics, r.params, r.policy)
            for r in self.detector_rules
        ]
        limits = SeriesLimits(
            self.max_series_per_service, self.max_series_per_partition, self.series_idle_s
        )
        return RoutedBanks(self.detector, self.detector_params, self.policy_params, rules, limits)

    @model_validator(mode="after")
    def _security(self) -> Settings:
        if self.security_protocol.startswith("SASL_") and (
            not self.sasl_username or self.sasl_password is None
        ):
            raise ValueError(
                f"security_protocol {self.security_protocol} needs sasl_username and sasl_password"
            )
        if self.ssl_keyfile is not None and self.ssl_certfile is None:
            raise ValueError("ssl_keyfile needs ssl_certfile (the client certificate)")
        return self

    @property
    def uses_tls(self) -> bool:
        return self.security_protocol in ("SSL", "SASL_SSL")

    def ssl_context(self) -> ssl.SSLContext | None:
        """The TLS context for broker connections (None without TLS).

        Verifies the broker against ``ssl_cafile`` (or the system store), checks its host name
        unless ``ssl_check_hostname`` is off, and presents a client certificate if one is set.
        """
        if not self.uses_tls:
            return None
        context = ssl.create_default_context(
            ssl.Purpose.SERVER_AUTH,
            cafile=str(self.ssl_cafile) if self.ssl_cafile is not None else None,
        )
        context.check_hostname = self.ssl_check_hostname
        if self.ssl_certfile is not None:
            context.load_cert_chain(
                str(self.ssl_certfile),
                str(self.ssl_keyfile) if self.ssl_keyfile is not None else None,
            )
        return context

    def kafka_client_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for plain aiokafka clients (producer, consumer, admin).

        >>> Settings(bootstrap_servers="k:9092").kafka_client_kwargs()
        {'bootstrap_servers': 'k:9092', 'security_protocol': 'PLAINTEXT'}
        """
        kwargs: dict[str, Any] = {
            "bootstrap_servers": self.bootstrap_servers,
            "security_protocol": self.security_protocol,
        }
        context = self.ssl_context()
        if context is not None:
            kwargs["ssl_context"] = context
        if self.security_protocol.startswith("SASL_"):
            assert self.sasl_password is not None
            kwargs["sasl_mechanism"] = self.sasl_mechanism
            kwargs["sasl_plain_username"] = self.sasl_username
            kwargs["sasl_plain_password"] = self.sasl_password.get_secret_value()
        return kwargs

    @property
    def detect_group(self) -> str:
        """The consumer group of ``detect``, which reads points outside Faust's group."""
        return f"{self.app_id}-detect"

    @property
    def detector_blocks_topic(self) -> str:
        """Compacted; partition ``p`` holds the detector state of points partition ``p``."""
        return f"{self.app_id}-detector-blocks"

    def broker_urls(self) -> str:
        """Faust's broker URL form: ``kafka://h1:p1;kafka://h2:p2``."""
        return ";".join(f"kafka://{s.strip()}" for s in self.bootstrap_servers.split(","))
