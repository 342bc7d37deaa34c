"""Retention of the notification log and the automation log: when an entry is forgotten, stamped
or kept, which entries a scan asks about, and the shell's round trip (a scan sends each due
entry's request to the partition that holds it; the stream forgets or stamps it)."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest

from responders.retention import (
    PRUNE_PER_SCAN,
    WRITTEN_AT,
    Prune,
    expires_at,
    in_progress,
    never,
    on_prune,
    stamp,
    to_prune,
    too_old_to_start,
    written_at,
)
from schemas.retention import PruneEntry
from streams.retention import LogRetention

T0 = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
RETENTION_S = 120 * 3600.0
AFTER = T0 + timedelta(seconds=RETENTION_S)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def delivered(written: datetime | None = T0) -> dict[str, Any]:
    entry = {"outcome": "delivered", "attempts": 1}
    return stamp(entry, written) if written is not None else entry


def automation(status: str, written: datetime | None = T0) -> dict[str, Any]:
    entry = {"incident": {"id": "inc-1", "status": status}, "attached": {}, "ran": {}}
    return stamp(entry, written) if written is not None else entry


PRUNE_CASES = {
    # (entry, retention, now, pinned, verdict, expires_at)
    "younger-than-the-retention-is-kept": (
        delivered(), RETENTION_S, AFTER - timedelta(microseconds=1), False, Prune.KEEP, AFTER,
    ),
    "as-old-as-the-retention-is-forgotten": (
        delivered(), RETENTION_S, AFTER, False, Prune.FORGET, AFTER,
    ),
    "long-past-the-retention-is-forgotten": (
        delivered(), RETENTION_S, AFTER + timedelta(days=30), False, Prune.FORGET, AFTER,
    ),
    "retention-zero-keeps-every-entry": (
        delivered(), 0.0, AFTER + timedelta(days=3650), False, Prune.KEEP, None,
    ),
    "unknown-age-is-stamped-not-forgotten": (
        delivered(None), RETENTION_S, AFTER, False, Prune.STAMP, AFTER,
    ),
    "unknown-age-with-retention-zero-is-left-alone": (
        delivered(None), 0.0, AFTER, False, Prune.KEEP, None,
    ),
    "pinned-is-kept-whatever-its-age": (
        delivered(), RETENTION_S, AFTER + timedelta(days=3650), True, Prune.KEEP, None,
    ),
    "pinned-of-unknown-age-is-not-even-stamped": (
        delivered(None), RETENTION_S, AFTER, True, Prune.KEEP, None,
    ),
    "unreadable-time-counts-as-unknown": (
        {**delivered(), WRITTEN_AT: "yesterday"}, RETENTION_S, AFTER, False, Prune.STAMP, AFTER,
    ),
    "already-deleted": (None, RETENTION_S, AFTER, False, Prune.KEEP, None),
}  # fmt: skip


@pytest.mark.parametrize(
    ("entry", "retention_s", "now", "pinned", "verdict", "expires"),
    list(PRUNE_CASES.values()),
    ids=list(PRUNE_CASES),
)
def test_what_a_prune_request_does(
    entry: dict[str, Any] | None,
    retention_s: float,
    now: datetime,
    pinned: bool,
    verdict: Prune,
    expires: datetime | None,
) -> None:
    assert on_prune(entry, retention_s, now, pinned) is verdict
    if entry is not None:
        assert expires_at(entry, retention_s, now, pinned) == expires


def test_a_stamped_entry_is_forgotten_a_retention_later_and_not_looked_at_meanwhile() -> None:
    """The bug just fixed for groups, here for the logs: an entry stored before times were kept
    is stamped by the first request, and no scan asks about it again until its retention."""
    legacy = delivered(None)
    first = to_prune([("k", legacy)], RETENTION_S, T0)
    assert first == ["k"]
    assert on_prune(legacy, RETENTION_S, T0) is Prune.STAMP
    stamped = stamp(legacy, T0)
    assert written_at(stamped) == T0 and stamped["outcome"] == "delivered"
    for now in (T0, at(60), at(3600), AFTER - timedelta(seconds=1)):
        assert to_prune([("k", stamped)], RETENTION_S, now) == [], now
        assert on_prune(stamped, RETENTION_S, now) is Prune.KEEP
    assert to_prune([("k", stamped)], RETENTION_S, AFTER) == ["k"]
    assert on_prune(stamped, RETENTION_S, AFTER) is Prune.FORGET


SCAN_CASES = {
    # (entries as (key, age in seconds or None), asked, limit, expected keys)
    "only-the-expired-and-the-unknown": (
        [("old", RETENTION_S + 1), ("young", 10.0), ("legacy", None), ("edge", RETENTION_S)],
        {}, PRUNE_PER_SCAN, ["old", "legacy", "edge"],
    ),
    "capped-per-scan": (
        [(f"k{n}", RETENTION_S + n) for n in range(5)], {}, 3, ["k0", "k1", "k2"],
    ),
    "asked-and-unanswered-are-not-asked-again": (
        [("old", RETENTION_S + 1), ("legacy", None), ("other", RETENTION_S + 2)],
        {"old": "same", "legacy": None}, PRUNE_PER_SCAN, ["other"],
    ),
    "asked-but-written-since-is-asked-again": (
        [("old", RETENTION_S + 1)], {"old": "an earlier time"}, PRUNE_PER_SCAN, ["old"],
    ),
    "asked-ones-do-not-use-up-the-cap": (
        [("a", RETENTION_S + 1), ("b", RETENTION_S + 1), ("c", RETENTION_S + 1)],
        {"a": "same"}, 1, ["b"],
    ),
    "nothing-due": ([("young", 1.0)], {}, PRUNE_PER_SCAN, []),
}  # fmt: skip


@pytest.mark.parametrize(
    ("ages", "asked", "limit", "expected"), list(SCAN_CASES.values()), ids=list(SCAN_CASES)
)
def test_which_entries_a_scan_asks_about(
    ages: list[tuple[str, float | None]],
    asked: dict[str, object],
    limit: int,
    expected: list[str],
) -> None:
    now = AFTER + timedelta(seconds=10)
    entries = [
        (key, delivered(None if age is None else now - timedelta(seconds=age))) for key, age in ages
    ]
    # "same" stands for the write time the entry still has.
    asked = {k: (dict(entries)[k].get(WRITTEN_AT) if v == "same" else v) for k, v in asked.items()}
    assert to_prune(entries, RETENTION_S, now, asked, limit=limit) == expected
    assert to_prune(entries, 0.0, now, limit=limit) == []  # kept forever: nothing is asked


AUTOMATION_CASES = {
    # (status of the entry's incident, pinned)
    "triggered": ("triggered", True),
    "acknowledged": ("acknowledged", True),
    "mitigated": ("mitigated", True),
    "resolved": ("resolved", False),
}


@pytest.mark.parametrize(
    ("status", "pinned"), list(AUTOMATION_CASES.values()), ids=list(AUTOMATION_CASES)
)
def test_an_automation_entry_is_kept_while_its_incident_is_open(status: str, pinned: bool) -> None:
    entry = automation(status)
    assert in_progress(entry) is pinned
    years = AFTER + timedelta(days=3650)
    expected = Prune.KEEP if pinned else Prune.FORGET
    assert on_prune(entry, RETENTION_S, years, in_progress(entry)) is expected
    due = to_prune([("inc-1", entry)], RETENTION_S, years, pinned=in_progress)
    assert due == ([] if pinned else ["inc-1"])
    assert to_prune([("inc-1", entry)], RETENTION_S, years, pinned=never) == ["inc-1"]


def test_an_automation_entry_without_an_incident_is_kept() -> None:
    assert in_progress({"ran": {}}) and in_progress({"incident": "?"})


OLD_EVENT_CASES = {
    # (age of the event in seconds, retention, too old to start an entry)
    "fresh": (1.0, RETENTION_S, False),
    "just-younger-than-the-retention": (RETENTION_S - 1, RETENTION_S, False),
    "as-old-as-the-retention": (RETENTION_S, RETENTION_S, True),
    "a-replay-from-last-month": (30 * 86400.0, RETENTION_S, True),
    "kept-forever-so-never-too-old": (30 * 86400.0, 0.0, False),
}


@pytest.mark.parametrize(
    ("age_s", "retention_s", "expected"), list(OLD_EVENT_CASES.values()), ids=list(OLD_EVENT_CASES)
)
def test_an_event_older_than_the_retention_starts_no_entry(
    age_s: float, retention_s: float, expected: bool
) -> None:
    assert too_old_to_start(T0, retention_s, at(age_s)) is expected


def test_an_entry_opened_within_the_retention_cannot_have_been_forgotten() -> None:
    """The argument of the module docstring, checked over a grid: an entry written at or after
    its incident opened is forgotten only once an event of that opening is too old to start one."""
    for opened_after in (0.0, 1.0, 3600.0):
        written = at(opened_after)
        for now_s in (RETENTION_S - 1, RETENTION_S, RETENTION_S + opened_after, 3 * RETENTION_S):
            now = at(now_s)
            if on_prune(stamp({}, written), RETENTION_S, now) is Prune.FORGET:
                assert too_old_to_start(T0, RETENTION_S, now), (opened_after, now_s)


# --- the shell: scan, request, answer -----------------------------------------------------------


@dataclass
class FakeTable:
    """A table whose rows each live in a partition, as :class:`streams.tables.OwnedTable`."""

    rows: dict[str, dict[str, Any]] = field(default_factory=dict)
    partitions: dict[str, int] = field(default_factory=dict)
    partition: int = 0  # of the message being processed

    def __contains__(self, key: str) -> bool:
        return key in self.rows

    def __setitem__(self, key: str, value: dict[str, Any]) -> None:
        self.rows[key] = value
        self.partitions[key] = self.partition

    def __delitem__(self, key: str) -> None:
        del self.rows[key]
        del self.partitions[key]

    def get(self, key: str) -> dict[str, Any] | None:
        return self.rows.get(key)

    def items(self) -> list[tuple[str, dict[str, Any]]]:
        return list(self.rows.items())

    def partition_of(self, key: str) -> int | None:
        return self.partitions.get(key)


@dataclass
class FakeTopic:
    sent: list[tuple[bytes, PruneEntry, int]] = field(default_factory=list)

    async def send(self, key: bytes, value: bytes, partition: int) -> None:
        self.sent.append((key, PruneEntry.model_validate(json.loads(value)), partition))


def shell(
    retention_s: float, pinned: Any = never
) -> tuple[LogRetention, FakeTable, FakeTopic, dict[str, int]]:
    counters: dict[str, int] = {}
    p = SimpleNamespace(
        settings=SimpleNamespace(delivery_log_retention_s=retention_s),
        count=lambda name, n=1: counters.__setitem__(name, counters.get(name, 0) + n),
    )
    table, topic = FakeTable(), FakeTopic()
    return LogRetention(p, table, topic, "forgotten", pinned), table, topic, counters  # type: ignore[arg-type]


def test_a_scan_asks_the_partition_that_holds_each_due_entry_once() -> None:
    retention, table, topic, counters = shell(60.0)
    table.partition = 1
    retention.write("old", {"outcome": "delivered"}, T0)
    table.partition = 0
    retention.write("young", {"outcome": "delivered"}, at(50))
    table.rows["legacy"], table.partitions["legacy"] = {"outcome": "delivered"}, 3  # restored
    now = at(61)
    assert asyncio.run(retention.scan(now)) == 2
    assert [(k, r.key, part) for k, r, part in topic.sent] == [
        (b"old", "old", 1),
        (b"legacy", "legacy", 3),
    ]
    # Not answered yet (the stream lags): the next scan does not ask again.
    assert asyncio.run(retention.scan(at(62))) == 0
    # The stream answers: the old entry is deleted, the legacy one stamped in its partition.
    for _, request, partition in topic.sent:
        table.partition = partition
        retention.on_request(request, now)
    assert set(table.rows) == {"young", "legacy"}
    assert written_at(table.rows["legacy"]) == now and table.partitions["legacy"] == 3
    assert counters == {"forgotten": 1}
    # Stamped: asked about again only a retention later; the young one at its own time.
    topic.sent.clear()
    assert asyncio.run(retention.scan(at(109))) == 0
    assert asyncio.run(retention.scan(at(110))) == 1 and topic.sent[-1][1].key == "young"
    assert asyncio.run(retention.scan(at(121))) == 1 and topic.sent[-1][1].key == "legacy"


def test_a_request_for_an_entry_written_since_it_was_asked_about_keeps_it() -> None:
    retention, table, topic, counters = shell(60.0)
    retention.write("k", {"outcome": "delivered"}, T0)
    assert asyncio.run(retention.scan(at(61))) == 1
    retention.write("k", {"outcome": "delivered", "attempts": 2}, at(62))  # written again
    assert retention.on_request(topic.sent[0][1], at(63)) is Prune.KEEP
    assert "k" in table and counters == {}


def test_a_pinned_entry_is_never_asked_about_nor_forgotten() -> None:
    retention, table, topic, counters = shell(60.0, in_progress)
    retention.write("open", automation("acknowledged"), T0)
    retention.write("done", automation("resolved"), T0)
    years = at(10 * 365 * 86400)
    assert asyncio.run(retention.scan(years)) == 1 and topic.sent[0][1].key == "done"
    assert retention.on_request(PruneEntry(key="open", at=years), years) is Prune.KEEP
    assert retention.on_request(topic.sent[0][1], years) is Prune.FORGET
    assert set(table.rows) == {"open"} and counters == {"forgotten": 1}


def test_retention_zero_asks_nothing_and_forgets_nothing() -> None:
    retention, table, topic, counters = shell(0.0)
    retention.write("k", {"outcome": "delivered"}, T0)
    years = at(10 * 365 * 86400)
    assert asyncio.run(retention.scan(years)) == 0 and topic.sent == []
    assert retention.on_request(PruneEntry(key="k", at=years), years) is Prune.KEEP
    assert "k" in table and counters == {}


def test_an_entry_of_another_partition_is_not_asked_about() -> None:
    """A row whose partition is unknown (no longer here) gets no request: sent anywhere else,
    its delete would land on another partition's changelog."""
    retention, table, topic, _ = shell(60.0)
    table.rows["stray"] = delivered()
    assert asyncio.run(retention.scan(AFTER)) == 0 and topic.sent == []
