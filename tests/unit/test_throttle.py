"""Per-recipient rate limits: a token bucket per destination, held pages folded into a digest.

Each case is a timeline of ``(at_seconds, action)``: ``page(key, severity, kind)`` expects the
page to be sent (``"send"``) or held (``"hold"``); ``flush`` expects the number of pages the
digest carries (0: no digest yet).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from responders.throttle import (
    Bucket,
    Limit,
    admit,
    bypasses,
    flush,
    flush_due,
    throttle_key,
)
from schemas import Channel, Page

T0 = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
LIMIT = Limit(rate=3, window_s=60)  # a token back every 20 s


def page(key: str, severity: str = "SEV2", kind: str = "page", recipient: str = "ann") -> Page:
    return Page(dedup_key=key, incident_id=f"inc-{key}", routing_key="api", step=0,
                recipient=recipient, channel="console", address="", severity=severity,
                subject=f"[{severity}] {key} down", body="", created_at=T0,
                kind=kind)  # fmt: skip


Action = tuple[float, Page | None, object]  # (at, page or None for a flush, expected)

CASES: dict[str, list[Action]] = {
    "within-the-limit": [(0, page("a"), "send"), (1, page("b"), "send"), (2, page("c"), "send")],
    "over-the-limit-held-then-one-digest": [
        (0, page("a"), "send"), (0, page("b"), "send"), (0, page("c"), "send"),
        (0, page("d"), "hold"), (1, page("e"), "hold"),
        (10, None, 0),  # no token yet
        (20, None, 2),  # one token back: the digest of d and e
        (21, page("f"), "hold"),  # the digest took that token
        (40, None, 1),
    ],
    "held-pages-keep-order-even-with-a-token": [
        (0, page("a"), "send"), (0, page("b"), "send"), (0, page("c"), "send"),
        (0, page("d"), "hold"),
        (30, page("e"), "hold"),  # a token is back, but d is waiting: e joins the digest
        (30, None, 2),
    ],
    "tokens-refill-to-the-rate": [
        (0, page("a"), "send"), (0, page("b"), "send"), (0, page("c"), "send"),
        (600, page("d"), "send"), (600, page("e"), "send"), (600, page("f"), "send"),
        (600, page("g"), "hold"),
    ],
    "sev1-pages-bypass-and-still-count": [
        (0, page("a", "SEV1"), "send"), (0, page("b", "SEV1"), "send"),
        (0, page("c"), "send"), (0, page("d"), "hold"),
        (0, page("e", "SEV1"), "send"),  # never waits
        (0, page("f", "SEV1", kind="notice"), "hold"),  # notices do
        (20, None, 2),
    ],
    "a-redelivered-held-page-is-held-once": [
        (0, page("a"), "send"), (0, page("b"), "send"), (0, page("c"), "send"),
        (0, page("d"), "hold"), (1, page("d"), "hold"),
        (20, None, 1),
        (21, None, 0),  # nothing left: a second flush sends nothing
    ],
}  # fmt: skip


@pytest.mark.parametrize("steps", CASES.values(), ids=CASES.keys())
def test_timeline(steps: list[Action]) -> None:
    bucket: Bucket | None = None
    for at_s, p, expected in steps:
        now = T0 + timedelta(seconds=at_s)
        if p is None:
            assert bucket is not None
            flushed = flush(bucket, LIMIT, now)
            held = len(flushed.held) if flushed.digest is not None else 0
            assert held == expected, (at_s, expected)
            bucket = flushed.bucket
            continue
        admitted = admit(bucket, p, LIMIT, now)
        assert ("send" if admitted.send else "hold") == expected, (at_s, p.dedup_key)
        bucket = admitted.bucket
        # The table round trip changes nothing.
        assert Bucket.from_dict(bucket.to_dict()) == bucket


def test_digest_lists_every_held_page_with_its_own_dedup_key() -> None:
    bucket = None
    for n in range(12):
        bucket = admit(bucket, page(f"k{n:02d}"), LIMIT, T0).bucket
    assert bucket is not None and len(bucket.held) == 9
    assert flush_due(bucket, LIMIT) == T0 + timedelta(seconds=20)
    first = flush(bucket, LIMIT, T0 + timedelta(seconds=20))
    digest = first.digest
    assert digest is not None and digest.kind == "digest"
    assert digest.dedup_key == "digest/ann/console/1" and digest.recipient == "ann"
    for n in range(3, 12):
        assert f"- [SEV2] k{n:02d} down (incident inc-k{n:02d})" in digest.body
    assert "9 message(s) about 9 incident(s)" in digest.body
    assert [h.dedup_key for h in first.held] == [f"k{n:02d}" for n in range(3, 12)]
    assert first.bucket.held == () and first.bucket.digests == 1
    assert flush_due(first.bucket, LIMIT) is None
    # The next digest has its own key.
    again = admit(first.bucket, page("late"), LIMIT, T0 + timedelta(seconds=21)).bucket
    second = flush(again, LIMIT, T0 + timedelta(seconds=40)).digest
    assert second is not None and second.dedup_key == "digest/ann/console/2"


@pytest.mark.parametrize(
    ("held", "worst"),
    [(["SEV3", "SEV2", "SEV4"], "SEV2"), (["SEV4"], "SEV4")],
    ids=["most-severe-wins", "single"],
)
def test_digest_severity_is_the_worst_held(held: list[str], worst: str) -> None:
    bucket = Bucket("ann", Channel.CONSOLE, "", tokens=0, updated_at=T0)
    for n, severity in enumerate(held):
        bucket = admit(bucket, page(f"k{n}", severity), LIMIT, T0).bucket
    digest = flush(bucket, LIMIT, T0 + timedelta(seconds=20)).digest
    assert digest is not None and digest.severity.value == worst
    assert digest.subject.startswith(f"[digest] [{worst}]")


def test_destinations_are_limited_separately() -> None:
    assert throttle_key(page("a")) == "ann/console"
    assert throttle_key(page("a", recipient="bob")) == "bob/console"


@pytest.mark.parametrize(
    ("p", "expected"),
    [
        (page("a", "SEV1"), True),
        (page("a", "SEV2"), False),
        (page("a", "SEV1", kind="notice"), False),
        (page("a", "SEV1", kind="digest"), False),
    ],
    ids=["sev1-page", "sev2-page", "sev1-notice", "sev1-digest"],
)
def test_bypass_rule(p: Page, expected: bool) -> None:
    assert bypasses(p) is expected
