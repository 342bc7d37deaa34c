"""``<topic>.dlq``: a message that could not be processed, with the reason, and nothing lost.

A dead letter is bounded whatever the message's size, so that it always fits a Kafka record:
it keeps the first ``DEAD_LETTER_VALUE_KEPT`` bytes of the value (and ``DEAD_LETTER_KEY_KEPT``
of the key), the original length and a SHA-256 digest of the whole, and at most
``DEAD_LETTER_ERROR_CHARS`` characters of the reason.
"""

from __future__ import annotations

import hashlib

from pydantic import Field

from schemas.common import Timestamp, WireModel

#: Bytes of a message's value a dead letter keeps (its start); the rest is named by its digest.
DEAD_LETTER_VALUE_KEPT = 64 * 1024
#: Bytes of a message's key a dead letter keeps (also the dead letter's own key).
DEAD_LETTER_KEY_KEPT = 1024
#: Characters of the reason a dead letter keeps.
DEAD_LETTER_ERROR_CHARS = 2000


class DeadLetter(WireModel):
    """The original key and bytes (base64), where they came from, which stage failed and why.

    ``value_b64`` holds the whole value, or its first ``DEAD_LETTER_VALUE_KEPT`` bytes when
    ``value_truncated``; ``value_length`` and ``value_sha256`` always describe the whole value
    (absent in dead letters written before they existed). Likewise for the key.
    """

    source_topic: str
    partition: int | None = None
    offset: int | None = None
    key_b64: str | None = None
    value_b64: str
    value_preview: str = Field(default="", description="The start of the value as text.")
    stage: str
    error: str
    at: Timestamp
    value_length: int | None = Field(default=None, description="Bytes in the whole value.")
    value_sha256: str | None = Field(default=None, description="Hex digest of the whole value.")
    value_truncated: bool = False
    key_length: int | None = None
    key_sha256: str | None = None
    key_truncated: bool = False


def kept(data: bytes, limit: int) -> tuple[bytes, int, str, bool]:
    """What a dead letter keeps of ``data``: its first ``limit`` bytes, its length, its SHA-256
    digest (hex), and whether anything was cut.

    >>> part, n, digest, cut = kept(b"abcdef", 4)
    >>> part, n, digest[:12], cut
    (b'abcd', 6, 'bef57ec7f53a', True)
    """
    return data[:limit], len(data), hashlib.sha256(data).hexdigest(), len(data) > limit


def capped(text: str, limit: int = DEAD_LETTER_ERROR_CHARS) -> str:
    """``text``, or its first ``limit`` characters and how many more there were; a character
    UTF-8 cannot carry (a lone surrogate) is written as its escape, so the text always encodes.

    >>> capped("x" * 10, 4)
    'xxxx... (6 more characters)'
    """
    if len(text) > limit:
        text = f"{text[:limit]}... ({len(text) - limit} more characters)"
    return text.encode("utf-8", "backslashreplace").decode("utf-8")
