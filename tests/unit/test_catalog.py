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


def _laughs(levels: int) -> str:
    """A "billion laughs": each anchor a list of ten of the one before."""
    lines = ['l0: &l0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for i in range(1, levels + 1):
        lines.append(f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 10)}]")
    return "\n".join(lines) + f"\nteams: {{t: {{members: *l{levels}}}}}\n"


WIDE_ALIASES = (
    "x: &x [" + ", ".join(['"' + "y" * 1000 + '"'] * 1000) + "]\n"
    "teams:\n" + "\n".join(f"  t{i}: {{members: *x}}" for i in range(300)) + "\n"
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (_laughs(9), r"expands to more than [\d,]+ characters"),
        (WIDE_ALIASES, r"expands to more than [\d,]+ characters"),
        ("teams: " + "[" * 20_000 + "]" * 20_000 + "\n", "nested deeper than"),
        ("teams: " + "{a: " * 5_000 + "1" + "}" * 5_000 + "\n", "nested deeper than"),
        ("teams: &t {a: *t}\n", "refers to itself"),
        ("teams:\n  a: {}\n  a: {}\n", r"line 3, column 3: duplicate key 'a'"),
        ("services:\n  a: [1, 2\n  b: }\n", r"not valid YAML at line 3, column 4: expected ','"),
    ],
    ids=[
        "billion-laughs",
        "wide-aliases",
        "deep-lists",
        "deep-maps",
        "recursive",
        "dup-key",
        "syntax",
    ],
)
def test_a_hostile_yaml_catalog_is_refused_in_one_line(
    tmp_path: Path, text: str, expected: str
) -> None:
    path = tmp_path / "catalog.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=expected) as caught:
        load_catalog(path)
    assert "\n" not in str(caught.value) and len(str(caught.value)) < 1000


def test_a_catalog_with_a_few_anchors_still_loads(tmp_path: Path) -> None:
    path = tmp_path / "catalog.yaml"
    path.write_text(
        "people:\n  ann: {contacts: &console [{channel: console}]}\n  ben: {contacts: *console}\n"
    )
    assert sorted(load_catalog(path).people) == ["ann", "ben"]


def test_a_catalog_with_thousands_of_errors_names_the_first_ones_in_one_short_line(
    tmp_path: Path,
) -> None:
    path = tmp_path / "catalog.yaml"
    path.write_text("teams:\n" + "".join(f"  t{i}: {{bogus{i}: 1}}\n" for i in range(5000)))
    with pytest.raises(
        ConfigError, match=r"teams.t0.bogus0: Extra inputs.*and 49\d\d more"
    ) as caught:
        load_catalog(path)
    assert len(str(caught.value)) < 2000
