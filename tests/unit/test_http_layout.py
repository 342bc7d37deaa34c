"""The HTTP API is one package, ``streams.http``, and each route is served by the module of its
resource: nothing else in the shell serves HTTP, and no module is a grab-bag of routes."""

from __future__ import annotations

import ast
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from streams.settings import Settings

ROOT = Path(__file__).resolve().parents[2]

#: Path prefixes (the longest that matches wins) and the module that serves them.
OWNERS = [
    ("/healthz", "health"),
    ("/readyz", "health"),
    ("/metrics", "health"),
    ("/api/incidents", "incidents"),
    ("/api/mttr", "dashboard"),
    ("/api/events", "dashboard"),
    ("/api/stream", "dashboard"),
    ("/api/alerts/", "alerts"),
    ("/api/silences", "silences"),
    ("/incidents/", "page"),
    ("/static/", "page"),
    ("/api/overrides", "oncall"),
    ("/api/oncall", "oncall"),
    ("/api/schedules/", "oncall"),
    ("/api/people/", "oncall"),
    ("/api/tokens", "tokens"),
    ("/api/whoami", "tokens"),
    ("/act/", "links"),
    ("/api/slack/", "slack"),
    ("/api/openapi.json", "openapi"),
    ("/api/changes", "signals"),
    ("/api/heartbeats/", "signals"),
]


def served() -> list[tuple[str, str, str]]:
    """(method, path, module of the handler) of every route the worker's API serves."""
    from streams.http.server import Api

    pipeline: Any = SimpleNamespace(settings=Settings())
    app = Api(pipeline).app()
    return [
        (route.method, route.resource.canonical, route.handler.__module__)
        for route in app.router.routes()
        if route.method != "HEAD" and route.resource is not None
    ]


def owner(path: str) -> str | None:
    """The module ``OWNERS`` gives ``path`` (``/`` is the dashboard's), or None."""
    matching = [(len(prefix), module) for prefix, module in OWNERS if path.startswith(prefix)]
    if path == "/":
        matching = [(1, "dashboard")]
    return f"streams.http.{max(matching)[1]}" if matching else None


def test_every_route_is_served_by_the_module_of_its_resource() -> None:
    routes = served()
    assert len(routes) > 40
    wrong = [f"{m} {p}: {module}" for m, p, module in routes if module != owner(p)]
    assert wrong == []


def _serves_http(path: Path) -> bool:
    """Whether a module imports aiohttp's server side (``aiohttp.web``)."""
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if module.startswith("aiohttp.web") or (
                module == "aiohttp" and any(a.name == "web" for a in node.names)
            ):
                return True
        if isinstance(node, ast.Import) and any(
            a.name.startswith("aiohttp.web") for a in node.names
        ):
            return True
    return False


def test_nothing_outside_streams_http_serves_http() -> None:
    http = ROOT / "streams" / "http"
    outside = [p for p in sorted((ROOT / "streams").rglob("*.py")) if http not in p.parents]
    assert [str(p.relative_to(ROOT)) for p in outside if _serves_http(p)] == []


@pytest.mark.parametrize(
    ("text", "serves"),
    [
        ("from aiohttp import web\n", True),
        ("import aiohttp.web\n", True),
        ("from aiohttp.web import get\n", True),
        ("import aiohttp\nfrom aiohttp import ClientSession\n", False),
    ],
    ids=["from-aiohttp-import-web", "import-aiohttp-web", "from-aiohttp-web", "client-only"],
)
def test_the_check_tells_a_server_module_from_a_client(
    tmp_path: Path, text: str, serves: bool
) -> None:
    module = tmp_path / "m.py"
    module.write_text(text)
    assert _serves_http(module) is serves
