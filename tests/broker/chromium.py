"""Headless Chromium for the browser tests: Debian's ``chromium`` and ``chromedriver``, a fresh
profile per test, and a page wait that never blocks the event loop."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

from selenium import webdriver
from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
from selenium.webdriver.chrome.service import Service

from tests.harness import eventually

#: Screenshots of the pages, for people to look at (``make test`` keeps them).
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
T = TypeVar("T")


@contextmanager
def chromium(profile: Path, width: int = 1280, height: int = 900) -> Iterator[webdriver.Chrome]:
    """A headless Chromium with its profile in ``profile``; quit on exit."""
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    driver_path = shutil.which("chromedriver")
    assert binary and driver_path, (
        "Debian's chromium and chromium-driver are needed (make test installs them)"
    )
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for flag in (
        "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
        "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", f"--window-size={width},{height}",
        f"--user-data-dir={profile}",
    ):  # fmt: skip
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    try:
        yield driver
    finally:
        driver.quit()


async def until(
    browser: webdriver.Chrome,
    condition: Callable[[webdriver.Chrome], T | None],
    what: str,
    timeout_s: float = 30,
) -> T:
    """Poll the page until ``condition`` holds (an element re-rendered meanwhile counts as not
    yet), without blocking the event loop, or fail after ``timeout_s``."""

    async def probe() -> T | None:
        try:
            return condition(browser) or None
        except (NoSuchElementException, StaleElementReferenceException):
            return None

    return await eventually(probe, timeout_s, what)
