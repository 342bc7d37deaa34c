"""Silences and maintenance windows: matching, states, and the notices they give."""

from __future__ import annotations

from collections.abc import Container
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from responders.silences import (
    SilenceState,
    ended_at,
    forgettable,
    silenced_by,
    state,
    transitions,
)
from schemas import Detection, format_errors
from schemas.silences import Silence

T0 = datetime(2026, 6, 1, 12, tzinfo=UTC)


def silence(**kw: Any) -> Silence:
    base: dict[str, Any] = {
        "id": "s1", "matchers": [{"name": "service", "value": "api"}], "starts_at": T0,
        "ends_at": T0 + timedelta(hours=1), "created_by": "ann", "comment": "deploy",
        "created_at": T0,
    }  # fmt: skip
    return Silence.model_validate({**base, **kw})


def detection(**kw: Any) -> Detection:
    base: dict[str, Any] = {
        "id": "d", "ts": T0, "service": "api", "signal": "latency", "detector": "surprise",
        "score": 1.0, "labels": {"region": "eu"},
    }  # fmt: skip
    return Detection.model_validate({**base, **kw})


@pytest.mark.parametrize(
    ("matchers", "det", "muted"),
    [
        ([{"name": "service", "value": "api"}], {}, True),
        ([{"name": "service", "value": "web"}], {}, False),
        ([{"name": "service", "value": "a.*", "regex": True}], {}, True),
        ([{"name": "service", "value": "a", "regex": True}], {}, False),  # full match only
        ([{"name": "region", "value": "eu"}, {"name": "signal", "value": "latency"}], {}, True),
        ([{"name": "region", "value": "eu"}, {"name": "signal", "value": "errors"}], {}, False),
        ([{"name": "team", "value": "x"}], {}, False),  # a label the detection lacks
    ],
    ids=["exact", "other", "regex", "regex-full", "all-match", "one-differs", "missing-label"],
)
def test_matching(matchers: list[dict[str, Any]], det: dict[str, Any], muted: bool) -> None:
    s = silence(matchers=matchers)
    assert (silenced_by(detection(**det), [s], T0 + timedelta(minutes=1)) is not None) is muted


@pytest.mark.parametrize(
    ("kw", "at", "resolved", "expected"),
    [
        ({}, -1, (), SilenceState.PENDING),
        ({}, 0, (), SilenceState.ACTIVE),
        ({}, 3600, (), SilenceState.EXPIRED),
        ({"expired_at": T0 + timedelta(minutes=5)}, 600, (), SilenceState.EXPIRED),
        ({"ends_at": None, "until_resolved": "inc-1"}, 99_999, (), SilenceState.ACTIVE),
        ({"ends_at": None, "until_resolved": "inc-1"}, 10, ("inc-1",), SilenceState.EXPIRED),
        # With the resolution's time: an input decided before it is still under the silence
        # (processed again after the resolution, it is judged as it was the first time).
        ({"ends_at": None, "until_resolved": "inc-1"}, 10, {"inc-1": T0 + timedelta(seconds=60)},
         SilenceState.ACTIVE),
        ({"ends_at": None, "until_resolved": "inc-1"}, 60, {"inc-1": T0 + timedelta(seconds=60)},
         SilenceState.EXPIRED),
        ({"ends_at": None, "until_resolved": "inc-1"}, 10, {"inc-1": None}, SilenceState.EXPIRED),
    ],
    ids=[
        "pending", "active", "ended", "expired-early", "until-resolved", "resolved",
        "resolved-later", "resolved-then", "resolved-at-an-unknown-time",
    ],
)  # fmt: skip
def test_states(
    kw: dict[str, Any], at: float, resolved: Container[str], expected: SilenceState
) -> None:
    assert state(silence(**kw), T0 + timedelta(seconds=at), resolved) is expected


@pytest.mark.parametrize(
    ("kw", "error"),
    [
        ({"ends_at": None}, "a silence needs ends_at or until_resolved"),
        ({"ends_at": T0}, "ends_at must be after starts_at"),
        ({"matchers": []}, "matchers: Tuple should have at least 1 item"),
        (
            {"matchers": [{"name": "service", "value": "(", "regex": True}]},
            "not a regular expression",
        ),
        ({"comment": ""}, "comment: String should have at least 1 character"),
    ],
    ids=["no-end", "end-before-start", "no-matchers", "bad-regex", "no-comment"],
)
def test_invalid_silences_say_why(kw: dict[str, Any], error: str) -> None:
    with pytest.raises(ValidationError) as caught:
        silence(**kw)
    assert error in format_errors(caught.value)


def test_notices_when_silences_start_and_expire() -> None:
    s = silence(starts_at=T0 + timedelta(minutes=10))
    known: dict[str, SilenceState] = {}
    for minutes, want in [(0, "pending"), (5, None), (10, "active"), (70, "expired"), (80, None)]:
        changed = transitions([s], known, T0 + timedelta(minutes=minutes))
        got = changed[0][1].value if changed else None
        assert got == want, minutes
        known.update({c.id: st for c, st in changed})


def test_a_silence_that_started_and_ended_between_two_looks_is_announced_as_both() -> None:
    # Created and ended within a second (or while the worker was too busy to look): its start
    # is news as much as its end.
    brief = silence(expired_at=T0 + timedelta(seconds=1))
    changed = transitions([brief], {}, T0 + timedelta(seconds=2))
    assert [st for _, st in changed] == [SilenceState.ACTIVE, SilenceState.EXPIRED]
    planned = silence(starts_at=T0 + timedelta(minutes=10), expired_at=T0 + timedelta(minutes=5))
    changed = transitions([planned], {planned.id: SilenceState.PENDING}, T0 + timedelta(hours=1))
    assert [st for _, st in changed] == [SilenceState.EXPIRED]  # never active: no start


class _Resolved:
    """The worker's resolved ids answer membership only: any copy of them (100,000 ids) per
    detection would cost milliseconds, and iterating this one fails."""

    def __init__(self, *ids: str) -> None:
        self.ids = set(ids)

    def __contains__(self, item: object) -> bool:
        return item in self.ids

    def __iter__(self) -> Any:
        raise AssertionError("the resolved ids were copied")


def test_resolved_ids_are_asked_for_membership_not_copied() -> None:
    waiting = silence(id="s2", ends_at=None, until_resolved="inc-1")
    plain = silence(id="s3", matchers=[{"name": "service", "value": "web"}])
    now = T0 + timedelta(minutes=5)
    assert silenced_by(detection(), [plain, waiting], now, _Resolved()) == waiting
    assert silenced_by(detection(), [plain, waiting], now, _Resolved("inc-1")) is None
    assert state(waiting, now, _Resolved("inc-1")) is SilenceState.EXPIRED
    changed = transitions([waiting], {}, now, _Resolved("inc-1"))
    assert [(s.id, st) for s, st in changed] == [("s2", SilenceState.EXPIRED)]


def test_a_silence_ends_at_its_earliest_end_and_is_forgotten_a_retention_later() -> None:
    hour = timedelta(hours=1)
    expired_early = silence(expired_at=T0 + timedelta(minutes=20))
    waiting = silence(id="s2", ends_at=None, until_resolved="inc-1")
    assert ended_at(silence(), {}) == T0 + hour
    assert ended_at(expired_early, {}) == T0 + timedelta(minutes=20)
    assert ended_at(waiting, {}) is None  # its incident is not resolved yet
    assert ended_at(waiting, {"inc-1": T0 + 2 * hour}) == T0 + 2 * hour
    assert ended_at(waiting, {"inc-1": None}) == T0  # resolved at an unknown time: its creation
    assert not forgettable(waiting, T0 + 100 * hour, 3600.0, {})
    assert not forgettable(silence(), T0 + 2 * hour - timedelta(seconds=1), 3600.0, {})
    assert forgettable(silence(), T0 + 2 * hour, 3600.0, {})
    assert not forgettable(silence(), T0 + 1000 * hour, 0.0, {})  # 0 keeps every silence


# --- regular expressions: linear time, checked and cost-capped on creation -------------------

HOSTILE = "a" * 1_000  # within a label value's 1,024 characters


@pytest.mark.timeout(20)  # Python's re backtracks for longer than the age of the universe here
@pytest.mark.parametrize(
    ("pattern", "value", "muted"),
    [
        ("(a+)+", HOSTILE + "!", False),
        ("(a+)+", HOSTILE, True),
        ("(a|aa)*b", HOSTILE, False),
        ("(a*)*$", HOSTILE + "b", False),
        ("(.*a){12}", HOSTILE[:3000] + "b", False),
        ("([a-z]+)*x", HOSTILE, False),
    ],
    ids=["nested-plus", "nested-plus-matches", "alternation", "star-star", "counted", "class"],
)
def test_pathological_patterns_run_in_linear_time(pattern: str, value: str, muted: bool) -> None:
    s = silence(matchers=[{"name": "region", "value": pattern, "regex": True}])
    found = silenced_by(detection(labels={"region": value}), [s], T0 + timedelta(minutes=1))
    assert (found is not None) is muted


@pytest.mark.parametrize(
    ("pattern", "value", "matches"),
    [
        ("api", "api", True),
        ("ap", "api", False),  # anchored at both ends, like Alertmanager's =~
        ("p.", "api", False),
        ("a|api", "api", True),
        ("a|ap", "api", False),
        ("(?i)API", "api", True),
        ("a[a-z]{1,2}", "api", True),
        ("", "api", False),
        (".*", "", True),
        ("caf.", "café", True),  # one character, not one byte
    ],
    ids=["literal", "prefix", "infix", "alternation", "alternation-part", "flags", "counted",
         "empty", "empty-value", "unicode"],
)  # fmt: skip
def test_regex_matchers_match_the_whole_value(pattern: str, value: str, matches: bool) -> None:
    s = silence(matchers=[{"name": "region", "value": pattern, "regex": True}])
    found = silenced_by(detection(labels={"region": value}), [s], T0 + timedelta(minutes=1))
    assert (found is not None) is matches


@pytest.mark.parametrize(
    ("pattern", "error"),
    [
        ("(?=a)a", "not a regular expression RE2 accepts: invalid perl operator: (?="),
        ("(a)\\1", "not a regular expression RE2 accepts: invalid escape sequence: \\1"),
        ("(", "not a regular expression RE2 accepts: missing ): ("),
        ("[^x]{1000}", "too costly a regular expression: it compiles to 8004 instructions"),
        ("(a{1000}){1000}", "invalid repetition size"),
        ("a" * 1001, "value: String should have at most 1000 characters"),
    ],
    ids=["lookahead", "backreference", "syntax", "too-costly", "repetition", "too-long"],
)
def test_patterns_the_engine_refuses_are_refused_on_creation(pattern: str, error: str) -> None:
    with pytest.raises(ValidationError) as caught:
        silence(matchers=[{"name": "service", "value": pattern, "regex": True}])
    said = format_errors(caught.value)
    assert said.startswith("matchers.0") and error in said, said
