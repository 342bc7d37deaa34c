"""Settings, from ``WARROOM_*`` environment variables, loaded once in the composition root."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


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
    aggregates: str = "aggregates.mttr.v1"

    def inbound(self) -> list[str]:
        """Topics read by agents; each has a dead-letter topic."""
        return [self.metrics, self.logs, self.detections, self.commands, self.events, self.pages]

    def all(self) -> list[str]:
        names = list(self.model_dump().values())
        return names + [f"{t}.dlq" for t in self.inbound()]

    @staticmethod
    def dlq(topic: str) -> str:
        return f"{topic}.dlq"


class Settings(BaseSettings):
    """Everything the worker and the CLI need; secrets are ``SecretStr`` and never printed."""

    model_config = SettingsConfigDict(
        env_prefix="WARROOM_", env_nested_delimiter="__", frozen=True, extra="ignore"
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
    detector: str = "median_mad"
    detector_params: dict[str, Any] = Field(default_factory=dict)
    policy_params: dict[str, Any] = Field(default_factory=dict)
    notifier_timeout_s: float = Field(default=5.0, gt=0)
    delivery_attempts: int = Field(default=4, ge=1, le=20)
    delivery_backoff_s: float = Field(default=0.5, ge=0)
    log_level: str = "info"

    @field_validator("bootstrap_servers")
    @classmethod
    def _host_ports(cls, value: str) -> str:
        for server in value.split(","):
            host, _, port = server.strip().rpartition(":")
            if not host or not port.isdigit():
                raise ValueError(f"{server!r} is not host:port")
        return value

    def broker_urls(self) -> str:
        """Faust's broker URL form: ``kafka://h1:p1;kafka://h2:p2``."""
        return ";".join(f"kafka://{s.strip()}" for s in self.bootstrap_servers.split(","))
