"""``responders.delivery``: what happens to a page that arrives, and what a delivery's last
attempt settles, as named cases."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

from responders.delivery import Arrival, arrive, delivery_failed, settle
from responders.ports import DeliveryResult
from responders.throttle import Bucket, Limit, admit
from schemas import CommandKind, Page, ReceiptOutcome

T0 = datetime(2026, 5, 4, 12, 0, tzinfo=UTC)


def page(key: str = "inc-1/0/ann/console", kind: str = "page", severity: str = "SEV2") -> Page:
    return Page(
        dedup_key=key, incident_id="inc-1", routing_key="api", step=2, recipient="ann",
        channel="console", address="", severity=severity, subject="[SEV2] api latency",
        body="", created_at=T0, kind=kind,
    )  # fmt: skip


def holding(held: Page) -> Bucket:
    """A bucket with no token left, holding ``held``."""
    empty = admit(None, page("other"), Limit(1, 60), T0).bucket
    return admit(empty, held, Limit(1, 60), T0).bucket


@dataclass(frozen=True)
class Case:
    logged: bool
    bucket: Bucket | None
    limit: Limit | None
    send: bool
    duplicate: str | None
    writes_bucket: bool


CASES = {
    "no-limit": Case(False, None, None, True, None, False),
    "logged-already": Case(True, None, Limit(1, 60), False, "already handled", False),
    "a-token-left": Case(False, None, Limit(1, 60), True, None, True),
    "no-token-left": Case(False, admit(None, page("x"), Limit(1, 60), T0).bucket,
                          Limit(1, 60), False, None, True),
    "held-already": Case(False, holding(page()), Limit(1, 60), False, "held for a digest", True),
}  # fmt: skip


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_a_page_that_arrives(case: Case) -> None:
    got = arrive(page(), case.logged, case.bucket, case.limit, T0)
    assert (got.send, got.duplicate, got.bucket is not None) == (
        case.send, case.duplicate, case.writes_bucket,
    )  # fmt: skip


def test_a_held_page_is_in_the_bucket_written_back() -> None:
    full = admit(None, page("x"), Limit(1, 60), T0).bucket
    got = arrive(page(), False, full, Limit(1, 60), T0 + timedelta(seconds=1))
    assert got == Arrival(False, got.bucket)
    assert got.bucket is not None and [h.dedup_key for h in got.bucket.held] == [page().dedup_key]


HELD = (("held-1", "inc-7"), ("held-2", "inc-8"))


@pytest.mark.parametrize(
    ("kind", "held", "result", "lost", "escalate", "folded"),
    [
        ("page", (), DeliveryResult(True, detail="200"), None, False, None),
        ("page", (), DeliveryResult(False, detail="410 gone"), "dead_lettered", True, None),
        ("notice", (), DeliveryResult(False, detail="410 gone"), "dead_lettered", False, None),
        ("digest", HELD, DeliveryResult(True), None, False, "digested"),
        ("digest", HELD, DeliveryResult(False, detail="500"), "dead_lettered", False,
         "dead_lettered"),
    ],
    ids=["delivered", "page-lost", "notice-lost", "digest-delivered", "digest-lost"],
)  # fmt: skip
def test_what_the_last_attempt_settles(
    kind: str,
    held: tuple[tuple[str, str], ...],
    result: DeliveryResult,
    lost: str | None,
    escalate: bool,
    folded: str | None,
) -> None:
    sent = page("d", kind=kind)
    got = settle(sent, held, result, 3)
    assert (got.lost.outcome if got.lost else None, got.escalate) == (lost, escalate)
    if got.lost is not None:
        assert (got.lost.attempt, got.lost.detail) == (3, result.detail)
        assert got.reason == f"undeliverable: {result.detail}"
    own = "delivered" if result.delivered else "dead_lettered"
    assert got.entries["d"] == {"outcome": own, "attempts": 3}
    assert [(n.dedup_key, n.incident_id, n.outcome, n.detail) for n in got.folded] == [
        (key, incident, ReceiptOutcome(folded or ""), "in d") for key, incident in held
    ]
    assert list(got.entries) == ["d", *(key for key, _ in held)]
    assert all(got.entries[key] == {"outcome": folded, "in": "d"} for key, _ in held)


def test_the_incident_is_told_which_page_and_step_reached_nobody() -> None:
    failed = delivery_failed(page(), None, T0)
    again = delivery_failed(page(), "a second failure", T0 + timedelta(hours=1))
    assert failed.kind is CommandKind.DELIVERY_FAILED
    assert (failed.person, failed.page, failed.step, failed.text) == (
        "ann", "inc-1/0/ann/console", 2, "undeliverable",
    )  # fmt: skip
    assert failed.id == again.id  # the same page: the same command
    assert delivery_failed(page("inc-1/1/ann/console"), None, T0).id != failed.id
    assert len(delivery_failed(page(), "x" * 5000, T0).text or "") == 1000
