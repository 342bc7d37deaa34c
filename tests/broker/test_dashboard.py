"""The dashboard in headless Chromium: it loads, and an incident opened during the test appears
without a reload; a screenshot is saved under ``test-artifacts/``."""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from tests.harness import RunningWorker, produce

pytestmark = pytest.mark.broker

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[webdriver.Chrome]:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver_path = shutil.which("chromedriver")
    assert chromium and driver_path, (
        "Debian's chromium and chromium-driver are needed (make test installs them)"
    )
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in (
        "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
        "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--window-size=1280,900",
        f"--user-data-dir={tmp_path / 'chromium'}",
    ):  # fmt: skip
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    try:
        yield driver
    finally:
        driver.quit()


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
    row = wait.until(lambda d: d.find_element(By.CSS_SELECTOR, "tr[data-incident]"))
    assert "payments-api" in row.text and "SEV2" in row.text  # critical, unlisted tier-3 service
    # Impact started about a minute ago, and the page says so.
    assert row.find_element(By.CSS_SELECTOR, "td.since").text.startswith("1m")
    wait.until(lambda d: "opened" in d.find_element(By.ID, "events").text)
    # Not reloaded: the marker set before the incident opened is still there.
    assert browser.execute_script("return window.__loadedOnce") == "yes"
    ARTIFACTS.mkdir(exist_ok=True)
    assert browser.save_screenshot(str(ARTIFACTS / "dashboard.png"))
    browser.set_window_size(390, 844)  # a phone
    assert browser.save_screenshot(str(ARTIFACTS / "dashboard-phone.png"))
    width = browser.execute_script("return document.documentElement.scrollWidth")
    assert width <= 400, f"the page scrolls sideways on a phone ({width}px)"
