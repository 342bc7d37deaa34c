"""The incident page in headless Chromium, against a real worker and broker: reached from the
dashboard, it shows the incident (header, MTT* so far, timeline, signal chart, runbook), and an
on-call engineer runs the incident from it with the keyboard and the mouse: token, acknowledge,
a task ticked with a note, a commander, a note, a severity, a responder, a silence, resolve.
Each step is on the timeline; hostile text stays text; screenshots go to ``test-artifacts/``."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from selenium import webdriver
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import Select

from tests.broker.chromium import ARTIFACTS, chromium, until
from tests.harness import Api, RunningWorker, eventually, produce

pytestmark = pytest.mark.broker

#: A signal name a producer may send; on the page it must stay text.
HOSTILE_SIGNAL = '<img src=x onerror="window.__xss=1">'
HOSTILE_NOTE = '<b>rolling back</b><img src=x onerror="window.__xss=2"> & <script>x</script>'

CATALOG: dict[str, Any] = {
    "services": {"checkout": {"team": "payments", "tier": 1}},
    "teams": {"payments": {"members": ["alice"], "escalation": [{"targets": ["alice"]}]}},
    "people": {
        "alice": {"contacts": [{"channel": "console"}]},
        "bob": {"contacts": [{"channel": "console"}]},
    },
    "runbooks": {
        "checkout": {
            "title": "Checkout degraded",
            "applies_to": {"services": ["checkout"]},
            "phases": {
                "mobilize": [
                    {"id": "open-channel", "title": "Open the incident channel",
                     "owner_role": "communications"},
                ],
                "mitigate": [
                    {"id": "roll-back", "title": "Roll back the last deploy",
                     "owner_role": "commander"},
                ],
            },
        }
    },
}  # fmt: skip


#: What has the keyboard focus, in a word: its id, its action, its label or its text.
FOCUSED = (
    "const e = document.activeElement;"
    "return e.id || e.dataset.action || e.getAttribute('aria-label') || e.textContent.trim();"
)


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[webdriver.Chrome]:
    with chromium(tmp_path / "chromium") as driver:
        yield driver


def text_of(browser: webdriver.Chrome, css: str) -> str:
    return str(browser.find_element(By.CSS_SELECTOR, css).text).strip()


def message(browser: webdriver.Chrome) -> tuple[str, str]:
    """The outcome line under the actions: (kind, text), kind ``error`` or ``ok``."""
    shown = browser.find_element(By.ID, "message")
    return str(shown.get_attribute("data-kind") or ""), str(shown.text).strip()


def whole_page(browser: webdriver.Chrome, path: Path) -> None:
    """A screenshot of the whole page, beyond the window's height."""
    height = browser.execute_cdp_cmd("Page.getLayoutMetrics", {})["cssContentSize"]["height"]
    width = browser.execute_script("return window.innerWidth")
    clip = {"x": 0, "y": 0, "width": width, "height": height, "scale": 1}
    shot = browser.execute_cdp_cmd(
        "Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True, "clip": clip}
    )
    path.write_bytes(base64.b64decode(shot["data"]))


async def kinds_on(api: Api, incident_id: str) -> list[dict[str, Any]]:
    code, body = await api.get(f"/api/incidents/{incident_id}/timeline")
    assert code == 200, body
    return list(body["events"])


async def on_timeline(
    api: Api, incident_id: str, matches: Callable[[dict[str, Any]], bool], what: str
) -> dict[str, Any]:
    """The first timeline event (read through the API) that ``matches``, waited for."""

    async def probe() -> dict[str, Any] | None:
        return next((e for e in await kinds_on(api, incident_id) if matches(e)), None)

    return await eventually(probe, 30, what)


async def test_an_incident_run_from_its_page(
    start_worker: Callable[..., RunningWorker], browser: webdriver.Chrome
) -> None:
    worker = start_worker(CATALOG)
    api = Api(worker)
    now = time.time()
    # The series the detector saw: about 100 until impact started 125 s ago, about 400 since.
    recent = [
        [t, (100.0 if t < now - 125 else 400.0) + t % 3]
        for t in range(int(now) - 300, int(now) - 5, 10)
    ]
    detection = {
        "id": "det-page-1", "ts": now - 5, "service": "checkout", "signal": HOSTILE_SIGNAL,
        "detector": "median_mad", "score": 0.999, "severity": "critical",
        "impact_started_at": now - 125, "context": {"value": 400.0, "recent": recent},
    }  # fmt: skip
    await produce(
        worker.bootstrap, worker.topics.detections, [(b"checkout", json.dumps(detection).encode())]
    )

    async def opened() -> dict[str, Any] | None:
        _, body = await api.get("/api/incidents")
        found = body["incidents"]
        return found[0] if found and found[0]["tasks"] else None

    incident = await eventually(opened, 30, "the incident with its runbook")
    incident_id, path = incident["id"], f"/api/incidents/{incident['id']}"

    # The page is one HTML, one script and one style sheet, none of them inline (the policy
    # says so), and an unknown incident's page says what the API says.
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{worker.base_url}/incidents/{incident_id}") as response:
            assert response.status == 200 and response.content_type == "text/html"
            policy = response.headers["Content-Security-Policy"]
            assert "script-src 'self'" in policy and "unsafe-inline" not in policy, policy
        for asset, kind in (("incident.js", "text/javascript"), ("incident.css", "text/css")):
            async with session.get(f"{worker.base_url}/static/{asset}") as response:
                assert response.status == 200 and response.content_type == kind, asset
        async with session.get(f"{worker.base_url}/static/../server.py") as response:
            assert response.status == 404
    browser.get(worker.base_url + "/incidents/inc-nope")
    await until(
        browser, lambda d: "incident 'inc-nope' not found" in text_of(d, "#message"), "404 text"
    )

    # From the dashboard, the incident's title links to its page.
    browser.get(worker.base_url + "/")
    link = await until(
        browser,
        lambda d: d.find_element(By.CSS_SELECTOR, f'tr[data-incident="{incident_id}"] a'),
        "the incident's link on the dashboard",
    )
    assert link.get_attribute("href") == f"{worker.base_url}/incidents/{incident_id}"
    link.click()
    await until(browser, lambda d: text_of(d, "#conn") == "live", "the page live")
    assert browser.current_url == f"{worker.base_url}/incidents/{incident_id}"
    browser.execute_script("window.__loadedOnce = 'yes';")

    # The header: the title (hostile signal and all, as text), severity, status, commander,
    # time since impact (about two minutes), and the MTT* so far.
    await until(browser, lambda d: HOSTILE_SIGNAL in text_of(d, "#title"), "the title")
    assert text_of(browser, "#severity") == incident["severity"]
    assert text_of(browser, "#status") == "triggered"
    assert text_of(browser, "#commander") == "none yet"
    assert text_of(browser, "#pages") == "sent"
    assert text_of(browser, "#impact-for").startswith("2m"), text_of(browser, "#impact-for")
    assert text_of(browser, '[data-stage="detect"] dd') not in ("", "-")
    assert "so far" in text_of(browser, '[data-stage="acknowledge"] dd')
    assert "so far" in text_of(browser, '[data-stage="restore"] dd')
    # The timeline, the runbook and the detection's signal chart (the review's).
    await until(
        browser, lambda d: d.find_elements(By.CSS_SELECTOR, '#timeline [data-kind="opened"]'), "t"
    )
    task = '#tasks [data-task="mobilize/open-channel"]'
    await until(browser, lambda d: d.find_element(By.CSS_SELECTOR, task), "the runbook tasks")
    assert browser.find_element(By.CSS_SELECTOR, task).get_attribute("data-state") == "pending"
    assert "Open the incident channel" in text_of(browser, task)
    assert "Checkout degraded" in text_of(browser, "#runbook-title")
    await until(
        browser,
        lambda d: d.execute_script("return document.getElementById('chart-img').naturalWidth"),
        "the signal chart",
    )

    # Live: a note written elsewhere (through the API) appears without a reload.
    code, _ = await api.post(f"{path}/notes", {"text": "looking at the deploy log"})
    assert code == 202
    await until(
        browser,
        lambda d: "looking at the deploy log" in text_of(d, '#timeline [data-kind="note"]'),
        "a note from elsewhere, live",
    )

    # Every control is a real button or a labelled field.
    unlabelled = browser.execute_script(
        "return [...document.querySelectorAll('input, select, textarea')]"
        ".filter((e) => !(e.labels && e.labels.length) && !e.getAttribute('aria-label'))"
        ".map((e) => e.id || e.name || e.outerHTML);"
    )
    assert unlabelled == []
    clickable = browser.execute_script(
        "return [...document.querySelectorAll('[data-action], [data-complete], #silence')]"
        ".map((e) => e.tagName);"
    )
    assert clickable and set(clickable) == {"BUTTON"}, clickable

    # The keyboard reaches them in reading order: the way to the actions, the token, the
    # lifecycle, severity, roles, responders, the note, then the runbook's tasks.
    browser.execute_script("document.activeElement.blur(); window.scrollTo(0, 0);")
    order = []
    for _ in range(21):
        ActionChains(browser).send_keys(Keys.TAB).perform()
        order.append(browser.execute_script(FOCUSED))
    assert order == [
        "Skip to the actions", "warroom", "token", "Save token", "acknowledge", "mitigate",
        "resolve", "reopen", "silence", "severity-choice", "Change severity", "role",
        "role-person", "Assign", "responder-kind", "responder-name", "Add responder",
        "note-text", "Add note", "Note for: Open the incident channel",
        "Mark done: Open the incident channel",
    ], order  # fmt: skip

    ack = browser.find_element(By.CSS_SELECTOR, 'button[data-action="acknowledge"]')
    # Without a token, a write asks for one and sends nothing.
    ack.click()
    kind, said = await until(browser, message, "the request for a token")
    assert kind == "error" and "token" in said.lower(), said
    assert browser.switch_to.active_element.get_attribute("id") == "token"
    # A token no header can carry is refused before it is kept.
    browser.find_element(By.ID, "token").send_keys("t\u00f6ken with spaces")
    browser.find_element(By.CSS_SELECTOR, "#token-form button[type=submit]").click()
    kind, _ = await until(
        browser, lambda d: message(d) if "ASCII" in message(d)[1] else None, "the refusal"
    )
    assert kind == "error" and browser.find_element(By.ID, "token-form").is_displayed()
    assert browser.execute_script("return localStorage.getItem('warroom.token')") is None
    browser.find_element(By.ID, "token").clear()
    # A wrong token: the server's own words, and the form comes back to replace it.
    browser.find_element(By.ID, "token").send_keys("not-the-token")
    browser.find_element(By.CSS_SELECTOR, "#token-form button[type=submit]").click()
    await until(browser, lambda d: not d.find_element(By.ID, "token-form").is_displayed(), "saved")
    ack.click()
    await until(browser, lambda d: message(d) == ("error", "invalid token"), "the server's 401")
    assert browser.find_element(By.ID, "token-form").is_displayed()
    assert "acknowledged" not in {e["kind"] for e in await kinds_on(api, incident_id)}
    # The right token, kept in the browser.
    browser.find_element(By.ID, "token").send_keys(worker.token)
    browser.find_element(By.ID, "token").send_keys(Keys.ENTER)
    await until(browser, lambda d: not d.find_element(By.ID, "token-form").is_displayed(), "saved")
    stored = browser.execute_script("return localStorage.getItem('warroom.token')")
    assert stored == worker.token

    # Acknowledge with the keyboard: the status changes live, the timeline has it.
    ack = browser.find_element(By.CSS_SELECTOR, 'button[data-action="acknowledge"]')
    ack.send_keys(Keys.ENTER)
    await until(browser, lambda d: text_of(d, "#status") == "acknowledged", "acknowledged")
    assert message(browser)[0] == "ok"
    await on_timeline(api, incident_id, lambda e: e["kind"] == "acknowledged", "acknowledged")
    assert "so far" not in text_of(browser, '[data-stage="acknowledge"] dd')

    # A task ticked with a note.
    browser.find_element(By.CSS_SELECTOR, f"{task} input").send_keys("#inc-checkout")
    browser.find_element(By.CSS_SELECTOR, f"{task} button[data-complete]").click()
    await until(
        browser,
        lambda d: d.find_element(By.CSS_SELECTOR, task).get_attribute("data-state") == "done",
        "the task done",
    )
    assert "#inc-checkout" in text_of(browser, task)
    done = await on_timeline(api, incident_id, lambda e: e["kind"] == "task_done", "task_done")
    assert done["data"]["task_id"] == "open-channel" and done["data"]["text"] == "#inc-checkout"

    # A commander assigned.
    Select(browser.find_element(By.ID, "role")).select_by_value("commander")
    browser.find_element(By.ID, "role-person").send_keys("alice")
    browser.find_element(By.CSS_SELECTOR, "#role-form button[type=submit]").click()
    await until(browser, lambda d: text_of(d, "#commander") == "alice", "the commander")
    assigned = await on_timeline(
        api, incident_id, lambda e: e["kind"] == "role_assigned", "role_assigned"
    )
    assert assigned["data"]["role"] == "commander" and assigned["data"]["person"] == "alice"

    # A note with markup in it: text on the timeline, nothing run or drawn; an impatient
    # double click on the button writes it once.
    browser.find_element(By.ID, "note-text").send_keys(HOSTILE_NOTE)
    add_note = browser.find_element(By.CSS_SELECTOR, "#note-form button[type=submit]")
    ActionChains(browser).double_click(add_note).perform()
    await until(
        browser,
        lambda d: HOSTILE_NOTE in text_of(d, '#timeline [data-kind="note"]'),
        "the note on the page's timeline",
    )
    noted = await on_timeline(
        api,
        incident_id,
        lambda e: e["kind"] == "note" and e["data"]["text"] != "looking at the deploy log",
        "note",
    )
    assert noted["data"]["text"] == HOSTILE_NOTE
    assert browser.find_element(By.ID, "note-text").get_attribute("value") == ""

    # Another severity.
    other = "SEV3" if incident["severity"] != "SEV3" else "SEV2"
    Select(browser.find_element(By.ID, "severity-choice")).select_by_value(other)
    browser.find_element(By.CSS_SELECTOR, "#severity-form button[type=submit]").click()
    await until(browser, lambda d: text_of(d, "#severity") == other, "the new severity")
    await on_timeline(api, incident_id, lambda e: e["kind"] == "severity_changed", "severity")

    # A responder who is nobody: whatever the server answers (404 where responders cannot be
    # paged in yet), the page shows its words.
    Select(browser.find_element(By.ID, "responder-kind")).select_by_value("person")
    browser.find_element(By.ID, "responder-name").send_keys("nobody-by-that-name")
    browser.find_element(By.CSS_SELECTOR, "#responder-form button[type=submit]").click()
    code, refused = await api.post(f"{path}/responders", {"person": "nobody-by-that-name"})
    assert 400 <= code < 500, refused
    await until(browser, lambda d: message(d) == ("error", refused["error"]), "the refusal")

    # Silenced until resolved: a silence of the service, held by this incident.
    browser.find_element(By.ID, "silence").click()

    async def silenced() -> dict[str, Any] | None:
        _, body = await api.get("/api/silences?state=active")
        held = [s for s in body["silences"] if s["until_resolved"] == incident_id]
        return held[0] if held else None

    hold = await eventually(silenced, 30, "the silence until resolved")
    assert hold["matchers"] == [{"name": "service", "value": "checkout", "regex": False}]
    await until(browser, lambda d: message(d)[0] == "ok", "the silence accepted")
    held = await until(
        browser,
        lambda d: text_of(d, "#pages") if text_of(d, "#pages") != "sent" else None,
        "the pages held, in the header",
    )
    reason = f"silenced from the incident page until {incident_id} is resolved"
    assert held == f"held until resolved (api: {reason})"

    # Resolved.
    browser.find_element(By.CSS_SELECTOR, 'button[data-action="resolve"]').click()
    await until(browser, lambda d: text_of(d, "#status") == "resolved", "resolved")
    await on_timeline(api, incident_id, lambda e: e["kind"] == "resolved", "resolved")
    events = await kinds_on(api, incident_id)
    assert [e["data"]["text"] for e in events if e["kind"] == "note"] == [
        "looking at the deploy log", HOSTILE_NOTE,
    ]  # fmt: skip
    kinds = [e["kind"] for e in events]
    steps = ["acknowledged", "task_done", "role_assigned", "note", "severity_changed", "resolved"]
    # The first note is the one written through the API before the page acted.
    assert [k for k in kinds if k in steps] == ["note", *steps], kinds
    assert "so far" not in text_of(browser, '[data-stage="resolve"] dd')
    await until(
        browser,
        lambda d: d.find_elements(By.CSS_SELECTOR, '#timeline [data-kind="resolved"]'),
        "resolved on the page's timeline",
    )

    # Text stayed text; the page was never reloaded.
    assert browser.execute_script("return window.__xss") is None
    assert browser.find_elements(By.CSS_SELECTOR, "main img:not(#chart-img), main b") == []
    assert browser.execute_script("return window.__loadedOnce") == "yes"

    ARTIFACTS.mkdir(exist_ok=True)
    browser.execute_script("window.scrollTo(0, 0)")
    assert browser.save_screenshot(str(ARTIFACTS / "incident-page.png"))
    whole_page(browser, ARTIFACTS / "incident-page-full.png")
    browser.set_window_size(390, 844)  # a phone
    assert browser.execute_script("return window.innerWidth") <= 390
    browser.execute_script("window.scrollTo(0, 0)")
    assert browser.save_screenshot(str(ARTIFACTS / "incident-page-phone.png"))
    whole_page(browser, ARTIFACTS / "incident-page-phone-full.png")
    width = browser.execute_script("return document.documentElement.scrollWidth")
    assert width <= 390, f"the page scrolls sideways on a phone ({width}px)"


async def test_after_a_lost_connection_the_page_catches_up(
    start_worker: Callable[..., RunningWorker], browser: webdriver.Chrome
) -> None:
    worker = start_worker(CATALOG)
    api = Api(worker)
    detection = {
        "id": "det-page-2", "ts": time.time() - 5, "service": "checkout", "signal": "latency_ms",
        "detector": "median_mad", "score": 0.999, "severity": "critical",
    }  # fmt: skip
    await produce(
        worker.bootstrap, worker.topics.detections, [(b"checkout", json.dumps(detection).encode())]
    )

    async def opened() -> dict[str, Any] | None:
        _, body = await api.get("/api/incidents")
        return body["incidents"][0] if body["incidents"] else None

    incident = await eventually(opened, 30, "the incident")
    browser.get(f"{worker.base_url}/incidents/{incident['id']}")
    await until(browser, lambda d: text_of(d, "#conn") == "live", "the page live")
    await until(browser, lambda d: text_of(d, "#status") == "triggered", "the status")
    browser.execute_script("window.__loadedOnce = 'yes';")

    # The stream drops (the worker stops) and the browser stays offline while the worker, back
    # up, resolves the incident: none of it reaches the page live.
    browser.execute_cdp_cmd("Network.enable", {})
    offline = {"offline": True, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1}
    browser.execute_cdp_cmd("Network.emulateNetworkConditions", offline)
    worker.stop()
    await until(browser, lambda d: text_of(d, "#conn") == "reconnecting", "offline")
    resolve = {
        "id": "cmd-page-resolve", "kind": "resolve", "incident_id": incident["id"],
        "routing_key": incident["routing_key"], "actor": "alice", "issued_at": time.time(),
        "text": "fixed while the page was offline",
    }  # fmt: skip
    key = incident["routing_key"].encode()
    await produce(worker.bootstrap, worker.topics.commands, [(key, json.dumps(resolve).encode())])
    worker.start()
    await on_timeline(api, incident["id"], lambda e: e["kind"] == "resolved", "resolved")
    assert text_of(browser, "#status") == "triggered"  # nothing arrived while offline

    browser.execute_cdp_cmd("Network.emulateNetworkConditions", {**offline, "offline": False})
    await until(browser, lambda d: text_of(d, "#status") == "resolved", "the page to catch up")
    await until(
        browser,
        lambda d: (
            "fixed while the page was offline" in text_of(d, '#timeline [data-kind="resolved"]')
        ),
        "the resolution on the page's timeline",
    )
    assert text_of(browser, "#conn") == "live"
    assert browser.execute_script("return window.__loadedOnce") == "yes"  # not reloaded
