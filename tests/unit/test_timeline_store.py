"""An incident's timeline is kept in segments of bounded size: no table row outgrows a Kafka
record, however many events or how long the notes."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import ValidationError

from schemas import Detection
from schemas.detections import MAX_CONTEXT_BYTES
from streams import timeline_store
from streams.timeline_store import SEGMENT_BYTES


def event(seq: int, text: str) -> dict[str, Any]:
    return {"id": f"inc-1:{seq}", "seq": seq, "kind": "note", "data": {"text": text}}


@pytest.mark.parametrize(
    ("events", "text_chars"), [(2_000, 40), (150, 9_999), (3, 200_000)],
    ids=["many-small", "long-notes", "few-huge"],
)  # fmt: skip
def test_every_row_stays_bounded_and_the_timeline_reads_back_whole(
    events: int, text_chars: int
) -> None:
    table: dict[str, Any] = {}
    for seq in range(1, events + 1):
        timeline_store.append(table, "inc-1", event(seq, "n" * text_chars))
    biggest = max(len(json.dumps(row).encode()) for row in table.values())
    assert biggest <= SEGMENT_BYTES + text_chars + 200  # a segment, or one event alone
    assert biggest < 1_000_000
    read = timeline_store.read(table, "inc-1")
    assert read is not None
    assert [e["seq"] for e in read] == list(range(1, events + 1))


def test_an_incident_without_events_reads_as_none() -> None:
    assert timeline_store.read({}, "inc-x") is None


def test_a_timeline_stored_whole_before_segments_still_reads() -> None:
    table: dict[str, Any] = {"inc-1": [event(1, "a"), event(2, "b")]}
    timeline_store.append(table, "inc-1", event(3, "c"))
    assert [e["seq"] for e in timeline_store.read(table, "inc-1") or []] == [1, 2, 3]


def test_a_detection_context_past_its_bound_is_refused() -> None:
    with pytest.raises(ValidationError) as caught:
        Detection(id="d", ts=0, service="s", signal="x", detector="y", score=1,
                  context={"blob": "x" * MAX_CONTEXT_BYTES})  # fmt: skip
    assert "context" in str(caught.value) and "at most" in str(caught.value)
