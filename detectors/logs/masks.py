"""Token masks for log template mining: numbers, ids, IPs, hosts, paths, hex, durations, dates.

A message is split on whitespace, a double-quoted string or a braced fragment counting as one
token, and every token is masked on its own. A token that carries a variable value (anything
with a digit, a path, a URL, a stack frame) becomes ``<*>``, keeping a constant key
(``uid=<*>``) and the brackets around it (``(<*>)``); a braced fragment with keys (JSON) is one
value, and the words of a quoted string are masked inside it. Runs of ``<*>`` tokens collapse to
one, so a variable-length value (a date, a list of numbers) gives one template.

>>> m = Masker()
>>> m.tokens("Received block blk_-1608999687919862906 of size 91178 from /10.250.10.6")
('Received', 'block', '<*>', 'of', 'size', '<*>', 'from', '<*>')
>>> m.tokens("authentication failure; uid=0 euid=0 rhost=218.188.2.4 took 12ms")
('authentication', 'failure;', 'uid=<*>', 'euid=<*>', 'rhost=<*>', 'took', '<*>')
>>> m.tokens("open /var/log/messages (HWID=1973) at Sun Dec 04 04:47:44 2005 on db1.example.org")
('open', '<*>', '(HWID=<*>)', 'at', '<*>', 'on', '<*>')
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

WILDCARD = "<*>"

_DIGIT = re.compile(r"\d").search
_SPLIT = re.compile(r"([:=,;@|#]|\.{2,})")
_EMPTY = {"()": "(<*>)", "[]": "[<*>]", "{}": "{<*>}", '""': '"<*>"', "''": "'<*>'"}
# Names of days and months next to a masked value are part of a date: they join the wildcard.
_DAYS = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
_MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
_LONG = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday", "Sept"]
_LONG += ["January", "February", "March", "April", "June", "July", "August", "September"]
_LONG += ["October", "November", "December"]
_DATE_WORDS = frozenset(_DAYS + _MONTHS + _LONG)
_LEAD = "([{<\"'`\\"
_TRAIL = "()]}>\"'`,;:.!?\\"
# Lower-case dotted names ending in a short label: host names and file names (a.example.org).
_HOST = re.compile(r"^[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)*\.[a-z]{2,4}$").match
_WINDOWS_PATH = re.compile(r"^[A-Za-z]:\\").match
_CACHE_LIMIT = 200_000
# A token is a run of anything but whitespace, where a double-quoted string (escapes allowed)
# or a brace-delimited fragment (one level of nesting) counts as one piece, spaces and all.
_TOKEN = re.compile(r'(?:[^\s"{]+|"(?:[^"\\]|\\.)*"|\{[^{}]*(?:\{[^{}]*\}[^{}]*)*\}|["{])+')
_JSON = re.compile(r"\{[^{}]*(?:\{[^{}]*\}[^{}]*)*\}")
_WILDCARD_RUN = re.compile(r"<\*>(?:\s+<\*>)+")
# Tokens that are one value whole: a digit and none of the separators a key or a list uses.
_PLAIN_VALUE = re.compile(r"[^:=,;@|#\s]*\d[^:=,;@|#\s]*").fullmatch
_CLOCK = re.compile(r"\d+(?::\d+)+(?:[.,]\d+)?").fullmatch
# A stack frame: a qualified method and its source line (com.acme.Client.charge(Client.java:212)).
_FRAME = re.compile(r"^[\w$]+(?:\.[\w$<>]+)+\([\w$.-]*:\d+\)$").match
# A name and its process id in brackets (sshd[50596]).
_PROCESS = re.compile(r"^([A-Za-z][A-Za-z_.-]*)\[\d+\]([:,;]?)$").match
# Masking never keeps a digit of its input (a token with a digit is a value, or keeps only the
# digit-free key, brackets or name around it), and decides the same for any digit: so tokens are
# cached by their shape, every digit read as 0, and 12:04:01 answers for 22:24:30.
_SHAPE = str.maketrans("123456789", "000000000")


@dataclass(frozen=True)
class MaskRule:
    """A regular expression applied to the whole message before tokenizing, and its stand-in."""

    pattern: str
    replacement: str = WILDCARD


def _hostlike(text: str) -> bool:
    return _HOST(text) is not None


def _pathlike(text: str) -> bool:
    if len(text) < 2:
        return False
    if text[0] == "/" or text.startswith(("~/", "./", "../")) or "://" in text:
        return True
    return text.count("/") >= 2 or "\\" in text or _WINDOWS_PATH(text) is not None


def _variable(piece: str) -> bool:
    return _DIGIT(piece) is not None or _pathlike(piece) or _hostlike(piece)


def _mask_value(core: str) -> str:
    if not _variable(core):
        return core
    if _pathlike(core) or _hostlike(core) or not _SPLIT.search(core):
        return WILDCARD
    parts = _SPLIT.split(core)
    masked = "".join(WILDCARD if i % 2 == 0 and _variable(p) else p for i, p in enumerate(parts))
    # Nothing but wildcards and separators left: one value (an address with a port, a time).
    if not any(c.isalpha() for c in masked.replace(WILDCARD, "")):
        return WILDCARD
    return masked


def mask_token(token: str) -> str:
    """The masked form of one whitespace-free token.

    >>> [mask_token(t) for t in ["ok", "6725", "0x1f", "[10.0.0.1:80]", "size=1.5GB", "jk2_init()"]]
    ['ok', '<*>', '<*>', '[<*>]', 'size=<*>', '<*>()']
    >>> mask_token("3f2b8c1e-9d4a-4b7e-8f00-1a2b3c4d5e6f")
    '<*>'
    """
    if _DIGIT(token) is None and "/" not in token and "\\" not in token and "." not in token:
        return _EMPTY.get(token, token)
    if (
        _PLAIN_VALUE(token)
        and token[0] not in _LEAD
        and token[-1] not in _TRAIL
        and ".." not in token
    ):
        return WILDCARD  # a number, an id, an address: nothing to keep around the value
    if _CLOCK(token) or _FRAME(token):
        return WILDCARD
    process = _PROCESS(token)
    if process is not None:
        return process.group(1) + "[" + WILDCARD + "]" + process.group(2)
    start, end = 0, len(token)
    while start < end and token[start] in _LEAD:
        start += 1
    while end > start and token[end - 1] in _TRAIL:
        end -= 1
    core = token[start:end]
    if not core:
        return token
    key, eq, value = core.partition("=")
    if eq and key and value and not _variable(key):
        masked = key + "=" + _mask_value(value)
    else:
        masked = _mask_value(core)
    return token[:start] + masked + token[end:]


def _structured(match: re.Match[str]) -> str:
    fragment = match.group(0)
    return WILDCARD if ":" in fragment or "=" in fragment else fragment


def mask_compound(token: str, word: Callable[[str], str] = mask_token) -> str:
    """The masked form of a token that holds spaces: a quoted string or a braced fragment.

    A fragment in braces with keys (JSON, a map) is one value; the words of a quoted string are
    masked one by one, and stay one token.

    >>> mask_compound('"GET /a/b HTTP/1.1"'), mask_compound('cfg={"a": 1, "b": 2}')
    ('"GET <*>"', 'cfg=<*>')
    """
    if "{" in token:
        token = _JSON.sub(_structured, token)
    if " " not in token and "\t" not in token:
        return word(token)
    return _WILDCARD_RUN.sub(WILDCARD, " ".join(word(w) for w in token.split()))


class Masker:
    """Tokenize and mask messages, remembering the masked form of tokens already seen."""

    def __init__(self, rules: Iterable[MaskRule] = ()) -> None:
        self.rules = tuple(rules)
        self._compiled = tuple((re.compile(r.pattern), r.replacement) for r in self.rules)
        self._cache: dict[str, str] = {}

    def _word(self, word: str) -> str:
        word = word.translate(_SHAPE)
        masked = self._cache.get(word)
        if masked is None:
            if len(self._cache) >= _CACHE_LIMIT:
                self._cache.clear()
            masked = self._cache[word] = mask_token(word)
        return masked

    def tokens(self, message: str) -> tuple[str, ...]:
        """The masked tokens of ``message``, consecutive wildcards collapsed."""
        for regex, replacement in self._compiled:
            message = regex.sub(replacement, message)
        cache = self._cache
        out: list[str] = []
        dated = False
        words = _TOKEN.findall(message) if '"' in message or "{" in message else message.split()
        for token in words:
            masked = cache.get(token)
            if masked is None:
                if len(cache) >= _CACHE_LIMIT:
                    cache.clear()
                shape = token.translate(_SHAPE)
                masked = cache.get(shape)
                if masked is None:
                    masked = cache[shape] = mask_compound(shape, self._word)
                cache[token] = masked
            out.append(masked)
            dated = dated or masked in _DATE_WORDS
        if dated:
            out = _mask_dates(out)
        return _collapse(out)


def _mask_dates(tokens: list[str]) -> list[str]:
    out = list(tokens)
    for i, token in enumerate(tokens):
        if token in _DATE_WORDS and (
            (i + 1 < len(tokens) and tokens[i + 1] == WILDCARD)
            or (i > 0 and tokens[i - 1] == WILDCARD)
        ):
            out[i] = WILDCARD
    # "Sun Dec <*>": a day name two tokens before the value.
    for i, token in enumerate(tokens):
        if token in _DATE_WORDS and i + 1 < len(out) and out[i + 1] == WILDCARD:
            out[i] = WILDCARD
    return out


def _collapse(tokens: list[str]) -> tuple[str, ...]:
    out: list[str] = []
    for token in tokens:
        if token == WILDCARD and out and out[-1] == WILDCARD:
            continue
        out.append(token)
    return tuple(out)
