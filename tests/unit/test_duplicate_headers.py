"""A header that says who is calling, or proves it, sent twice is ambiguous: a proxy or client
may read the other copy than the worker does. Each is refused with a 400 naming the header, and
nothing is sent."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any
from urllib.parse import urlencode

import pytest
from aiohttp.test_utils import TestClient, TestServer
from multidict import CIMultiDict
from pydantic import SecretStr

from streams.http.server import Api
from tests.unit.test_action_links import TOKEN, _pipeline

SLACK = "8f742231b10e8888abcd99yyyzzz85a5"


def _slack(body: bytes) -> list[tuple[str, str]]:
    ts = str(int(time.time()))
    sig = "v0=" + hmac.new(SLACK.encode(), f"v0:{ts}:".encode() + body, hashlib.sha256).hexdigest()
    return [("X-Slack-Request-Timestamp", ts), ("X-Slack-Signature", sig),
            ("Content-Type", "application/x-www-form-urlencoded")]  # fmt: skip


PRESSED = {"type": "block_actions", "user": {"id": "U1"},
           "actions": [{"action_id": "acknowledge", "value": "inc-1"}]}  # fmt: skip
BODY = urlencode({"payload": json.dumps(PRESSED)}).encode()
AUTH = ("Authorization", f"Bearer {TOKEN}")


@pytest.mark.parametrize(
    ("path", "headers", "body", "named"),
    [
        ("/api/incidents/inc-1/notes", [AUTH, ("X-Warroom-Actor", "ann"),
                                        ("X-Warroom-Actor", "bob")], b'{"text": "x"}',
         "X-Warroom-Actor"),
        ("/api/incidents/inc-1/notes", [AUTH, ("Authorization", "Bearer wrp_other")],
         b'{"text": "x"}', "Authorization"),
        ("/api/slack/interactivity", [*_slack(BODY), ("X-Slack-Signature", "v0=00")], BODY,
         "X-Slack-Signature"),
        ("/api/slack/interactivity", [*_slack(BODY), ("X-Slack-Request-Timestamp", "1")], BODY,
         "X-Slack-Request-Timestamp"),
    ],
    ids=["actor", "authorization", "slack-signature", "slack-timestamp"],
)  # fmt: skip
async def test_an_identity_header_sent_twice_is_a_400_naming_it(
    path: str, headers: list[tuple[str, str]], body: bytes, named: str
) -> None:
    p: Any = _pipeline()
    p.settings = p.settings.model_copy(update={"slack_signing_secret": SecretStr(SLACK)})
    async with TestClient(TestServer(Api(p).app())) as client:
        reply = await client.post(path, data=body, headers=CIMultiDict(headers))
        said = await reply.json()
    assert reply.status == 400, said
    assert said["error"].startswith(f"{named}: sent 2 times"), said
    assert p.topics.commands.sent == []
