"""Nobody is left unpaged silently: an incident its own policy cannot page anyone for records
why, and pages the catalog's fallback policy when there is one."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from responders.correlation import Group, Timing, on_detection_in_group, on_tick
from responders.lifecycle import on_detection
from responders.paging import route
from schemas import Catalog, Detection, IncidentEventKind

E = IncidentEventKind
T0 = datetime(2026, 5, 4, 12, 0, tzinfo=UTC)  # a Monday, noon UTC


def catalog(fallback: bool = True, **extra: Any) -> Catalog:
    data: dict[str, Any] = {
        "services": {"api": {"team": "core", "tier": 1}},
        "teams": {"core": {"escalation_policy": "core-policy"}},
        "people": {
            "ann": {"contacts": [{"channel": "console"}]},
            "ops": {"contacts": [{"channel": "console"}]},
        },
        "schedules": {
            # Ann is on call on weekdays, 09:00 to 17:00 UTC only: outside it, nobody is.
            "core-hours": {
                "time_zone": "UTC",
                "layers": [
                    {
                        "name": "day",
                        "participants": ["ann"],
                        "rotation": "weekly",
                        "start": "2026-01-05",
                        "handoff": "09:00",
                        "restrictions": [
                            {
                                "type": "daily",
                                "days": ["mon", "tue", "wed", "thu", "fri"],
                                "start": "09:00",
                                "end": "17:00",
                            }
                        ],
                    }
                ],
            },
        },
        "escalation_policies": {
            "core-policy": {
                "steps": [
                    {"targets": [{"schedule": "core-hours"}]},
                    {"delay_s": 600, "targets": [{"schedule": "core-hours"}]},
                ]
            },
            "ops-desk": {"steps": [{"targets": [{"person": "ops"}]}]},
        },
        **extra,
    }
    if fallback:
        data["fallback_policy"] = "ops-desk"
    return Catalog.model_validate(data)


def detection(service: str, at: datetime) -> Detection:
    return Detection(id=f"d-{service}-{at.timestamp()}", ts=at, service=service, signal="latency",
                     detector="x", score=1.0, severity="critical")  # fmt: skip


@pytest.mark.parametrize(
    ("case", "service", "at", "fallback", "reason", "recipients"),
    [
        ("routed", "api", T0, True, None, ["ann"]),
        (
            "unknown service, fallback",
            "orphan",
            T0,
            True,
            "no escalation policy pages for service 'orphan'",
            ["ops"],
        ),
        (
            "unknown service, no fallback",
            "orphan",
            T0,
            False,
            "no escalation policy pages for service 'orphan'",
            [],
        ),
        (
            "schedule gap, fallback",
            "api",
            T0 + timedelta(hours=10),
            True,
            "step 0 of 'core-policy' resolves to nobody at 2026-05-04T22:00:00+00:00",
            ["ops"],
        ),
        (
            "schedule gap, no fallback",
            "api",
            T0 + timedelta(hours=10),
            False,
            "step 0 of 'core-policy' resolves to nobody at 2026-05-04T22:00:00+00:00",
            [],
        ),
    ],
    ids=["routed", "unknown-fallback", "unknown-nobody", "gap-fallback", "gap-nobody"],
)
def test_who_is_paged_and_why_nobody_else(
    case: str,
    service: str,
    at: datetime,
    fallback: bool,
    reason: str | None,
    recipients: list[str],
) -> None:
    outcome = on_detection(None, detection(service, at), catalog(fallback), at)
    assert outcome.incident is not None
    assert [p.recipient for p in outcome.pages] == recipients, case
    kinds = [e.kind for e in outcome.events]
    assert (E.UNROUTED in kinds) == (reason is not None), case
    assert outcome.incident.unrouted == reason
    if reason is not None:
        [unrouted] = [e for e in outcome.events if e.kind is E.UNROUTED]
        assert unrouted.data.wire()["reason"] == reason
        assert unrouted.data.wire()["fallback"] == ("ops-desk" if recipients else None)
    assert (E.PAGED in kinds) == bool(recipients), case


def test_an_escalation_into_a_gap_records_it_and_pages_the_fallback() -> None:
    cat = catalog()
    timing = Timing(group_wait_s=0)
    opened_at = T0 + timedelta(hours=4, minutes=55)  # 16:55: ann is on call
    step = on_detection_in_group(Group("api"), None, detection("api", opened_at), cat, timing,
                                 opened_at)  # fmt: skip
    assert [p.recipient for p in step.outcome.pages] == ["ann"]
    later = opened_at + timedelta(seconds=600)  # 17:05: step 1 is due and nobody is on call
    assert step.outcome.incident is not None
    escalated = on_tick(step.group, step.outcome.incident, cat, timing, later)
    kinds = [e.kind for e in escalated.outcome.events]
    assert kinds == [E.UNROUTED, E.ESCALATED]
    assert [p.recipient for p in escalated.outcome.pages] == ["ops"]
    seqs = [e.seq for e in escalated.outcome.events]
    assert seqs == sorted(set(seqs))  # one sequence number each


def test_a_fallback_policy_that_does_not_exist_is_refused_with_the_field() -> None:
    with pytest.raises(ValidationError) as caught:
        catalog(fallback=False, fallback_policy="nobody-desk")
    assert "fallback_policy" in str(caught.value)
    assert "unknown escalation policy 'nobody-desk'" in str(caught.value)


def test_a_step_beyond_the_plan_is_not_unrouted() -> None:
    outcome = on_detection(None, detection("api", T0), catalog(), T0)
    assert outcome.incident is not None
    assert route(outcome.incident, catalog(), 7, T0).unrouted is None
