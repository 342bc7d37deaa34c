"""The catalog: good and bad fixtures, each error naming its field and problem."""

from __future__ import annotations

from pathlib import Path

import pytest

from streams.app import ConfigError, load_catalog
from streams.cli import main

FIXTURES = Path(__file__).parent.parent / "fixtures" / "catalogs"


def test_good_catalog_loads() -> None:
    catalog = load_catalog(FIXTURES / "good.yaml")
    assert catalog.team_for("checkout") == "payments"
    assert catalog.team_for("unlisted") == "discovery"
    assert catalog.tier_for("checkout") == 1 and catalog.tier_for("unlisted") == 3
    assert catalog.teams["payments"].escalation[1].delay_s == 300


@pytest.mark.parametrize(
    ("fixture", "expected"),
    [
        ("bad_unknown_team.yaml", "services.checkout.team: unknown team 'payment'"),
        ("bad_unknown_person.yaml", "teams.payments.escalation.0.targets.1: unknown person"),
        ("bad_webhook_address.yaml", "people.alice.contacts.0: a webhook contact needs an http"),
        ("bad_typo_field.yaml", "services.checkout.teir: Extra inputs are not permitted"),
        ("bad_channel.yaml", "people.alice.contacts.0.channel: Input should be"),
        ("bad_yaml.yaml", "not valid YAML"),
    ],
    ids=["unknown-team", "unknown-person", "webhook-address", "typo", "channel", "yaml"],
)
def test_bad_catalogs_name_the_field(fixture: str, expected: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_catalog(FIXTURES / fixture)
    assert expected in str(caught.value)


def test_config_check_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config", "check", str(FIXTURES / "good.yaml")]) == 0
    assert "ok: 2 services, 2 teams, 3 people" in capsys.readouterr().out
    assert main(["config", "check", str(FIXTURES / "bad_unknown_team.yaml")]) == 1
    assert "unknown team 'payment'" in capsys.readouterr().err
    assert main(["config", "check", str(FIXTURES / "missing.yaml")]) == 1


def test_a_catalog_that_is_not_utf8_text_is_refused_by_name(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes("teams:\n  caf\xe9: {}\n".encode("latin-1"))
    with pytest.raises(ConfigError, match=r"latin1.yaml: not UTF-8 text \(invalid continuation"):
        load_catalog(path)


UNROUTED_CATALOG = """
services: {api: {team: core, tier: 1}}
teams: {core: {escalation: [{targets: [ann]}]}}
people: {ann: {contacts: [{channel: console}]}, ops: {contacts: [{channel: console}]}}
escalation_policies: {ops-desk: {steps: [{targets: [{person: ops}]}]}}
"""


def test_config_check_requires_a_fallback_where_an_incident_could_page_nobody(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    unrouted = tmp_path / "unrouted.yaml"
    unrouted.write_text(UNROUTED_CATALOG)
    assert main(["config", "check", str(unrouted)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("invalid: fallback_policy: required")
    assert "no default_team" in err
    unrouted.write_text(UNROUTED_CATALOG + "fallback_policy: ops-desk\n")
    assert main(["config", "check", str(unrouted)]) == 0
    unrouted.write_text(UNROUTED_CATALOG + "fallback_policy: nobody\n")
    assert main(["config", "check", str(unrouted)]) == 1
    assert "unknown escalation policy 'nobody'" in capsys.readouterr().err
