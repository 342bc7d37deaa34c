"""The on-call routes against hostile requests, over a pipeline without a broker: every answer
is a JSON 4xx that names the field or parameter, or the route's own 2xx."""

from __future__ import annotations

import asyncio
import json
import re
import threading
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from urllib.parse import quote

import icalendar
import pytest
from aiohttp.test_utils import TestClient, TestServer
from pydantic import SecretStr

from schemas import Catalog
from streams.app import load_catalog
from streams.http import oncall as oncall_api
from streams.http.server import Api
from streams.live_catalog import LiveCatalog
from streams.settings import Settings

TOKEN = "Yx3v9QeLr2mT8kWb1NcZ5pHd7sFg0aJu"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
CATALOG = Path(__file__).parent.parent.parent / "catalog.example.yaml"
GOOD = {
    "person": "bob",
    "schedule": "payments-primary",
    "start": "2099-01-01T00:00:00Z",
    "end": "2099-01-02T00:00:00Z",
}


class _Sent:
    """Stands in for the Faust app: every send is acknowledged at once, and kept."""

    def __init__(self) -> None:
        self.records: list[tuple[bytes, bytes | None]] = []

    async def send(self, _topic: str, *, key: bytes, value: bytes | None, **_: Any) -> Any:
        self.records.append((key, value))
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done


def _pipeline() -> Any:
    catalog = load_catalog(CATALOG)
    p = SimpleNamespace(
        settings=Settings(api_token=SecretStr(TOKEN)), catalog=catalog, app=_Sent(),
        catalog_version=None, catalog_digest="", directory=None,
    )  # fmt: skip
    p.catalogs = LiveCatalog(catalog, on_change=lambda f: setattr(p, "catalog", f.catalog))
    return p


async def _ask(method: str, path: str, body: Any = None) -> tuple[int, Any, Any]:
    p = _pipeline()
    async with TestClient(TestServer(Api(p).app())) as client:
        data = None if body is None else json.dumps(body)
        reply = await client.request(method, path, data=data, headers=AUTH)
        text = await reply.text()
        parsed = json.loads(text) if reply.content_type == "application/json" else text
        return reply.status, parsed, p


@pytest.mark.parametrize(
    ("body", "said"),
    [
        ({**GOOD, "commment": "typo"}, "commment: unknown field"),
        ({**GOOD, "id": "ovr-mine"}, "id: unknown field"),
        ({**GOOD, "start": "2099-01-01T00:00:00"}, "start: timestamp .* has no UTC offset"),
        ({**GOOD, "end": "9999-12-31T23:59:59Z"}, "end: timestamp .* out of range"),
        ({**GOOD, "end": GOOD["start"]}, "end: must be after start"),
        ({**GOOD, "person": "<b>x</b>"}, "person: unknown person"),
    ],
    ids=["typo-field", "id-field", "naive", "far-future", "empty-span", "markup"],
)
async def test_a_bad_override_is_a_400_naming_the_field_and_writes_nothing(
    body: dict[str, Any], said: str
) -> None:
    status, answer, p = await _ask("POST", "/api/overrides", body)
    assert status == 400, answer
    assert answer["error"].startswith(said.split(":")[0] + ":"), answer
    assert re.search(said, answer["error"]), answer
    assert p.app.records == []


@pytest.mark.parametrize(
    ("path", "said"),
    [
        ("/api/oncall?service=checkout&service=search", "service: given 2 times"),
        ("/api/oncall?schedule=payments-primary&at=2099-01-01T00:00:00Z&at=garbage", "at: given"),
        ("/api/overrides?schedule=a&schedule=b", "schedule: given 2 times"),
        ("/api/schedules/payments-primary.ics?weeks=1&weeks=99", "weeks: given 2 times"),
        ("/api/schedules/payments-primary.ics?weeks=%D9%A3", "weeks: must be"),
        ("/api/schedules/payments-primary.ics?weeks=1_0", "weeks: must be"),
        ("/api/schedules/payments-primary.ics?weeks=%203", "weeks: must be"),
        ("/api/people/alice.ics?weeks=" + "9" * 5000, "weeks: must be between 1 and 52"),
        ("/api/people/alice.ics?weeks=1000000000", "weeks: must be between 1 and 52"),
    ],
    ids=[
        "service-twice",
        "at-twice",
        "listing-twice",
        "weeks-twice",
        "arabic-digit",
        "underscore",
        "space",
        "5000-digits",
        "1e9",
    ],
)
async def test_a_bad_query_is_a_400_naming_the_parameter(path: str, said: str) -> None:
    status, answer, _ = await _ask("GET", path)
    assert status == 400, (path, answer)
    assert answer["error"].startswith(said), answer


async def test_a_good_override_is_written_and_listed() -> None:
    status, answer, p = await _ask("POST", "/api/overrides", {**GOOD, "comment": "<b>&</b>"})
    assert status == 201, answer
    assert answer["comment"] == "<b>&</b>" and [k for k, _ in p.app.records] == [
        f"override/{answer['id']}".encode()
    ]


@pytest.mark.parametrize(
    ("name", "disposition"),
    [
        ("payments", "inline; filename=\"payments.ics\"; filename*=UTF-8''payments.ics"),
        ('a"b', "inline; filename=\"a_b.ics\"; filename*=UTF-8''a%22b.ics"),
        ("../etc/x", "inline; filename=\".._etc_x.ics\"; filename*=UTF-8''..%2Fetc%2Fx.ics"),
        ("a\\b;c", "inline; filename=\"a_b_c.ics\"; filename*=UTF-8''a%5Cb%3Bc.ics"),
        ("équipe", "inline; filename=\"_quipe.ics\"; filename*=UTF-8''%C3%A9quipe.ics"),
    ],
    ids=["plain", "quote", "traversal", "backslash-semicolon", "non-ascii"],
)
async def test_a_feed_names_its_file_safely_whatever_the_schedule_or_person_is_called(
    name: str, disposition: str
) -> None:
    p = _pipeline()
    p.catalog = Catalog.model_validate({
        "people": {name: {"name": f"{name} <i>", "contacts": [{"channel": "console"}]}},
        "schedules": {name: {"time_zone": "UTC", "layers": [{
            "participants": [name], "rotation": "daily", "start": "2026-01-01",
            "handoff": "09:00"}]}},
    })  # fmt: skip
    async with TestClient(TestServer(Api(p).app())) as client:
        for kind in ("schedules", "people"):
            reply = await client.get(f"/api/{kind}/{quote(name, safe='')}.ics")
            assert reply.status == 200 and reply.content_type == "text/calendar"
            assert reply.headers["Content-Disposition"] == disposition


HOURLY = {
    "people": {p: {"contacts": [{"channel": "console"}]} for p in ("ann", "ben")},
    "schedules": {"hourly": {"time_zone": "UTC", "layers": [{
        "participants": ["ann", "ben"], "rotation": "hourly", "start": "2026-01-01",
        "handoff": "00:00"}]}},
}  # fmt: skip


@pytest.mark.parametrize("path", ["/api/schedules/hourly.ics", "/api/people/ann.ics"])
async def test_a_feed_is_built_off_the_event_loop_and_holds_at_most_max_feed_events(
    monkeypatch: pytest.MonkeyPatch, path: str
) -> None:
    # An hourly rotation over 52 weeks is 9,000 events: 3 s of work that held the worker's
    # event loop (its agents, its pages) for as long.
    threads: list[int] = []
    built = oncall_api.calendar

    def calendar(*args: Any) -> bytes:
        threads.append(threading.get_ident())
        return built(*args)

    monkeypatch.setattr(oncall_api, "calendar", calendar)
    monkeypatch.setattr(oncall_api, "MAX_FEED_EVENTS", 30)
    p = _pipeline()
    p.catalog = Catalog.model_validate(HOURLY)
    async with TestClient(TestServer(Api(p).app())) as client:
        reply = await client.get(path + "?weeks=52")
        assert reply.status == 200, await reply.text()
        events = icalendar.Calendar.from_ical(await reply.read()).walk("VEVENT")
    assert threads and threading.get_ident() not in threads
    assert len(events) == 30  # the earliest: a calendar client still shows what comes next
    starts = [e.decoded("DTSTART") for e in events]
    assert starts == sorted(starts)


async def test_a_retry_with_the_same_key_and_content_in_another_layout_is_the_same_override() -> (
    None
):
    # A client that serialises the body again on retry (another key order, other spacing) sent
    # other bytes: a second override for the same shift.
    p = _pipeline()
    first = json.dumps(GOOD).encode()
    again = json.dumps(dict(reversed(GOOD.items())), indent=2).encode()
    headers = {**AUTH, "Idempotency-Key": "cover-ann", "Content-Type": "application/json"}
    async with TestClient(TestServer(Api(p).app())) as client:
        ids = []
        for body in (first, again):
            reply = await client.post("/api/overrides", data=body, headers=headers)
            assert reply.status == 201, await reply.text()
            ids.append((await reply.json())["id"])
        other = await client.post(
            "/api/overrides", data=json.dumps({**GOOD, "person": "alice"}), headers=headers
        )
        assert other.status == 201
        assert (await other.json())["id"] != ids[0]
    assert ids[0] == ids[1]
    assert len({key for key, _ in p.app.records}) == 2


@pytest.mark.parametrize(
    ("schedules", "said"),
    [
        (0, "schedule: unknown schedule 'nope' (the catalog has no schedules)"),
        (300, "schedule: unknown schedule 'nope' (one of s000, s001, s002, s003, s004, s005, "
              "s006, s007, s008, s009, and 290 more)"),
    ],
    ids=["none", "hundreds"],
)  # fmt: skip
async def test_an_unknown_schedule_is_named_with_a_short_list_of_the_known_ones(
    schedules: int, said: str
) -> None:
    layer = {
        "participants": ["ann"],
        "rotation": "daily",
        "start": "2026-01-01",
        "handoff": "09:00",
    }
    p = _pipeline()
    p.catalog = Catalog.model_validate({
        "people": {"ann": {"contacts": [{"channel": "console"}]}},
        "schedules": {f"s{i:03d}": {"time_zone": "UTC", "layers": [layer]}
                      for i in range(schedules)},
    })  # fmt: skip
    async with TestClient(TestServer(Api(p).app())) as client:
        reply = await client.post(
            "/api/overrides", data=json.dumps({**GOOD, "schedule": "nope"}), headers=AUTH
        )
        assert reply.status == 400
        assert (await reply.json())["error"] == said
