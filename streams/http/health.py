"""``GET /healthz``, ``GET /readyz`` and ``GET /metrics``: what probes and Prometheus read.

``/healthz`` answers 503 with the reason when table or detector state recovery hangs or a
lagging partition stops moving; ``/readyz`` answers 503 until the worker has its partitions,
its detector state and its directory; ``/metrics`` is the Prometheus text format. The probes
stay open when reads are private.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from streams.liveness import consumer_offsets
from streams.metrics import render_metrics

if TYPE_CHECKING:
    from streams.http.server import Api


def routes(api: Api) -> list[web.RouteDef]:
    p = api.p

    async def healthz(request: web.Request) -> web.Response:
        """503 with the reason when recovery hangs or a lagging partition stops moving."""
        try:
            offsets = consumer_offsets(p.app) if p.ready else {}
        except Exception:  # the consumer is not there yet, or is being rebuilt
            offsets = {}
        detect, now = p.detect, time.monotonic()
        if detect is not None:
            offsets.update(detect.offsets())
            since = detect.restoring_since
            if since is not None and now - since > p.settings.recovery_timeout_s:
                stuck = (
                    f"detector state recovery has not finished after {now - since:.0f}s "
                    f"(recovery_timeout_s={p.settings.recovery_timeout_s:g})"
                )
                return web.json_response({"status": "unhealthy", "reason": stuck}, status=503)
        reason = api.liveness.check(now, p.ready, offsets)
        if reason is not None:
            return web.json_response({"status": "unhealthy", "reason": reason}, status=503)
        return web.json_response({"status": "ok"})

    async def readyz(request: web.Request) -> web.Response:
        app = p.app
        restoring = p.detect is not None and p.detect.restoring_since is not None
        directory = getattr(p, "directory", None)
        loading = directory is not None and not directory.caught_up.is_set()
        starting = not p.ready or app.rebalancing or getattr(app, "in_recovery", False)
        if starting or restoring or loading:
            return web.json_response({"status": "starting"}, status=503)
        return web.json_response({"status": "ready"})

    async def metrics(request: web.Request) -> web.Response:
        body = render_metrics(p)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    return [web.get("/healthz", healthz), web.get("/readyz", readyz), web.get("/metrics", metrics)]
