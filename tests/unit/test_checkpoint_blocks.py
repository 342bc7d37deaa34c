"""Checkpointed block parts: raw array bytes behind a JSON header, and the JSON parts written
before still restore."""

from __future__ import annotations

import base64
import json
from typing import Any

import numpy as np
import pytest

from detectors import SeriesBank, blocks
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
    assert all(value.startswith(blocks.MAGIC) for value in wire.values())
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


def test_the_default_detector_checkpoints_at_most_1024_bytes_a_series() -> None:
    """With a full window and ids like ``svc|m123``; the arrays alone, as base64 JSON, came to
    about 1,200 bytes a series."""
    ids = [f"svc|m{i}" for i in range(1024)]
    settings = Settings()
    bank = SeriesBank(settings.detector, settings.detector_params)
    rng = np.random.default_rng(3)
    for t in range(200):
        bank.observe(ids, 100.0 + rng.normal(0, 5, len(ids)), np.full(len(ids), 1.7e9 + t))
    parts = bank.take_dirty_blocks()
    stored = sum(len(blocks.encode(v)) for v in parts.values()) / len(ids)
    as_json = sum(len(json.dumps(_as_json(v))) for v in parts.values()) / len(ids)
    assert stored <= 1024 < as_json, (stored, as_json)
