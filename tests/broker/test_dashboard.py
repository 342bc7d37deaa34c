"""The dashboard in headless Chromium: it loads, an incident opened during the test appears
without a reload, its runbook progress and tasks follow the task states live, and silences come
and go in their panel (with a "muted" badge on the incident they hold) live and after a lost
connection; screenshots are saved under ``test-artifacts/``."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

import pytest
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import WebDriverWait

from tests.broker.chromium import ARTIFACTS, chromium, until
from tests.harness import Api, RunningWorker, WebhookServer, eventually, produce

P = ParamSpec("P")
T = TypeVar("T")

pytestmark = pytest.mark.broker


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[webdriver.Chrome]:
    with chromium(tmp_path / "chromium") as driver:
        yield driver


def stable(read: Callable[P, T]) -> Callable[P, T]:
    """``read`` done again at once when a live update re-rendered an element it was reading
    (the page re-renders its lists whole, so the next try finds the new elements)."""

    def again(*args: P.args, **kwargs: P.kwargs) -> T:
        for _ in range(49):
            try:
                return read(*args, **kwargs)
            except StaleElementReferenceException:
                continue
        return read(*args, **kwargs)

    return again


def text_of(browser: webdriver.Chrome, element_id: str) -> tuple[bool, str]:
    """Whether the element is displayed, and its text, read together."""
    element = browser.find_element(By.ID, element_id)
    return element.is_displayed(), str(element.text)


async def test_dashboard_shows_a_new_incident_live(
    start_worker: Callable[..., RunningWorker], browser: webdriver.Chrome
) -> None:
    worker = start_worker()
    browser.get(worker.base_url + "/")
    wait = WebDriverWait(browser, 30, poll_frequency=0.1)
    wait.until(lambda d: d.find_element(By.ID, "conn").text.strip() == "live")
    assert "No open incidents" in browser.find_element(By.ID, "no-incidents").text
    browser.execute_script("window.__loadedOnce = 'yes';")

    now = time.time()
    detection = {
        "id": "det-dash-1", "ts": now - 5, "service": "payments-api", "signal": "latency_ms",
        "detector": "surprise", "score": 0.99, "severity": "critical",
        "impact_started_at": now - 65,
    }  # fmt: skip
    await produce(
        worker.bootstrap,
        worker.topics.detections,
        [(b"payments-api", json.dumps(detection).encode())],
    )
    wait.until(lambda d: d.find_element(By.CSS_SELECTOR, "tr[data-incident]"))

    @stable
    def row_and_since(d: webdriver.Chrome) -> tuple[str, str]:
        row = d.find_element(By.CSS_SELECTOR, "tr[data-incident]")
        return str(row.text), str(row.find_element(By.CSS_SELECTOR, "td.since").text)

    row_text, since = row_and_since(browser)
    assert "payments-api" in row_text and "SEV2" in row_text  # critical, unlisted tier-3 service
    # Impact started about a minute ago, and the page says so.
    assert since.startswith("1m")
    wait.until(lambda d: "opened" in d.find_element(By.ID, "events").text)
    # Not reloaded: the marker set before the incident opened is still there.
    assert browser.execute_script("return window.__loadedOnce") == "yes"
    ARTIFACTS.mkdir(exist_ok=True)
    assert browser.save_screenshot(str(ARTIFACTS / "dashboard.png"))
    browser.set_window_size(390, 844)  # a phone
    assert browser.save_screenshot(str(ARTIFACTS / "dashboard-phone.png"))
    width = browser.execute_script("return document.documentElement.scrollWidth")
    assert width <= 400, f"the page scrolls sideways on a phone ({width}px)"


def runbook_catalog(hook_url: str) -> dict[str, Any]:
    """A runbook of five tasks: three manual, and two automated in ``diagnose`` (which begins
    on acknowledgement), one calling the webhook server and one a path it answers with 404."""
    missing = hook_url.rsplit("/", 1)[0] + "/missing"
    return {
        "services": {"checkout": {"team": "payments", "tier": 1}},
        "teams": {"payments": {"members": ["alice"], "escalation": [{"targets": ["alice"]}]}},
        "people": {"alice": {"contacts": [{"channel": "console"}]}},
        "runbooks": {
            "checkout": {
                "title": "Checkout degraded",
                "applies_to": {"services": ["checkout"]},
                "phases": {
                    "mobilize": [
                        {"id": "open-channel", "title": "Open the incident channel",
                         "owner_role": "communications"},
                    ],
                    "diagnose": [
                        {"id": "collect-traces", "title": "Collect the slowest traces",
                         "kind": "automated", "webhook": {"url": hook_url, "timeout_s": 5}},
                        {"id": "snapshot-dashboards", "title": "Snapshot the dashboards",
                         "kind": "automated", "webhook": {"url": missing, "timeout_s": 5}},
                    ],
                    "mitigate": [
                        {"id": "roll-back", "title": "Roll back the last deploy",
                         "owner_role": "commander"},
                    ],
                    "resolve": [
                        {"id": "write-review", "title": "Draft the review", "owner_role": "scribe"},
                    ],
                },
            }
        },
    }  # fmt: skip


def progress_of(browser: webdriver.Chrome, incident_id: str) -> str:
    row = browser.find_element(By.CSS_SELECTOR, f'tr[data-incident="{incident_id}"]')
    return str(row.find_element(By.CSS_SELECTOR, "button[data-toggle] .progress").text)


def tasks_shown(browser: webdriver.Chrome, incident_id: str) -> dict[str, tuple[str, str]]:
    """``<phase>/<task>`` -> (state, text) for every task in the incident's expanded detail."""
    detail = browser.find_element(By.ID, f"tasks-{incident_id}")
    return {
        str(li.get_attribute("data-task")): (str(li.get_attribute("data-state")), str(li.text))
        for li in detail.find_elements(By.CSS_SELECTOR, "li[data-task]")
    }


def acted(action: Callable[[], None]) -> bool:
    """Do ``action`` on an element (within ``until``, which tries again if it went stale)."""
    action()
    return True


async def test_runbook_progress_follows_the_tasks_live(
    start_worker: Callable[..., RunningWorker],
    browser: webdriver.Chrome,
    webhook_server: WebhookServer,
) -> None:
    worker = start_worker(runbook_catalog(webhook_server.url))
    api = Api(worker)
    browser.get(worker.base_url + "/")
    await until(browser, lambda d: d.find_element(By.ID, "conn").text.strip() == "live", "live")
    browser.execute_script("window.__loadedOnce = 'yes';")

    detection = {
        "id": "det-dash-rb", "ts": time.time() - 5, "service": "checkout",
        "signal": "latency_ms", "detector": "median_mad", "score": 0.999, "severity": "critical",
    }  # fmt: skip
    await produce(
        worker.bootstrap, worker.topics.detections, [(b"checkout", json.dumps(detection).encode())]
    )

    # Read inside the poll: live updates re-render the row, so a found element can go stale.
    def incident_of_row(d: webdriver.Chrome) -> str | None:
        return d.find_element(By.CSS_SELECTOR, "tr[data-incident]").get_attribute("data-incident")

    incident_id = str(await until(browser, incident_of_row, "the incident row"))
    # The runbook is attached right after opening: five tasks, none done.
    await until(
        browser, lambda d: progress_of(d, incident_id) == "Runbook 0/5 done", "0/5 done on the row"
    )
    toggle = f'button[data-toggle="{incident_id}"]'

    def collapsed(d: webdriver.Chrome) -> tuple[str | None, str | None, bool]:
        button = d.find_element(By.CSS_SELECTOR, toggle)
        shown = d.find_element(By.ID, f"tasks-{incident_id}").is_displayed()
        return button.get_attribute("aria-expanded"), button.get_attribute("aria-controls"), shown

    assert await until(browser, collapsed, "the toggle") == ("false", f"tasks-{incident_id}", False)
    await until(browser, lambda d: acted(d.find_element(By.CSS_SELECTOR, toggle).click), "click")

    # Expanded: the tasks phase by phase, in lifecycle order, each with its state in words.
    def all_five(d: webdriver.Chrome) -> dict[str, tuple[str, str]] | None:
        shown = tasks_shown(d, incident_id)
        return shown if len(shown) == 5 else None

    shown = await until(browser, all_five, "the five tasks in the detail")
    assert list(shown) == [
        "mobilize/open-channel",
        "diagnose/collect-traces",
        "diagnose/snapshot-dashboards",
        "mitigate/roll-back",
        "resolve/write-review",
    ]
    assert {state for state, _ in shown.values()} == {"pending"}
    assert "pending" in shown["mitigate/roll-back"][1]
    assert "Roll back the last deploy" in shown["mitigate/roll-back"][1]
    assert "commander" in shown["mitigate/roll-back"][1]
    assert "automated" in shown["diagnose/collect-traces"][1]

    def phases_and_text(d: webdriver.Chrome) -> tuple[list[str | None], str]:
        phases = d.find_elements(By.CSS_SELECTOR, f"#tasks-{incident_id} [data-phase]")
        names = [p.get_attribute("data-phase") for p in phases]
        return names, str(d.find_element(By.ID, f"tasks-{incident_id}").text)

    phases, detail_text = await until(browser, phases_and_text, "the detail's phases")
    assert phases == ["mobilize", "diagnose", "mitigate", "resolve"]
    assert "Checkout degraded" in detail_text
    expanded = await until(
        browser, lambda d: d.find_element(By.CSS_SELECTOR, toggle).get_attribute("aria-expanded"),
        "the toggle's state",
    )  # fmt: skip
    assert expanded == "true"

    # The same board from the API.
    code, board = await api.get(f"/api/incidents/{incident_id}/tasks")
    assert code == 200 and board["runbook"] == "checkout", board
    assert board["progress"] == {"total": 5, "done": 0, "failed": 0, "pending": 5}
    assert (await api.get("/api/incidents/inc-nope/tasks"))[0] == 404

    # A manual task done through the API: the row and the detail change without a reload, and
    # the toggle keeps the keyboard focus across the re-render.
    path = f"/api/incidents/{incident_id}"
    code, body = await api.post(f"{path}/tasks/open-channel", {"text": "#inc-42"}, actor="bob")
    assert code == 202, body
    await until(browser, lambda d: progress_of(d, incident_id) == "Runbook 1/5 done", "1/5 done")
    state, text = (await until(
        browser, lambda d: tasks_shown(d, incident_id)["mobilize/open-channel"], "the task"
    ))  # fmt: skip
    assert state == "done" and "done" in text and "by bob: #inc-42" in text, text
    focused = browser.execute_script("return document.activeElement.dataset.toggle")
    assert focused == incident_id

    # Acknowledged: diagnose begins and its automated tasks run, one done and one failed.
    assert (await api.post(f"{path}/acknowledge", actor="alice"))[0] == 202
    await until(
        browser,
        lambda d: progress_of(d, incident_id) == "Runbook 2/5 done, 1 failed",
        "2/5 done, 1 failed",
    )

    def with_results(d: webdriver.Chrome) -> dict[str, tuple[str, str]] | None:
        shown = tasks_shown(d, incident_id)
        traces, snapshot = shown["diagnose/collect-traces"], shown["diagnose/snapshot-dashboards"]
        return shown if "HTTP 200: ok" in traces[1] and "HTTP 404" in snapshot[1] else None

    shown = await until(browser, with_results, "the automated results in the detail")
    assert shown["diagnose/collect-traces"][0] == "done"
    assert shown["diagnose/snapshot-dashboards"][0] == "failed"
    assert "failed" in shown["diagnose/snapshot-dashboards"][1]
    assert "by automation" in shown["diagnose/snapshot-dashboards"][1]
    assert shown["mitigate/roll-back"][0] == "pending"
    assert len(webhook_server.requests) == 1  # /hook; the 404 path records nothing
    announced = browser.find_element(By.ID, "announce")
    assert announced.get_attribute("aria-live") == "polite"
    assert incident_id in str(announced.get_attribute("textContent"))
    assert "task failed: snapshot-dashboards" in browser.find_element(By.ID, "events").text
    assert browser.execute_script("return window.__loadedOnce") == "yes"

    ARTIFACTS.mkdir(exist_ok=True)
    assert browser.save_screenshot(str(ARTIFACTS / "dashboard-runbook.png"))
    browser.set_window_size(390, 844)  # a phone, with the tasks expanded
    assert browser.save_screenshot(str(ARTIFACTS / "dashboard-runbook-phone.png"))
    width = browser.execute_script("return document.documentElement.scrollWidth")
    assert width <= 400, f"the page scrolls sideways on a phone ({width}px)"
    inner, outer = browser.execute_script(
        "const s = document.getElementById('incidents').closest('section');"
        "return [s.scrollWidth, s.clientWidth];"
    )
    assert inner <= outer, f"the incidents panel scrolls sideways on a phone ({inner} > {outer})"

    # The keyboard collapses it again.
    await until(
        browser,
        lambda d: acted(lambda: d.find_element(By.CSS_SELECTOR, toggle).send_keys(Keys.ENTER)),
        "the key pressed",
    )
    await until(
        browser,
        lambda d: not d.find_element(By.ID, f"tasks-{incident_id}").is_displayed(),
        "the detail closed",
    )
    collapsed_again = await until(
        browser,
        lambda d: d.find_element(By.CSS_SELECTOR, toggle).get_attribute("aria-expanded"),
        "the toggle's state",
    )
    assert collapsed_again == "false"


async def test_after_a_lost_connection_the_dashboard_catches_up(
    start_worker: Callable[..., RunningWorker], browser: webdriver.Chrome
) -> None:
    worker = start_worker()
    api = Api(worker)
    browser.get(worker.base_url + "/")
    await until(browser, lambda d: d.find_element(By.ID, "conn").text.strip() == "live", "live")
    browser.execute_script("window.__loadedOnce = 'yes';")

    def detection(service: str) -> tuple[bytes, bytes]:
        body = {
            "id": f"det-{service}", "ts": time.time() - 5, "service": service,
            "signal": "latency_ms", "detector": "surprise", "score": 0.99, "severity": "critical",
        }  # fmt: skip
        return service.encode(), json.dumps(body).encode()

    @stable
    def rows(d: webdriver.Chrome) -> dict[str, str]:
        return {
            str(tr.get_attribute("data-incident")): str(tr.text)
            for tr in d.find_elements(By.CSS_SELECTOR, "tr[data-incident]")
        }

    await produce(worker.bootstrap, worker.topics.detections, [detection("payments-api")])
    [first] = await until(browser, rows, "the first incident row")

    # The stream drops (the worker stops) and the browser stays offline while the worker,
    # back up, resolves the first incident and opens a second: none of it reaches the page live.
    status, incident = await api.get(f"/api/incidents/{first}")
    assert status == 200
    browser.execute_cdp_cmd("Network.enable", {})
    offline = {"offline": True, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1}
    browser.execute_cdp_cmd("Network.emulateNetworkConditions", offline)
    worker.stop()
    await until(
        browser, lambda d: d.find_element(By.ID, "conn").text.strip() == "reconnecting", "offline"
    )
    resolve = {
        "id": "cmd-dash-resolve", "kind": "resolve", "incident_id": first,
        "routing_key": incident["routing_key"], "actor": "alice", "issued_at": time.time(),
    }  # fmt: skip
    key = incident["routing_key"].encode()
    await produce(worker.bootstrap, worker.topics.commands, [(key, json.dumps(resolve).encode())])
    await produce(worker.bootstrap, worker.topics.detections, [detection("search-api")])
    worker.start()

    async def second_open() -> str | None:
        status, body = await api.get("/api/incidents?status=open")
        assert status == 200
        ids = [i["id"] for i in body["incidents"]]
        return ids[0] if ids and first not in ids else None

    second = await eventually(second_open, 60, "the first resolved and the second open")
    shown = rows(browser)
    assert first in shown and second not in shown  # nothing arrived while offline

    online = {**offline, "offline": False}
    browser.execute_cdp_cmd("Network.emulateNetworkConditions", online)
    await until(browser, lambda d: list(rows(d)) == [second], "the dashboard to catch up")
    assert "search-api" in rows(browser)[second]
    assert browser.find_element(By.ID, "conn").text.strip() == "live"
    assert browser.execute_script("return window.__loadedOnce") == "yes"  # not reloaded


@stable
def silences_shown(browser: webdriver.Chrome) -> dict[str, tuple[str, str]]:
    """Silence id -> (state, text) for every entry of the Silences panel."""
    return {
        str(li.get_attribute("data-silence")): (str(li.get_attribute("data-state")), str(li.text))
        for li in browser.find_elements(By.CSS_SELECTOR, "#silences li[data-silence]")
    }


@stable
def muted_badges(browser: webdriver.Chrome) -> dict[str, str]:
    """Incident id -> the text of its "muted" badge, for every muted row."""
    return {
        str(tr.get_attribute("data-incident")): str(tr.find_element(By.CSS_SELECTOR, ".muted").text)
        for tr in browser.find_elements(By.CSS_SELECTOR, "tr[data-incident]")
        if tr.find_elements(By.CSS_SELECTOR, ".muted")
    }


async def test_silences_show_live_and_mute_their_incident(
    start_worker: Callable[..., RunningWorker], browser: webdriver.Chrome
) -> None:
    worker = start_worker()
    api = Api(worker)
    # The page reads silences as it reads incidents: without a token.
    code, listed = await api.get("/api/silences")
    assert code == 200 and listed == {"silences": []}
    browser.get(worker.base_url + "/")
    await until(browser, lambda d: d.find_element(By.ID, "conn").text.strip() == "live", "live")
    assert stable(text_of)(browser, "no-silences") == (True, "No active or pending silences.")
    browser.execute_script("window.__loadedOnce = 'yes';")

    # A silence made through the API appears without a reload: matchers, end, creator, comment.
    code, reindex = await api.post(
        "/api/silences",
        {"matchers": {"service": "batch-jobs"}, "duration_s": 3600, "comment": "nightly reindex"},
        actor="ann",
    )  # fmt: skip
    assert code == 201, reindex
    shown = await until(
        browser, lambda d: silences_shown(d).get(reindex["id"]), "the new silence in the panel"
    )
    assert shown[0] == "active"
    assert 'service="batch-jobs"' in shown[1] and "until " in shown[1] and "left" in shown[1]
    assert "by ann: nightly reindex" in shown[1] and "maintenance" not in shown[1]
    assert not stable(text_of)(browser, "no-silences")[0]
    assert stable(text_of)(browser, "silence-count")[1] == "(1)"

    # A maintenance window planned for later is listed as pending from the moment it is made.
    later = datetime.now(tz=UTC) + timedelta(hours=2)
    code, window = await api.post(
        "/api/silences",
        {"matchers": [{"name": "service", "value": "db-.*", "regex": True}],
         "starts_at": later.isoformat(), "duration_s": 7200, "maintenance": True,
         "comment": "database upgrade"},
        actor="dba",
    )  # fmt: skip
    assert code == 201 and window["state"] == "pending", window
    shown = await until(
        browser, lambda d: silences_shown(d).get(window["id"]), "the maintenance window"
    )
    assert shown[0] == "pending"
    assert "maintenance" in shown[1] and 'service=~"db-.*"' in shown[1] and "from " in shown[1]
    assert "by dba: database upgrade" in shown[1]
    assert list(silences_shown(browser)) == [reindex["id"], window["id"]]  # active first

    # Two incidents; a silence "until resolved" for one of them mutes that one only.
    def detection(service: str) -> tuple[bytes, bytes]:
        body = {
            "id": f"det-mute-{service}", "ts": time.time() - 5, "service": service,
            "signal": "latency_ms", "detector": "surprise", "score": 0.99, "severity": "critical",
        }  # fmt: skip
        return service.encode(), json.dumps(body).encode()

    await produce(
        worker.bootstrap, worker.topics.detections, [detection("checkout"), detection("search")]
    )

    async def opened() -> dict[str, str] | None:
        _, body = await api.get("/api/incidents?status=open")
        found = {i["service"]: i["id"] for i in body["incidents"]}
        return found if len(found) == 2 else None

    incidents = await eventually(opened, 30, "two open incidents")
    await until(
        browser,
        lambda d: len(d.find_elements(By.CSS_SELECTOR, "tr[data-incident]")) == 2,
        "both incident rows",
    )
    assert muted_badges(browser) == {}
    code, hold = await api.post(
        "/api/silences",
        {"matchers": {"service": "checkout"}, "until_resolved": incidents["checkout"],
         "comment": "fix is deploying"},
        actor="bob",
    )  # fmt: skip
    assert code == 201, hold
    badges = await until(browser, muted_badges, "the muted badge")
    assert list(badges) == [incidents["checkout"]] and badges[incidents["checkout"]] == "muted"
    shown = silences_shown(browser)[hold["id"]]
    assert shown[0] == "active"
    assert f"until {incidents['checkout']} is resolved" in shown[1]
    assert "checkout: latency_ms" in shown[1]  # the incident's title beside its id

    ARTIFACTS.mkdir(exist_ok=True)
    assert browser.save_screenshot(str(ARTIFACTS / "dashboard-silences.png"))
    browser.set_window_size(390, 844)  # a phone
    assert browser.save_screenshot(str(ARTIFACTS / "dashboard-silences-phone.png"))
    width = browser.execute_script("return document.documentElement.scrollWidth")
    assert width <= 400, f"the page scrolls sideways on a phone ({width}px)"
    for panel in ("incidents", "silences"):
        inner, outer = browser.execute_script(
            f"const s = document.getElementById('{panel}').closest('section');"
            "return [s.scrollWidth, s.clientWidth];"
        )
        assert inner <= outer, f"the {panel} panel scrolls sideways on a phone ({inner} > {outer})"
    browser.set_window_size(1280, 900)

    # Expired early through the API: the badge and the silence go, live; the others stay.
    code, expired = await api.delete(f"/api/silences/{hold['id']}")
    assert code == 200 and expired["state"] == "expired"
    await until(browser, lambda d: hold["id"] not in silences_shown(d), "the silence gone")
    assert muted_badges(browser) == {}
    assert len(browser.find_elements(By.CSS_SELECTOR, "tr[data-incident]")) == 2
    assert (await api.delete(f"/api/silences/{reindex['id']}"))[0] == 200
    await until(
        browser, lambda d: list(silences_shown(d)) == [window["id"]], "only the window left"
    )
    assert browser.execute_script("return window.__loadedOnce") == "yes"  # not reloaded

    # The stream drops (the worker stops) and the browser stays offline while the worker, back
    # up, expires the window and makes two silences: none of it reaches the page live, and the
    # page catches up when the connection is back.
    browser.execute_cdp_cmd("Network.enable", {})
    offline = {"offline": True, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1}
    browser.execute_cdp_cmd("Network.emulateNetworkConditions", offline)
    worker.stop()
    await until(
        browser, lambda d: d.find_element(By.ID, "conn").text.strip() == "reconnecting", "offline"
    )
    worker.start()

    async def followed() -> bool | None:  # the restarted worker has read silences.v1 again
        _, body = await api.get("/api/silences")
        return True if window["id"] in {s["id"] for s in body["silences"]} else None

    await eventually(followed, 30, "the restarted worker to know the silences")
    assert (await api.delete(f"/api/silences/{window['id']}"))[0] == 200
    code, canary = await api.post(
        "/api/silences",
        {"matchers": {"service": "search"}, "duration_s": 600, "comment": "canary"},
        actor="cy",
    )  # fmt: skip
    assert code == 201, canary
    code, muting = await api.post(
        "/api/silences",
        {"matchers": {"service": "search"}, "until_resolved": incidents["search"],
         "comment": "known"},
        actor="cy",
    )  # fmt: skip
    assert code == 201, muting
    code, listed = await api.get("/api/silences?state=active&state=pending")
    assert code == 200
    assert sorted(s["id"] for s in listed["silences"]) == sorted([canary["id"], muting["id"]])
    assert list(silences_shown(browser)) == [window["id"]]  # nothing arrived while offline

    browser.execute_cdp_cmd("Network.emulateNetworkConditions", {**offline, "offline": False})
    await until(
        browser,
        lambda d: sorted(silences_shown(d)) == sorted([canary["id"], muting["id"]]),
        "the panel to catch up",
    )
    assert (await until(browser, muted_badges, "the badge after catching up")) == {
        incidents["search"]: "muted"
    }
    assert browser.execute_script("return window.__loadedOnce") == "yes"  # not reloaded
