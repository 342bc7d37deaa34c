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

    metrics: str = "metrics.points.v1"
    logs: str = "logs.records.v1"
    detections: str = "detections.v1"
    commands: str = "incidents.commands.v1"
    events: str = "incidents.events.v1"
    pages: str = "mobilization.pages.v1"
    receipts: str = "mobilization.receipts.v1"
    #: Internal: pages (and digest flushes) re-keyed by ``<recipient>/<channel>``, so that each
    #: destination's rate limit lives in one partition of the ``page-throttle`` table.
    deliveries: str = "mobilization.deliveries.v1"
    #: Internal: requests to forget entries of the ``automation-log`` once their retention has
    #: run out, each sent to the partition of the timeline events that wrote the entry.
    automation_retention: str = "incidents.automation-retention.v1"
    aggregates: str = "aggregates.mttr.v1"
    contributions: str = "aggregates.mttr-contributions.v1"
    silences: str = "silences.v1"
    # Foreign formats, decoded by the ingest agents into ``metrics`` and ``logs``. The OTLP
    # defaults are the OpenTelemetry Collector kafka exporter's own default topic names.
    otlp_metrics: str = "otlp_metrics"
    otlp_logs: str = "otlp_logs"
    prometheus: str = "prometheus.metrics.v1"
    json_logs: str = "logs.json.v1"

    def inbound(self) -> list[str]:
        """Topics read by agents; each has a dead-letter topic."""
        return [
            self.metrics, self.logs, self.detections, self.commands, self.events, self.pages,
            self.deliveries, self.automation_retention, self.otlp_metrics, self.otlp_logs,
            self.prometheus, self.json_logs,
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

    name: str = Field(pattern=r"^[A-Za-z0-9_.:-]*[A-Za-z_.:-][A-Za-z0-9_.:-]*$", max_length=100)
    detector: str
    services: tuple[str, ...] = ()
    metrics: tuple[str, ...] = ()
    params: dict[str, Any] = Field(default_factory=dict)
    policy: dict[str, Any] = Field(default_factory=dict)

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

    prometheus_service_labels: tuple[str, ...] = ("job", "service")
    json_time_fields: tuple[str, ...] = ("timestamp", "@timestamp", "time", "date")
    json_message_fields: tuple[str, ...] = ("message", "msg", "log")
    json_level_fields: tuple[str, ...] = ("level", "severity", "log.level")
    json_service_fields: tuple[str, ...] = (
        "service",
        "service.name",
        "kubernetes.labels.app",
        "kubernetes.labels.app.kubernetes.io/name",
        "kubernetes.labels.k8s-app",
        "kubernetes.container_name",
        "host",
    )
    default_service: str | None = Field(default=None, min_length=1)
    """Service for entries that name none (OTLP without ``service.name``, ...); None rejects."""


SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]


class Settings(BaseSettings):
    """Everything the worker and the CLI need; secrets are ``SecretStr`` and never printed."""

    model_config = SettingsConfigDict(
        env_prefix="WARROOM_",
        env_nested_delimiter="__",
        frozen=True,
        extra="ignore",
        allow_inf_nan=False,  # an infinite or NaN duration would overflow the deadline arithmetic
    )

    app_id: str = Field(default="warroom", min_length=1, pattern=r"^[A-Za-z0-9._-]+$")
    bootstrap_servers: str = Field(default="127.0.0.1:9092", min_length=1)
    partitions: int = Field(default=4, ge=1, le=1024)
    replication_factor: int = Field(default=1, ge=1)
    data_dir: Path = Path(".warroom/worker")
    catalog_path: Path | None = None
    web_bind: str = "127.0.0.1"
    web_port: int = Field(default=8080, ge=0, le=65535)
    web_max_body_bytes: int = Field(default=1_048_576, ge=1024)
    api_token: SecretStr | None = None
    topics: TopicNames = TopicNames()
    detector: str = "tolerant_novelty"
    detector_params: dict[str, Any] = Field(default_factory=dict)
    policy_params: dict[str, Any] = Field(default_factory=dict)
    detector_rules: tuple[DetectorRuleConfig, ...] = Field(
        default=(), description="Per-series detectors: the first rule that matches a series wins."
    )
    checkpoint_interval_s: float = Field(
        default=1.0,
        ge=0.0,
        description="How often each partition's detector state is written to its table.",
    )
    notifier_timeout_s: float = Field(default=5.0, gt=0)
    delivery_attempts: int = Field(default=8, ge=1, le=50)
    delivery_backoff_s: float = Field(default=0.5, ge=0)
    delivery_backoff_max_s: float = Field(default=30.0, ge=0)
    log_level: str = "info"
    group_by: tuple[str, ...] = ("service",)
    group_wait_s: float = Field(default=30.0, ge=0.0, description="Alertmanager's group_wait.")
    group_interval_s: float = Field(default=300.0, ge=1.0)
    repeat_interval_s: float = Field(default=4 * 3600.0, ge=60.0)
    ack_timeout_s: float | None = Field(default=None, gt=0.0)
    auto_resolve_s: float | None = Field(default=None, gt=0.0)
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
    page_rate_window_s: float = Field(default=60.0, gt=0.0)
    session_timeout_s: float = Field(
        default=30.0, ge=6.0, le=300.0, description="How soon a dead worker's partitions move."
    )
    ingest: IngestMappings = IngestMappings()
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
    # Kafka connection security, for Faust and for every plain aiokafka client.
    security_protocol: SecurityProtocol = "PLAINTEXT"
    sasl_mechanism: SaslMechanism = "PLAIN"
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    ssl_cafile: Path | None = None
    ssl_certfile: Path | None = None
    ssl_keyfile: Path | None = None
    ssl_check_hostname: bool = True
    # Page delivery channels: the webhook signature secret, and the SMTP server for email.
    webhook_secret: SecretStr | None = None
    public_url: str | None = Field(
        default=None, description="How people reach this API, for links in pages."
    )
    smtp_host: str | None = None
    smtp_port: int = Field(default=25, ge=1, le=65535)
    smtp_from: str = "warroom@localhost"
    smtp_starttls: bool = False
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None

    @field_validator("bootstrap_servers")
    @classmethod
    def _host_ports(cls, value: str) -> str:
        for server in value.split(","):
            host, _, port = server.strip().rpartition(":")
            if not host or not port.isdigit():
                raise ValueError(f"{server!r} is not host:port")
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
        from detectors.routing import DetectorRule, RoutedBanks

        rules = [
            DetectorRule(r.name, r.detector, r.services, r.metrics, r.params, r.policy)
            for r in self.detector_rules
        ]
        return RoutedBanks(self.detector, self.detector_params, self.policy_params, rules)

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
