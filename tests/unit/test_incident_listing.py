"""``GET /api/incidents`` pages through the incidents newest first (PagerDuty's limit, offset
and more), filters on status, service and the time opened, and refuses bad parameters with a
4xx naming the parameter."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta, timezone
from types import SimpleNamespace
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from schemas import Incident, IncidentStatus
from streams.http.incidents import instant_key
from streams.http.server import Api
from streams.settings import Settings
from streams.tools import all_incidents, incidents

BASE = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def stored(n: int, at: datetime, status: str = "triggered", service: str = "api") -> Any:
    incident = Incident(
        id=f"inc-{n}", routing_key=service, service=service, title=f"incident {n}",
        status=IncidentStatus(status), severity="SEV2", impact_started_at=at, detected_at=at,
        opened_at=at, resolved_at=at + timedelta(minutes=5) if status == "resolved" else None,
    )  # fmt: skip
    return incident.model_dump(mode="json")


class Rows(dict[str, Any]):
    """The ``incidents`` table as the API reads it: every row, and in ``recent`` those held in
    memory (here the open ones)."""

    def __init__(self, rows: list[Any]) -> None:
        super().__init__((r["id"], r) for r in rows)
        self.recent = {k: v for k, v in self.items() if v["status"] != "resolved"}


def api(rows: list[Any]) -> Api:
    tables = SimpleNamespace(incidents=Rows(rows), timelines={})
    pipeline: Any = SimpleNamespace(settings=Settings(), tables=tables, ready=True, detect=None)
    return Api(pipeline)


async def listing(rows: list[Any], query: str) -> tuple[int, Any]:
    async with TestClient(TestServer(api(rows).app())) as client:
        response = await client.get("/api/incidents" + query)
        return response.status, await response.json()


def ids(body: Any) -> list[str]:
    return [i["id"] for i in body["incidents"]]


async def test_pages_run_newest_first_and_say_whether_more_follow() -> None:
    rows = [stored(n, BASE + timedelta(minutes=n)) for n in range(7)]
    status, first = await listing(rows, "?limit=3")
    assert status == 200
    assert ids(first) == ["inc-6", "inc-5", "inc-4"]
    assert (first["total"], first["limit"], first["offset"], first["more"]) == (7, 3, 0, True)
    _, last = await listing(rows, "?limit=3&offset=6")
    assert ids(last) == ["inc-0"] and last["more"] is False
    _, beyond = await listing(rows, "?offset=50")
    assert ids(beyond) == [] and beyond["total"] == 7 and beyond["more"] is False
    _, whole = await listing(rows, "")
    assert ids(whole) == [f"inc-{n}" for n in reversed(range(7))] and whole["limit"] == 100


async def test_a_whole_second_sorts_before_the_fractions_within_it() -> None:
    # Stored as "...:00Z" and "...:00.500000Z": as strings the first would sort last.
    rows = [stored(1, BASE), stored(2, BASE + timedelta(milliseconds=500))]
    assert rows[0]["opened_at"].endswith(":00Z")
    _, body = await listing(rows, "")
    assert ids(body) == ["inc-2", "inc-1"]
    assert instant_key("2026-12-01T12:00:00Z") < instant_key("2026-12-01T12:00:00.500000Z")


async def test_filters_combine_with_paging() -> None:
    rows = [
        stored(0, BASE, "resolved"),
        stored(1, BASE + timedelta(hours=1), "acknowledged"),
        stored(2, BASE + timedelta(hours=2), "triggered", service="db"),
        stored(3, BASE + timedelta(hours=3), "mitigated"),
        stored(4, BASE + timedelta(hours=4), "triggered"),
    ]
    _, open_ = await listing(rows, "?status=open&limit=2")
    assert ids(open_) == ["inc-4", "inc-3"] and open_["total"] == 4 and open_["more"] is True
    _, api_only = await listing(rows, "?service=api&status=triggered")
    assert ids(api_only) == ["inc-4"]
    # ``since`` is inclusive, ``until`` exclusive; RFC 3339 in any offset, or epoch seconds.
    since = (BASE + timedelta(hours=1)).astimezone(timezone(timedelta(hours=2))).isoformat()
    until = (BASE + timedelta(hours=3)).timestamp()
    _, window = await listing(rows, f"?since={since.replace('+', '%2B')}&until={until}")
    assert ids(window) == ["inc-2", "inc-1"] and window["total"] == 2


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("?limit=0", "limit must be between 1 and 1000, not 0"),
        ("?limit=1001", "limit must be between 1 and 1000, not 1001"),
        ("?limit=ten", "limit must be an integer"),
        ("?offset=-1", "offset must be 0 or more, not -1"),
        ("?status=closed", "status must be one of open, triggered, acknowledged, mitigated, "
         "resolved, not 'closed'"),
        ("?since=yesterday", "since: timestamp 'yesterday' is not RFC 3339"),
        ("?until=2026-12-01T12:00:00", "until: timestamp '2026-12-01T12:00:00' has no UTC offset"),
        ("?since=1e400", "since: timestamp must be a finite number of epoch seconds"),
    ],
)  # fmt: skip
async def test_bad_parameters_get_400_naming_them(query: str, message: str) -> None:
    status, body = await listing([stored(0, BASE)], query)
    assert status == 400
    assert body["error"].startswith(message)


async def test_the_command_line_reads_every_page_and_points_to_the_next(
    capsys: pytest.CaptureFixture[str],
) -> None:
    rows = [stored(n, BASE + timedelta(seconds=n)) for n in range(2500)]
    async with TestClient(TestServer(api(rows).app())) as client:
        url = str(client.make_url("")).rstrip("/")
        every = await asyncio.to_thread(all_incidents, url)
        assert [i["id"] for i in every] == [f"inc-{n}" for n in reversed(range(2500))]
        assert await asyncio.to_thread(incidents, url, None, None, 2, 4) == 0
    out, err = capsys.readouterr()
    assert [line.split()[0] for line in out.splitlines()] == ["ID", "inc-2495", "inc-2494"]
    assert err.strip() == "6 of 2500 shown; the next page: --offset 6"


@pytest.mark.parametrize(
    "command", [["incidents"], ["review", "inc-1"]], ids=["incidents", "review"]
)
def test_the_reading_commands_take_the_api_from_warroom_api_url(
    command: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # As ack, note and the other acting commands do; these two went to 127.0.0.1:8080 whatever
    # the variable said.
    from streams.cli import main

    monkeypatch.setenv("WARROOM_API_URL", "http://127.0.0.1:9")
    assert main(command) != 0
    err = capsys.readouterr().err
    assert "http://127.0.0.1:9" in err and "8080" not in err, err
