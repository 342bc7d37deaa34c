"""``metrics.points.v1`` messages read straight from their bytes into columns, in compiled code.

The points path's first step, before any Python object is made per point: a message of the
plain shape (``{"points": [...]}`` or one point, printable ASCII strings without escapes,
numbers, the five known fields once each) is scanned into each point's time, value and the
bytes of its identity (service, metric and labels as written). Anything else (an escape, a
non-ASCII name, an unknown field, a time written as text, ...) is not scanned: the message goes
the ``streams.codec`` way, which decodes it with msgspec or the model, with the same results.

A number is read exactly as msgspec and Python read it (correctly rounded): with at most 15
significant digits and a decimal exponent within 22, as one exact product or quotient of two
doubles (Clinger's fast path); any other number is marked and read by ``float`` afterwards.

An identity's series id is found in ``SeriesNames``, a table from identity bytes to a number
per series id (the bytes are compared in full, not only hashed, so no message can pass for
another series). The table learns an identity only from a message the msgspec way found valid
as a whole, so an identity found there is one whose names are known to be valid: what a
name's validity depends on (its characters, lengths, labels) is all in its bytes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

import numba
import numpy as np
from numpy.typing import NDArray

# Byte values of the JSON the scanner reads.
_QUOTE, _BACKSLASH, _COLON, _COMMA = 34, 92, 58, 44
_LBRACE, _RBRACE, _LBRACKET, _RBRACKET = 123, 125, 91, 93
_MINUS, _PLUS, _DOT, _ZERO, _NINE = 45, 43, 46, 48, 57
# Field bits of a point.
_TS, _SERVICE, _METRIC, _VALUE, _LABELS = 1, 2, 4, 8, 16
_REQUIRED = _TS | _SERVICE | _METRIC | _VALUE
#: Columns of a point's identity spans: service, metric, labels (start, stop; labels 0, 0
#: when absent).
IDENTITY_COLUMNS = 6
#: The shortest point: ``{"ts":0,"service":"a","metric":"b","value":0}``.
_SMALLEST = 44
_EXACT = np.array([10.0**i for i in range(23)], dtype=np.float64)  # 1e0 .. 1e22, all exact
_FIVES_FIRST, _FIVES_LAST = -342, 308


def _fives() -> NDArray[np.uint64]:
    """5**q for q from ``_FIVES_FIRST`` to ``_FIVES_LAST``, to 128 bits with the top bit set
    (for q < 0, a reciprocal rounded up), as (high, low) 64-bit halves: fast_float's table."""
    out = np.zeros((_FIVES_LAST - _FIVES_FIRST + 1, 2), dtype=np.uint64)
    for q in range(_FIVES_FIRST, _FIVES_LAST + 1):
        if q < 0:
            power5 = 5**-q
            z = power5.bit_length()
            b = z + 127 if q >= -27 else 2 * z + 2 * 64
            c = 2**b // power5 + 1
            while c >= 1 << 128:
                c //= 2
        else:
            c = 5**q
            while c < 1 << 127:
                c *= 2
            while c >= 1 << 128:
                c //= 2
        out[q - _FIVES_FIRST] = (c >> 64, c & (2**64 - 1))
    return out


_FIVES = _fives()
_FNV_OFFSET = np.uint64(0xCBF29CE484222325)
_FNV_PRIME = np.uint64(0x100000001B3)


@numba.njit(cache=True, nogil=True)
def _ws(buf: Any, i: int, end: int) -> int:
    while i < end:
        c = buf[i]
        if c != 32 and c != 9 and c != 10 and c != 13:
            return i
        i += 1
    return i


@numba.njit(cache=True, nogil=True)
def _string(buf: Any, i: int, end: int) -> int:
    """The end (past the closing quote) of the plain string at ``i``; -1 if it is not one."""
    if i >= end or buf[i] != _QUOTE:
        return -1
    i += 1
    while i < end:
        c = buf[i]
        if c == _QUOTE:
            return i + 1
        if c < 32 or c > 126 or c == _BACKSLASH:
            return -1
        i += 1
    return -1


@numba.njit(cache=True, nogil=True)
def _is(buf: Any, a: int, b: int, word: Any) -> bool:
    """Whether ``buf[a:b]`` is ``word``."""
    j = 0
    while j < len(word) and a + j < b and buf[a + j] == word[j]:
        j += 1
    return j == len(word) == b - a


@numba.njit(cache=True, nogil=True)
def _field(buf: Any, a: int, b: int, words: Any) -> int:
    """The field bit of the key ``buf[a:b]`` (1 << f for ``words[f]``, its length in its
    last column); 0 if it is none of them."""
    last = words.shape[1] - 1
    for f in range(words.shape[0]):
        if words[f, last] != b - a:
            continue
        same = True
        for j in range(b - a):
            if words[f, j] != buf[a + j]:
                same = False
                break
        if same:
            return 1 << f
    return 0


@numba.njit(cache=True, nogil=True)
def _number(buf: Any, i: int, end: int, exact: Any, fives: Any) -> tuple[int, float, bool]:
    """(end, value, whether ``float`` must read it) of the JSON number at ``i``; end -1 if
    there is none."""
    j = i
    negative = False
    if j < end and buf[j] == _MINUS:
        negative = True
        j += 1
    if j >= end or buf[j] < _ZERO or buf[j] > _NINE:
        return -1, 0.0, False
    mantissa = np.uint64(0)
    significant = 0
    scale = 0  # the decimal exponent of the mantissa's last digit
    if buf[j] == _ZERO:
        j += 1
    else:
        while j < end and _ZERO <= buf[j] <= _NINE:
            if significant < 19:
                mantissa = mantissa * np.uint64(10) + np.uint64(buf[j] - _ZERO)
            else:
                scale += 1
            significant += 1
            j += 1
    integral = True
    if j < end and buf[j] == _DOT:
        integral = False
        j += 1
        if j >= end or buf[j] < _ZERO or buf[j] > _NINE:
            return -1, 0.0, False
        while j < end and _ZERO <= buf[j] <= _NINE:
            if significant == 0 and buf[j] == _ZERO:
                scale -= 1  # a leading zero of the fraction
            elif significant < 19:
                mantissa = mantissa * np.uint64(10) + np.uint64(buf[j] - _ZERO)
                significant += 1
                scale -= 1
            else:
                significant += 1
            j += 1
    exponent = 0
    huge = False
    if j < end and (buf[j] == 101 or buf[j] == 69):  # e, E
        integral = False
        j += 1
        sign = 1
        if j < end and (buf[j] == _PLUS or buf[j] == _MINUS):
            sign = -1 if buf[j] == _MINUS else 1
            j += 1
        if j >= end or buf[j] < _ZERO or buf[j] > _NINE:
            return -1, 0.0, False
        while j < end and _ZERO <= buf[j] <= _NINE:
            if exponent >= 100_000:
                # Past any double, unless a fraction's leading zeros as many make up for it:
                # ``float`` reads it (a seven-digit exponent held as six would read wrong).
                huge = True
            else:
                exponent = exponent * 10 + (buf[j] - _ZERO)
            j += 1
        exponent *= sign
    if huge and significant > 0:
        return j, 0.0, True
    if significant == 0:
        # Zero. msgspec reads the integer -0 as 0.0, and -0.0 (or -0e1) as -0.0.
        return j, (-0.0 if negative and not integral else 0.0), False
    power = exponent + scale
    if significant <= 15 and -22 <= power <= 22:
        value = float(mantissa)
        value = value * exact[power] if power >= 0 else value / exact[-power]
        return j, (-value if negative else value), False
    if significant > 19:
        return j, 0.0, True  # the mantissa is not exact: ``float`` reads it
    value = _eisel_lemire(mantissa, power, fives)
    if value < 0.0:
        return j, 0.0, True  # out of the normal range: ``float`` reads it
    return j, (-value if negative else value), False


@numba.njit(cache=True, nogil=True)
def _product(a: Any, b: Any) -> tuple[Any, Any]:
    """The 128-bit product of two 64-bit integers, as (high, low)."""
    half = np.uint64(0xFFFFFFFF)
    thirty_two = np.uint64(32)
    a_lo, a_hi = a & half, a >> thirty_two
    b_lo, b_hi = b & half, b >> thirty_two
    p0, p1, p2, p3 = a_lo * b_lo, a_lo * b_hi, a_hi * b_lo, a_hi * b_hi
    middle = (p0 >> thirty_two) + (p1 & half) + (p2 & half)
    low = (middle << thirty_two) | (p0 & half)
    high = p3 + (p1 >> thirty_two) + (p2 >> thirty_two) + (middle >> thirty_two)
    return high, low


@numba.njit(cache=True, nogil=True)
def _eisel_lemire(w: Any, q: int, fives: Any) -> float:
    """``w * 10**q`` correctly rounded (``w`` an exact decimal mantissa below 2**64, not 0),
    by Eisel and Lemire's algorithm as fast_float implements it; -1.0 when the result is not a
    normal double (subnormal, or past the largest), which ``float`` reads instead."""
    if q < _FIVES_FIRST or q > _FIVES_LAST:
        return -1.0
    lz = 0
    top = np.uint64(1) << np.uint64(63)
    while w & top == 0:
        w = w << np.uint64(1)
        lz += 1
    index = q - _FIVES_FIRST
    high, low = _product(w, fives[index, 0])
    mask = np.uint64(0x1FF)
    if high & mask == mask:
        second_high, _ = _product(w, fives[index, 1])
        low2 = low + second_high
        if second_high > low2:
            high += np.uint64(1)
        low = low2
    upper: Any = np.int64(high >> np.uint64(63))
    shift = np.uint64(upper + 9)
    mantissa = high >> shift
    power2 = (((152170 + 65536) * q) >> 16) + 63 + upper - lz + 1023
    if power2 <= 0:
        return -1.0
    # Exactly halfway between two doubles: to the even one.
    halfway = low <= np.uint64(1) and -4 <= q <= 23 and mantissa & np.uint64(3) == np.uint64(1)
    if halfway and (mantissa << shift) == high:
        mantissa &= ~np.uint64(1)
    mantissa += mantissa & np.uint64(1)
    mantissa = mantissa >> np.uint64(1)
    if mantissa >= np.uint64(2) << np.uint64(52):
        mantissa = np.uint64(1) << np.uint64(52)
        power2 += 1
    if power2 >= 0x7FF:
        return -1.0
    return math.ldexp(float(mantissa), power2 - 1075)


@numba.njit(cache=True, nogil=True)
def _labels(buf: Any, i: int, end: int) -> int:
    """The end of the object of strings at ``i`` (``{"k":"v",...}``); -1 if it is not one."""
    if i >= end or buf[i] != _LBRACE:
        return -1
    i = _ws(buf, i + 1, end)
    if i < end and buf[i] == _RBRACE:
        return i + 1
    while True:
        i = _string(buf, i, end)
        if i < 0:
            return -1
        i = _ws(buf, i, end)
        if i >= end or buf[i] != _COLON:
            return -1
        i = _string(buf, _ws(buf, i + 1, end), end)
        if i < 0:
            return -1
        i = _ws(buf, i, end)
        if i < end and buf[i] == _RBRACE:
            return i + 1
        if i >= end or buf[i] != _COMMA:
            return -1
        i = _ws(buf, i + 1, end)


@numba.njit(cache=True, nogil=True)
def _point(
    buf: Any, i: int, end: int, n: int, words: Any, exact: Any, fives: Any,
    ts: Any, x: Any, slow: Any, ident: Any,
) -> int:  # fmt: skip
    """Point ``n`` from the object at ``i`` (just past its ``{`` and the space after it, or at
    its first field's key when ``i`` is a key); the end of the object, or -1. A number that
    ``float`` must read is appended to ``slow`` (its count in ``slow[0, 0]``)."""
    seen = 0
    ident[n, 4] = 0
    ident[n, 5] = 0
    while True:
        a = i
        i = _string(buf, i, end)
        if i < 0:
            return -1
        field = _field(buf, a + 1, i - 1, words)
        if field == 0 or seen & field:
            return -1
        seen |= field
        i = _ws(buf, i, end)
        if i >= end or buf[i] != _COLON:
            return -1
        i = _ws(buf, i + 1, end)
        if field & (_TS | _VALUE):
            stop, value, needs = _number(buf, i, end, exact, fives)
            if stop < 0:
                return -1
            column = 0 if field == _TS else 1
            if column == 0:
                ts[n] = value
            else:
                x[n] = value
            if needs:  # read by ``float`` afterwards: which column of which point, where
                k = slow[0, 0] = slow[0, 0] + 1
                slow[k, 0] = 2 * n + column
                slow[k, 1] = i
                slow[k, 2] = stop
            i = stop
        elif field == _LABELS:
            stop = _labels(buf, i, end)
            if stop < 0:
                return -1
            ident[n, 4], ident[n, 5] = i, stop
            i = stop
        else:
            stop = _string(buf, i, end)
            if stop < 0 or stop - i < 3:  # an empty name: the model's reason for it
                return -1
            column = 0 if field == _SERVICE else 2
            ident[n, column], ident[n, column + 1] = i + 1, stop - 1
            i = stop
        i = _ws(buf, i, end)
        if i < end and buf[i] == _RBRACE:
            return i + 1 if seen & _REQUIRED == _REQUIRED else -1
        if i >= end or buf[i] != _COMMA:
            return -1
        i = _ws(buf, i + 1, end)


@numba.njit(cache=True, nogil=True)
def _message(
    buf: Any, start: int, end: int, n: int, words: Any, points_word: Any, exact: Any,
    fives: Any, ts: Any, x: Any, slow: Any, ident: Any,
) -> int:  # fmt: skip
    """The points of the message ``buf[start:end]`` from point ``n`` on; how many there are
    after it (the next free point), or -1 if the message is not of the plain shape."""
    i = _ws(buf, start, end)
    if i >= end or buf[i] != _LBRACE:
        return -1
    i = _ws(buf, i + 1, end)
    key_end = _string(buf, i, end)
    if key_end < 0:
        return -1
    if not _is(buf, i + 1, key_end - 1, points_word):
        if n >= ts.shape[0]:
            return -1
        i = _point(buf, i, end, n, words, exact, fives, ts, x, slow, ident)
        if i < 0 or _ws(buf, i, end) != end:
            return -1
        return n + 1
    i = _ws(buf, key_end, end)
    if i >= end or buf[i] != _COLON:
        return -1
    i = _ws(buf, i + 1, end)
    if i >= end or buf[i] != _LBRACKET:
        return -1
    i = _ws(buf, i + 1, end)
    first = n
    while True:
        if n >= ts.shape[0] or i >= end or buf[i] != _LBRACE:
            return -1
        i = _point(buf, _ws(buf, i + 1, end), end, n, words, exact, fives, ts, x, slow, ident)
        if i < 0:
            return -1
        n += 1
        i = _ws(buf, i, end)
        if i < end and buf[i] == _RBRACKET:
            break
        if i >= end or buf[i] != _COMMA:
            return -1
        i = _ws(buf, i + 1, end)
    i = _ws(buf, i + 1, end)
    if i >= end or buf[i] != _RBRACE or _ws(buf, i + 1, end) != end or n == first:
        return -1
    return n


@numba.njit(cache=True, nogil=True)
def _scan(
    buf: Any, bounds: Any, words: Any, points_word: Any, exact: Any, fives: Any,
    ts: Any, x: Any, slow: Any, ident: Any, firsts: Any, counts: Any,
) -> int:  # fmt: skip
    """Every message (``buf[bounds[m]:bounds[m + 1]]``); message ``m``'s points are
    ``firsts[m]:firsts[m] + counts[m]``, and ``counts[m]`` is -1 for a message not scanned.
    Returns the number of points."""
    n = 0
    for m in range(bounds.shape[0] - 1):
        held = slow[0, 0]
        got = _message(buf, bounds[m], bounds[m + 1], n, words, points_word, exact, fives,
                       ts, x, slow, ident)  # fmt: skip
        firsts[m] = n
        if got < 0:
            counts[m] = -1  # what it wrote is overwritten by the next message's points
            slow[0, 0] = held
        else:
            counts[m] = got - n
            n = got
    return n


@numba.njit(cache=True, nogil=True)
def _run_of(buf: Any, chars: int) -> bool:
    """Whether ``buf`` holds ``chars`` characters of a JSON number (digits, ``.eE+-``) in a
    row."""
    run = 0
    for i in range(buf.shape[0]):
        c = buf[i]
        if _ZERO <= c <= _NINE or c in (_DOT, _PLUS, _MINUS, 101, 69):  # e, E
            run += 1
            if run >= chars:
                return True
        else:
            run = 0
    return False


def long_number(raw: bytes, chars: int) -> bool:
    """Whether ``raw`` holds ``chars`` characters of a JSON number in a row (a number that
    long, or text that looks like one), in one compiled pass over its bytes.

    >>> long_number(b'{"value":1.5}', 4), long_number(b'{"value":1.5e-10}', 4)
    (False, True)
    """
    return len(raw) >= chars and bool(_run_of(np.frombuffer(raw, dtype=np.uint8), chars))


_WORDS = np.zeros((5, 8), dtype=np.uint8)
for _f, _word in enumerate((b"ts", b"service", b"metric", b"value", b"labels")):
    _WORDS[_f, : len(_word)] = np.frombuffer(_word, dtype=np.uint8)
    _WORDS[_f, -1] = len(_word)
_POINTS_WORD = np.frombuffer(b"points", dtype=np.uint8)


@dataclass
class Scanned:
    """The points of the messages that were scanned (``ok[m]``); message ``m``'s are
    ``firsts[m]:firsts[m] + counts[m]`` of the columns."""

    buf: NDArray[np.uint8]
    ok: NDArray[np.bool_]
    firsts: NDArray[np.intp]
    counts: NDArray[np.intp]
    ts: NDArray[np.float64]
    values: NDArray[np.float64]
    ident: NDArray[np.intp]


def scan(raws: Sequence[bytes | None]) -> Scanned:
    """The messages' points, for those of the plain shape (see the module docstring)."""
    # Without a None (a message without a value), the messages as they are: no copy.
    present = [r or b"" for r in raws] if None in raws else cast("Sequence[bytes]", raws)
    data = b"".join(present)
    buf = np.frombuffer(data, dtype=np.uint8)
    bounds = np.zeros(len(raws) + 1, dtype=np.intp)
    np.cumsum(np.fromiter(map(len, present), dtype=np.intp, count=len(raws)), out=bounds[1:])
    room = len(data) // _SMALLEST + 1  # no point is shorter
    ts = np.empty(room)
    x = np.empty(room)
    slow = np.empty((2 * room + 1, 3), dtype=np.intp)
    slow[0, 0] = 0
    ident = np.empty((room, IDENTITY_COLUMNS), dtype=np.intp)
    firsts = np.zeros(len(raws), dtype=np.intp)
    counts = np.zeros(len(raws), dtype=np.intp)
    last = _scan(buf, bounds, _WORDS, _POINTS_WORD, _EXACT, _FIVES, ts, x, slow, ident, firsts,
                 counts)  # fmt: skip
    ok = counts >= 0
    counts[~ok] = 0
    ts, x, ident = ts[:last], x[:last], ident[:last]
    for at, a, b in slow[1 : slow[0, 0] + 1].tolist():
        (ts if at % 2 == 0 else x)[at // 2] = float(data[a:b])
    return Scanned(buf, ok, firsts, counts, ts, x, ident)


@numba.njit(cache=True, nogil=True)
def _hash(buf: Any, ident: Any, i: int) -> np.uint64:
    h = _FNV_OFFSET
    for column in range(0, IDENTITY_COLUMNS, 2):
        for j in range(ident[i, column], ident[i, column + 1]):
            h = (h ^ np.uint64(buf[j])) * _FNV_PRIME
        h = (h ^ np.uint64(1)) * _FNV_PRIME  # a byte no scanned name holds
    return h


@numba.njit(cache=True, nogil=True)
def _same(buf: Any, ident: Any, i: int, arena: Any, at: Any, length: Any) -> bool:
    k = at
    for column in range(0, IDENTITY_COLUMNS, 2):
        for j in range(ident[i, column], ident[i, column + 1]):
            if k >= at + length or arena[k] != buf[j]:
                return False
            k += 1
        if k >= at + length or arena[k] != 1:
            return False
        k += 1
    return k == at + length


# A table slot: the identity's hash, where its bytes are in the arena and how many, and its
# series id's number plus one (0: the slot is empty).
_HASH, _AT, _LENGTH, _NUMBER = 0, 1, 2, 3


@numba.njit(cache=True, nogil=True)
def _probe(buf: Any, ident: Any, i: int, table: Any, arena: Any) -> tuple[Any, Any]:
    """The slot of point ``i``'s identity in ``table``, or the empty slot it would take; and
    its hash."""
    mask = table.shape[0] - 1
    h = _hash(buf, ident, i)
    s = np.int64(h & np.uint64(mask))
    while table[s, _NUMBER] != 0:
        if table[s, _HASH] == h and _same(
            buf, ident, i, arena, np.int64(table[s, _AT]), np.int64(table[s, _LENGTH])
        ):
            break
        s = (s + 1) & mask
    return s, h


@numba.njit(cache=True, nogil=True)
def _find(buf: Any, ident: Any, points: Any, table: Any, arena: Any, numbers: Any) -> None:
    """The number of each of ``points``' series id (``numbers``), or -1 when unknown."""
    for p in range(points.shape[0]):
        s, _ = _probe(buf, ident, points[p], table, arena)
        numbers[p] = np.int64(table[s, _NUMBER]) - 1


@numba.njit(cache=True, nogil=True)
def _learn(
    buf: Any, ident: Any, points: Any, numbers: Any, table: Any, arena: Any, arena_used: int
) -> tuple[int, int]:
    """Each of ``points``' identity not held yet, as the series numbered ``numbers[p]`` (the
    table and the arena have room); the identities added and the arena bytes used after."""
    added = 0
    for p in range(points.shape[0]):
        i = points[p]
        s, h = _probe(buf, ident, i, table, arena)
        if table[s, _NUMBER] != 0:
            continue
        end = _copy(buf, ident, i, arena, arena_used)
        table[s, _HASH] = h
        table[s, _AT] = arena_used
        table[s, _LENGTH] = end - arena_used
        table[s, _NUMBER] = numbers[p] + 1
        arena_used = end
        added += 1
    return added, arena_used


@numba.njit(cache=True, nogil=True)
def _rehash(old: Any, table: Any) -> None:
    mask = table.shape[0] - 1
    for r in range(old.shape[0]):
        if old[r, _NUMBER] == 0:
            continue
        s = np.int64(old[r, _HASH] & np.uint64(mask))
        while table[s, _NUMBER] != 0:
            s = (s + 1) & mask
        table[s] = old[r]


@numba.njit(cache=True, nogil=True)
def _copy(buf: Any, ident: Any, i: int, arena: Any, at: int) -> int:
    k = at
    for column in range(0, IDENTITY_COLUMNS, 2):
        for j in range(ident[i, column], ident[i, column + 1]):
            arena[k] = buf[j]
            k += 1
        arena[k] = 1
        k += 1
    return k


class SeriesNames:
    """Identity bytes to a number per series id; ``names[number]`` is the id.

    A number means the same series id for as long as ``numbering`` is the same object: the
    table starts afresh, with a new ``numbering``, once it holds ``most`` ids or identities
    (``prune``).
    """

    def __init__(self, most: int = 1_000_000) -> None:
        self.most = most
        self._fresh()

    def _fresh(self) -> None:
        self.numbering = object()
        self.names: list[str] = []
        self._number: dict[str, int] = {}  # series id -> its number
        self._names = np.zeros(0, dtype=object)  # ``names`` as an array, so far
        self._names_filled = 0
        self.table = np.zeros((1024, 4), dtype=np.uint64)
        self.arena = np.zeros(16 * 1024, dtype=np.uint8)
        self.used = 0  # identities held
        self.arena_used = 0

    def __len__(self) -> int:
        return self.used

    def prune(self) -> None:
        """Start afresh if the table holds ``most`` ids or identities (between two batches:
        numbers given before stand for nothing after)."""
        if max(self.used, len(self.names)) >= self.most:
            self._fresh()

    def number(self, series: str) -> int:
        """The number of a series id (given one the first time it is asked for)."""
        found = self._number.get(series)
        if found is None:
            found = self._number[series] = len(self.names)
            self.names.append(series)
        return found

    def names_of(self, numbers: NDArray[np.intp]) -> list[str]:
        """The series ids numbered ``numbers``."""
        have, want = self._names_filled, len(self.names)
        if have < want:
            if len(self._names) < want:
                grown = np.empty(max(want, 2 * len(self._names)), dtype=object)
                grown[:have] = self._names[:have]
                self._names = grown
            self._names[have:want] = self.names[have:want]
            self._names_filled = want
        out: list[str] = self._names[numbers].tolist()
        return out

    def find(self, s: Scanned, points: NDArray[np.intp]) -> NDArray[np.intp]:
        """The number of the series id of each of ``points``' identities (-1: not known)."""
        found = np.empty(len(points), dtype=np.intp)
        _find(s.buf, s.ident, points, self.table, self.arena, found)
        return found

    def learn(self, s: Scanned, points: NDArray[np.intp], series: Sequence[str]) -> None:
        """Remember that point ``points[j]``'s identity is the series id ``series[j]`` (whose
        names are valid)."""
        numbers = np.array([self.number(sid) for sid in series], dtype=np.intp)
        spans = s.ident[points]
        self._reserve(len(points), int((spans[:, 1::2] - spans[:, ::2]).sum()) + 3 * len(points))
        added, self.arena_used = _learn(
            s.buf, s.ident, points, numbers, self.table, self.arena, self.arena_used
        )
        self.used += added

    def _reserve(self, entries: int, arena_bytes: int) -> None:
        """Room for ``entries`` more identities of ``arena_bytes`` in all."""
        if self.arena_used + arena_bytes > len(self.arena):
            grow = max(self.arena_used + arena_bytes, 2 * len(self.arena)) - len(self.arena)
            self.arena = np.concatenate([self.arena, np.zeros(grow, dtype=np.uint8)])
        size = len(self.table)
        while 2 * (self.used + entries) > size:
            size *= 2
        if size > len(self.table):
            old, self.table = self.table, np.zeros((size, 4), dtype=np.uint64)
            _rehash(old, self.table)


def warm_up() -> None:
    """Load (or compile) every kernel here: a worker does it at start, not on live points (a
    first call takes about a second)."""
    names = SeriesNames()
    raws = [b'{"points":[' + b",".join(
        b'{"ts":1,"service":"warm-up","metric":"m%d","value":0.5,"labels":{"k":"v"}}' % i
        for i in range(600)
    ) + b"]}"]  # fmt: skip
    scanned = scan(raws)
    points = np.arange(len(scanned.ts))
    names.learn(scanned, points, [f"warm-up|m{i}|k=v" for i in range(600)])  # grows the table
    names.find(scanned, points)
    names.names_of(np.zeros(1, dtype=np.intp))
    long_number(raws[0], 4)
