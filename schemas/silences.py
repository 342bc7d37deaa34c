"""``silences.v1`` (compacted, keyed by id): silences and maintenance windows, as Alertmanager has.

A silence mutes the detections it matches from ``starts_at`` to ``ends_at``; with
``until_resolved`` it lasts until that incident is resolved instead. A maintenance window is a
silence planned ahead with both ends set.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any, Self

import re2
from pydantic import Field, model_validator

from schemas.common import Name, Timestamp, WireModel

#: Characters of a matcher's value (a literal or a pattern).
MAX_PATTERN_CHARS = 1000
#: RE2 instructions a pattern may compile to: ``checkout-.*`` takes 12, a 1,000-character
#: literal 1,004; ``[^x]{1000}`` (8,004) is refused. Matching costs time linear in the text.
MAX_PATTERN_PROGRAM = 2000


def _options() -> Any:
    options = re2.Options()
    options.log_errors = False  # the refusal carries the reason
    options.never_capture = True  # a silence asks only "does it match"
    return options


@lru_cache(maxsize=1024)
def compile_pattern(pattern: str) -> Any:
    """``pattern`` compiled by RE2, a linear-time engine (no backtracking, so no pattern takes
    exponential time, whatever the text); raises ValueError naming what is wrong: syntax RE2
    lacks (backreferences, lookaround) or a program over ``MAX_PATTERN_PROGRAM``.

    >>> compile_pattern("(a+)+").fullmatch("a" * 10_000 + "!") is None
    True
    >>> compile_pattern("(?=a)")
    Traceback (most recent call last):
    ...
    ValueError: value is not a regular expression RE2 accepts: invalid perl operator: (?=
    """
    try:
        compiled = re2.compile(pattern, _options())
    except re2.error as exc:
        said = exc.args[0] if exc.args else exc
        reason = said.decode(errors="replace") if isinstance(said, bytes) else str(said)
        raise ValueError(f"value is not a regular expression RE2 accepts: {reason}") from None
    size = int(compiled.programsize)
    if size > MAX_PATTERN_PROGRAM:
        raise ValueError(
            f"value is too costly a regular expression: it compiles to {size} instructions, "
            f"over {MAX_PATTERN_PROGRAM}"
        )
    return compiled


def full_match(pattern: str, text: str) -> bool:
    """True when ``pattern`` (checked by :func:`compile_pattern`) matches all of ``text``, as
    Alertmanager's ``=~`` does."""
    try:
        text.encode()
    except UnicodeEncodeError:  # a lone surrogate: RE2 reads UTF-8
        text = text.encode(errors="replace").decode()
    return compile_pattern(pattern).fullmatch(text) is not None


class Matcher(WireModel):
    """``name`` is a label (``service``, ``signal``, ``detector``, ``severity`` or any detection
    label); ``value`` is matched exactly, or with ``regex`` as a regular expression in RE2's
    syntax that must match the whole value (as Alertmanager's ``=~``), checked and cost-capped
    when the silence is made."""

    name: Name
    value: str = Field(max_length=MAX_PATTERN_CHARS)
    regex: bool = False

    @model_validator(mode="after")
    def _regex_compiles(self) -> Self:
        if self.regex:
            compile_pattern(self.value)
        return self


class Silence(WireModel):
    """One silence; ``expired_at`` is set when someone ends it early."""

    id: Name
    matchers: tuple[Matcher, ...] = Field(min_length=1, max_length=50)
    starts_at: Timestamp
    ends_at: Timestamp | None = None
    until_resolved: Name | None = None
    created_by: Name
    comment: str = Field(min_length=1, max_length=2000)
    created_at: Timestamp
    expired_at: Timestamp | None = None
    maintenance: bool = False

    @model_validator(mode="after")
    def _has_an_end(self) -> Self:
        if self.ends_at is None and self.until_resolved is None:
            raise ValueError("a silence needs ends_at or until_resolved")
        if self.ends_at is not None and self.ends_at <= self.starts_at:
            raise ValueError("ends_at must be after starts_at")
        return self
