"""The documentation keeps up with the code: the generated references are current, every setting
and command is in them, and every HTTP route the worker serves is on the HTTP API page."""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from streams.cli import parser
from streams.http.server import Api
from streams.settings import DetectorRuleConfig, IngestMappings, Settings, TopicNames
from tools import gen_reference
from tools.gen_reference import REGENERATE, generated, undescribed_settings

ROOT = Path(__file__).resolve().parents[2]
HTTP_PAGE = ROOT / "docs" / "http-api.md"


@pytest.mark.parametrize(
    "path", [gen_reference.CLI_PATH, gen_reference.SETTINGS_PATH], ids=["cli", "settings"]
)
def test_the_committed_reference_is_what_the_generator_writes_now(path: Path) -> None:
    expected = generated()[path]
    committed = path.read_text(encoding="utf-8") if path.exists() else ""
    assert committed == expected, (
        f"{path.relative_to(ROOT)} is stale (a command, option or setting changed): "
        f"run {REGENERATE} and commit the result"
    )


@pytest.mark.parametrize(
    "model", [Settings, TopicNames, IngestMappings, DetectorRuleConfig], ids=lambda m: m.__name__
)
def test_every_setting_has_a_description(model: Any) -> None:
    missing = undescribed_settings(model)
    assert missing == [], (
        f"{model.__name__} fields without description=: {', '.join(missing)} "
        f"(streams/settings.py); then run {REGENERATE}"
    )


def _parsers(
    root: argparse.ArgumentParser, words: tuple[str, ...]
) -> list[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    found = [(words, root)]
    for action in root._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found += _parsers(sub, (*words, name))
    return found


def test_the_cli_reference_has_every_command_and_option() -> None:
    text = gen_reference.cli_reference(parser())
    for words, command in _parsers(parser(), ("warroom",)):
        if len(words) > 1:
            assert f"## {' '.join(words)}\n" in text, f"{' '.join(words)} is not in the reference"
        for action in command._actions:
            for option in action.option_strings:
                if option not in ("-h", "--help"):
                    assert f"`{option}" in text, f"{' '.join(words)} {option} is missing"


def test_the_settings_reference_names_every_variable_with_its_default() -> None:
    text = gen_reference.settings_reference(Settings, "WARROOM_")
    for name in Settings.model_fields:
        assert f"| `WARROOM_{name.upper()}` |" in text
    assert "| `WARROOM_PARTITIONS` | integer, ≥ 1, ≤ 1024 | `4` |" in text
    assert "`WARROOM_GROUP_RETENTION_S` | number, ≥ 0 | `432000` (120 h) |" in text
    for key in TopicNames.model_fields:
        assert f"| `{key}` |" in text


def _routes() -> list[tuple[str, str]]:
    """Every (method, path) the worker's HTTP API serves, from the application it builds."""
    pipeline: Any = SimpleNamespace(settings=Settings())
    app = Api(pipeline).app()
    return sorted(
        {
            (route.method, route.resource.canonical)
            for route in app.router.routes()
            if route.method != "HEAD" and route.resource is not None
        }
    )


def test_the_routes_are_collected_from_the_application() -> None:
    routes = _routes()
    assert ("GET", "/healthz") in routes
    assert ("POST", "/api/alerts/alertmanager") in routes  # from streams/http/alerts.py
    assert ("DELETE", "/api/silences/{id}") in routes  # from streams/http/silences.py


def _undocumented(routes: list[tuple[str, str]], page: str) -> list[str]:
    """The routes not written on the page as `METHOD /path` (in code)."""
    documented = set(re.findall(r"`(GET|POST|PUT|PATCH|DELETE) (/[^`\s?\[]*)", page))
    return [f"{m} {p}" for m, p in routes if (m, p) not in documented]


def test_every_route_is_on_the_http_api_page() -> None:
    missing = _undocumented(_routes(), HTTP_PAGE.read_text(encoding="utf-8"))
    assert missing == [], f"routes missing from docs/http-api.md: {', '.join(missing)}"


def test_a_route_named_only_in_passing_is_undocumented() -> None:
    page = "| `GET /api/incidents` | ... |\nSee /api/mttr and `POST /api/incidents/{id}`.\n"
    routes = [("GET", "/api/incidents"), ("GET", "/api/mttr"), ("POST", "/api/incidents/{id}")]
    assert _undocumented(routes, page) == ["GET /api/mttr"]


def test_every_incident_action_is_on_the_http_api_page() -> None:
    from streams.http.incidents import ACTIONS

    page = HTTP_PAGE.read_text(encoding="utf-8")
    missing = [a for a in ACTIONS if f"`POST /api/incidents/{{id}}/{a}`" not in page]
    assert missing == [], f"actions missing from docs/http-api.md: {', '.join(missing)}"


def test_a_new_option_or_setting_changes_the_reference() -> None:
    before = gen_reference.cli_reference(parser())
    changed = parser()
    worker = dict(_parsers(changed, ("warroom",)))[("warroom", "worker")]
    worker.add_argument("--drain", action="store_true", help="finish in-flight work first")
    assert gen_reference.cli_reference(changed) != before

    class More(Settings):
        shiny: int = 3

    assert gen_reference.settings_reference(More, "WARROOM_") != (
        gen_reference.settings_reference(Settings, "WARROOM_")
    )
    assert undescribed_settings(More) == ["shiny"]


@pytest.mark.parametrize(
    ("text", "cell"),
    [
        ("plain", "plain"),
        ("a | b", "a \\| b"),
        ("`x|y` or `z`", "<code>x&#124;y</code> or `z`"),
        ("two\n  lines", "two lines"),
    ],
    ids=["plain", "bar in text", "bar in code", "lines joined"],
)
def test_a_table_cell_escapes_its_bars_where_the_site_hides_the_escape(
    text: str, cell: str
) -> None:
    assert gen_reference._cell(text) == cell
