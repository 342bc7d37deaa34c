"""Untrusted text made safe to place on one line: in a mail header, an HTTP header, a log line.

Alert text reaches a page from producers (service and signal names, detection labels): whatever
it holds, a line break must not start a new header or a new log line, and a bidirectional
override must not reorder what a reader sees.

>>> one_line("checkout\\r\\nBcc: all@example.com")
'checkout Bcc: all@example.com'
>>> one_line("a\\u202eb  c", limit=4)
'a b…'
>>> header_value("inc-1/0/ann/webhook\\r\\nX-Evil: 1")
'inc-1/0/ann/webhook%0D%0AX-Evil: 1'
"""

from __future__ import annotations

import unicodedata
from urllib.parse import quote

#: Bidirectional embeddings, overrides and isolates (format characters that reorder text).
_BIDI = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
#: Printable ASCII but ``%``: what an HTTP header value keeps as it is.
_HEADER_SAFE = "".join(chr(c) for c in range(0x20, 0x7F) if chr(c) != "%")


def _control(char: str) -> bool:
    return char in _BIDI or unicodedata.category(char) in ("Cc", "Zl", "Zp")


def one_line(text: str, limit: int | None = None) -> str:
    """``text`` with every control character, line or paragraph separator and bidirectional
    override turned into a space, runs of spaces made one, clipped to ``limit`` characters."""
    cleaned = " ".join("".join(" " if _control(c) else c for c in text).split())
    if limit is not None and len(cleaned) > limit:
        return cleaned[: limit - 1] + "…"
    return cleaned


def header_value(text: str) -> str:
    """An HTTP header value that says ``text`` exactly: printable ASCII as is, anything else
    (line breaks, other controls, non-ASCII, and ``%`` itself) percent-encoded as UTF-8."""
    return quote(text, safe=_HEADER_SAFE)
