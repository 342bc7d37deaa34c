"""Faust's start and stop without their fixed pauses.

Faust 0.15.3's table manager sleeps one second before it registers the tables' changelogs, so
that tables an agent declares lazily can still join; every table of this app is declared in
:func:`streams.app.build`, before the worker starts. Mode's worker waits one second more after
the loop has stopped, before it closes it, for callbacks still scheduled; a tenth of a second
does that. Each pause is paid on every start and stop of every worker (a rolling restart, a
rebalance test), and nothing here needs them.
"""

from __future__ import annotations

import asyncio

import faust
from faust.tables import TableManager

#: How long the stopped loop runs on for callbacks still scheduled, before it is closed.
CLOSE_GRACE_S = 0.1


class PromptTableManager(TableManager):
    """Registers the changelogs and starts recovery as soon as the manager starts."""

    async def on_start(self) -> None:
        if not self.should_stop:
            await self._update_channels()
            await self.recovery.start()


class PromptWorker(faust.Worker):
    """Closes the loop a moment after it has stopped."""

    async def _sentinel_task(self) -> None:
        await asyncio.sleep(CLOSE_GRACE_S)
