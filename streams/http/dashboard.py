"""``GET /``: the live dashboard, and what it reads besides the incident list: ``GET /api/events``
(the newest timeline events), ``GET /api/stream`` (server-sent events as they happen) and
``GET /api/mttr`` (the latest MTTR aggregates)."""

from __future__ import annotations

import asyncio
import heapq
from pathlib import Path
from typing import TYPE_CHECKING

from aiohttp import web

from streams.http.common import error
from streams.http.incidents import instant_key

if TYPE_CHECKING:
    from streams.http.server import Api

_DASHBOARD = Path(__file__).with_name("static") / "dashboard.html"
#: What the server hands every live stream when it stops, so each one ends its response.
CLOSE = "\x00close"


def routes(api: Api) -> list[web.RouteDef]:
    p = api.p

    async def mttr(request: web.Request) -> web.Response:
        """Latest aggregates; filters: ``dimension``, ``value`` (or ``service``), ``window``."""
        q = request.query
        dimension = q.get("dimension") or ("service" if "service" in q else None)
        value = q.get("value") or q.get("service")
        window = q.get("window")
        rows = [
            a
            for a in list(p.tables.mttr_latest.values())
            if (dimension is None or a["dimension"] == dimension)
            and (value is None or a["value"] == value)
            and (window is None or a["window"] == window)
        ]
        rows.sort(key=lambda a: (a["dimension"], a["value"], a["window"], a["window_start"]))
        return web.json_response({"aggregates": rows})

    async def recent_events(request: web.Request) -> web.Response:
        """The newest timeline events across the recent incidents (open, or resolved less than
        ``resolved_in_memory_s`` ago; ``limit``, default 50, at most 500)."""
        try:
            limit = min(500, max(1, int(request.query.get("limit", "50"))))
        except ValueError:
            return error(400, "limit must be an integer")
        timelines = p.tables.timelines
        # The current segment of a timeline holds its latest events.
        every = (e for i in list(p.tables.incidents.recent) for e in timelines.get(i) or ())
        newest = heapq.nlargest(limit, every, key=lambda e: (instant_key(e["at"]), e["seq"]))
        return web.json_response({"events": newest})

    async def stream(request: web.Request) -> web.StreamResponse:
        """Server-sent events: ``incident``, ``event``, ``aggregate`` and ``silence`` messages as
        they happen."""
        response = web.StreamResponse(
            headers={
                "Content-Type": "text/event-stream",
                "Cache-Control": "no-cache",
                "X-Accel-Buffering": "no",
            }
        )
        await response.prepare(request)
        queue = p.live.subscribe()
        try:
            await response.write(b"event: hello\ndata: {}\n\n")
            while not api.closing:
                try:
                    message = await asyncio.wait_for(queue.get(), timeout=15.0)
                except TimeoutError:
                    await response.write(b": keep-alive\n\n")
                    continue
                if message == CLOSE:
                    break
                await response.write(f"data: {message}\n\n".encode())
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            p.live.unsubscribe(queue)
        return response

    async def dashboard(request: web.Request) -> web.Response:
        return web.Response(
            text=_DASHBOARD.read_text(),
            content_type="text/html",
            headers={"Cache-Control": "no-cache"},
        )

    return [
        web.get("/api/mttr", mttr),
        web.get("/api/events", recent_events),
        web.get("/api/stream", stream),
        web.get("/", dashboard),
    ]
