"""Topics are created with the retention their readers rely on: the timeline is kept whole,
since the incident tables are rebuilt from it and every worker's directory reads it from the
start. A timeline topic that would lose events is reported, not silently trusted."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from schemas import Catalog
from streams.app import build
from streams.settings import Settings, TopicNames
from streams.topics import TopicsRefused, ensure_topics, faust_topics
from tests.harness import RunningWorker, partitions_of

pytestmark = pytest.mark.broker


def _settings(bootstrap: str) -> Settings:
    prefix = f"t-topics-{uuid.uuid4().hex[:8]}"
    names = {f: f"{prefix}.{v}" for f, v in TopicNames().model_dump().items()}
    return Settings(
        bootstrap_servers=bootstrap, app_id=prefix, partitions=2, topics=TopicNames(**names)
    )


async def _configs(bootstrap: str, topic: str) -> dict[str, str]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        [response] = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])
        [(_code, _message, _type, _name, entries)] = response.resources
        return {e[0]: e[1] for e in entries}
    finally:
        await admin.close()


async def test_the_timeline_is_created_without_retention_limits(kafka_bootstrap: str) -> None:
    settings = _settings(kafka_bootstrap)
    assert await ensure_topics(settings) == []
    events = await _configs(kafka_bootstrap, settings.topics.events)
    assert (events["retention.ms"], events["retention.bytes"]) == ("-1", "-1")
    assert events["cleanup.policy"] == "delete"
    # Raw inputs keep the broker's retention; they are not the record.
    points = await _configs(kafka_bootstrap, settings.topics.metrics)
    assert points["retention.ms"] != "-1"
    assert (await _configs(kafka_bootstrap, settings.topics.silences))["cleanup.policy"] == (
        "compact"
    )
    # The live catalog: the latest revision and each override are what readers need, in one
    # order (a revision's version is its offset).
    catalog = await _configs(kafka_bootstrap, settings.topics.catalog)
    assert catalog["cleanup.policy"] == "compact"
    assert await partitions_of(kafka_bootstrap, settings.topics.catalog) == [0]


async def test_a_timeline_that_would_lose_events_is_reported(
    kafka_bootstrap: str, caplog: pytest.LogCaptureFixture
) -> None:
    settings = _settings(kafka_bootstrap)
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        await admin.create_topics(
            [NewTopic(settings.topics.events, 2, 1, topic_configs={"retention.ms": "604800000"})]
        )
    finally:
        await admin.close()
    with caplog.at_level(logging.WARNING, logger="streams.topics"):
        problems = await ensure_topics(settings)
    assert problems == [f"{settings.topics.events}: retention.ms=604800000 deletes events older "
                        "than 168 h"]  # fmt: skip
    assert "--add-config retention.ms=-1,retention.bytes=-1" in caplog.text
    # Left as the operator made it: the fix is theirs to make.
    assert (await _configs(kafka_bootstrap, settings.topics.events))["retention.ms"] == "604800000"
    assert await ensure_topics(settings) == problems


async def test_the_tables_changelogs_exist_whole_before_the_app_starts(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    """Faust would create each table's changelog as the app starts and subscribe at once; a
    changelog the consumer's metadata does not show whole yet made every table write of a
    stream fail (``PartitionsMismatch``) for seconds on a first start. The worker creates them
    first, as Faust declares them, and waits until every partition has a leader."""
    settings = _settings(kafka_bootstrap).model_copy(update={"data_dir": tmp_path})
    pipeline = build(settings, Catalog())
    wanted = faust_topics(pipeline.app)
    names = {t.name for t in wanted}
    assert f"{settings.app_id}-page-throttle-changelog" in names
    assert f"{settings.app_id}-incidents-changelog" in names
    assert await ensure_topics(settings, wanted) == []
    leader = f"{settings.app_id}-__assignor-__leader"
    assert await partitions_of(kafka_bootstrap, leader) == [0]
    for topic in wanted:
        if topic.name != leader:
            assert await partitions_of(kafka_bootstrap, topic.name) == [0, 1]
            assert (await _configs(kafka_bootstrap, topic.name))["cleanup.policy"] == "compact"


def test_a_worker_leaves_the_topics_it_created_to_nobody_else(
    start_worker: Callable[..., RunningWorker],
) -> None:
    """Faust declares every changelog again as the app starts, each declaration ending in a
    metadata refresh (two to five seconds of every start): the topics the worker created or
    found whole before the app started are not declared again."""
    worker = start_worker()
    log = worker.log_text()
    assert "worker ready" in log
    assert "Creating topic" not in log, [line for line in log.splitlines() if "Creating" in line]


async def test_a_replication_factor_the_broker_cannot_hold_is_refused_in_one_line(
    kafka_bootstrap: str,
) -> None:
    # One broker cannot hold three replicas: the worker says so at once, naming the setting,
    # instead of waiting for leaders that never come and failing later with a traceback.
    settings = _settings(kafka_bootstrap).model_copy(update={"replication_factor": 3})
    with pytest.raises(TopicsRefused) as refused:
        await ensure_topics(settings)
    said = str(refused.value)
    assert "\n" not in said
    assert "WARROOM_REPLICATION_FACTOR is 3" in said and "warroom kafka start" in said, said
    assert said.startswith(f"the broker refused to create {settings.app_id}."), said
