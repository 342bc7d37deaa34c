"""``warroom worker``: create the topics, build the pipeline, run Faust and the HTTP API."""

from __future__ import annotations

import asyncio
import logging

import faust

from streams.app import ConfigError, build, load_catalog
from streams.settings import Settings, api_token_problem
from streams.topics import ensure_topics
from streams.web import WebServer

log = logging.getLogger(__name__)


def run_worker(settings: Settings) -> None:
    """Run until SIGTERM/SIGINT; the API answers /healthz at once and /readyz after recovery.
    Raises ConfigError before touching Kafka when the API token is weak."""
    problem = api_token_problem(settings.api_token)
    if problem is not None:
        raise ConfigError(problem)
    catalog = load_catalog(settings.catalog_path)
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    loop.run_until_complete(ensure_topics(settings))
    pipeline = build(settings, catalog)

    worker = faust.Worker(
        pipeline.app,
        WebServer(pipeline, loop=loop),
        pipeline.directory,
        loop=loop,
        loglevel=settings.log_level,
        redirect_stdouts=False,
    )
    worker.execute_from_commandline()
