"""``join_changes``: changes in (``changes.v1``), ``record_change`` commands out.

A change to a service with open incidents is recorded on each one's timeline: a command keyed by
the incident's routing key, whose id derives from the change and the incident, so that reading
the change again records nothing twice. Which incidents are open comes from the directory
(``streams.directory``), which every worker keeps whole.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from responders.changes import record
from schemas.changes import Change
from streams.agents import each_input
from streams.codec import encode

if TYPE_CHECKING:
    from streams.pipeline import Pipeline


def attach(p: Pipeline) -> None:
    async def on_change(event: Any) -> None:
        change = await p.dead_letters.decoded(event, Change)
        if change is None:
            return
        if p.changes is not None:
            p.changes.add(change)
        for incident_id, key in p.directory.open_with_keys(change.service):
            command = record(change, incident_id, key)
            await (await p.topics.commands.send(key=key.encode(), value=encode(command)))

    @p.app.agent(p.topics.changes, name="join_changes")
    async def join_changes(stream: Any) -> None:
        await p.directory.caught_up.wait()
        await each_input(p, stream, "join_changes", on_change,
                         stage="join_changes", errors="change_errors")  # fmt: skip
