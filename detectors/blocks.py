"""The checkpoint encoding of a bank's block parts: a JSON header and the arrays' raw bytes.

A part (``SeriesBank.part_state``) is mostly numpy arrays, which ``vector.pack`` gives as raw
bytes. Written as JSON they would need base64, a third more bytes and most of a checkpoint's
encoding time at fleet scale, so a part is written as::

    MAGIC | header length (4 bytes, big-endian) | header (JSON) | the arrays' bytes

where each packed array's ``data`` in the header is ``[offset, length]`` into the bytes after
it. The header is mostly series ids, whose labels repeat from one series to the next: where
zlib (level 1) makes it shorter, it is written compressed, after ``ZMAGIC`` instead of
``MAGIC`` (a series with twenty labels checkpoints about 300 bytes fewer). ``decode`` reads
both, and the JSON (base64) parts written before, so a checkpoint written by an older version
still restores; anything else is ``ValueError``.
"""

from __future__ import annotations

import json
import zlib
from typing import Any

MAGIC = b"WRB1"
#: A part whose header is compressed (zlib).
ZMAGIC = b"WRZ1"
_HEADER_LEN = 4
#: The most bytes a compressed header may inflate to: a part's header stays under the bank's
#: ``block_bytes`` (512 KiB) but for one row alone; more is crafted, refused before inflating.
MAX_HEADER_BYTES = 16 * 1024 * 1024
MAX_DEPTH = 32  # a part nests about six deep; deeper is crafted, refused before recursing


def encode(state: dict[str, Any], *, compress: bool = True) -> bytes:
    """``state`` (JSON-able apart from packed arrays' ``bytes``) as one value; without
    ``compress``, its header as it is (an upper bound of the value's size)."""
    chunks: list[bytes] = []
    size = [0]

    def strip(value: Any) -> Any:
        if isinstance(value, dict):
            data = value.get("data")
            if isinstance(data, bytes | bytearray | memoryview) and "dtype" in value:
                at = size[0]
                chunks.append(bytes(data))
                size[0] += len(data)
                return {**value, "data": [at, len(data)]}
            return {k: strip(v) for k, v in value.items()}
        if isinstance(value, list):
            return [strip(v) for v in value]
        return value

    header = json.dumps(strip(state), separators=(",", ":")).encode()
    magic, packed = MAGIC, header
    if compress and len(header) > 256:
        smaller = zlib.compress(header, 1)
        if len(smaller) < len(header):
            magic, packed = ZMAGIC, smaller
    return b"".join([magic, len(packed).to_bytes(_HEADER_LEN, "big"), packed, *chunks])


def decode(raw: bytes) -> Any:
    """What ``encode`` wrote (packed arrays' ``data`` as ``bytes``), or a JSON-written part.

    Anything else is ``ValueError``: a truncated part, a span past its end, text that is not
    JSON, or JSON nested deeper than a part ever is (``MAX_DEPTH``).
    """
    if raw.startswith((MAGIC, ZMAGIC)):
        start = len(MAGIC) + _HEADER_LEN
        length = int.from_bytes(raw[len(MAGIC) : start], "big")
        if start + length > len(raw):
            raise ValueError("checkpoint part shorter than its header says")
        header, body = raw[start : start + length], memoryview(raw)[start + length :]
        if raw.startswith(ZMAGIC):
            header = _inflate(header)
    else:
        header, body = raw, memoryview(b"")
    try:
        return _fill(json.loads(header), body, 0)
    except RecursionError:
        raise ValueError("checkpoint part nested too deeply") from None


def _inflate(packed: bytes) -> bytes:
    """A compressed header, refused (``ValueError``) if it is not whole zlib data or would
    inflate past ``MAX_HEADER_BYTES``."""
    inflater = zlib.decompressobj()
    try:
        header = inflater.decompress(packed, MAX_HEADER_BYTES + 1)
    except zlib.error as exc:
        raise ValueError(f"checkpoint header does not inflate ({exc})") from None
    if len(header) > MAX_HEADER_BYTES:
        raise ValueError(f"checkpoint header inflates past {MAX_HEADER_BYTES} bytes")
    if not inflater.eof or inflater.unused_data:
        raise ValueError("checkpoint header is not one whole zlib stream")
    return header


def _fill(value: Any, body: memoryview, depth: int) -> Any:
    """``value`` with each packed array's span replaced by its bytes from ``body``."""
    if depth > MAX_DEPTH:
        raise ValueError(f"checkpoint part nested deeper than {MAX_DEPTH}")
    if isinstance(value, dict):
        span = _span(value.get("data")) if "dtype" in value else None
        if span is not None:
            at, n = span
            if at + n > len(body):
                raise ValueError("checkpoint array past the end of its part")
            return {**value, "data": bytes(body[at : at + n])}
        return {k: _fill(v, body, depth + 1) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill(v, body, depth + 1) for v in value]
    return value


def _span(data: Any) -> tuple[int, int] | None:
    """``data`` as (offset, length) into the part's bytes, if it is one."""
    if not isinstance(data, list) or len(data) != 2:
        return None
    at, n = data
    if any(not isinstance(v, int) or isinstance(v, bool) or v < 0 for v in (at, n)):
        return None
    return at, n
