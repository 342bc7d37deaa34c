"""Kafka over SASL_SSL through warroom's own settings: a broker of its own with a SASL_SSL
listener (self-signed CA made by the test), clients built by ``Settings.kafka_client_kwargs``,
and a worker (Faust's ``broker_credentials``) that connects only through that listener.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.errors import KafkaError

from devtools.kafka_local import LocalBroker, SaslSslListener
from streams.settings import Settings, TopicNames
from streams.topics import ensure_topics
from tests.harness import new_worker

pytestmark = pytest.mark.broker

USER = "warroom-client"
PASSWORD = secrets.token_urlsafe(12)


@pytest.fixture(scope="module")
def secure_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalBroker]:
    broker = LocalBroker(
        tmp_path_factory.mktemp("kafka-sasl-ssl"),
        sasl_ssl=SaslSslListener(users={USER: PASSWORD}),
    )
    broker.start(timeout_s=180)
    try:
        yield broker
    finally:
        broker.stop()


def secure_settings(broker: LocalBroker, **values: Any) -> Settings:
    app_id = f"sasl-{uuid.uuid4().hex[:8]}"
    fresh = TopicNames(**{k: f"{app_id}.{v}" for k, v in TopicNames().model_dump().items()})
    defaults: dict[str, Any] = {
        "app_id": app_id,
        "topics": fresh,
        "bootstrap_servers": broker.sasl_ssl_bootstrap,
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_username": USER,
        "sasl_password": PASSWORD,
        "ssl_cafile": broker.ca_file,
        "partitions": 1,
    }
    return Settings(**{**defaults, **values})


async def produce_with(settings: Settings, topic: str, values: list[bytes]) -> None:
    producer = AIOKafkaProducer(acks="all", **settings.kafka_client_kwargs())
    await producer.start()
    try:
        for value in values:
            await producer.send_and_wait(topic, value, key=b"k")
    finally:
        await producer.stop()


async def consume_with(
    settings: Settings, topic: str, until: Callable[[list[bytes]], bool], timeout_s: float
) -> list[bytes]:
    consumer = AIOKafkaConsumer(
        topic, group_id=None, auto_offset_reset="earliest", **settings.kafka_client_kwargs()
    )
    await consumer.start()
    values: list[bytes] = []
    deadline = time.monotonic() + timeout_s
    try:
        while not until(values):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"timed out reading {topic}; got {len(values)}")
            batch = await consumer.getmany(timeout_ms=int(min(remaining, 0.5) * 1000))
            values.extend(r.value for rs in batch.values() for r in rs if r.value is not None)
        return values
    finally:
        await consumer.stop()


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"])
async def test_produce_and_consume_over_sasl_ssl(
    secure_broker: LocalBroker, mechanism: str
) -> None:
    settings = secure_settings(secure_broker, sasl_mechanism=mechanism)
    # Topic creation goes through warroom's own admin client, over the same listener.
    await ensure_topics(settings)
    topic = settings.topics.metrics
    sent = [json.dumps({"n": i, "mechanism": mechanism}).encode() for i in range(5)]
    await produce_with(settings, topic, sent)
    received = await consume_with(settings, topic, lambda v: len(v) >= 5, timeout_s=20)
    assert received[:5] == sent


@pytest.mark.parametrize(
    "values",
    [{"sasl_password": "wrong-password"}, {"ssl_cafile": None}],
    ids=["wrong-password", "untrusted-certificate"],
)
async def test_bad_credentials_or_trust_are_refused(
    secure_broker: LocalBroker, values: dict[str, Any]
) -> None:
    settings = secure_settings(secure_broker, **values)
    producer = AIOKafkaProducer(request_timeout_ms=5000, **settings.kafka_client_kwargs())
    with pytest.raises((KafkaError, OSError)):
        try:
            await asyncio.wait_for(producer.start(), 20)
        finally:
            await producer.stop()


async def test_a_worker_over_sasl_ssl_ingests_and_publishes(
    secure_broker: LocalBroker, tmp_path: Path
) -> None:
    client = secure_settings(secure_broker)
    worker = new_worker(
        secure_broker.sasl_ssl_bootstrap,
        tmp_path,
        "sasl-ssl-worker",
        None,
        {
            "security_protocol": "SASL_SSL",
            "sasl_mechanism": "SCRAM-SHA-256",
            "sasl_username": USER,
            "sasl_password": PASSWORD,
            "ssl_cafile": str(secure_broker.ca_file),
        },
    )
    worker.start()
    try:
        topics: TopicNames = worker.topics
        sample = {
            "timestamp": "2024-01-01T00:00:00Z",
            "value": "1",
            "name": "up",
            "labels": {"__name__": "up", "job": "node"},
        }
        await produce_with(client, topics.prometheus, [json.dumps(sample).encode()])
        [batch] = await consume_with(client, topics.metrics, lambda v: len(v) >= 1, timeout_s=30)
        [point] = json.loads(batch)["points"]
        assert (point["service"], point["metric"], point["value"]) == ("node", "up", 1.0)
        assert PASSWORD not in worker.log_text()
    finally:
        worker.stop()
