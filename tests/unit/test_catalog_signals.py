"""The catalog's heartbeats, change routing keys and people's time zones: good and bad fixtures,
each error naming its field."""

from __future__ import annotations

from pathlib import Path

import pytest

from streams.app import ConfigError, load_catalog

FIXTURES = Path(__file__).parent.parent / "fixtures" / "catalogs"


def test_good_signals_catalog_loads() -> None:
    catalog = load_catalog(FIXTURES / "good_signals.yaml")
    billing = catalog.services["billing"]
    assert billing.heartbeat is not None and billing.heartbeat.within_s == 300
    assert catalog.service_for_routing_key("R-BILLING") == "billing"
    assert catalog.service_for_routing_key("R-OTHER") is None
    assert catalog.heartbeats["nightly-export"].service == "billing"
    assert catalog.people["alice"].time_zone == "Europe/Berlin"


@pytest.mark.parametrize(
    ("fixture", "expected"),
    [
        ("bad_heartbeat_unknown_service.yaml",
         "heartbeats.nightly-export.service: unknown service 'biling'"),
        ("bad_heartbeat_window.yaml",
         "services.billing.heartbeat.within_s: Input should be greater than or equal to 1"),
        ("bad_routing_key_twice.yaml",
         "services.checkout.routing_keys.1: routing key already belongs to service "
         "'billing'"),
        ("bad_person_time_zone.yaml", "people.alice.time_zone: unknown time zone"),
    ],
    ids=["heartbeat-service", "heartbeat-window", "routing-key-twice", "time-zone"],
)  # fmt: skip
def test_bad_signals_catalogs_name_the_field(fixture: str, expected: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_catalog(FIXTURES / fixture)
    assert expected in str(caught.value)
