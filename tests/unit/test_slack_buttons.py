"""Slack buttons against hostile and repeated requests, over a pipeline without a broker."""

from __future__ import annotations

import hashlib
from typing import Any

from aiohttp.test_utils import TestClient, TestServer
from multidict import CIMultiDict
from pydantic import SecretStr

from streams.http.server import Api
from tests.unit.test_action_links import _pipeline
from tests.unit.test_duplicate_headers import BODY, SLACK, _slack


def _with_slack_user(p: Any) -> Any:
    bob = p.catalog.people["bob"].model_copy(update={"slack_user_id": "U1"})
    p.catalog = p.catalog.model_copy(update={"people": {**p.catalog.people, "bob": bob}})
    p.settings = p.settings.model_copy(update={"slack_signing_secret": SecretStr(SLACK)})
    return p


async def _press(p: Any) -> tuple[int, Any]:
    async with TestClient(TestServer(Api(p).app())) as client:
        reply = await client.post(
            "/api/slack/interactivity", data=BODY, headers=CIMultiDict(_slack(BODY))
        )
        return reply.status, await reply.json()


async def test_a_press_acknowledges_as_the_person_of_the_slack_user() -> None:
    p = _with_slack_user(_pipeline("triggered"))
    status, said = await _press(p)
    assert status == 200 and said["text"] == "Incident inc-1: acknowledge recorded as bob.", said
    assert len(p.topics.commands.sent) == 1


async def test_a_press_applied_before_a_reopen_says_nothing_changed() -> None:
    # Slack retries a request it did not hear back from with the same body; by then the
    # incident may have been acknowledged with it and reopened.
    used = "slk-" + hashlib.sha256(BODY).hexdigest()[:20]
    p = _with_slack_user(_pipeline("triggered", seen=(used,)))
    status, said = await _press(p)
    assert status == 200 and said["text"].startswith("Nothing changed"), said
    assert "recorded as" not in said["text"]
    assert p.topics.commands.sent == []
