"""Every output of the points path fits a Kafka record, whatever the input's size."""

from __future__ import annotations

import base64
import hashlib
import types
from datetime import UTC, datetime

import pytest

from schemas import DeadLetter
from streams.codec import encode
from streams.deadletter import dead_letter

KIB = 1024
#: Kafka's default largest record is about 1 MB; each output stays well under it.
DEAD_LETTER_BOUND = 256 * KIB
AT = datetime(2026, 1, 2, tzinfo=UTC)


def _message(key: bytes | None, value: bytes) -> types.SimpleNamespace:
    return types.SimpleNamespace(
        topic="metrics.points.v1", partition=1, offset=7, key=key, value=value
    )


@pytest.mark.parametrize(
    ("key", "value", "error"),
    [
        (b"checkout", b"\xff" * 900_000, "not UTF-8"),
        (b"checkout", b"\x00" * 5_000_000, "\x01" * 1_000_000),
        (b"k" * 900_000, b'{"ts": 1}' * 100_000, "\u2028" * 300_000),
        (None, bytes(range(256)) * 40_000, "x"),
    ],
    ids=["900kb-not-utf8", "5mb-control-error", "huge-key", "no-key"],
)
def test_a_dead_letter_is_bounded_and_names_what_it_cut(
    key: bytes | None, value: bytes, error: str
) -> None:
    letter = dead_letter(_message(key, value), "decode", error, value, key, AT)
    wire = encode(letter)
    assert len(wire) <= DEAD_LETTER_BOUND
    kept = base64.b64decode(letter.value_b64)
    assert value.startswith(kept) and letter.value_truncated
    assert letter.value_length == len(value)
    assert letter.value_sha256 == hashlib.sha256(value).hexdigest()
    assert len(letter.error) < 2100 and letter.error.startswith(error[:100])
    if key is not None:
        assert letter.key_b64 is not None and key.startswith(base64.b64decode(letter.key_b64))
        assert letter.key_length == len(key)
        assert letter.key_sha256 == hashlib.sha256(key).hexdigest()


def test_a_small_message_is_dead_lettered_whole() -> None:
    letter = dead_letter(
        _message(b"api", b"{not json"), "decode", "not JSON", b"{not json", b"api", AT
    )
    assert base64.b64decode(letter.value_b64) == b"{not json" and not letter.value_truncated
    assert letter.error == "not JSON" and letter.key_truncated is False


def test_dead_letters_written_before_the_bounds_still_read() -> None:
    old = (
        b'{"source_topic":"t","value_b64":"eA==","stage":"decode","error":"e",'
        b'"at":"2026-01-02T00:00:00Z"}'
    )
    letter = DeadLetter.model_validate_json(old)
    assert letter.value_length is None and letter.value_sha256 is None
    assert not letter.value_truncated
