"""The shipped deployment files are consistent with the code (no Docker engine runs here)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from streams.app import load_catalog
from streams.settings import Settings, api_token_problem

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "Yx3v9QeLr2mT8kWb1NcZ5pHd7sFg0aJu"


def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return data


def test_compose_runs_kafka_and_a_worker() -> None:
    services = compose()["services"]
    assert services["kafka"]["image"].startswith("apache/kafka:")
    worker = services["worker"]
    assert worker["build"] == "." and (ROOT / "Dockerfile").is_file()
    assert "kafka" in worker["depends_on"]
    listeners = services["kafka"]["environment"]["KAFKA_ADVERTISED_LISTENERS"]
    assert worker["environment"]["WARROOM_BOOTSTRAP_SERVERS"] in listeners


def test_compose_worker_environment_is_valid_settings(monkeypatch: Any) -> None:
    env = compose()["services"]["worker"]["environment"]
    for key, value in env.items():
        monkeypatch.setenv(key, re.sub(r"\$\{WARROOM_API_TOKEN[^}]*\}", TOKEN, str(value)))
    settings = Settings()
    assert settings.web_bind == "0.0.0.0"
    assert api_token_problem(settings.api_token) is None
    mounted = compose()["services"]["worker"]["volumes"][0].split(":")[0]
    assert load_catalog(ROOT / mounted).services


def test_compose_publishes_every_port_on_loopback_only() -> None:
    """The broker speaks PLAINTEXT without authentication: published on all interfaces, anyone
    on the network could write commands and detections."""
    published = [p for s in compose()["services"].values() for p in s.get("ports", [])]
    assert published and all(str(p).startswith("127.0.0.1:") for p in published), published


def test_compose_requires_an_api_token_and_has_no_default() -> None:
    """``${VAR:?message}``: compose refuses to start without it; no placeholder to forget."""
    token = compose()["services"]["worker"]["environment"]["WARROOM_API_TOKEN"]
    assert re.fullmatch(r"\$\{WARROOM_API_TOKEN:\?[^}]+\}", token), token


def test_grafana_dashboard_queries_only_exported_metrics() -> None:
    import json

    from streams.metrics import COUNTERS

    dashboard = json.loads((ROOT / "grafana" / "warroom-dashboard.json").read_text())
    exported = {f"warroom_{name}_total" for name in COUNTERS} | {
        "warroom_dead_letters_total", "warroom_open_incidents_current", "warroom_mttr_incidents",
        "warroom_mttr_open_incidents", "warroom_mttr_seconds", "warroom_mttr_count",
        "warroom_ready",
    }  # fmt: skip
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    used = {m for e in exprs for m in re.findall(r"warroom_[a-z_]+", e)}
    assert used and used <= exported, used - exported
