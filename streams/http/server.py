"""The HTTP API on loopback: the aiohttp application and the service that runs it in the worker.

Each resource's routes are in a module of their own (``incidents``, ``dashboard``, ``health``,
``alerts``, ``silences``, ...); this module puts them in one application behind two middlewares:
every error is JSON with a message, never a traceback, and with ``private_reads`` every read
needs a token. Writes need ``Authorization: Bearer <token>``: a person's own token
(``streams.http.auth``; the actor is that person) or the shared one.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from aiohttp import web
from mode import Service

from schemas.catalog import Role
from streams.http import (
    alerts,
    dashboard,
    health,
    incidents,
    links,
    oncall,
    openapi,
    page,
    signals,
    silences,
    slack,
    tokens,
)
from streams.http.auth import ACTOR_HEADER, Principal, bearer, identify, require
from streams.http.common import ApiError, error, one_header
from streams.liveness import Liveness

if TYPE_CHECKING:
    from streams.pipeline import Pipeline

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def _errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as exc:
        return error(exc.status, exc.message)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return error(exc.status, exc.reason or "error")
    except Exception:
        log.exception("unhandled error serving %s %s", request.method, request.path)
        return error(500, "internal error; see the worker log")


#: What stays open when reads are private: probes, and signed links (their signature is the
#: credential).
_OPEN_PATHS = ("/healthz", "/readyz")
#: The incident page and its script and style hold no data (the page reads it with the token it
#: keeps), so a browser can load them before it has one.
_OPEN_PREFIXES = ("/act/", "/incidents/", "/static/")


class Api:
    """The application over a pipeline, and what every resource's routes share: the pipeline
    (``p``), the caller check (``authorized``), the liveness clock and whether it is closing."""

    def __init__(self, pipeline: Pipeline) -> None:
        self.p = pipeline
        self.closing = False
        s = pipeline.settings
        self.liveness = Liveness(s.stall_after_s, s.recovery_timeout_s, time.monotonic())

    def app(self) -> web.Application:
        app = web.Application(
            middlewares=[_errors, self._reads], client_max_size=self.p.settings.web_max_body_bytes
        )
        app.add_routes(health.routes(self))
        app.add_routes(incidents.routes(self))
        app.add_routes(dashboard.routes(self))
        app.add_routes(alerts.routes(self))
        app.add_routes(silences.routes(self))
        app.add_routes(page.routes())
        app.add_routes(oncall.routes(self))
        app.add_routes(tokens.routes(self))
        app.add_routes(links.routes(self))
        app.add_routes(slack.routes(self))
        app.add_routes(openapi.routes())
        app.add_routes(signals.routes(self))
        return app

    @web.middleware
    async def _reads(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """With ``private_reads``, every read needs a token of any role, but the probes and
        signed links."""
        path = request.path
        if (
            self.p.settings.private_reads
            and request.method in ("GET", "HEAD")
            and path not in _OPEN_PATHS
            and not path.startswith(_OPEN_PREFIXES)
        ):
            self.authorized(request, "viewer")
        return await handler(request)

    def authorized(self, request: web.Request, needed: Role = "responder") -> Principal:
        """The caller, if their token allows ``needed``: 401 without a valid token, 403 when
        their role is too weak or no token is configured at all."""
        shared = self.p.settings.api_token
        tokens = self.p.directory.tokens if self.p.directory is not None else {}
        if shared is None and not tokens:
            what = "reads are private" if needed == "viewer" else "writes are disabled"
            raise ApiError(
                403, f"{what}: set WARROOM_API_TOKEN on the worker, or create a personal token "
                "with it (warroom token create PERSON)",
            )  # fmt: skip
        given = bearer(one_header(request, "Authorization") or "")
        secret = shared.get_secret_value() if shared is not None else None
        actor = one_header(request, ACTOR_HEADER)
        return require(identify(given, secret, tokens, self.p.catalog, actor), needed)


class WebServer(Service):
    """Runs the API inside the worker; bound to loopback unless configured otherwise."""

    def __init__(self, pipeline: Pipeline, **kwargs: Any) -> None:
        self.pipeline = pipeline
        self._runner: web.AppRunner | None = None
        self._api = Api(pipeline)
        super().__init__(**kwargs)

    async def on_start(self) -> None:
        s = self.pipeline.settings
        self._runner = web.AppRunner(self._api.app(), access_log=None, shutdown_timeout=2.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, s.web_bind, s.web_port)
        await site.start()
        log.info("HTTP API on http://%s:%s", s.web_bind, s.web_port)

    async def on_stop(self) -> None:
        self._api.closing = True
        self.pipeline.live.close_all(dashboard.CLOSE)
        if self._runner is not None:
            await self._runner.cleanup()
