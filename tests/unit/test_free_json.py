"""Free-form JSON that warroom keeps and sends on (a change's ``custom_details``, a PagerDuty
event's ``custom_details``, which becomes a detection's context): what cannot be written back as
JSON is refused when it arrives, naming the field, instead of failing on the way to the topic."""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from pydantic import SecretStr, ValidationError

from schemas.alerts import PagerDutyEvent
from schemas.changes import ChangeEventV2
from streams.app import load_catalog
from streams.http.server import Api
from streams.settings import Settings
from tests.unit.test_action_links import CATALOG, TOKEN, _Topic

DEEP = json.loads("[" * 500 + "]" * 500)


def _change(details: Any) -> None:
    payload = {"summary": "deploy", "custom_details": details}
    ChangeEventV2.model_validate({"service": "checkout", "payload": payload})


def _pagerduty(details: Any) -> None:
    payload = {"summary": "x", "source": "checkout", "severity": "error", "custom_details": details}
    PagerDutyEvent.model_validate({"event_action": "trigger", "payload": payload})


@pytest.mark.parametrize("build", [_change, _pagerduty], ids=["change", "pagerduty"])
@pytest.mark.parametrize(
    ("value", "said"),
    [
        ({"a": DEEP}, "nested deeper than 32"),
        ({"a": "\ud800"}, "not valid UTF-8"),
        ({"\udcff": 1}, "not valid UTF-8"),
        ({"a": float("nan")}, "not a finite number"),
        ({"a": [1.0, float("inf")]}, "not a finite number"),
    ],
    ids=["deep", "lone-surrogate", "surrogate-key", "nan", "infinity"],
)
def test_json_that_cannot_be_written_back_is_refused_naming_the_field(
    build: Any, value: Any, said: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        build(value)
    assert said in str(caught.value), caught.value


@pytest.mark.parametrize("build", [_change, _pagerduty], ids=["change", "pagerduty"])
def test_ordinary_nested_json_passes(build: Any) -> None:
    build({"build": 42, "by": "café", "steps": [{"ok": True, "took_s": 1.5}], "n": None})


async def test_post_changes_answers_400_not_500_and_sends_nothing() -> None:
    p: Any = SimpleNamespace(
        settings=Settings(api_token=SecretStr(TOKEN)), catalog=load_catalog(CATALOG),
        topics=SimpleNamespace(changes=_Topic()), directory=None, changes=None,
    )  # fmt: skip
    deep = "[" * 500 + "]" * 500
    async with TestClient(TestServer(Api(p).app())) as client:
        for details in (f'{{"a":{deep}}}', '{"a":"\\ud800"}', '{"a":NaN}'):
            body = (
                f'{{"service":"checkout","payload":{{"summary":"x","custom_details":{details}}}}}'
            )
            reply = await client.post(
                "/api/changes", data=body, headers={"Authorization": f"Bearer {TOKEN}"}
            )
            said = await reply.json()
            assert reply.status == 400, said
            assert said["error"].startswith("payload.custom_details: "), said
    assert p.topics.changes.sent == []


async def test_an_unknown_heartbeat_name_is_shown_bounded_and_without_control_characters() -> None:
    p: Any = SimpleNamespace(
        settings=Settings(api_token=SecretStr(TOKEN)), catalog=load_catalog(CATALOG),
        topics=SimpleNamespace(metrics=_Topic()), directory=None,
    )  # fmt: skip
    async with TestClient(TestServer(Api(p).app())) as client:
        for name in ("%00%1B[31m", "a" * 5000):
            reply = await client.post(
                f"/api/heartbeats/{name}", headers={"Authorization": f"Bearer {TOKEN}"}
            )
            said = await reply.json()
            assert reply.status == 404, said
            assert said["error"].startswith("no heartbeat "), said
            assert len(said["error"]) < 200 and not any(ord(c) < 32 for c in said["error"]), said
    assert p.topics.metrics.sent == []
