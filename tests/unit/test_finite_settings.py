"""No duration, interval or rate in the settings or a catalog can be infinite or NaN: such a value
would pass a ``ge=0`` bound and then overflow the deadline arithmetic in the running worker."""

from __future__ import annotations

import typing

import pytest
from pydantic import ValidationError

from schemas import format_errors
from schemas.catalog import ServiceTiming
from streams.settings import Settings


def _float_settings() -> list[str]:
    names = []
    for name, field in Settings.model_fields.items():
        kinds = typing.get_args(field.annotation) or (field.annotation,)
        if float in kinds:
            names.append(name)
    return names


FLOAT_SETTINGS = _float_settings()


def test_the_settings_have_float_fields_to_check() -> None:
    assert {"group_wait_s", "group_interval_s", "ack_timeout_s"} <= set(FLOAT_SETTINGS)


@pytest.mark.parametrize("value", ["inf", "-inf", "nan"])
@pytest.mark.parametrize("name", FLOAT_SETTINGS)
def test_a_non_finite_setting_is_refused_with_its_name(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(f"WARROOM_{name.upper()}", value)
    with pytest.raises(ValidationError) as refused:
        Settings()
    text = format_errors(refused.value, "WARROOM")
    assert text.startswith(f"WARROOM.{name}: ") and "finite number" in text, text


@pytest.mark.parametrize("name", sorted(ServiceTiming.model_fields))
def test_a_non_finite_service_timing_is_refused(name: str) -> None:
    with pytest.raises(ValidationError, match="finite number"):
        ServiceTiming.model_validate({name: float("inf")})


@pytest.mark.parametrize(
    "name", ["group_retention_s", "delivery_log_retention_s", "silence_retention_s"]
)
@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("-1", "greater than or equal to 0"),
        ("inf", "finite number"),
        ("nan", "finite number"),
        ("five days", "valid number"),
    ],
    ids=["negative", "infinite", "nan", "not-a-number"],
)
def test_a_bad_retention_is_refused_with_its_name(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, problem: str
) -> None:
    variable = f"WARROOM_{name.upper()}"
    assert getattr(Settings(), name) == 120 * 3600  # Alertmanager's data retention
    monkeypatch.setenv(variable, "0")
    assert getattr(Settings(), name) == 0  # kept forever
    monkeypatch.setenv(variable, value)
    with pytest.raises(ValidationError) as refused:
        Settings()
    text = format_errors(refused.value, "WARROOM")
    assert text.startswith(f"WARROOM.{name}: ") and problem in text, text
