"""Points read from their bytes (``streams.points_scan``) are exactly what the msgspec and
model ways read: the same series, the same values and times to the bit, the same rejections
with the same reasons, whatever the message; and series found by number keep their rows
through eviction and reuse (``RoutedBanks.admit`` with ``NumberedSeries``)."""

from __future__ import annotations

import json
import math
import random
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from detectors.cardinality import SeriesLimits
from detectors.routing import NumberedSeries, RoutedBanks
from streams.codec import _wire_many, decode_points_many
from streams.points_scan import SeriesNames, scan

RECEIVED = 1.7e9 + 100.0


def _same(raws: list[bytes | None], received: list[float] | None = None) -> None:
    """The scanner's batch equals the msgspec and model ways' (``_wire_many``), bit for bit."""
    names = SeriesNames()
    for _ in range(2):  # first with every identity new, then with every one known
        got = decode_points_many(raws, received, 300.0, names=names)
        want = _wire_many(raws, received, 300.0)
        assert list(got.series) == want.series
        assert got.values.tobytes() == want.values.tobytes()
        assert got.ts.tobytes() == want.ts.tobytes()
        assert got.spans == want.spans
        assert [[(r.reason, r.payload) for r in m] for m in got.rejected] == [
            [(r.reason, r.payload) for r in m] for m in want.rejected
        ]
        assert isinstance(got.series, NumberedSeries)
        assert [names.names[k] for k in got.series.numbers.tolist()] == list(got.series)


def _point(**fields: Any) -> dict[str, Any]:
    return {"ts": 1.7e9, "service": "api", "metric": "p99", "value": 1.5, **fields}


NUMBERS = [
    "0", "-0", "0.0", "-0.0", "-0e5", "0e-5", "1", "-1", "1.5", "1E5", "1e+5", "1e-5",
    "0.30000000000000004", "-0.30000000000000004", "123456789012345", "1234567890123456",
    "12345678901234567890", "123456789012345678901234567890", "9007199254740993",
    "1e22", "1e23", "1e-22", "1e-23", "4.9e-324", "2.2250738585072014e-308", "1e308",
    "1.7976931348623157e308", "1e309", "-1e400", "1e-400", "0.000001", "100.000",
    "1700000000", "1700000000.123456", "17e8", "0.17e10", "00", "01", "1.", ".5", "-", "+1",
    "1e", "1e+", "--1", "1.5.5", "NaN", "Infinity", "true", "null", '"12"',
]  # fmt: skip


@pytest.mark.parametrize("number", NUMBERS, ids=NUMBERS)
@pytest.mark.parametrize("field", ["value", "ts"])
def test_a_number_reads_as_msgspec_reads_it(number: str, field: str) -> None:
    point = json.dumps(_point(), separators=(",", ":"))
    old = '"value":1.5' if field == "value" else '"ts":1700000000.0'
    raw = point.replace(old, f'"{field}":{number}').encode()
    assert old.split(":")[0] in raw.decode()
    _same([raw, b'{"points":[' + raw + b"," + raw + b"]}"], [RECEIVED, RECEIVED])


SHAPES: dict[str, bytes | None] = {
    "plain": json.dumps(_point()).encode(),
    "batch": json.dumps({"points": [_point(), _point(metric="p50")]}).encode(),
    "whitespace": b' \n{ "points" :\t[ { "ts" : 1.7e9 , "service" : "api" , "metric" : "m" ,'
    b' "value" : 2 , "labels" : { "a" : "b" , "c" : "d" } } ] }\r\n',
    "labels in another order": json.dumps(
        {"points": [_point(labels={"b": "2", "a": "1"}), _point(labels={"a": "1", "b": "2"})]}
    ).encode(),
    "empty labels": json.dumps(_point(labels={})).encode(),
    "null labels": json.dumps(_point(labels=None)).encode(),
    "label not text": json.dumps(_point(labels={"a": 1})).encode(),
    "duplicate label": b'{"ts":1.7e9,"service":"a","metric":"m","value":1,'
    b'"labels":{"k":"1","k":"2"}}',
    "duplicate field": b'{"ts":1.7e9,"service":"a","metric":"m","value":1,"value":2}',
    "unknown field": json.dumps(_point(unit="s")).encode(),
    "fields in another order": b'{"value":3,"labels":{"x":"y"},"metric":"m","service":"s",'
    b'"ts":1.7e9}',
    "missing value": b'{"ts":1.7e9,"service":"a","metric":"m"}',
    "escape": json.dumps(_point(service="a\\nb")).encode(),
    "escaped quote": json.dumps(_point(metric='say "hi"')).encode(),
    "unicode escape": b'{"ts":1.7e9,"service":"\\u0061pi","metric":"m","value":1}',
    "not ascii": json.dumps(_point(service="régión"), ensure_ascii=False).encode(),
    "control": b'{"ts":1.7e9,"service":"a\x01","metric":"m","value":1}',
    "tab in a name": b'{"ts":1.7e9,"service":"a\tb","metric":"m","value":1}',
    "space around a name": json.dumps(_point(service=" api")).encode(),
    "empty service": json.dumps(_point(service="")).encode(),
    "long service": json.dumps(_point(service="s" * 201)).encode(),
    "empty label key": json.dumps(_point(labels={"": "x"})).encode(),
    "too many labels": json.dumps(_point(labels={f"l{j}": "x" for j in range(40)})).encode(),
    "long label value": json.dumps(_point(labels={"k": "v" * 2000})).encode(),
    "pipe in names": json.dumps(
        {"points": [_point(service="a |b", metric="c"), _point(service="a ", metric="b|c")]}
    ).encode(),
    "text time": json.dumps(_point(ts="2023-11-14T22:13:20+00:00")).encode(),
    "text time without offset": json.dumps(_point(ts="2023-11-14T22:13:20")).encode(),
    "too far ahead": json.dumps(_point(ts=RECEIVED + 10_000)).encode(),
    "before the epoch": json.dumps(_point(ts=-5)).encode(),
    "the epoch": json.dumps(_point(ts=0)).encode(),
    "empty batch": b'{"points":[]}',
    "batch not a list": b'{"points":{"a":1}}',
    "batch with a bad entry": json.dumps({"points": [_point(), [1], _point(value="x")]}).encode(),
    "points and more": json.dumps({"points": [_point()], "ts": 1}).encode(),
    "trailing text": json.dumps(_point()).encode() + b" x",
    "two objects": json.dumps(_point()).encode() * 2,
    "truncated": json.dumps({"points": [_point()]}).encode()[:-3],
    "array": b"[1, 2]",
    "not json": b"not json",
    "not utf-8": b"\xff\xfe{}",
    "empty": b"",
    "none": None,
    "nested deep": b'{"points":[' + b"[" * 5000 + b"]" * 5000 + b"]}",
}


def test_every_shape_reads_as_the_msgspec_and_model_ways_read_it() -> None:
    raws = list(SHAPES.values())
    _same(raws, [RECEIVED] * len(raws))
    _same(raws)  # arrival unknown
    for raw in raws:
        _same([raw], [RECEIVED])


def test_the_plain_shapes_are_scanned_and_the_others_are_not() -> None:
    # Not a result but the point of it: the common shapes take the compiled way.
    scanned = scan(list(SHAPES.values())).ok.tolist()
    taken = {name for name, ok in zip(SHAPES, scanned, strict=True) if ok}
    assert {"plain", "batch", "whitespace", "labels in another order", "fields in another order",
            "duplicate label", "empty labels"} <= taken  # fmt: skip
    assert not taken & {"escape", "not ascii", "control", "unknown field", "duplicate field",
                        "text time", "empty batch", "none", "truncated", "two objects"}  # fmt: skip


def test_a_series_written_in_two_ways_is_one_series() -> None:
    names = SeriesNames()
    raws = [SHAPES["labels in another order"], SHAPES["whitespace"]]
    got = decode_points_many(raws, names=names)
    assert got.series[0] == got.series[1] == "api|p99|a=1,b=2"
    assert isinstance(got.series, NumberedSeries)
    assert got.series.numbers[0] == got.series.numbers[1]


def test_an_identity_with_invalid_names_is_never_learned() -> None:
    # Valid JSON the scanner takes, with a name the model refuses: it must be refused every
    # time, not only the first.
    names = SeriesNames()
    raws = [json.dumps(_point(service="s" * 201)).encode(),
            json.dumps(_point(labels={"": "x"})).encode()]  # fmt: skip
    for _ in range(3):
        got = decode_points_many(raws, names=names)
        assert not got.series
        assert "service" in got.rejected[0][0].reason and "labels" in got.rejected[1][0].reason
    assert len(names) == 0


mutations = st.sampled_from([" ", "\n", "\\", '"', "\\u00e9", ",", "}", "]", "{", ":", "-", "e",
                             ".", "0", "9", "x", "\x01", "é", "|", "="])  # fmt: skip


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(st.tuples(st.integers(0, 2000), st.integers(0, 1), mutations), min_size=0, max_size=3),
    st.integers(0, 10_000),
)
def test_mutated_messages_read_as_the_msgspec_and_model_ways_read_them(
    edits: list[tuple[int, int, str]], seed: int
) -> None:
    rng = random.Random(seed)
    points = [
        _point(
            service=f"svc{rng.randrange(3)}",
            metric=f"m{rng.randrange(4)}",
            value=rng.choice([rng.gauss(0, 1e3), rng.randrange(-5, 5), 0.1 + 0.2]),
            ts=rng.choice([1.7e9 + rng.random() * 100, 1_700_000_000, RECEIVED + 1e4]),
            **({"labels": {"k": f"v{rng.randrange(3)}"}} if rng.random() < 0.5 else {}),
        )
        for _ in range(rng.randint(1, 6))
    ]
    text = json.dumps({"points": points} if len(points) > 1 else points[0])
    for at, delete, piece in edits:
        at %= len(text) + 1
        text = text[:at] + piece + text[at + delete :]
    raw = text.encode(errors="surrogatepass")
    _same([raw, json.dumps(_point()).encode()], [RECEIVED, RECEIVED])


def test_series_found_by_number_keep_their_rows_through_eviction_and_reuse() -> None:
    limits = SeriesLimits(per_service=3, per_partition=5, idle_s=100.0, sweep_s=1.0)
    by_id, by_number = (RoutedBanks("ewma", limits=limits) for _ in range(2))
    names = SeriesNames()
    rng = random.Random(5)
    for t in range(200):
        series = [f"s{rng.randrange(3)}|m{rng.randrange(4)}" for _ in range(rng.randint(1, 12))]
        numbered = NumberedSeries(
            series, np.array([names.number(s) for s in series], dtype=np.intp), names.numbering
        )
        now = 10.0 * t
        assert by_id.evict_idle(now) == by_number.evict_idle(now)
        rows, refused = by_id.admit(series)
        got_rows, got_refused = by_number.admit(numbered)
        assert got_rows.tolist() == rows.tolist()
        assert sorted((i, r.reason) for i, r in got_refused.items()) == sorted(
            (i, r.reason) for i, r in refused.items()
        )
        keep = rows >= 0
        x = np.full(int(keep.sum()), 1.0)
        at = np.full(int(keep.sum()), now)
        for bank, found in ((by_id, rows), (by_number, got_rows)):
            # Only some series get points: the others go idle and are evicted.
            bank.observe_rows(found[keep][: max(1, len(x) // 2)], x[: max(1, len(x) // 2)],
                              at[: max(1, len(x) // 2)])  # fmt: skip
    assert math.isfinite(by_number.clock)


def test_numbers_of_another_numbering_are_not_taken_for_these() -> None:
    bank = RoutedBanks("ewma")
    first, second = SeriesNames(), SeriesNames()
    a = NumberedSeries(["a|x"], np.array([first.number("a|x")]), first.numbering)
    b = NumberedSeries(["b|x"], np.array([second.number("b|x")]), second.numbering)
    assert a.numbers[0] == b.numbers[0] == 0
    assert bank.admit(a)[0].tolist() != bank.admit(b)[0].tolist()
    assert bank.series(int(bank.admit(a)[0][0])) == "a|x"


def test_numbers_of_every_size_read_as_float_reads_them() -> None:
    # Timestamps as time.time() writes them (17 digits), values of any magnitude, mantissas of
    # up to 19 digits with exponents at both ends of the range, and past it (read by float).
    rng = random.Random(11)
    tokens = []
    for _ in range(20_000):
        kind = rng.randrange(5)
        if kind == 0:
            tokens.append(repr(1.7e9 + rng.random() * 1e8))
        elif kind == 1:
            tokens.append(repr(rng.gauss(0, 1) * 10 ** rng.randint(-300, 300)))
        elif kind == 2:
            tokens.append(f"{rng.randint(1, 10**19 - 1)}e{rng.randint(-345, 310)}")
        elif kind == 3:
            tokens.append(f"-{rng.randint(1, 10**12)}.{rng.randint(0, 10**7):07d}")
        else:
            tokens.append(
                f"0.{rng.randint(0, 10**5):05d}{rng.randint(1, 10**15)}E-{rng.randint(0, 30)}"
            )
    raws = [b'{"ts":1,"service":"a","metric":"b","value":%s}' % t.encode() for t in tokens]
    got = scan(raws)
    assert got.ok.all()
    want = np.array([float(t) for t in tokens])
    assert got.values.tobytes() == want.tobytes()


EDGES = ["-0", "-0.0", "0e-999", "4.9e-324", "2.4703282292062327e-324", "1e308",
         "1.7976931348623158e308", "2.2250738585072011e-308"]  # fmt: skip


def _number_text(draw: st.DrawFn) -> str:
    kind = draw(st.integers(0, 4))
    if kind == 0:  # any double as Python writes it: -0.0, denormals, 1e308 ...
        return repr(draw(st.floats(allow_nan=False, allow_infinity=False)))
    if kind == 1:  # 17 to 25 digits, a point anywhere in them, an exponent or none
        digits = draw(st.text("0123456789", min_size=17, max_size=25)).lstrip("0") or "0"
        at = draw(st.integers(1, len(digits)))
        text = digits[:at] + ("." + digits[at:] if at < len(digits) else "")
        return text + draw(st.sampled_from(["", "e-300", "E+20", "e308", "e-330", "e5"]))
    if kind == 2:
        return str(draw(st.integers(-(10**25), 10**25)))
    if kind == 3:
        return draw(st.sampled_from(EDGES))
    return repr(1.7e9 + draw(st.floats(0, 1e6)))


@st.composite
def _member(draw: st.DrawFn, key: str) -> str:
    if key in ("ts", "value"):
        return f'"{key}":{_number_text(draw)}'
    if key == "labels":
        keys, values = st.sampled_from(["a", "b", "z"]), st.sampled_from(["1", "x\\u00e9", ""])
        pairs = draw(st.lists(st.tuples(keys, values), max_size=3))  # a key maybe twice
        return '"labels":{' + ",".join(f'"{k}":"{v}"' for k, v in pairs) + "}"
    name = draw(st.sampled_from(["api", "db", "\\u0061pi", "a\\/b", "api ", "x" * 30]))
    return f'"{key}":"{name}"'


@st.composite
def _point_text(draw: st.DrawFn) -> str:
    keys = ["ts", "service", "metric", "value", *draw(st.sampled_from([[], ["labels"]]))]
    keys += draw(st.lists(st.sampled_from(["ts", "service", "value", "labels"]), max_size=1))
    keys = draw(st.permutations(keys))  # keys in any order, one maybe twice
    return "{" + ",".join(draw(_member(k)) for k in keys) + "}"


@st.composite
def _message(draw: st.DrawFn) -> bytes:
    points = draw(st.lists(_point_text(), max_size=4))
    shape = draw(st.integers(0, 3))
    if shape == 0 and points:
        return points[0].encode()
    if shape == 1:  # ``points`` twice
        return (
            '{"points":[' + ",".join(points) + '],"points":[' + ",".join(points[:1]) + "]}"
        ).encode()
    return ('{"points":[' + ",".join(points) + "]}").encode()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_message(), min_size=1, max_size=4))
def test_generated_messages_read_as_the_msgspec_and_model_ways_read_them(raws: list[bytes]) -> None:
    # Numbers of every length and range, keys in any order or twice, ``points`` twice, escapes
    # in names: the scanner takes what it can and the rest goes the msgspec way, alike.
    _same(list(raws), [RECEIVED] * len(raws))


@settings(max_examples=500, deadline=None)
@given(
    odd=st.integers(2**53, 2**54 - 1).map(lambda m: m | 1),
    q=st.integers(-4, 23),
    nudge=st.sampled_from([0, 1, -1]),
    zeros=st.integers(0, 3),
    negative=st.booleans(),
)
def test_numbers_halfway_between_two_doubles_read_as_float_reads_them(
    odd: int, q: int, nudge: int, zeros: int, negative: bool
) -> None:
    # An odd 54-bit integer is exactly halfway between two doubles (to the even one); written
    # as digits times a power of ten (q from -4 to 23, where the exact halfway test applies),
    # then one unit of the last digit either side, and with trailing zeros in the fraction.
    if q >= 0:
        digits = odd // 5**q  # odd = digits * 5**q * 2**-q, halfway if exactly divisible
        text = f"{digits + nudge}e{q}"
        value = (digits + nudge) * 10**q
    else:
        digits = odd * 5**-q
        text = f"{digits + nudge}e{q}"
        value = None
    if digits + nudge <= 0:
        return
    mantissa, _, exponent = text.partition("e")
    tokens = [text, f"{mantissa}.{'0' * zeros}e{exponent}" if zeros else text]
    if value is not None and value < 10**25:
        tokens.append(str(value))
    tokens = [f"-{t}" if negative else t for t in tokens]
    raws = [b'{"ts":1,"service":"a","metric":"b","value":%s}' % t.encode() for t in tokens]
    got = scan(raws)
    assert got.ok.all()
    assert got.values.tobytes() == np.array([float(t) for t in tokens]).tobytes(), tokens
