"""Runbooks on the timeline: which one an incident gets, what its events say, when automation runs.

Pure: the lifecycle (``responders.lifecycle``) records ``runbook_attached`` when an incident opens
and ``task_done`` when a ``complete_task`` command is accepted; the shell's ``run_automation``
agent asks :func:`due_tasks` which webhooks to call as the incident moves through its phases.

A phase's automated tasks run when the lifecycle lets its work begin (:data:`PHASE_BEGINS`):
``mobilize`` when the incident opens, ``diagnose`` and ``mitigate`` once someone acknowledged it,
``resolve`` once the service is restored (mitigated). An incident that skips a status (triggered
straight to mitigated) begins every phase up to it. Nothing runs after it is resolved: a resolved
incident's tasks are closed.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from schemas import Catalog, Incident, IncidentEvent, IncidentStatus
from schemas.runbooks import PHASES, AppliesTo, Phase, Runbook, TaskKind
from schemas.timeline import RunbookAttached, TaskDone

AUTOMATION = "automation"
"""The actor of ``complete_task`` commands that carry an automated task's result."""

PENDING, DONE, FAILED = "pending", "done", "failed"

PHASE_BEGINS: dict[Phase, IncidentStatus] = {
    "mobilize": IncidentStatus.TRIGGERED,
    "diagnose": IncidentStatus.ACKNOWLEDGED,
    "mitigate": IncidentStatus.ACKNOWLEDGED,
    "resolve": IncidentStatus.MITIGATED,
}
"""The status at which each phase's work, and so its automation, begins."""

_RANK = {
    IncidentStatus.TRIGGERED: 0,
    IncidentStatus.ACKNOWLEDGED: 1,
    IncidentStatus.MITIGATED: 2,
}
_SUCCESS = re.compile(r"^HTTP 2\d\d\b")
RESULT_CHARS = 200
"""How much of a webhook's response body the result on the timeline keeps."""


def matches(applies_to: AppliesTo, incident: Incident) -> bool:
    """Every non-empty matcher matches the incident (an empty ``applies_to`` matches all)."""
    a = applies_to
    return (
        (not a.services or incident.service in a.services)
        and (not a.signals or any(s in a.signals for s in incident.signals))
        and (not a.detectors or incident.detector in a.detectors)
        and (not a.severities or incident.severity in a.severities)
    )


def specificity(applies_to: AppliesTo) -> tuple[int, int, int]:
    """Sort key, most specific first: more kinds of matcher, then a service matcher, then
    fewer values in all."""
    lists = (applies_to.services, applies_to.signals, applies_to.detectors, applies_to.severities)
    kinds = sum(1 for values in lists if values)
    return (-kinds, 0 if applies_to.services else 1, sum(len(values) for values in lists))


def runbook_for(catalog: Catalog, incident: Incident) -> tuple[str, Runbook] | None:
    """The runbook for an incident: the most specific that matches, ties broken by name.

    >>> rb = lambda **m: {"title": "t", "applies_to": m,
    ...                   "phases": {"mobilize": [{"id": "a", "title": "a"}]}}
    >>> catalog = Catalog.model_validate({
    ...     "services": {"api": {"team": "ops"}},
    ...     "teams": {"ops": {"escalation": [{"targets": ["ann"]}]}},
    ...     "people": {"ann": {"contacts": [{"channel": "console"}]}},
    ...     "runbooks": {"any": rb(), "latency": rb(signals=["latency"]),
    ...                  "api": rb(services=["api"]), "api-latency": rb(services=["api"],
    ...                  signals=["latency", "p99"])}})
    >>> incident = Incident(id="i", routing_key="api", service="api", title="t",
    ...     status="triggered", severity="SEV2", impact_started_at=0, detected_at=0,
    ...     opened_at=0, signals=("latency",))
    >>> runbook_for(catalog, incident)[0]
    'api-latency'
    >>> runbook_for(catalog, incident.model_copy(update={"signals": ("errors",)}))[0]
    'api'
    >>> runbook_for(catalog, incident.model_copy(update={"service": "web"}))[0]
    'latency'
    """
    found = [
        (specificity(rb.applies_to), name, rb)
        for name, rb in catalog.runbooks.items()
        if matches(rb.applies_to, incident)
    ]
    if not found:
        return None
    _, name, runbook = min(found, key=lambda f: (f[0], f[1]))
    return name, runbook


def task_key(phase: str, task_id: str) -> str:
    """The key of a task in ``Incident.tasks``."""
    return f"{phase}/{task_id}"


def attached_data(name: str, runbook: Runbook) -> dict[str, object]:
    """What ``runbook_attached`` records: the runbook and every task, so a review or a replay
    needs nothing else. Webhook header values are not recorded (they may hold credentials),
    only their names."""
    tasks: list[dict[str, object]] = []
    for phase, task in runbook.tasks():
        entry: dict[str, object] = {
            "id": task.id,
            "title": task.title,
            "phase": phase,
            "owner_role": task.owner_role,
            "kind": task.kind.value,
        }
        if task.webhook is not None:
            entry["webhook"] = {
                "url": task.webhook.url,
                "method": task.webhook.method,
                "timeout_s": task.webhook.timeout_s,
                "header_names": sorted(task.webhook.headers),
            }
        tasks.append(entry)
    return {"runbook": name, "title": runbook.title, "tasks": tasks}


def initial_tasks(attached: RunbookAttached) -> dict[str, str]:
    """``Incident.tasks`` right after ``runbook_attached``: every task pending."""
    return {task_key(str(t["phase"]), str(t["id"])): PENDING for t in attached.tasks}


def find_task(tasks: dict[str, str], task_id: str) -> tuple[str, str] | None:
    """``(phase, state)`` of a task of the incident, by id.

    >>> find_task({"mobilize/page": "done", "diagnose/logs": "pending"}, "logs")
    ('diagnose', 'pending')
    >>> find_task({"mobilize/page": "done"}, "nope") is None
    True
    """
    for key, state in tasks.items():
        phase, _, found = key.partition("/")
        if found == task_id:
            return phase, state
    return None


def result_text(status: int, body: str) -> str:
    """An automated task's result as recorded: ``HTTP <status>: <start of the body>``.

    >>> result_text(200, "ok")
    'HTTP 200: ok'
    """
    text = " ".join(body.split())
    return f"HTTP {status}: {text[:RESULT_CHARS]}" if text else f"HTTP {status}"


def succeeded(text: str | None) -> bool:
    """Whether an automated task's recorded result is a success (an HTTP 2xx answer).

    >>> succeeded("HTTP 204"), succeeded("HTTP 500: oops"), succeeded("timed out after 5s")
    (True, False, False)
    """
    return bool(text) and _SUCCESS.match(text or "") is not None


def begun_phases(status: IncidentStatus) -> tuple[Phase, ...]:
    """The phases whose work has begun at ``status`` (none once resolved).

    >>> begun_phases(IncidentStatus.ACKNOWLEDGED)
    ('mobilize', 'diagnose', 'mitigate')
    >>> begun_phases(IncidentStatus.RESOLVED)
    ()
    """
    rank = _RANK.get(status)
    if rank is None:
        return ()
    return tuple(p for p in PHASES if _RANK[PHASE_BEGINS[p]] <= rank)


def due_tasks(
    attached: RunbookAttached, incident: Incident, already: frozenset[str] = frozenset()
) -> list[dict[str, Any]]:
    """The automated tasks to run now: in a phase that has begun, still pending on the incident,
    and not ``already`` run (by id). ``attached`` is the ``runbook_attached`` event's data."""
    phases = begun_phases(incident.status)
    return [
        t
        for t in attached.tasks
        if t.get("kind") == TaskKind.AUTOMATED.value
        and t.get("phase") in phases
        and t.get("id") not in already
        and incident.tasks.get(task_key(str(t["phase"]), str(t["id"]))) == PENDING
    ]


def progress(tasks: Mapping[str, str]) -> dict[str, int]:
    """How many of an incident's tasks there are, and how many are done, failed and pending.

    >>> progress({"mobilize/page": "done", "diagnose/logs": "failed", "diagnose/traces": "pending"})
    {'total': 3, 'done': 1, 'failed': 1, 'pending': 1}
    """
    states = list(tasks.values())
    return {
        "total": len(states),
        "done": states.count(DONE),
        "failed": states.count(FAILED),
        "pending": sum(1 for s in states if s not in (DONE, FAILED)),
    }


def task_board(incident: Incident, timeline: Sequence[IncidentEvent]) -> dict[str, Any]:
    """The incident's runbook, phase by phase: each task with its title, owner role, kind and
    state, and who last completed it with the note or result they left.

    States are the incident's own (``Incident.tasks``); titles come from ``runbook_attached`` and
    the last word on each task from its latest ``task_done``; ``last_seq`` is the incident's, so a
    reader can tell which later events it has not seen. An incident without a runbook has
    ``runbook`` None and no phases.
    """
    attached = RunbookAttached()
    last: dict[str, tuple[IncidentEvent, TaskDone]] = {}
    for event in timeline:
        if isinstance(event.data, RunbookAttached):
            attached, last = event.data, {}
        elif isinstance(event.data, TaskDone) and event.data.task_id:
            last[task_key(str(event.data.phase), event.data.task_id)] = (event, event.data)
    phases: dict[str, list[dict[str, Any]]] = {}
    for task in attached.tasks:
        key = task_key(str(task["phase"]), str(task["id"]))
        done, said = last.get(key, (None, None))
        phases.setdefault(str(task["phase"]), []).append(
            {
                "id": task["id"],
                "title": task.get("title", task["id"]),
                "owner_role": task.get("owner_role"),
                "kind": task.get("kind", TaskKind.MANUAL.value),
                "state": incident.tasks.get(key, PENDING),
                "actor": done.actor if done is not None else None,
                "at": done.at.isoformat() if done is not None else None,
                "detail": (said.result or said.text) if said is not None else None,
            }
        )
    return {
        "incident_id": incident.id,
        "runbook": attached.runbook,
        "title": attached.title,
        "progress": progress(incident.tasks),
        "last_seq": incident.last_seq,
        "phases": [{"phase": p, "tasks": phases[p]} for p in PHASES if p in phases],
    }
