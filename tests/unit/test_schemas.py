"""Wire contracts: timestamps in both forms, errors that name the field."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from schemas import Detection, MetricBatch, MetricPoint, format_errors


@pytest.mark.parametrize(
    ("ts", "expected"),
    [
        (0, datetime(1970, 1, 1, tzinfo=UTC)),
        (1_700_000_000.5, datetime(2023, 11, 14, 22, 13, 20, 500000, tzinfo=UTC)),
        ("2026-01-02T03:04:05Z", datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)),
        ("2026-01-02T03:04:05.25+01:00", datetime(2026, 1, 2, 2, 4, 5, 250000, tzinfo=UTC)),
    ],
    ids=["epoch-zero", "epoch-float", "rfc3339-z", "rfc3339-offset"],
)
def test_timestamps(ts: Any, expected: datetime) -> None:
    point = MetricPoint.model_validate({"ts": ts, "service": "a", "metric": "m", "value": 1})
    assert point.ts == expected
    assert point.ts.tzinfo is not None


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"ts": 1_700_000_000_000, "service": "a", "metric": "m", "value": 1}, "ts: timestamp"),
        ({"ts": "2026-01-02 03:04:05", "service": "a", "metric": "m", "value": 1}, "no UTC offset"),
        ({"ts": "yesterday", "service": "a", "metric": "m", "value": 1}, "is not RFC 3339"),
        ({"ts": True, "service": "a", "metric": "m", "value": 1}, "not a boolean"),
        ({"ts": 1, "service": "", "metric": "m", "value": 1}, "service: String should have"),
        (
            {"ts": 1, "service": "a", "metric": "m", "value": "NaN"},
            "value: value must be a finite number",
        ),
        ({"ts": 1, "service": "a", "metric": "m"}, "value: Field required"),
        ({"ts": 1, "service": "a", "metric": "m", "value": 1, "labels": {"k": 1}}, "labels.k:"),
    ],
    ids=["millis", "naive", "garbage", "bool", "empty-service", "nan", "missing", "label-type"],
)
def test_errors_name_the_field(data: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError) as caught:
        MetricPoint.model_validate(data)
    assert message in format_errors(caught.value)


def test_json_round_trip_uses_rfc3339() -> None:
    point = MetricPoint.model_validate(
        {"ts": 1_700_000_000, "service": "a", "metric": "m", "value": 2.5, "labels": {"k": "v"}}
    )
    text = point.model_dump_json()
    assert '"ts":"2023-11-14T22:13:20Z"' in text
    assert MetricPoint.model_validate_json(text) == point
    assert point.series_id == "a|m|k=v"


def test_batch_needs_points() -> None:
    with pytest.raises(ValidationError) as caught:
        MetricBatch.model_validate({"points": []})
    assert "points:" in format_errors(caught.value)


def test_detection_score_range() -> None:
    base = {"id": "d", "ts": 1, "service": "a", "signal": "m", "detector": "x"}
    assert Detection.model_validate({**base, "score": 1.0}).score == 1.0
    with pytest.raises(ValidationError) as caught:
        Detection.model_validate({**base, "score": 1.5})
    assert "score:" in format_errors(caught.value)
