"""The shipped deployment files are consistent with the code (no Docker engine runs here)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from streams.app import load_catalog
from streams.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


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
        monkeypatch.setenv(key, str(value).replace("${WARROOM_API_TOKEN:-change-me}", "x"))
    settings = Settings()
    assert settings.web_bind == "0.0.0.0"
    mounted = compose()["services"]["worker"]["volumes"][0].split(":")[0]
    assert load_catalog(ROOT / mounted).services


def test_grafana_dashboard_queries_only_exported_metrics() -> None:
    import json
    import re

    from streams.metrics import _COUNTERS

    dashboard = json.loads((ROOT / "grafana" / "warroom-dashboard.json").read_text())
    exported = {f"warroom_{name}_total" for name in _COUNTERS} | {
        "warroom_dead_letters_total", "warroom_open_incidents_current", "warroom_mttr_incidents",
        "warroom_mttr_open_incidents", "warroom_mttr_seconds", "warroom_mttr_count",
        "warroom_ready",
    }  # fmt: skip
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    used = {m for e in exprs for m in re.findall(r"warroom_[a-z_]+", e)}
    assert used and used <= exported, used - exported
