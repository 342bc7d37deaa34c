"""``/incidents/{id}``: the incident page for people, and the two files it loads.

One HTML page for every incident (its script reads the id from the address and everything else
from the JSON API and the live stream), one script and one style sheet under ``/static/``, and
nothing inline, so the page's Content-Security-Policy allows scripts and styles from this origin
only: text from alerts and people is rendered as text, and even a mistake that made it markup
could not run.
"""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from streams.http.common import error

_STATIC = Path(__file__).with_name("static")
#: What ``/static/{name}`` serves: the incident page's script and style sheet, by name.
ASSETS = {"incident.js": "text/javascript", "incident.css": "text/css"}
#: The incident page loads its own script, style sheet and chart (a blob of the review's SVG),
#: talks to this origin only, and may not be framed.
POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
_HEADERS = {"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"}
_PAGE_HEADERS = {**_HEADERS, "Content-Security-Policy": POLICY, "Referrer-Policy": "no-referrer"}


def routes() -> list[web.RouteDef]:
    """The page and its files; reads, like every read, need no token."""

    async def page(request: web.Request) -> web.Response:
        return web.Response(
            text=(_STATIC / "incident.html").read_text(encoding="utf-8"),
            content_type="text/html",
            headers=_PAGE_HEADERS,
        )

    async def asset(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        kind = ASSETS.get(name)
        if kind is None:
            return error(404, f"no static file {name!r}")
        return web.Response(
            text=(_STATIC / name).read_text(encoding="utf-8"), content_type=kind, headers=_HEADERS
        )

    return [web.get("/incidents/{id}", page), web.get("/static/{name}", asset)]
