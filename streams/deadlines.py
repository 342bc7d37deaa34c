"""The timer of ``open_incidents``: an index of the correlation groups that have a deadline, and
the ``tick`` commands it sends them when one comes due.

A tick carries its group and due time, and its id derives from both
(:func:`responders.engine.tick_for`): the group acts on the deadlines due at that time, whenever
the tick is processed, and a tick sent twice is the same command twice.

The stream updates the index as it processes each input: most groups are idle (no incident,
nothing held), and computing every group's deadline every second costs about 5 µs a group, half
a core at 100,000 groups. The index is rebuilt from the table every ``FULL_SCAN_S`` seconds (and
at once when another live catalog is put in force: an open incident that has not recorded the
catalog in force is due): a rebalance, a recovery or a catalog change moves deadlines without an
input of the group; so does the end of an "until resolved" silence, whose incident's held
timers (escalation, repeats, auto-resolve) are not indexed while it lasts, so that the timer
does not wake a muted group every second.

Idle groups (no open incident, nothing held, no deadline) are forgotten once they have been idle
for ``group_retention_s``, or the table and its changelog would grow with every key ever seen.
The rebuild, which reads every group anyway, puts the groups whose retention has run out (at
most ``FORGET_PER_SCAN`` a rebuild) in the index as due; their tick, inside the stream, checks
again (:func:`~responders.correlation.forgettable`) and deletes the row, which writes a
tombstone to the changelog for compaction to drop. A group is forgotten at most ``FULL_SCAN_S``
after its retention, and nothing is done every second for idle groups.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from responders.correlation import Group
from responders.engine import Decision, Received, View, next_deadline, tick_for
from schemas import Command, CommandKind
from streams.codec import encode

if TYPE_CHECKING:
    from streams.pipeline import Pipeline

#: Seconds between rebuilds of the deadline index from the whole table.
FULL_SCAN_S = 10.0
#: Idle groups past their retention put in the index by one rebuild: a backlog of them (the first
#: run after an upgrade, a storm of keys a retention ago) is forgotten at 100 groups a second.
FORGET_PER_SCAN = 1000


class Deadlines:
    """The next deadline of each group that has one, and the ticks sent and not yet processed."""

    def __init__(self, view: View, groups: Any) -> None:
        self.view = view
        self.groups = groups
        self.due_at: dict[str, datetime] = {}
        self.ticked: dict[str, datetime] = {}
        self.scanned_at = -FULL_SCAN_S
        #: The catalog version the last rebuild saw: another one rebuilds the index at once.
        self.scanned_version = view.catalog_version

    def index(self, group: Group, now: datetime, expired_by: datetime | None = None) -> bool:
        """Index the group's next deadline; True when it is the end of its retention."""
        due, expiring = next_deadline(group, self.view, now, expired_by)
        if due is None:
            self.due_at.pop(group.key, None)
        else:
            self.due_at[group.key] = due
        return expiring

    def decided(self, received: Received, decision: Decision) -> None:
        """After the stream applied ``decision``: its group's deadline may have moved."""
        item = received.item
        if isinstance(item, Command) and item.kind is CommandKind.TICK:
            self.ticked.pop(decision.key, None)
        if decision.forget:
            self.due_at.pop(decision.key, None)
        else:  # an acknowledgement changes the incident, not always the group
            self.index(decision.group, decision.at)

    def rebuild(self, now: datetime, monotonic_s: float) -> None:
        """Index every group again, at most every ``FULL_SCAN_S`` seconds."""
        version = self.view.catalog_version
        if monotonic_s - self.scanned_at < FULL_SCAN_S and version == self.scanned_version:
            return
        self.scanned_at, self.scanned_version = monotonic_s, version
        self.due_at.clear()
        budget = FORGET_PER_SCAN
        for key, value in list(self.groups.items()):
            budget -= self.index(Group.from_dict(key, value), now, now if budget > 0 else None)

    def due(self, now: datetime) -> list[Command]:
        """The ticks to send now: one per group whose deadline has come, once per deadline."""
        ticks = []
        for key, due in list(self.due_at.items()):
            if due > now or self.ticked.get(key) == due:
                continue
            self.ticked[key] = due
            ticks.append(tick_for(key, due))
        return ticks


def attach(p: Pipeline, deadlines: Deadlines, refresh: Callable[[], View]) -> None:
    """Every second, send a tick to each group whose deadline has come; ``refresh`` first puts
    the catalog in force in the index's view."""

    @p.app.timer(interval=1.0)
    async def tick_due_groups() -> None:
        refresh()
        now = datetime.now(tz=UTC)
        deadlines.rebuild(now, time.monotonic())
        for tick in deadlines.due(now):
            await p.topics.commands.send(key=tick.routing_key.encode(), value=encode(tick))
