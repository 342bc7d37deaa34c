"""The agent tier: the real agents over an in-memory pipeline (``tests.agents.memory``)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from schemas import Catalog
from streams.settings import Settings
from tests.agents.memory import Runtime

#: Delivery retries a few milliseconds apart, and no rate limit, unless a test says otherwise.
FAST: dict[str, Any] = {
    "group_wait_s": 0.0,
    "delivery_attempts": 3,
    "delivery_backoff_s": 0.001,
    "delivery_backoff_max_s": 0.002,
    "page_rate_per_recipient": 0,
}


@pytest.fixture
async def runtime(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Callable[..., Runtime]]:
    """A factory of runtimes: ``runtime(catalog, **settings)``; their lanes close afterwards."""
    made: list[Runtime] = []

    def make(catalog: Catalog, **settings: Any) -> Runtime:
        made.append(Runtime(Settings(**{**FAST, **settings}), catalog, monkeypatch))
        return made[-1]

    yield make
    for r in made:
        await r.close()
