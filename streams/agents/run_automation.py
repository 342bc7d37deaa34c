"""``run_automation``: timeline events in (``incidents.events.v1``), runbook webhooks called, and
their results out as ``complete_task`` commands (``incidents.commands.v1``, actor ``automation``).

The ``automation-log`` table, keyed by incident id, holds what this needs for an incident with a
runbook: the incident folded from its events, the ``runbook_attached`` data, and the tasks already
run. When a phase begins (``responders.runbooks.PHASE_BEGINS``) each of its automated tasks is
called once per incident: a POST of the incident as JSON with an ``Idempotency-Key`` of
``<incident>/<task>``, a timeout and bounded retries. Delivery is at least once: after a crash
between the call and the table write, the call is made again with the same key.
"""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import aiohttp

from responders.lifecycle import apply
from responders.runbooks import AUTOMATION, due_tasks, result_text
from schemas import Command, CommandKind, Incident, IncidentEvent, IncidentEventKind
from streams.codec import encode

if TYPE_CHECKING:
    from streams.app import Pipeline

E = IncidentEventKind


async def call_webhook(
    url: str, body: bytes, headers: dict[str, str], timeout_s: float, attempts: int = 1,
    backoff_s: float = 0.5,
) -> str:  # fmt: skip
    """POST ``body``; retry timeouts, connection errors, 5xx, 408 and 429; return the result
    text recorded on the timeline (``HTTP <status>: <body>`` or the error)."""
    detail = "not called"
    timeout = aiohttp.ClientTimeout(total=timeout_s)
    for attempt in range(1, attempts + 1):
        try:
            async with (
                aiohttp.ClientSession(timeout=timeout) as session,
                session.post(
                    url, data=body, headers={"Content-Type": "application/json", **headers}
                ) as response,
            ):
                text = await response.text(errors="replace")
                detail = result_text(response.status, text)
                if response.status < 500 and response.status not in (408, 429):
                    return detail
        except TimeoutError:
            detail = f"timed out after {timeout_s:g}s"
        except aiohttp.ClientError as exc:
            detail = f"{type(exc).__name__}: {exc}"
        if attempt < attempts:
            await asyncio.sleep(backoff_s * 2 ** (attempt - 1) * (0.5 + random.random() / 2))
    return f"{detail} (after {attempts} attempt{'s' if attempts > 1 else ''})"


def _follow(entry: dict[str, Any] | None, ev: IncidentEvent) -> dict[str, Any] | None:
    """The incident's log entry after ``ev``; None when the incident has no runbook."""
    if ev.kind is E.OPENED:
        return entry or {"incident": apply(None, ev).model_dump(mode="json"), "ran": {}}
    if entry is None or ("attached" not in entry and ev.kind is not E.RUNBOOK_ATTACHED):
        return None
    incident = apply(Incident.model_validate(entry["incident"]), ev)
    attached = ev.data if ev.kind is E.RUNBOOK_ATTACHED else entry["attached"]
    return {**entry, "incident": incident.model_dump(mode="json"), "attached": attached}


def attach(p: Pipeline) -> None:
    log_table, s = p.tables.automation_log, p.settings

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
            float(hook["timeout_s"]), s.delivery_attempts, s.delivery_backoff_s,
        )  # fmt: skip
        done = Command(
            id=f"auto-{incident.id}-{task_id}", kind=CommandKind.COMPLETE_TASK,
            incident_id=incident.id, routing_key=incident.routing_key, actor=AUTOMATION,
            issued_at=datetime.now(tz=UTC), text=result, task=task_id,
        )  # fmt: skip
        await p.topics.commands.send(key=incident.routing_key.encode(), value=encode(done))
        p.count("automation_calls")
        return {**entry, "ran": {**entry["ran"], task_id: result}}

    @p.app.agent(p.topics.events, name="run_automation")
    async def run_automation(stream: Any) -> None:
        async for event in stream.events():
            ev = await p.dead_letters.decoded(event, IncidentEvent)
            if ev is None:
                continue
            before = log_table.get(ev.incident_id)
            try:
                entry = _follow(before, ev)
                if entry is None:
                    if before is not None:
                        del log_table[ev.incident_id]
                    continue
                if entry != before:
                    log_table[ev.incident_id] = entry
                if "attached" not in entry:
                    continue
                incident = Incident.model_validate(entry["incident"])
                for task in due_tasks(entry["attached"], incident, frozenset(entry["ran"])):
                    entry = await run(entry, task)
                    log_table[ev.incident_id] = entry
            except Exception as exc:
                reason = f"{type(exc).__name__}: {exc}"
                await p.dead_letters.send(event.message, "automation", reason)
