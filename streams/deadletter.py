"""Dead-lettering: the original key and bytes, where they came from, the stage and the reason.

Every dead letter is bounded (``schemas.deadletter``): a message of any size is dead-lettered
with its start, its length and its digest, so sending the dead letter never fails for its size.
"""

from __future__ import annotations

import base64
import logging
from collections import Counter
from datetime import UTC, datetime
from typing import Any, TypeVar

from pydantic import BaseModel

from schemas import DeadLetter
from schemas.deadletter import DEAD_LETTER_KEY_KEPT, DEAD_LETTER_VALUE_KEPT, capped, kept
from streams.codec import decode_one, encode
from streams.settings import TopicNames

log = logging.getLogger(__name__)

_PREVIEW = 512
M = TypeVar("M", bound=BaseModel)


class DeadLetters:
    """Sends dead letters to ``<source topic>.dlq`` and counts them by topic and stage."""

    def __init__(self, app: Any) -> None:
        self._app = app
        self.counts: Counter[tuple[str, str]] = Counter()

    async def send(
        self,
        message: Any,
        stage: str,
        error: str,
        payload: bytes | None = None,
    ) -> None:
        """Dead-letter ``payload`` (default: the whole message value) read from ``message``."""
        value = payload if payload is not None else (message.value or b"")
        key = message.key if isinstance(message.key, bytes) else None
        letter = dead_letter(message, stage, error, value, key, datetime.now(tz=UTC))
        self.counts[(message.topic, stage)] += 1
        log.warning(
            "dead-lettered %s[%s]@%s at %s: %s",
            message.topic, message.partition, message.offset, stage, letter.error,
        )  # fmt: skip
        await self._app.send(
            TopicNames.dlq(message.topic),
            key=key[:DEAD_LETTER_KEY_KEPT] if key is not None else None,
            value=encode(letter),
            key_serializer="raw",
            value_serializer="raw",
        )

    async def decoded(self, event: Any, model: type[M]) -> M | None:
        """The one ``model`` an event holds, or None once it is dead-lettered with the reason."""
        decoded = decode_one(event.value, model)
        if decoded.rejected:
            await self.send(event.message, "decode", decoded.rejected[0].reason)
            return None
        return decoded.items[0]


def dead_letter(
    message: Any, stage: str, error: str, value: bytes, key: bytes | None, at: datetime
) -> DeadLetter:
    """The bounded dead letter of ``value`` (and ``key``) read from ``message``."""
    part, length, digest, cut = kept(value, DEAD_LETTER_VALUE_KEPT)
    key_fields: dict[str, Any] = {}
    if key is not None:
        key_part, key_length, key_digest, key_cut = kept(key, DEAD_LETTER_KEY_KEPT)
        key_fields = {
            "key_b64": base64.b64encode(key_part).decode(),
            "key_length": key_length,
            "key_sha256": key_digest,
            "key_truncated": key_cut,
        }
    return DeadLetter(
        source_topic=message.topic,
        partition=message.partition,
        offset=message.offset,
        value_b64=base64.b64encode(part).decode(),
        value_preview=value[:_PREVIEW].decode("utf-8", errors="replace"),
        value_length=length,
        value_sha256=digest,
        value_truncated=cut,
        stage=stage,
        error=capped(error),
        at=at,
        **key_fields,
    )
