"""``run_automation``: timeline events in (``incidents.events.v1``), runbook webhooks called, and
their results out as ``complete_task`` commands (``incidents.commands.v1``, actor ``automation``).

The ``automation-log`` table, keyed by incident id, holds what this needs for an incident with a
runbook: the incident folded from its events, the ``runbook_attached`` data, and the tasks already
run. It is keyed by incident, not by routing key, because a routing key's group opens a new
incident after each resolve, with its own runbook and tasks; all the events of one incident carry
its routing key, so its entry lives in one partition, that of the routing key.

When a phase begins (``responders.runbooks.PHASE_BEGINS``) each of its automated tasks is called
once per incident: a POST of the incident as JSON with an ``Idempotency-Key`` of
``<incident>/<task>``, a timeout and bounded retries. Delivery is at least once: after a crash
between the call and the table write, the call is made again with the same key.

Retention (``delivery_log_retention_s``, 120 h; :mod:`responders.retention`): once its incident
is resolved, an entry is forgotten a retention after it was last written. A timer sends a
``PruneEntry`` for each due entry on the internal ``incidents.automation-retention.v1``, to the
partition of the routing key (this agent reads both topics, co-partitioned), and the stream
deletes it. An ``opened`` event older than the retention (a replayed timeline) starts no entry:
its incident's webhooks may have been called, and its entry forgotten, already.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from responders.lifecycle import apply
from responders.retention import in_progress, too_old_to_start
from responders.runbooks import AUTOMATION, due_tasks, result_text
from schemas import Command, CommandKind, Incident, IncidentEvent, IncidentEventKind
from schemas.retention import PruneEntry
from schemas.timeline import RunbookAttached
from streams.agents import each_input
from streams.codec import encode
from streams.notifiers.http import JsonPoster
from streams.retention import LogRetention
from streams.retry import Backoff, retry

if TYPE_CHECKING:
    from streams.pipeline import Pipeline

E = IncidentEventKind
#: One try, no retry (``warroom runbook rehearse --call-webhooks``).
ONCE = Backoff()


async def call_webhook(
    url: str, body: bytes, headers: dict[str, str], timeout_s: float,
    backoff: Backoff = ONCE,
) -> str:  # fmt: skip
    """POST ``body``; retry timeouts, connection errors, 5xx, 408 and 429 (``backoff``); return
    the result text recorded on the timeline (``HTTP <status>: <body>`` or the error)."""
    poster = JsonPoster(timeout_s)
    try:
        answer, attempts = await retry(
            lambda _: poster.answer(url, body, headers, read_body=True),
            lambda a: a.retryable,
            backoff,
        )
    finally:
        await poster.close()
    if answer.status is not None:
        detail = result_text(answer.status, answer.body)
        if not answer.retryable:
            return detail
    else:
        detail = f"timed out after {timeout_s:g}s" if answer.timed_out else str(answer.error)
    return f"{detail} (after {attempts} attempt{'s' if attempts > 1 else ''})"


def _follow(entry: dict[str, Any] | None, ev: IncidentEvent) -> dict[str, Any] | None:
    """The incident's log entry after ``ev``; None when the incident has no runbook."""
    if ev.kind is E.OPENED:
        return entry or {"incident": apply(None, ev).model_dump(mode="json"), "ran": {}}
    if entry is None or ("attached" not in entry and ev.kind is not E.RUNBOOK_ATTACHED):
        return None
    incident = apply(Incident.model_validate(entry["incident"]), ev)
    attached = ev.data.wire() if ev.kind is E.RUNBOOK_ATTACHED else entry["attached"]
    return {**entry, "incident": incident.model_dump(mode="json"), "attached": attached}


def attach(p: Pipeline) -> None:
    log_table, s = p.tables.automation_log, p.settings
    retention = LogRetention(
        p, log_table, p.topics.automation_retention, counter="automation_log_forgotten",
        pinned=in_progress,
    )  # fmt: skip

    def headers_for(runbook: str, task_id: str) -> dict[str, str]:
        """Header values come from the catalog: the timeline records only their names."""
        found = p.catalog.runbooks.get(runbook)
        tasks = {t.id: t for _, t in found.tasks()} if found is not None else {}
        hook = tasks[task_id].webhook if task_id in tasks else None
        return dict(hook.headers) if hook is not None else {}

    async def run(entry: dict[str, Any], task: dict[str, Any]) -> dict[str, Any]:
        """Call one task's webhook, send its result as a command; the entry, updated."""
        incident = Incident.model_validate(entry["incident"])
        hook, task_id = task["webhook"], str(task["id"])
        headers = {
            **headers_for(str(entry["attached"]["runbook"]), task_id),
            "Idempotency-Key": f"{incident.id}/{task_id}",
            "X-Warroom-Task": task_id,
        }
        result = await call_webhook(
            str(hook["url"]), incident.model_dump_json().encode(), headers,
            float(hook["timeout_s"]), Backoff.for_delivery(s),
        )  # fmt: skip
        done = Command(
            id=f"auto-{incident.id}-{task_id}", kind=CommandKind.COMPLETE_TASK,
            incident_id=incident.id, routing_key=incident.routing_key, actor=AUTOMATION,
            issued_at=datetime.now(tz=UTC), text=result, task=task_id,
        )  # fmt: skip
        await p.topics.commands.send(key=incident.routing_key.encode(), value=encode(done))
        p.count("automation_calls")
        return {**entry, "ran": {**entry["ran"], task_id: result}}

    async def on_event(ev: IncidentEvent, now: datetime) -> None:
        before = log_table.get(ev.incident_id)
        if before is None and too_old_to_start(ev.at, retention.retention_s, now):
            return
        entry = _follow(before, ev)
        if entry is None:
            if before is not None:
                del log_table[ev.incident_id]
            return
        if entry != before:
            entry = retention.write(ev.incident_id, entry, now)
        if "attached" not in entry:
            return
        incident = Incident.model_validate(entry["incident"])
        attached = RunbookAttached.model_validate(entry["attached"])
        for task in due_tasks(attached, incident, frozenset(entry["ran"])):
            entry = await run(entry, task)
            entry = retention.write(ev.incident_id, entry, datetime.now(tz=UTC))

    async def on_input(event: Any) -> None:
        now = datetime.now(tz=UTC)
        pruning = event.message.topic == s.topics.automation_retention
        decoded = await p.dead_letters.decoded(event, PruneEntry if pruning else IncidentEvent)
        if isinstance(decoded, PruneEntry):
            retention.on_request(decoded, now)
        elif isinstance(decoded, IncidentEvent):
            await on_event(decoded, now)

    @p.app.agent(p.topics.automation_inputs, name="run_automation")
    async def run_automation(stream: Any) -> None:
        # Runbooks (and their webhook headers) come from the catalog in force: after a restart,
        # the live catalog on ``catalog.v1`` is read before any automation runs.
        await p.directory.caught_up.wait()
        await each_input(p, stream, "run_automation", on_input,
                         stage="automation", errors="automation_errors")  # fmt: skip

    if retention.retention_s > 0:

        @p.app.timer(interval=retention.interval_s)
        async def prune_automation_log() -> None:
            await retention.scan(datetime.now(tz=UTC))
