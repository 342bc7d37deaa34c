"""Points decoded straight into columns agree with the ``MetricPoint`` model on any input."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schemas import MetricPoint
from streams.codec import decode_batchable, decode_points, decode_points_many
from streams.points_scan import SeriesNames


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


def _reads_as_the_model(raw: bytes) -> None:
    """``decode_points`` and ``decode_points_many`` (scanner, msgspec or model way, whichever
    takes it) give the model way's values, times and rejections, to the bit."""
    _, values, ts, reasons = _model_way(raw)
    one = decode_points(raw)
    many = decode_points_many([raw], names=SeriesNames())
    for got, rejected in ((one, one.rejected), (many, many.rejected[0])):
        assert got.values.tobytes() == np.array(values, dtype=np.float64).tobytes()
        assert got.ts.tobytes() == np.array(ts, dtype=np.float64).tobytes()
        assert [r.reason for r in rejected] == reasons


#: Numbers whose fraction's leading zeros and exponent (of up to seven digits) nearly cancel:
#: tens of kilobytes each, with a plain value (``1.0``, ``10.0``) or one past the largest double.
LONG_NUMBERS = {
    "1 after 100005 zeros, e100006": "0." + "0" * 100005 + "1e100006",
    "1 after 100005 zeros, e100007": "0." + "0" * 100005 + "1e100007",
    "1 after 100005 zeros, e1000060 (inf)": "0." + "0" * 100005 + "1e1000060",
    "1 after 10000 zeros, e100001 (inf)": "0." + "0" * 10000 + "1e100001",
    "1 after 10000 zeros, e10001": "0." + "0" * 10000 + "1e10001",
    "1 then 6000 zeros, e-6000": "1" + "0" * 6000 + "e-6000",
}


@pytest.mark.parametrize("number", LONG_NUMBERS.values(), ids=LONG_NUMBERS.keys())
@pytest.mark.parametrize("service", ["api", "\\u0061pi"], ids=["scanned", "escaped"])
@pytest.mark.parametrize("field", ["value", "ts"])
def test_a_long_number_reads_as_the_model_reads_it(number: str, service: str, field: str) -> None:
    # Scanned when the names are plain, decoded by msgspec when one holds an escape.
    other = "1.5" if field == "ts" else "1700000000"
    raw = (f'{{"{field}":{number},"service":"{service}","metric":"m",'
           f'"{"value" if field == "ts" else "ts"}":{other}}}').encode()  # fmt: skip
    _reads_as_the_model(raw)


POINT = '"ts":1700000000,"service":"api","metric":"m","value":1.5'
BATCH = '[{"ts":1700000000,"service":"api","metric":"b","value":2}]'
#: A point's fields beside a ``points`` key that is not one non-empty list, or is there twice.
POINTS_KEY = {
    "points null, then a point": f'{{"points":null,{POINT}}}',
    "a point, then points null": f'{{{POINT},"points":null}}',
    "points empty, then a point": f'{{"points":[],{POINT}}}',
    "points twice": f'{{"points":{BATCH},"points":[{{{POINT}}}]}}',
    "points, then points null": f'{{"points":{BATCH},"points":null}}',
    "points null, then points": f'{{"points":null,"points":{BATCH}}}',
    "a point and points": f'{{{POINT},"points":{BATCH}}}',
}


@pytest.mark.parametrize("text", POINTS_KEY.values(), ids=POINTS_KEY.keys())
def test_a_points_key_beside_a_point_reads_as_the_model_reads_it(text: str) -> None:
    raw = text.encode()
    _reads_as_the_model(raw)
    assert list(decode_points(raw).series) == [s.split("/")[0] for s in _model_way(raw)[0]]
