"""A delivery left pending (its worker stopped while the page was in its lane) is handed to its
lane again by the resume timer, and not while a rebalance is restoring the table's rows (a
pending entry can be restored before the outcome written over it)."""

from __future__ import annotations

from collections.abc import Callable

from responders.delivery import PENDING
from schemas import Page
from tests.agents.memory import Runtime
from tests.agents.test_incidents import CATALOG, detect

Make = Callable[..., Runtime]


async def test_a_pending_delivery_is_resumed_but_not_during_a_rebalance(runtime: Make) -> None:
    rt = runtime(CATALOG)
    await detect(rt)
    [page] = rt.decoded(rt.names.pages, Page)
    assert len(rt.notifier.to("ann")) == 1
    log = rt.pipeline.tables.notification_log
    entry = log[page.dedup_key]
    # As a worker that stopped with the page in its lane left it.
    log[page.dedup_key] = {
        "outcome": PENDING, "page": page.model_dump(mode="json"),
        "source": [rt.names.pages, 0, 0], "held": [],
    }  # fmt: skip
    assert entry["outcome"] == "delivered"

    rt.app.rebalancing = True
    await rt.timer("resume_deliveries")
    await rt.settle()
    assert len(rt.notifier.to("ann")) == 1
    assert log[page.dedup_key]["outcome"] == PENDING

    rt.app.rebalancing = False
    await rt.timer("resume_deliveries")
    await rt.settle()
    assert len(rt.notifier.to("ann")) == 2
    assert log[page.dedup_key]["outcome"] == "delivered"
