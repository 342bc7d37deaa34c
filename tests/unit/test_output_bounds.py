"""Every output of the points path fits a Kafka record, whatever the input's size: dead
letters, checkpoint blocks and detections."""

from __future__ import annotations

import base64
import hashlib
import types
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pytest
from pydantic import ValidationError

from detectors import blocks as blocks_codec
from detectors.bank import Fired, SeriesBank, detection
from detectors.policy import Decision
from schemas import DeadLetter, DetectionSeverity
from streams.codec import encode
from streams.deadletter import dead_letter
from streams.settings import Settings

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


def test_a_reason_that_utf8_cannot_carry_is_escaped_not_raised() -> None:
    letter = dead_letter(_message(b"k", b"v"), "detect", "label \ud800 bad", b"v", b"k", AT)
    assert letter.error == "label \\ud800 bad"
    assert b"ud800" in encode(letter)


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


BLOCK_BOUND = 512 * KIB


def _encoded(state: dict[str, Any]) -> int:
    return len(blocks_codec.encode(state))


def _fleet(ids: list[str], points: int, detector: str = "tolerant_novelty") -> SeriesBank:
    bank = SeriesBank(detector)
    rng = np.random.default_rng(5)
    for t in range(points):
        bank.observe(ids, 100.0 + rng.normal(0, 2, len(ids)), np.full(len(ids), 1e9 + 60 * t))
    return bank


@pytest.mark.parametrize(
    "pad",
    ["x" * 2995, "\x01" * 2995, "\U0001f525" * 2995],
    ids=["ascii", "control-characters", "astral-characters"],
)
def test_blocks_of_long_series_ids_are_written_in_parts_under_the_bound(pad: str) -> None:
    ids = [f"checkout|latency_ms|pod={i:04d}-{pad}" for i in range(256)]
    live = _fleet(ids, 30)
    blocks = live.take_dirty_blocks()
    assert len(blocks) >= 2 and set(blocks) >= {"0", "0.1"}
    assert max(_encoded(v) for v in blocks.values()) <= BLOCK_BOUND
    wire = {k: blocks_codec.decode(blocks_codec.encode(v)) for k, v in blocks.items()}
    restored = SeriesBank("tolerant_novelty")
    assert restored.load_blocks(wire) == 0
    assert restored.ids == live.ids
    spike = (np.full(256, 900.0), np.full(256, 1e9 + 60 * 30))
    assert (restored.observe(ids, *spike)[0] == live.observe(ids, *spike)[0]).all()


def test_a_part_always_starts_at_the_same_row_as_its_block_grows() -> None:
    ids = [f"api|m|pod={i:04d}-" + "y" * 2995 for i in range(256)]
    bank = _fleet(ids[:100], 1)
    before = bank.parts(0)
    for sid in ids[100:]:
        bank.row(sid)
    after = bank.parts(0)
    assert len(after) > len(before)
    assert [a for a, _ in after[: len(before)]] == [a for a, _ in before]
    assert after[len(before) - 1][1] >= before[-1][1]


def test_only_the_parts_with_changed_rows_are_written_again() -> None:
    ids = [f"api|m|pod={i:04d}-" + "y" * 2995 for i in range(256)]
    bank = _fleet(ids, 2)
    bank.take_dirty_blocks()
    bank.observe([ids[0]], np.array([100.0]), np.array([1e9 + 600]))
    assert set(bank.take_dirty_blocks()) == {"0"}


def test_a_block_of_the_version_before_parts_restores_warm() -> None:
    ids = [f"svc|m{i}" for i in range(5)]
    live = _fleet(ids, 40)
    [(key, state)] = live.take_dirty_blocks().items()
    old = {k: v for k, v in state.items() if k != "start"} | {"version": 1}
    restored = SeriesBank("tolerant_novelty")
    assert restored.load_blocks({key: old}) == 0
    later = (np.full(5, 900.0), np.full(5, 1e9 + 60 * 40))
    assert (restored.observe(ids, *later)[0] == live.observe(ids, *later)[0]).all()


@pytest.mark.parametrize(
    "state",
    [
        {"version": 2, "ids": "not a list"},
        {"version": 2, "start": 10**12, "ids": ["a|m"]},
        {"version": 2, "start": 0, "ids": ["a|m"], "config": "x"},
        {"version": 2, "start": 0, "ids": ["a|m"], "own": 3},
    ],
    ids=["ids-not-a-list", "start-outside-its-block", "other-config", "garbage-state"],
)
def test_an_unreadable_part_is_counted_stale_never_raised(state: dict[str, Any]) -> None:
    bank = SeriesBank("tolerant_novelty")
    garbage = {**state, "config": state.get("config", bank.config)}
    assert bank.load_blocks({"0": garbage, "x.y": {}}) == 2
    assert len(bank.ids) <= 1


DETECTION_BOUND = 256 * KIB


@pytest.mark.parametrize(
    "labels",
    [
        {"pod": "x" * 900_000},
        {f"k{i:05d}" + '"\\' * 150: "\U0001f525" * 300 for i in range(5_000)},
    ],
    ids=["one-900kb-label", "5000-labels-of-escaped-characters"],
)
def test_a_detection_is_bounded_and_says_it_was_cut(labels: dict[str, str]) -> None:
    series = "checkout|latency_ms|" + ",".join(f"{k}={v}" for k, v in labels.items())
    fired = Fired(
        index=0,
        score=1.0,
        decision=Decision(1.0, DetectionSeverity.CRITICAL, 1e9, repeat=False),
        recent=[[1e9 + i, 1.0] for i in range(100)],
        why="\x02" * 1_000_000,
    )
    found = detection(
        fired,
        detector="tolerant_novelty",
        series=series,
        service="checkout",
        metric="latency_ms",
        labels=labels,
        ts=1e9,
        value=5.0,
    )
    assert len(encode(found)) <= DETECTION_BOUND
    assert found.context["truncated"] is True
    assert next(iter(found.labels)).startswith(next(iter(labels))[:100])
    same = detection(
        fired,
        detector="tolerant_novelty",
        series=series + "-other",
        service="checkout",
        metric="latency_ms",
        labels=labels,
        ts=1e9,
        value=5.0,
    )
    assert same.id != found.id  # the id still names the whole series


def test_an_ordinary_detection_is_not_cut() -> None:
    fired = Fired(0, 1.0, Decision(1.0, DetectionSeverity.ERROR, 1e9, repeat=False), [[1e9, 5.0]])
    found = detection(
        fired,
        detector="ewma",
        series="api|p99|region=eu",
        service="api",
        metric="p99",
        labels={"region": "eu"},
        ts=1e9,
        value=5.0,
    )
    assert found.labels == {"region": "eu"} and "truncated" not in found.context


@pytest.mark.parametrize("value", ["0", "101", "many"], ids=["zero", "too-many", "not-a-number"])
def test_detect_max_attempts_is_checked_by_name(
    value: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WARROOM_DETECT_MAX_ATTEMPTS", value)
    with pytest.raises(ValidationError, match="detect_max_attempts"):
        Settings()


def test_detect_max_attempts_defaults_to_three(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WARROOM_DETECT_MAX_ATTEMPTS", raising=False)
    assert Settings().detect_max_attempts == 3
