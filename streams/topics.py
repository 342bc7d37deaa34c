"""Topic creation with explicit partition counts (Faust would leave it to broker defaults), and
the retention each topic's readers rely on."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import TopicAlreadyExistsError
from faust.transport.drivers.aiokafka import Producer as FaustProducer
from mode.utils.times import want_seconds

from streams.live_catalog import CATALOG_CONFIGS, CATALOG_PARTITIONS
from streams.settings import Settings

log = logging.getLogger(__name__)

# Compacted: the latest value per key is what readers need.
_COMPACTED = {"aggregates", "silences", "tokens"}
# Kept for ever: the timeline is the record the incident tables and MTTR aggregates are rebuilt
# from (``warroom replay --rebuild``), and every worker's directory reads it from the start to
# know which incidents are open. A broker's default retention (a week) would lose both.
_KEPT = {"events"}
KEEP_FOREVER = {"retention.ms": "-1", "retention.bytes": "-1"}
# Written by producers outside the worker: the broker stamps each record with the time it was
# appended, so an input's time is checked against a clock the producer does not set
# (``max_future_s``, ``max_lateness_s``), and a record read twice has the same reference time.
_STAMPED = {
    "metrics", "logs", "detections", "commands", "otlp_metrics", "otlp_logs", "prometheus",
    "json_logs", "changes",
}  # fmt: skip
LOG_APPEND_TIME = {"message.timestamp.type": "LogAppendTime"}
DESCRIBE_WAIT_S = 10.0
#: How long the worker waits, at start, for every partition of the topics it just created to
#: have a leader in the cluster's metadata (then it goes on, with a warning).
LEADERS_WAIT_S = 30.0


#: Topics this process has found or created whole (:func:`ensure_topics`): Faust's own
#: declaration of them, once per topic as the app starts, is skipped (each ended in a metadata
#: refresh: 0.1 to 0.25 s a topic, two to five seconds of every worker's start).
ENSURED: set[str] = set()


async def _declare(self: Any, topic: str, *args: Any, **kwargs: Any) -> None:
    if topic in ENSURED:
        return
    await _ORIGINAL_DECLARE(self, topic, *args, **kwargs)


_ORIGINAL_DECLARE = FaustProducer.create_topic


def skip_declared() -> None:
    """Have Faust skip declaring the topics :func:`ensure_topics` saw whole (idempotent)."""
    FaustProducer.create_topic = _declare  # type: ignore[method-assign]


def faust_topics(app: Any) -> list[NewTopic]:
    """The topics a Faust app declares as it starts, as it would declare them (name,
    partitions, replication, cleanup policy and extra configuration): each table's changelog
    and the leader-election topic.

    Faust creates them itself when the app starts, and its consumer subscribes to them at
    once. A changelog the cluster's metadata did not show yet (or showed with fewer
    partitions) was taken as having none: every table write of a stream then failed with
    ``PartitionsMismatch`` until the metadata caught up (seen on a first start as a few seconds
    of pages refused), and the producer's first send to it waited on the metadata with every
    write queued behind it (seen as a worker whose rebalance never finished). Created here,
    before the app starts, they are there whole when it subscribes."""
    topics = [table.changelog_topic for table in app.tables.values()]
    topics.append(app._leader_assignor._leader_topic)
    out = []
    for topic in topics:
        retention_ms = int(want_seconds(topic.retention) * 1000) if topic.retention else None
        config = app.transport._topic_config(retention_ms, topic.compacting, topic.deleting)
        config.update(topic.config or {})
        out.append(
            NewTopic(
                name=topic.get_topic_name(),
                num_partitions=topic.partitions or app.conf.topic_partitions,
                replication_factor=topic.replicas or app.conf.topic_replication_factor or 1,
                topic_configs={k: str(v) for k, v in config.items()},
            )
        )
    return out


def _unled(described: Sequence[dict[str, Any]], wanted: dict[str, int]) -> list[str]:
    """The wanted topics the metadata does not show yet with all their partitions led.

    >>> part = {"error_code": 0, "partition": 0, "leader": 1}
    >>> topics = [{"error_code": 0, "topic": "a", "partitions": [part]},
    ...           {"error_code": 3, "topic": "b", "partitions": []}]
    >>> _unled(topics, {"a": 1, "b": 2, "c": 1}), _unled(topics, {"a": 2})
    (['b', 'c'], ['a'])
    """
    led = {
        t.get("topic", t.get("name")): sum(
            1 for q in t.get("partitions", []) if q.get("error_code", 0) == 0 and q["leader"] >= 0
        )
        for t in described
        if t.get("error_code", 0) == 0
    }
    return sorted(name for name, n in wanted.items() if led.get(name, 0) < n)


async def _until_led(admin: AIOKafkaAdminClient, wanted: dict[str, int]) -> bool:
    """Wait until every wanted topic has a leader for each of its partitions: True; False
    (with a warning) when some still have none after ``LEADERS_WAIT_S``."""
    deadline = time.monotonic() + LEADERS_WAIT_S
    waiting = sorted(wanted)
    while waiting:
        waiting = _unled(await admin.describe_topics(waiting), wanted)
        if not waiting:
            return True
        if time.monotonic() > deadline:
            log.warning("topics without a leader for every partition after %.0fs: %s",
                        LEADERS_WAIT_S, ", ".join(waiting))  # fmt: skip
            return False
        await asyncio.sleep(0.2)
    return True


def retention_problems(topic: str, configs: dict[str, str]) -> list[str]:
    """What in a kept topic's ``configs`` would delete part of its history.

    >>> retention_problems("t", {"cleanup.policy": "delete", "retention.ms": "-1",
    ...                          "retention.bytes": "-1"})
    []
    >>> retention_problems("t", {"cleanup.policy": "delete", "retention.ms": "604800000",
    ...                          "retention.bytes": "-1"})
    ['t: retention.ms=604800000 deletes events older than 168 h']
    """
    problems = []
    policy = configs.get("cleanup.policy", "delete")
    if "compact" in policy:
        problems.append(f"{topic}: cleanup.policy={policy} keeps only the last event of each key")
    if "delete" in policy:
        ms = configs.get("retention.ms", "-1")
        if ms != "-1":
            problems.append(
                f"{topic}: retention.ms={ms} deletes events older than {int(ms) / 3.6e6:g} h"
            )
        size = configs.get("retention.bytes", "-1")
        if size != "-1":
            problems.append(
                f"{topic}: retention.bytes={size} deletes the oldest events of a partition "
                "beyond that size"
            )
    return problems


async def _described(admin: AIOKafkaAdminClient, topics: list[str]) -> dict[str, dict[str, str]]:
    """Each topic's effective configuration (its own settings and the broker's defaults). A
    topic just created may be unknown to the broker that answers for a moment: it is asked
    again for up to ``DESCRIBE_WAIT_S``; a topic still unreadable is left out, with a warning."""
    out: dict[str, dict[str, str]] = {}
    deadline = time.monotonic() + DESCRIBE_WAIT_S
    while True:
        resources = [ConfigResource(ConfigResourceType.TOPIC, t) for t in topics if t not in out]
        failed = {}
        for response in await admin.describe_configs(resources):
            for code, message, _type, name, entries in response.resources:
                if code:
                    failed[name] = message or f"error {code}"
                else:
                    out[name] = {e[0]: e[1] for e in entries if e[1] is not None}
        if not failed or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.2)
    for name, problem in failed.items():
        log.warning("could not read the configuration of %s: %s", name, problem)
    return out


class TopicsRefused(Exception):
    """The broker refused to create some of the worker's topics: said in one line, with the
    setting to change when the replication factor is what it refused."""

    def __init__(self, refused: list[tuple[str, str]], replication_factor: int) -> None:
        topic, reason = refused[0]
        more = f" (and {len(refused) - 1} more topics)" if len(refused) > 1 else ""
        hint = ""
        if "replication" in reason.lower():
            hint = (
                f"; WARROOM_REPLICATION_FACTOR is {replication_factor}, more than the brokers "
                "that hold replicas: set it to their number (1 for `warroom kafka start`)"
            )
        super().__init__(f"the broker refused to create {topic}{more}: {reason}{hint}")


def refusals(response: Any) -> list[tuple[str, str]]:
    """The topics a ``CreateTopics`` response refused, with the broker's reason, leaving out
    those that exist already (another worker created them first).

    >>> class R:
    ...     topic_errors = [("a", 0, None), ("b", 36, "exists"), ("c", 38, "Replication factor: 3")]
    >>> refusals(R())
    [('c', 'Replication factor: 3')]
    """
    found = []
    for entry in getattr(response, "topic_errors", None) or []:
        topic, code = entry[0], entry[1]
        if code in (0, TopicAlreadyExistsError.errno):
            continue
        message = entry[2] if len(entry) > 2 and entry[2] else f"Kafka error {code}"
        found.append((str(topic), str(message)))
    return found


async def ensure_topics(settings: Settings, extra: Sequence[NewTopic] = ()) -> list[str]:
    """Create every warroom topic that does not exist yet, with ``settings.partitions``
    (also the detector checkpoint topic, which needs one partition per points partition), and
    the ``extra`` ones (the topics Faust declares, :func:`faust_topics`), and wait until every
    partition of those it created has a leader.

    The timeline is created without retention limits. An existing timeline topic whose
    configuration would delete events is left as it is (it may be deliberate), with a warning
    per problem in the log; the problems are returned."""
    admin = AIOKafkaAdminClient(**settings.kafka_client_kwargs())
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        own = [*settings.topics.all(), settings.detector_blocks_topic]
        compacted = {getattr(settings.topics, f) for f in _COMPACTED}
        compacted.add(settings.detector_blocks_topic)
        kept = {getattr(settings.topics, f) for f in _KEPT}
        stamped = {getattr(settings.topics, f) for f in _STAMPED}

        def configs(name: str) -> dict[str, str]:
            if name == settings.topics.catalog:
                return dict(CATALOG_CONFIGS)
            if name in compacted:
                return {"cleanup.policy": "compact"}
            if name in stamped:
                return dict(LOG_APPEND_TIME)
            return dict(KEEP_FOREVER) if name in kept else {}

        wanted = [
            NewTopic(
                name=name,
                num_partitions=CATALOG_PARTITIONS
                if name == settings.topics.catalog
                else settings.partitions,
                replication_factor=settings.replication_factor,
                topic_configs=configs(name),
            )
            for name in own
            if name not in existing
        ] + [t for t in extra if t.name not in existing]
        if wanted:
            with contextlib.suppress(TopicAlreadyExistsError):
                refused = refusals(await admin.create_topics(wanted))
                if refused:
                    raise TopicsRefused(refused, settings.replication_factor)
            log.info("created topics: %s", ", ".join(t.name for t in wanted))
            if await _until_led(admin, {t.name: t.num_partitions for t in wanted}):
                ENSURED.update(t.name for t in wanted)
        ENSURED.update(name for name in [*own, *(t.name for t in extra)] if name in existing)
        problems = []
        for topic, described in sorted((await _described(admin, sorted(kept))).items()):
            for problem in retention_problems(topic, described):
                log.warning(
                    "%s; replay --rebuild and the directory of open incidents need the whole "
                    "timeline (kafka-configs.sh --alter --entity-type topics --entity-name %s "
                    "--add-config retention.ms=-1,retention.bytes=-1)",
                    problem,
                    topic,
                )
                problems.append(problem)
        return problems
    finally:
        await admin.close()
