"""Topic creation with explicit partition counts (Faust would leave it to broker defaults)."""

from __future__ import annotations

import contextlib
import logging

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from streams.settings import Settings

log = logging.getLogger(__name__)

# Compacted: the latest value per key is what readers need.
_COMPACTED = {"aggregates", "silences"}


async def ensure_topics(settings: Settings) -> None:
    """Create every warroom topic that does not exist yet, with ``settings.partitions``
    (also the detector checkpoint topic, which needs one partition per points partition)."""
    admin = AIOKafkaAdminClient(**settings.kafka_client_kwargs())
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        compacted = {getattr(settings.topics, f) for f in _COMPACTED}
        compacted.add(settings.detector_blocks_topic)
        wanted = [
            NewTopic(
                name=name,
                num_partitions=settings.partitions,
                replication_factor=settings.replication_factor,
                topic_configs={"cleanup.policy": "compact"} if name in compacted else {},
            )
            for name in [*settings.topics.all(), settings.detector_blocks_topic]
            if name not in existing
        ]
        if not wanted:
            return
        with contextlib.suppress(TopicAlreadyExistsError):
            await admin.create_topics(wanted)
        log.info("created topics: %s", ", ".join(t.name for t in wanted))
    finally:
        await admin.close()
