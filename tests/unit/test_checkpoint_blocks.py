"""Checkpointed block parts: raw array bytes behind a JSON header, and the JSON parts written
before still restore."""

from __future__ import annotations

import base64
import json
import zlib
from typing import Any

import numpy as np
import pytest
from pydantic import ValidationError

from detectors import SeriesBank, blocks, vector
from detectors.cardinality import SeriesLimits
from detectors.routing import RoutedBanks
from streams.detect.checkpoints import CHECKPOINT_PAUSE_MAX_S, checkpoint_pause
from streams.settings import Settings


def _fleet(ids: list[str], points: int, detector: str = "tolerant_novelty") -> SeriesBank:
    bank = SeriesBank(detector)
    rng = np.random.default_rng(11)
    for t in range(points):
        bank.observe(ids, 100.0 + rng.normal(0, 2, len(ids)), np.full(len(ids), 1e9 + 60 * t))
    return bank


def _as_json(value: Any) -> Any:
    """A part as the JSON encoding once wrote it: each array's bytes as base64 text."""
    if isinstance(value, dict):
        if isinstance(value.get("data"), bytes):
            return {**value, "data": base64.b64encode(value["data"]).decode()}
        return {k: _as_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_as_json(v) for v in value]
    return value


def _same_next_scores(live: SeriesBank, restored: SeriesBank, ids: list[str], at: int) -> bool:
    later = (np.full(len(ids), 900.0), np.full(len(ids), 1e9 + 60 * at))
    return bool((restored.observe(ids, *later)[0] == live.observe(ids, *later)[0]).all())


def test_a_part_round_trips_and_restores_warm() -> None:
    ids = [f"svc|m{i}" for i in range(40)]
    live = _fleet(ids, 300)
    wire = {k: blocks.encode(v) for k, v in live.take_dirty_blocks().items()}
    assert all(value.startswith((blocks.MAGIC, blocks.ZMAGIC)) for value in wire.values())
    restored = SeriesBank("tolerant_novelty")
    assert restored.load_blocks({k: blocks.decode(v) for k, v in wire.items()}) == 0
    assert restored.ids == live.ids
    assert _same_next_scores(live, restored, ids, 300)


def test_a_part_written_as_json_with_base64_arrays_still_restores_warm() -> None:
    ids = [f"svc|m{i}" for i in range(40)]
    live = _fleet(ids, 300)
    old = {
        k: json.dumps(_as_json(v), separators=(",", ":")).encode()
        for k, v in live.take_dirty_blocks().items()
    }
    restored = SeriesBank("tolerant_novelty")
    assert restored.load_blocks({k: blocks.decode(v) for k, v in old.items()}) == 0
    assert _same_next_scores(live, restored, ids, 300)


@pytest.mark.parametrize("cut", [3, 6, 40, -1], ids=["magic", "length", "header", "arrays"])
def test_a_truncated_part_is_refused_or_restores_cold_never_raises_elsewhere(cut: int) -> None:
    ids = [f"svc|m{i}" for i in range(8)]
    live = _fleet(ids, 50)
    [(key, state)] = live.take_dirty_blocks().items()
    raw = blocks.encode(state)[:cut]
    restored = SeriesBank("tolerant_novelty")
    try:
        decoded = blocks.decode(raw)
    except ValueError:
        return  # the restore leaves it out (logged): its series start afresh
    assert restored.load_blocks({key: decoded}) == 1  # placed, but its state is unreadable


def test_an_array_span_past_the_end_is_refused() -> None:
    header = json.dumps({"a": {"dtype": "<f8", "shape": [1], "data": [0, 8]}}).encode()
    raw = blocks.MAGIC + len(header).to_bytes(4, "big") + header + b"\x00" * 4
    with pytest.raises(ValueError, match="past the end"):
        blocks.decode(raw)


def _full_window_bank(ids: list[str]) -> tuple[SeriesBank, dict[str, dict[str, Any]]]:
    """The default detector's bank after 200 noisy points a series (a full window), and the
    checkpoint parts it then has to write."""
    settings = Settings()
    bank = SeriesBank(settings.detector, settings.detector_params)
    rng = np.random.default_rng(3)
    for t in range(200):
        bank.observe(ids, 100.0 + rng.normal(0, 5, len(ids)), np.full(len(ids), 1.7e9 + t))
    return bank, bank.take_dirty_blocks()


def test_the_default_detector_checkpoints_at_most_1024_bytes_a_series() -> None:
    """With a full window and ids like ``svc|m123``; the arrays alone, as base64 JSON, came to
    about 1,200 bytes a series."""
    ids = [f"svc|m{i}" for i in range(1024)]
    _, parts = _full_window_bank(ids)
    stored = sum(len(blocks.encode(v)) for v in parts.values()) / len(ids)
    as_json = sum(len(json.dumps(_as_json(v))) for v in parts.values()) / len(ids)
    assert stored <= 1024 < as_json, (stored, as_json)


def test_a_series_with_twenty_labels_checkpoints_at_most_1024_bytes() -> None:
    """Ids as the throughput bench's memory phase makes them (twenty labels, about 380
    characters): written as they are, they came to about 1,300 bytes a series."""
    from devtools.bench.throughput import series_labels
    from schemas.metrics import series_id

    ids = [series_id("svc", f"m{i}", series_labels(i, 20)) for i in range(1024)]
    bank, parts = _full_window_bank(ids)
    settings = Settings()
    wire = {k: blocks.encode(v) for k, v in parts.items()}
    assert sum(map(len, wire.values())) / len(ids) <= 1024
    assert all(value.startswith(blocks.ZMAGIC) for value in wire.values())
    restored = SeriesBank(settings.detector, settings.detector_params)
    assert restored.load_blocks({k: blocks.decode(v) for k, v in wire.items()}) == 0
    assert restored.ids == bank.ids
    assert _same_next_scores(bank, restored, ids, 200)


def _zpart(packed: bytes, body: bytes = b"") -> bytes:
    return blocks.ZMAGIC + len(packed).to_bytes(4, "big") + packed + body


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (_zpart(zlib.compress(b" " * (blocks.MAX_HEADER_BYTES + 1), 9)), "inflates past"),
        (_zpart(zlib.compress(b'{"ids":[]}')[:-3]), "whole zlib"),
        (_zpart(zlib.compress(b'{"ids":[]}') + b"tail"), "whole zlib"),
        (_zpart(b"not zlib at all"), "does not inflate"),
    ],
    ids=["bomb", "truncated", "trailing-bytes", "not-zlib"],
)
def test_a_crafted_compressed_header_is_refused_with_value_error(raw: bytes, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        blocks.decode(raw)


def _part(header: Any, body: bytes = b"") -> bytes:
    raw = json.dumps(header).encode() if not isinstance(header, bytes) else header
    return blocks.MAGIC + len(raw).to_bytes(4, "big") + raw + body


@pytest.mark.parametrize(
    "raw",
    [
        b"[" * 100_000 + b"]" * 100_000,
        _part(b"[" * 100_000 + b"]" * 100_000),
        _part(b'{"a":' * 600 + b"0" + b"}" * 600),
        b"\xff\xfe",
        _part(b"\xff\xfe"),
        blocks.MAGIC + (2**32 - 1).to_bytes(4, "big") + b"{}",
    ],
    ids=["deep-json", "deep-header", "deep-objects", "not-utf8", "header-not-utf8", "huge-length"],
)
def test_a_crafted_part_is_refused_with_value_error(raw: bytes) -> None:
    with pytest.raises(ValueError):
        blocks.decode(raw)


@pytest.mark.parametrize(
    ("packed", "reason"),
    [
        ({"dtype": "|O", "shape": [1], "data": b"\0" * 8}, "dtype"),
        ({"dtype": "zz", "shape": [1], "data": b"\0" * 8}, "dtype"),
        ({"dtype": {"names": ["a"], "formats": ["O"]}, "shape": [1], "data": b"\0" * 8}, "dtype"),
        ({"dtype": "<M8[ns]", "shape": [1], "data": b"\0" * 8}, "dtype"),
        ({"dtype": "V2000000000", "shape": [0], "data": b""}, "dtype"),
        ({"dtype": "S1000000000", "shape": [0], "data": b""}, "dtype"),
        ({"dtype": "<f8", "shape": [10**6, 10**6], "data": b""}, "shape"),
        ({"dtype": "<f8", "shape": [-1], "data": b"\0" * 80}, "shape"),
        ({"dtype": "<f8", "shape": [True], "data": b"\0" * 8}, "shape"),
        ({"dtype": "<f8", "shape": [1.0], "data": b"\0" * 8}, "shape"),
        ({"dtype": "<f8", "shape": "ab", "data": b""}, "shape"),
        ({"dtype": "<f8", "shape": [2], "data": b"\0" * 8}, "bytes"),
        ({"dtype": "|u1", "shape": [2], "data": [3, 4]}, "data"),
        ({"dtype": "|u1", "shape": [2], "data": [-1, 2]}, "data"),
        ({"dtype": "|u1", "shape": [2], "data": "!!!"}, "data"),
        ({"dtype": "|u1", "shape": [2]}, "data"),
        ("not a dict", "array"),
    ],
    ids=[
        "object-dtype",
        "unknown-dtype",
        "structured-object-dtype",
        "datetime-dtype",
        "huge-void-dtype",
        "huge-bytes-dtype",
        "huge-shape",
        "negative-shape",
        "bool-shape",
        "float-shape",
        "text-shape",
        "too-few-bytes",
        "data-as-int-list",
        "negative-span-left-as-list",
        "bad-base64",
        "no-data",
        "not-a-dict",
    ],
)
def test_unpack_refuses_a_crafted_array_with_value_error_naming_it(
    packed: Any, reason: str
) -> None:
    with pytest.raises(ValueError, match=reason):
        vector.unpack(packed)


def test_a_part_whose_later_array_is_unreadable_leaves_its_rows_fresh() -> None:
    ids = [f"svc|m{i}" for i in range(8)]
    live = _fleet(ids, 300)
    [(key, state)] = live.take_dirty_blocks().items()
    broken = {**state, "recent": [state["recent"][0], {"dtype": "|O", "shape": [8], "data": b""}]}
    restored = SeriesBank("tolerant_novelty")
    assert restored.load_blocks({key: broken}) == 1
    fresh = SeriesBank("tolerant_novelty")
    fresh.load_blocks({key: {**state, "version": -1}})
    for name, arr in restored.detector.arrays().items():
        np.testing.assert_array_equal(arr[:8], fresh.detector.arrays()[name][:8], err_msg=name)


@pytest.mark.parametrize("share", ["1e-300", "0.001", "0"], ids=["tiny", "thousandth", "zero"])
def test_a_checkpoint_share_that_would_stop_checkpoints_is_refused_by_name(
    monkeypatch: pytest.MonkeyPatch, share: str
) -> None:
    # 1e-300 passed "> 0", and made the pause after any checkpoint longer than the universe.
    monkeypatch.setenv("WARROOM_CHECKPOINT_MAX_SHARE", share)
    with pytest.raises(ValidationError, match="checkpoint_max_share"):
        Settings()


@pytest.mark.parametrize(
    ("took_s", "share", "pause_s"),
    [(0.1, 0.2, 0.5), (2.0, 1.0, 2.0), (600.0, 0.2, CHECKPOINT_PAUSE_MAX_S), (1e9, 0.01, 60.0)],
    ids=["usual", "share-1", "broker-stalled-10-min", "absurd"],
)
def test_the_pause_after_a_checkpoint_is_its_cost_over_the_share_at_most_a_minute(
    took_s: float, share: float, pause_s: float
) -> None:
    assert checkpoint_pause(took_s, share) == pytest.approx(pause_s)


@pytest.mark.parametrize("block", [4_000, 99_999_999], ids=["a-gigabyte", "terabytes"])
def test_a_part_placed_past_the_partitions_series_limit_is_stale_not_allocated(block: int) -> None:
    # Block 4000 made the bank reserve a million rows (about 900 MB); 99,999,999 raised
    # MemoryError out of the restore.
    live = RoutedBanks("tolerant_novelty")
    live.observe(["svc|m"], np.array([1.0]), np.array([1e9]))
    [(_, state)] = live.take_dirty_blocks().items()
    rows = live.default.block_rows
    restored = RoutedBanks("tolerant_novelty", limits=SeriesLimits(per_partition=1_000))
    assert restored.load_blocks({str(block): {**state, "start": block * rows}}) == 1
    assert restored.default.capacity < 10_000 and len(restored.index) == 0
