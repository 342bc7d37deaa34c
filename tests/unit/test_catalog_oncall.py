"""The on-call catalog: schedules, escalation policies, routes and channels, each error naming
its field and problem."""

from __future__ import annotations

from datetime import time
from pathlib import Path

import pytest

from streams.app import ConfigError, load_catalog
from streams.cli import main

FIXTURES = Path(__file__).parent.parent / "fixtures" / "catalogs"
ROOT = Path(__file__).resolve().parents[2]


def test_good_oncall_catalog_loads() -> None:
    catalog = load_catalog(FIXTURES / "good_oncall.yaml")
    schedule = catalog.schedules["payments-primary"]
    assert schedule.time_zone == "Europe/Berlin"
    assert schedule.layers[0].handoff == time(9, 0) and schedule.layers[0].rotation == "daily"
    assert schedule.layers[1].restrictions[0].start_day == "fri"
    critical = catalog.escalation_policies["payments-critical"]
    assert critical.steps[1].notify == "round_robin" and critical.repeat == 1
    assert critical.pass_delay_s == 300
    assert [t.person for t in critical.steps[1].targets[:2]] == ["alice", "bob"]
    assert critical.steps[1].targets[2].team == "discovery"
    assert catalog.services["checkout"].escalation_policy == "payments-critical"
    assert catalog.teams["payments"].schedule == "payments-primary"


def test_example_catalog_validates(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config", "check", str(ROOT / "catalog.example.yaml")]) == 0
    assert "1 schedule, 1 escalation policy" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("fixture", "expected"),
    [
        (
            "bad_schedule_timezone.yaml",
            "schedules.primary.time_zone: unknown time zone 'Europe/Berlim'",
        ),
        (
            "bad_policy_delay.yaml",
            "escalation_policies.fast.steps.1.delay_s: delay_s must be at least 60",
        ),
        (
            "bad_policy_first_delay.yaml",
            "escalation_policies.fast.steps.0.delay_s: delay_s must be at least 60 (or 0 for the",
        ),
        (
            "bad_unknown_schedule.yaml",
            "escalation_policies.main.steps.0.targets.0.schedule: unknown schedule 'primary'",
        ),
        (
            "bad_unknown_policy.yaml",
            "services.checkout.escalation_policy: unknown escalation policy 'payments-critcal'",
        ),
        (
            "bad_policy_repeat.yaml",
            "escalation_policies.main.repeat: Input should be less than or equal to 9",
        ),
        ("bad_repeat_delay.yaml", "escalation_policies.main.repeat_delay_s: a policy that repeats"),
        (
            "bad_target_kind.yaml",
            "escalation_policies.main.steps.0.targets.0: a target names exactly one of",
        ),
        (
            "bad_handoff_unquoted.yaml",
            "schedules.primary.layers.0.handoff: a local wall-clock time",
        ),
        (
            "bad_schedule_participant.yaml",
            "schedules.primary.layers.1.participants.1: unknown person 'dave'",
        ),
        (
            "bad_schedule_participant.yaml",
            "schedules.primary.overrides.0.person: unknown person 'erin'",
        ),
        (
            "bad_override_order.yaml",
            "schedules.primary.overrides.0: an override's end must be after",
        ),
        (
            "bad_weekly_restriction.yaml",
            "schedules.primary.layers.0.restrictions.0: a weekly restriction needs start_day",
        ),
        (
            "bad_slack_address.yaml",
            "people.alice.contacts.0: a slack contact needs its incoming-webhook",
        ),
        ("bad_email_address.yaml", "people.alice.contacts.0: an email contact needs an address"),
        (
            "bad_team_without_policy.yaml",
            "services.checkout.escalation_policy: team 'payments' has no escalation",
        ),
        (
            "bad_unknown_team_schedule.yaml",
            "teams.payments.schedule: unknown schedule 'payments-primary'",
        ),
    ],
    ids=[
        "schedule-timezone",
        "policy-delay",
        "policy-first-delay",
        "unknown-schedule",
        "unknown-policy",
        "policy-repeat",
        "repeat-delay",
        "target-kind",
        "handoff-unquoted",
        "schedule-participant",
        "override-person",
        "override-order",
        "weekly-restriction",
        "slack-address",
        "email-address",
        "team-without-policy",
        "team-schedule",
    ],
)
def test_bad_oncall_catalogs_name_the_field(fixture: str, expected: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_catalog(FIXTURES / fixture)
    assert expected in str(caught.value)


def test_existing_good_catalog_still_validates() -> None:
    catalog = load_catalog(FIXTURES / "good.yaml")
    assert catalog.schedules == {} and catalog.escalation_policies == {}
