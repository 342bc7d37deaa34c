"""``warroom worker``: create the topics, build the pipeline, run Faust and the HTTP API."""

from __future__ import annotations

import asyncio
import logging

from aiokafka.errors import KafkaConnectionError

from streams.app import ConfigError, build, load_catalog
from streams.faust_lifecycle import PromptWorker
from streams.http.server import WebServer
from streams.lognoise import quiet_client_repeats
from streams.settings import Settings, api_token_problem
from streams.tables import TableDirInUse, mark_clean_stop, prepare_table_dir
from streams.topics import TopicsRefused, ensure_topics, faust_topics, skip_declared

log = logging.getLogger(__name__)


def run_worker(settings: Settings) -> None:
    """Run until SIGTERM/SIGINT; the API answers /healthz at once and /readyz after recovery.
    Raises ConfigError before touching Kafka when the API token is weak."""
    problem = api_token_problem(settings.api_token)
    if problem is not None:
        raise ConfigError(problem)
    catalog = load_catalog(settings.catalog_path)
    quiet_client_repeats()
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    quiet = logging.getLogger("aiokafka")
    level = quiet.level
    quiet.setLevel(logging.CRITICAL)  # an unreachable broker is said once, below
    pipeline = build(settings, catalog)
    try:
        loop.run_until_complete(ensure_topics(settings, faust_topics(pipeline.app)))
        skip_declared()
    except TopicsRefused as exc:
        raise ConfigError(str(exc)) from None
    except KafkaConnectionError:
        raise ConfigError(
            f"no Kafka broker answered at {settings.bootstrap_servers} "
            "(WARROOM_BOOTSTRAP_SERVERS): start a local one with `warroom kafka start`, "
            "or set WARROOM_BOOTSTRAP_SERVERS to your brokers"
        ) from None
    finally:
        quiet.setLevel(level)
    tabledir = pipeline.app.conf.tabledir
    try:
        restored = prepare_table_dir(settings, tabledir)
    except TableDirInUse as exc:
        raise ConfigError(str(exc)) from None
    if restored:

        @pipeline.app.task
        async def say_restored() -> None:
            log.warning("the last worker did not stop cleanly: the tables in %s were restored "
                        "from their changelogs", tabledir)  # fmt: skip

    worker = PromptWorker(
        pipeline.app,
        WebServer(pipeline, loop=loop),
        pipeline.directory,
        pipeline.changes,
        loop=loop,
        loglevel=settings.log_level,
        redirect_stdouts=False,
    )
    try:
        worker.execute_from_commandline()
    except SystemExit as exc:
        if not exc.code and settings.table_store != "memory":
            # Every changelog record was flushed on the way out: the disk store may be reused.
            mark_clean_stop(tabledir)
        raise
