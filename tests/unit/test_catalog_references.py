"""Every kind of broken reference in one catalog: each error is reported, in the catalog's
order, at its field, with its message."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from schemas.catalog import Catalog

BROKEN: dict[str, Any] = {
    "services": {
        "checkout": {
            "team": "payments",
            "escalation_policy": "nope",
            "depends_on": ["checkout", "ghost"],
            "stakeholders": ["zed"],
        },
        "search": {"team": "missing"},
        "quiet": {"team": "silent"},
        "b": {"team": "payments", "routing_keys": ["k1"]},
        "c": {"team": "payments", "routing_keys": ["k1"]},
    },
    "heartbeats": {"nightly": {"service": "nowhere", "within_s": 3600}},
    "teams": {
        "payments": {
            "members": ["alice", "yan"],
            "escalation": [{"targets": ["xia"]}],
            "escalation_policy": "absent",
            "schedule": "nosched",
        },
        "silent": {"members": ["alice"]},
        "hollow": {},
    },
    "people": {
        "alice": {"contacts": [{"channel": "console"}], "slack_user_id": "U0ALICE"},
        "bob": {"contacts": [{"channel": "console"}], "slack_user_id": "U0ALICE"},
    },
    "schedules": {
        "primary": {
            "time_zone": "UTC",
            "layers": [
                {"participants": ["wu"], "start": "2024-01-01T00:00:00Z", "handoff": "09:00"}
            ],
            "overrides": [
                {
                    "person": "vic",
                    "start": "2024-01-01T00:00:00Z",
                    "end": "2024-01-02T00:00:00Z",
                }
            ],
        }
    },
    "escalation_policies": {
        "main": {"steps": [{"delay_s": 0, "targets": [{"person": "uma"}, {"team": "hollow"}]}]}
    },
    "runbooks": {
        "r1": {
            "applies_to": {"services": ["unlisted"]},
            "title": "t",
            "phases": {"mobilize": [{"id": "call", "title": "Call"}]},
        },
        "r2": {
            "applies_to": {"services": ["unlisted"]},
            "title": "t",
            "phases": {"mobilize": [{"id": "call", "title": "Call"}]},
        },
    },
    "default_team": "silent",
    "fallback_policy": "gone",
}

EXPECTED = [
    ("services.checkout.escalation_policy", "unknown escalation policy 'nope'"),
    ("services.checkout.depends_on.0", "depends on itself"),
    ("services.checkout.depends_on.1", "unknown service 'ghost'"),
    ("services.checkout.stakeholders.0", "unknown person 'zed'"),
    ("services.search.team", "unknown team 'missing'"),
    (
        "services.quiet.escalation_policy",
        "team 'silent' has no escalation or escalation_policy; "
        "name an escalation_policy for this service",
    ),
    ("heartbeats.nightly.service", "unknown service 'nowhere'"),
    ("services.c.routing_keys.0", "routing key already belongs to service 'b'"),
    ("teams.payments.members.1", "unknown person 'yan'"),
    ("teams.payments.escalation.0.targets.0", "unknown person 'xia'"),
    ("teams.payments.escalation_policy", "unknown escalation policy 'absent'"),
    ("teams.payments.schedule", "unknown schedule 'nosched'"),
    ("schedules.primary.layers.0.participants.0", "unknown person 'wu'"),
    ("schedules.primary.overrides.0.person", "unknown person 'vic'"),
    ("people.bob.slack_user_id", "already the Slack member of 'alice'"),
    ("escalation_policies.main.steps.0.targets.0.person", "unknown person 'uma'"),
    ("escalation_policies.main.steps.0.targets.1.team", "team 'hollow' has no schedule or members"),
    ("runbooks.r1.applies_to.services.0", "unknown service 'unlisted'"),
    ("runbooks.r2.applies_to.services.0", "unknown service 'unlisted'"),
    ("runbooks.r2.applies_to", "runbook 'r1' applies to exactly the same incidents"),
    ("default_team", "team 'silent' has no escalation or escalation_policy"),
    ("fallback_policy", "unknown escalation policy 'gone'"),
]


def test_every_broken_reference_is_reported_in_order_at_its_field() -> None:
    with pytest.raises(ValidationError) as raised:
        Catalog.model_validate(BROKEN)
    found = [
        (".".join(str(part) for part in error["loc"]), error["msg"].removeprefix("Value error, "))
        for error in raised.value.errors()
    ]
    assert found == EXPECTED


def test_an_unknown_default_team_is_named() -> None:
    with pytest.raises(ValidationError) as raised:
        Catalog.model_validate({"default_team": "nobody"})
    [error] = raised.value.errors()
    assert error["loc"] == ("default_team",)
    assert error["msg"] == "Value error, unknown team 'nobody'"
