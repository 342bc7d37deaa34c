"""The incident page's files and links, checked without a browser: one HTML, one script, one
style sheet, all shipped; the script never turns data into markup; nothing inline that the
page's Content-Security-Policy would have to allow; pages link to ``/incidents/{id}``."""

from __future__ import annotations

import re
import tomllib
from fnmatch import fnmatch
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from streams.http.server import Api
from streams.notifiers.links import incident_template
from streams.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
STATIC = ROOT / "streams" / "http" / "static"
PAGE = ("incident.html", "incident.js", "incident.css")


def test_every_static_file_is_shipped_with_the_package() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    globs = pyproject["tool"]["setuptools"]["package-data"]["streams.http"]
    files = [f"static/{p.name}" for p in STATIC.iterdir()]
    assert set(PAGE) <= {Path(f).name for f in files}
    assert [f for f in files if not any(fnmatch(f, g) for g in globs)] == []


@pytest.mark.parametrize(
    "sink",
    ["innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "Function("],
    ids=lambda s: s.strip("("),
)
def test_the_script_never_parses_text_as_markup(sink: str) -> None:
    assert sink not in (STATIC / "incident.js").read_text()


def test_the_html_has_nothing_inline() -> None:
    html = (STATIC / "incident.html").read_text()
    scripts = re.findall(r"<script\b[^>]*>", html)
    assert scripts == ['<script src="../static/incident.js" defer>']
    assert "<style" not in html and " style=" not in html
    assert not re.search(r"\son[a-z]+\s*=", html), "an inline event handler"
    assert '<link rel="stylesheet" href="../static/incident.css">' in html
    assert "http://" not in html and "https://" not in html  # no CDN


@pytest.mark.parametrize(
    ("base", "expected"),
    [
        ("https://warroom.example.com", "https://warroom.example.com/incidents/inc-1"),
        ("https://warroom.example.com/", "https://warroom.example.com/incidents/inc-1"),
        ("https://example.com/ops/warroom/", "https://example.com/ops/warroom/incidents/inc-1"),
        ("http://127.0.0.1:8080", "http://127.0.0.1:8080/incidents/inc-1"),
    ],
    ids=["bare", "trailing-slash", "under-a-path", "loopback"],
)
def test_pages_link_to_the_incident_page(base: str, expected: str) -> None:
    assert incident_template(base).format(incident_id="inc-1") == expected


async def test_the_page_and_its_files_are_served_with_their_policy() -> None:
    pipeline: Any = SimpleNamespace(settings=Settings())
    async with TestClient(TestServer(Api(pipeline).app())) as client:
        # Any id: the page reads the incident (or the API's 404) itself.
        page = await client.get("/incidents/inc-%3Cb%3E")
        assert page.status == 200 and page.content_type == "text/html"
        assert await page.text() == (STATIC / "incident.html").read_text()
        policy = page.headers["Content-Security-Policy"]
        assert "default-src 'none'" in policy and "frame-ancestors 'none'" in policy
        assert "script-src 'self';" in policy and "unsafe" not in policy
        assert page.headers["X-Content-Type-Options"] == "nosniff"
        for name, kind in (("incident.js", "text/javascript"), ("incident.css", "text/css")):
            asset = await client.get(f"/static/{name}")
            assert asset.status == 200 and asset.content_type == kind
            assert await asset.text() == (STATIC / name).read_text()
        for other in ("dashboard.html", "..%2Fweb.py", "incident.js.map"):
            missing = await client.get(f"/static/{other}")
            assert missing.status == 404, other
            assert (await missing.json())["error"].startswith("no static file")


def test_the_page_works_under_a_path_prefix() -> None:
    # WARROOM_PUBLIC_URL may be https://example.com/ops/warroom/ (a reverse proxy's path): pages
    # link to .../ops/warroom/incidents/{id}, so the page's files and API calls must be found
    # from where it is, not at the host's root (where the proxy has nothing).
    html = (STATIC / "incident.html").read_text()
    assert not re.findall(r'(?:href|src)="/', html), re.findall(r'(?:href|src)="/[^"]*"', html)
    script = (STATIC / "incident.js").read_text()
    rooted = re.findall(r"""[`"']/(?:api|static)/[^`"']*""", script)
    assert rooted == [], rooted
