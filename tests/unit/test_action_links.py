"""Signed action links against hostile requests, over a pipeline without a broker: a link acts
only within the deployment's time to live, and a link used already never claims to act again."""

from __future__ import annotations

import asyncio
import hashlib
import time
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from urllib.parse import urlencode

from aiohttp.test_utils import TestClient, TestServer
from pydantic import SecretStr

from responders.access import link_problem, link_signature
from responders.correlation import Group
from streams.app import load_catalog
from streams.http.server import Api
from streams.settings import Settings

TOKEN = "Yx3v9QeLr2mT8kWb1NcZ5pHd7sFg0aJu"
KEY = "k3Yq9vLr2mT8xWb1NcZ5pHd7sFg0aJuE"
CATALOG = Path(__file__).parent.parent.parent / "catalog.example.yaml"
T0 = datetime(2026, 1, 1, tzinfo=UTC)


class _Topic:
    """Stands in for a Faust topic: every send is acknowledged at once, and kept."""

    def __init__(self) -> None:
        self.sent: list[bytes] = []

    async def send(self, *, key: bytes, value: bytes, **_: Any) -> Any:
        self.sent.append(value)
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done


def _incident(status: str) -> dict[str, Any]:
    return {
        "id": "inc-1", "routing_key": "checkout", "service": "checkout", "title": "card fails",
        "status": status, "severity": "SEV2", "impact_started_at": T0.isoformat(),
        "detected_at": T0.isoformat(), "opened_at": T0.isoformat(),
    }  # fmt: skip


def _pipeline(status: str = "triggered", seen: tuple[str, ...] = ()) -> Any:
    group = Group("checkout", incident_id="inc-1", seen=seen)
    tables = SimpleNamespace(
        incidents={"inc-1": _incident(status)}, open_incidents={"checkout": group.to_dict()}
    )
    settings = Settings(api_token=SecretStr(TOKEN), action_link_key=SecretStr(KEY))
    return SimpleNamespace(
        settings=settings, catalog=load_catalog(CATALOG), tables=tables,
        topics=SimpleNamespace(commands=_Topic()), directory=None,
    )  # fmt: skip


def _query(expires: int, person: str = "bob", action: str = "acknowledge") -> str:
    sig = link_signature(KEY.encode(), "inc-1", action, person, expires)
    return urlencode({"person": person, "expires": expires, "sig": sig})


async def _post(p: Any, query: str) -> tuple[int, str]:
    async with TestClient(TestServer(Api(p).app())) as client:
        reply = await client.post(f"/act/inc-1/acknowledge?{query}")
        return reply.status, await reply.text()


def test_a_link_expiring_past_the_time_to_live_is_refused_though_signed() -> None:
    key, now = KEY.encode(), 1_000_000.0
    far = link_signature(key, "inc-1", "acknowledge", "bob", 253_402_300_799)  # year 9999
    problem = link_problem(key, "inc-1", "acknowledge", "bob", 253_402_300_799, far, now, 86_400)
    assert problem is not None and "time to live" in problem
    due = int(now) + 86_400
    ok = link_signature(key, "inc-1", "acknowledge", "bob", due)
    assert link_problem(key, "inc-1", "acknowledge", "bob", due, ok, now, 86_400) is None


async def test_a_far_future_link_answers_403_and_sends_nothing() -> None:
    p = _pipeline()
    status, said = await _post(p, _query(253_402_300_799))
    assert status == 403 and "time to live" in said, said
    assert p.topics.commands.sent == []


async def test_a_link_used_before_a_reopen_says_it_changes_nothing() -> None:
    query = _query(int(time.time()) + 3600)
    sig = query.rsplit("sig=", 1)[1]
    used = "lnk-" + hashlib.sha256(sig.encode()).hexdigest()[:20]
    # Acknowledged with this link, then reopened: the incident is triggered again.
    p = _pipeline("triggered", seen=(used,))
    status, said = await _post(p, query)
    assert status == 200, said
    assert "acknowledged by" not in said and "This link was used already" in said, said
    assert p.topics.commands.sent == []
    # A fresh link still acts.
    fresh = _pipeline("triggered")
    status, said = await _post(fresh, query)
    assert status == 200 and "Incident inc-1 acknowledged by bob." in said, said
    assert len(fresh.topics.commands.sent) == 1


async def test_the_confirmation_posts_relative_to_the_page_so_it_works_under_a_path() -> None:
    # Behind a proxy that serves the worker under /warroom/, the browser is at
    # /warroom/act/inc-1/acknowledge; a form posting to /act/... would leave the worker's path.
    query = _query(int(time.time()) + 3600)
    async with TestClient(TestServer(Api(_pipeline()).app())) as client:
        reply = await client.get(f"/act/inc-1/acknowledge?{query}")
        shown = await reply.text()
    assert reply.status == 200, shown
    action = shown.split('action="', 1)[1].split('"', 1)[0]
    assert action.startswith("?") and "sig=" in action, action
