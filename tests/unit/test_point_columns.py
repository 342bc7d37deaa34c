"""Points decoded straight into columns agree with the ``MetricPoint`` model on any input."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schemas import MetricPoint
from streams.codec import decode_batchable, decode_points, decode_points_many


def _model_way(raw: bytes) -> tuple[list[str], list[float], list[float], list[str]]:
    decoded = decode_batchable(raw, MetricPoint, "points")
    items = decoded.items
    return (
        [f"{p.series_id}/{p.service}/{p.metric}/{sorted(p.labels.items())}" for p in items],
        [p.value for p in items],
        [p.ts.timestamp() for p in items],
        [r.reason for r in decoded.rejected],
    )


def _agree(raw: bytes) -> None:
    got = decode_points(raw)
    series, values, ts, reasons = _model_way(raw)
    assert [f"{s}/{p.service}/{p.metric}/{sorted((p.labels or {}).items())}"
            for s, p in zip(got.series, got.points, strict=True)] == series  # fmt: skip
    assert got.values.tolist() == values
    np.testing.assert_allclose(got.ts, ts, rtol=0, atol=1e-6)
    assert [r.reason for r in got.rejected] == reasons


names = st.one_of(
    st.sampled_from(["api", "checkout", " padded ", "", "x" * 201, "tab\t", "ünïcode"]),
    st.text(max_size=12),
)
stamps = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-(10**12), max_value=10**12),
    st.sampled_from(["2026-11-27T10:00:00Z", "2026-11-27T10:00:00.123456+02:00",
                     "2026-11-27T10:00:00", "2026-13-45T00:00:00Z", "1700000000", True]),
)  # fmt: skip
values = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True), st.integers(), st.sampled_from(["1.5", None])
)
labels: st.SearchStrategy[Any] = st.one_of(
    st.dictionaries(st.sampled_from(["zone", "pod", "a"]), st.text(max_size=4), max_size=3),
    st.sampled_from([{"n": 1}, [], None]),
)
point = st.fixed_dictionaries(
    {"ts": stamps, "service": names, "metric": names, "value": values},
    optional={"labels": labels, "extra": st.integers()},
)
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(points=st.lists(point, min_size=1, max_size=6), single=st.booleans())
def test_any_points_decode_as_the_model_decodes_them(points: list[Any], single: bool) -> None:
    doc = points[0] if single else {"points": points}
    _agree(json.dumps(doc).encode())


@FUZZ
@given(
    messages=st.lists(
        st.one_of(
            st.lists(point, min_size=1, max_size=4).map(lambda ps: json.dumps({"points": ps})),
            point.map(json.dumps),
            st.sampled_from(['{"points": []}', "not json", '{"ts": 1}']),
        ).map(str.encode),
        max_size=6,
    ),
    repeat=st.booleans(),
)
def test_many_messages_decode_as_each_one_does(messages: list[bytes], repeat: bool) -> None:
    # Twice in one batch: the second time its series ids are known to be valid.
    raws: list[bytes | None] = [*messages, *messages] if repeat else [*messages, None]
    many = decode_points_many(raws)
    at = 0
    for raw, (start, stop), rejected in zip(raws, many.spans, many.rejected, strict=True):
        one = decode_points(raw)
        assert (start, stop) == (at, at + len(one.series))
        assert many.series[start:stop] == one.series
        assert many.values[start:stop].tolist() == one.values.tolist()
        np.testing.assert_allclose(many.ts[start:stop], one.ts, rtol=0, atol=1e-6)
        assert [r.reason for r in rejected] == [r.reason for r in one.rejected]
        at = stop
    assert at == len(many.series) == len(many.values) == len(many.ts)


@FUZZ
@given(raw=st.binary(max_size=200), inside=st.binary(max_size=4))
def test_any_bytes_decode_as_the_model_decodes_them(raw: bytes, inside: bytes) -> None:
    _agree(raw)
    _agree(b'{"ts": 1, "service": "' + inside + b'", "metric": "m", "value": 1}')


def test_valid_batches_take_the_columnar_way_with_labels_sorted() -> None:
    raw = json.dumps({"points": [
        {"ts": 1_700_000_000.5, "service": "api", "metric": "lat", "value": 3,
         "labels": {"zone": "b", "pod": "p1"}},
        {"ts": "2026-11-27T10:00:00Z", "service": "api", "metric": "err", "value": 0.5},
    ]}).encode()  # fmt: skip
    got = decode_points(raw)
    assert got.series == ["api|lat|pod=p1,zone=b", "api|err"]
    assert got.ts.tolist() == [1_700_000_000.5, 1_795_773_600.0]
    assert not isinstance(got.points[0], MetricPoint)  # not the model way
    _agree(raw)


def test_invalid_utf8_inside_a_string_is_rejected_with_the_reason() -> None:
    got = decode_points(b'{"ts": 1, "service": "\xff", "metric": "m", "value": 1}')
    assert got.series == [] and got.rejected[0].reason.startswith("not UTF-8")


def test_a_bad_entry_is_rejected_alone() -> None:
    raw = json.dumps({"points": [
        {"ts": 1, "service": "api", "metric": "lat", "value": 3},
        {"ts": 1, "service": "api", "metric": "lat", "value": "high"},
    ]}).encode()  # fmt: skip
    got = decode_points(raw)
    assert got.series == ["api|lat"]
    [bad] = got.rejected
    assert "points.1.value" in bad.reason


def test_null_labels_are_rejected_as_the_model_rejects_them() -> None:
    raw = json.dumps({"points": [
        {"ts": 0.0, "service": "api", "metric": "api", "value": 0.0},
        {"ts": 0.0, "service": "api", "metric": "api", "value": 0.0, "labels": None},
    ]}).encode()  # fmt: skip
    _agree(raw)
    many = decode_points_many([raw])
    assert many.series == ["api|api"] and "labels" in many.rejected[0][0].reason
