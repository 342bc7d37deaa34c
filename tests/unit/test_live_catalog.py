"""The live catalog without a broker: the fold of ``catalog.v1`` records (the last good revision
stays in force, overrides come and go), run-time overrides and swaps, shifts for the calendar
feeds, the catalog version on the timeline, and ``config apply`` refusing before it writes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from responders.lifecycle import Outcome, catalog_recorded, replay
from responders.oncall import Shift, on_call, shifts, with_overrides
from schemas import Catalog, Incident, IncidentStatus
from schemas.live_catalog import CATALOG_KEY, CatalogRevision, ShiftOverride, catalog_digest
from streams.cli import main
from streams.live_catalog import InForce, LiveCatalog

T0 = datetime(2026, 3, 2, tzinfo=UTC)  # a Monday


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def catalog(pager: str = "ann", **schedules: Any) -> Catalog:
    return Catalog.model_validate(
        {
            "people": {p: {"contacts": [{"channel": "console"}]} for p in ("ann", "ben", "cat")},
            "teams": {"core": {"escalation": [{"targets": [pager]}]}},
            "services": {"api": {"team": "core"}},
            "schedules": schedules,
        }
    )


DAILY = {
    "time_zone": "UTC",
    "layers": [{"participants": ["ann", "ben"], "rotation": "daily", "start": "2026-03-01",
                "handoff": "09:00"}],
}  # fmt: skip


def override(oid: str, person: str, start: str, end: str, schedule: str = "s") -> ShiftOverride:
    return ShiftOverride(
        id=oid, schedule=schedule, person=person, start=utc(start), end=utc(end),
        created_by="t", created_at=T0,
    )  # fmt: skip


def revision(c: Catalog) -> bytes:
    return (
        CatalogRevision(digest=catalog_digest(c), applied_at=T0, applied_by="t", catalog=c)
        .model_dump_json()
        .encode()
    )


def test_a_swap_is_two_overrides() -> None:
    # ben is on call on 2026-03-02 from 09:00, ann on the 3rd: they swap the two days.
    c = catalog(s=DAILY)
    assert on_call(c, "s", utc("2026-03-02T12:00")) == ["ben"]
    assert on_call(c, "s", utc("2026-03-03T12:00")) == ["ann"]
    swapped = with_overrides(
        c,
        [
            override("o1", "ann", "2026-03-02T09:00", "2026-03-03T09:00"),
            override("o2", "ben", "2026-03-03T09:00", "2026-03-04T09:00"),
        ],
    )
    assert on_call(swapped, "s", utc("2026-03-02T12:00")) == ["ann"]
    assert on_call(swapped, "s", utc("2026-03-03T12:00")) == ["ben"]
    assert on_call(swapped, "s", utc("2026-03-04T12:00")) == ["ben"]  # the rotation again
    assert c.schedules["s"].overrides == ()  # the catalog itself is not changed


def test_overrides_for_a_schedule_or_person_no_longer_there_are_left_out() -> None:
    c = catalog(s=DAILY)
    kept = with_overrides(
        c,
        [
            override("o1", "zed", "2026-03-02T09:00", "2026-03-03T09:00"),
            override("o2", "ben", "2026-03-02T09:00", "2026-03-03T09:00", schedule="gone"),
        ],
    )
    assert kept is c


def test_an_override_must_end_after_it_starts() -> None:
    with pytest.raises(ValidationError, match="end must be after start"):
        override("o", "ben", "2026-03-02T09:00", "2026-03-02T09:00")


@pytest.mark.parametrize(
    ("schedule", "start", "end", "expected"),
    [
        (DAILY, "2026-03-02T00:00", "2026-03-04T00:00", [
            ("ann", "2026-03-02T00:00", "2026-03-02T09:00"),
            ("ben", "2026-03-02T09:00", "2026-03-03T09:00"),
            ("ann", "2026-03-03T09:00", "2026-03-04T00:00"),
        ]),
        # 09:00 in Berlin is 08:00 UTC in winter and 07:00 UTC from 29 March (summer time).
        ({**DAILY, "time_zone": "Europe/Berlin"}, "2026-03-28T00:00", "2026-03-30T00:00", [
            ("ann", "2026-03-28T00:00", "2026-03-28T08:00"),
            ("ben", "2026-03-28T08:00", "2026-03-29T07:00"),
            ("ann", "2026-03-29T07:00", "2026-03-30T00:00"),
        ]),
        # Office hours only: nobody between 17:00 and 09:00.
        ({"time_zone": "UTC", "layers": [{"participants": ["cat"], "start": "2026-03-01",
          "handoff": "09:00", "restrictions": [{"start": "09:00", "end": "17:00"}]}]},
         "2026-03-02T00:00", "2026-03-03T12:00", [
            ("cat", "2026-03-02T09:00", "2026-03-02T17:00"),
            ("cat", "2026-03-03T09:00", "2026-03-03T12:00"),
        ]),
        # Hourly turns of elapsed time.
        ({"time_zone": "UTC", "layers": [{"participants": ["ann", "ben"], "rotation": "hourly",
          "length": 6, "start": "2026-03-01", "handoff": "00:30"}]},
         "2026-03-02T00:00", "2026-03-02T13:00", [
            ("ben", "2026-03-02T00:00", "2026-03-02T00:30"),
            ("ann", "2026-03-02T00:30", "2026-03-02T06:30"),
            ("ben", "2026-03-02T06:30", "2026-03-02T12:30"),
            ("ann", "2026-03-02T12:30", "2026-03-02T13:00"),
        ]),
        # An override of a few minutes splits the turn it falls in.
        ({**DAILY, "overrides": [{"person": "cat", "start": "2026-03-02T10:00:00Z",
                                  "end": "2026-03-02T10:07:30Z"}]},
         "2026-03-02T09:00", "2026-03-02T12:00", [
            ("ben", "2026-03-02T09:00", "2026-03-02T10:00"),
            ("cat", "2026-03-02T10:00", "2026-03-02T10:07:30"),
            ("ben", "2026-03-02T10:07:30", "2026-03-02T12:00"),
        ]),
    ],
    ids=["daily", "dst", "restricted", "hourly", "short-override"],
)  # fmt: skip
def test_shifts(
    schedule: dict[str, Any], start: str, end: str, expected: list[tuple[str, str, str]]
) -> None:
    found = shifts(catalog(s=schedule), "s", utc(start), utc(end))
    assert found == [Shift("s", who, utc(a), utc(b)) for who, a, b in expected]


def test_the_fold_keeps_the_last_good_catalog_and_follows_overrides() -> None:
    bootstrap, first, second = catalog("ann"), catalog("ben", s=DAILY), catalog("cat", s=DAILY)
    seen: list[InForce] = []
    live = LiveCatalog(bootstrap, on_change=seen.append)
    assert live.settle().version is None and live.in_force.catalog is bootstrap
    assert seen == []  # nothing changed

    live.apply(CATALOG_KEY, revision(first), 3)
    live.apply(CATALOG_KEY, revision(second), 4)
    assert seen == []  # applied at settle, whole
    assert live.settle().version == 4 and len(seen) == 1
    assert live.in_force.digest == catalog_digest(second)

    # A revision whose digest does not match, one that fails the catalog's checks, an unknown
    # key and a tombstone of the catalog change nothing.
    forged = revision(first).replace(b'"ben"', b'"cat"', 1)
    live.apply(CATALOG_KEY, forged, 5)
    bad = revision(first).replace(b'"team":"core"', b'"team":"nope"')
    live.apply(CATALOG_KEY, bad, 6)
    live.apply(b"junk", b"{}", 7)
    live.apply(CATALOG_KEY, None, 8)
    assert live.settle().version == 4 and len(seen) == 1
    assert live.skipped == 3

    o = override("o1", "ben", "2026-03-02T07:00", "2026-03-03T09:00")
    live.apply(o.key, o.model_dump_json().encode(), 9)
    in_force = live.settle()
    assert in_force.version == 4  # overrides are not catalog versions
    assert on_call(in_force.catalog, "s", utc("2026-03-02T11:00")) == ["ben"]
    assert on_call(in_force.catalog, "s", utc("2026-03-02T08:00")) == ["ben"]
    assert on_call(in_force.catalog, "s", utc("2026-03-02T06:00")) == ["ann"]
    assert live.active_overrides(utc("2026-03-02T12:00")) == [o]
    assert live.active_overrides(utc("2026-03-03T09:00")) == []
    live.apply(o.key, None, 10)
    assert on_call(live.settle().catalog, "s", utc("2026-03-02T08:00")) == ["ann"]


def test_an_open_incident_records_each_catalog_version_once() -> None:
    inc = Incident(
        id="inc-1", routing_key="api", service="api", title="t", status="triggered",
        severity="SEV2", impact_started_at=T0, detected_at=T0, opened_at=T0, last_seq=2,
    )  # fmt: skip
    first = catalog_recorded(Outcome(None), inc, 4, "a" * 64, T0)
    [event] = first.events
    assert (event.seq, event.data.wire()) == (
        3, {"version": 4, "digest": "a" * 64, "previous": None}
    )  # fmt: skip
    assert first.incident is not None and first.incident.catalog_version == 4
    again = catalog_recorded(Outcome(first.incident), None, 4, "a" * 64, T0)
    assert again.events == ()
    second = catalog_recorded(Outcome(first.incident), None, 9, "b" * 64, T0)
    assert second.events[0].data.wire()["previous"] == 4
    resolved = inc.model_copy(update={"status": IncidentStatus.RESOLVED})
    assert catalog_recorded(Outcome(resolved), None, 9, "b" * 64, T0).events == ()
    refused = Outcome(inc, rejection="no")
    assert catalog_recorded(refused, None, 9, "b" * 64, T0) is refused
    # The incident table is a projection of the timeline: replay rebuilds the version.
    from responders.lifecycle import make_event
    from schemas import IncidentEventKind

    opened = make_event("inc-1", "api", 1, IncidentEventKind.OPENED, T0, "w", None,
                        {"incident": inc.model_copy(update={"last_seq": 1}).model_dump(
                            mode="json")})  # fmt: skip
    rebuilt = replay([opened, *second.events, *first.events])
    assert rebuilt["inc-1"].catalog_version == 9


def test_config_apply_refuses_a_bad_catalog_before_it_writes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # No broker listens there: a refusal must not need one.
    monkeypatch.setenv("WARROOM_BOOTSTRAP_SERVERS", "127.0.0.1:9")
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"services": {"api": {"team": "ghost"}}}))
    assert main(["config", "apply", str(bad)]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("refused, nothing applied: catalog ")
    assert "services.api.team: unknown team 'ghost'" in captured.err
    # Too large for one record: refused before any broker is asked.
    hook = {"channel": "webhook", "address": "https://hooks.example.com/" + "a" * 500}
    people = {f"p{i:04d}": {"contacts": [hook, hook]} for i in range(1000)}
    huge = tmp_path / "huge.yaml"
    huge.write_text(yaml.safe_dump({"people": people, "fallback_policy": "all",
                                    "escalation_policies": {"all": {"steps": [
                                        {"targets": [{"person": "p0000"}]}]}}}))  # fmt: skip
    assert main(["config", "check", str(huge)]) == 0
    capsys.readouterr()
    assert main(["config", "apply", str(huge)]) == 1
    assert "more than one record holds (900,000)" in capsys.readouterr().err
    # A good catalog with no broker to take it: said, with the setting to fix.
    good = tmp_path / "good.yaml"
    good.write_text(yaml.safe_dump({"teams": {"core": {"escalation": [{"targets": ["ann"]}]}},
                                    "people": {"ann": {"contacts": [{"channel": "console"}]}},
                                    "default_team": "core"}))  # fmt: skip
    assert main(["config", "apply", str(good)]) == 2
    err = capsys.readouterr().err
    assert "no catalog written" in err and "WARROOM_BOOTSTRAP_SERVERS" in err
    assert err.count("\n") == 1 and "Error: KafkaConnectionError" not in err, err


def test_start_and_end_of_the_feed_window_use_the_shift_edges() -> None:
    # A feed asks from a week back: the shift under way keeps its real start.
    c = catalog(s=DAILY)
    now = utc("2026-03-05T12:00")
    found = shifts(c, "s", now - timedelta(days=7), now + timedelta(days=1))
    current = next(s for s in found if s.start <= now < s.end)
    assert current == Shift("s", "ann", utc("2026-03-05T09:00"), utc("2026-03-06T09:00"))


@pytest.mark.parametrize(
    "value",
    [
        b"\xff\xfe",
        b"[" * 100_000,
        b'{"schema": 2, "catalog": "v2"}',
        b"null",
        b'"text"',
    ],
    ids=["not-utf8", "deep", "other-schema", "null", "text"],
)
def test_garbage_on_the_catalog_topic_is_skipped_and_counted(value: bytes) -> None:
    live = LiveCatalog(catalog("ann"))
    live.apply(CATALOG_KEY, revision(catalog("ben")), 1)
    live.apply(CATALOG_KEY, value, 2)
    live.apply(b"override/x", value, 3)
    assert live.settle().version == 1 and live.overrides == {}
    assert live.skipped == 2


def test_an_override_stored_under_another_id_than_its_own_is_skipped() -> None:
    # Its DELETE would look it up by its own id, then write the tombstone under that id's key:
    # the record under this key would never go.
    live = LiveCatalog(catalog("ann", s=DAILY))
    o = override("o1", "ben", "2026-03-02T07:00", "2026-03-03T09:00")
    live.apply(b"override/o2", o.model_dump_json().encode(), 1)
    assert live.settle().catalog.schedules["s"].overrides == ()
    assert live.overrides == {} and live.skipped == 1


@pytest.mark.parametrize(
    ("by", "said"),
    [("a\nb", "--by: holds the control character U+000A"), ("x" * 300, "--by: String should")],
    ids=["newline", "too-long"],
)
def test_config_apply_refuses_a_bad_applier_name_in_one_line(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, by: str, said: str
) -> None:
    monkeypatch.setenv("WARROOM_BOOTSTRAP_SERVERS", "127.0.0.1:9")
    good = Path(__file__).parent.parent / "fixtures" / "catalogs" / "good.yaml"
    assert main(["config", "apply", str(good), "--by", by]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"refused, nothing applied: {said}") and err.count("\n") == 1, err
