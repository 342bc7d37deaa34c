"""``warroom runbook rehearse NAME``: a runbook run against a simulated incident, in-process.

No broker and nobody paged: the pure lifecycle opens a simulated incident, attaches the runbook
and walks it phase by phase, moving the incident along as each phase begins (acknowledged before
``diagnose``, mitigated before ``resolve``, resolved at the end) and completing every task as its
owner would. Automated tasks show the webhook they would call; with ``--call-webhooks`` they are
called, with the simulated incident as the body, and their results are shown and recorded.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from datetime import UTC, datetime, timedelta

from responders.lifecycle import apply, on_command, on_detection, runbook_attached
from responders.runbooks import AUTOMATION, PHASE_BEGINS
from schemas import (
    PHASES,
    Catalog,
    Command,
    CommandKind,
    Detection,
    Incident,
    IncidentEvent,
    IncidentStatus,
    Runbook,
    TaskKind,
)
from schemas.timeline import RunbookAttached, TaskDone

_STEP = timedelta(minutes=1)
_BEGINS = {
    IncidentStatus.TRIGGERED: "when the incident opens",
    IncidentStatus.ACKNOWLEDGED: "once acknowledged",
    IncidentStatus.MITIGATED: "once mitigated",
}
_MOVE = {
    IncidentStatus.ACKNOWLEDGED: CommandKind.ACKNOWLEDGE,
    IncidentStatus.MITIGATED: CommandKind.MITIGATE,
    IncidentStatus.RESOLVED: CommandKind.RESOLVE,
}


class RehearsalError(Exception):
    """The rehearsal could not go on (a rejected step), with the reason."""


def _summary(e: IncidentEvent) -> str:
    d = e.data
    if isinstance(d, RunbookAttached):
        return f": {d.runbook}, {len(d.tasks)} tasks"
    if isinstance(d, TaskDone):
        said = d.result if d.result is not None else d.text
        result = f" ({said})" if said else ""
        return f": {d.task_id} ({d.phase}) {d.outcome}{result}"
    return ""


def simulated_opening(
    catalog: Catalog, service: str, runbook: Runbook, now: datetime
) -> IncidentEvent:
    """The ``opened`` event of the incident a detection on ``service`` would open (its pages
    and any runbook the catalog would pick are left out)."""
    match = runbook.applies_to
    detection = Detection(
        id="rehearsal", ts=now, service=service, signal=(match.signals or ("rehearsal",))[0],
        detector=(match.detectors or ("rehearsal",))[0], score=1.0, severity="critical",
    )  # fmt: skip
    opened = on_detection(None, detection, catalog.model_copy(update={"runbooks": {}}), now)
    return opened.events[0]


def rehearse(
    catalog: Catalog, name: str, service: str | None, now: datetime, call_webhooks: bool
) -> list[IncidentEvent]:
    """Walk runbook ``name`` against a simulated incident, printing each phase and task."""
    runbook = catalog.runbooks[name]
    service = service or (runbook.applies_to.services or ("rehearsal",))[0]
    opening = simulated_opening(catalog, service, runbook, now)
    incident: Incident = apply(None, opening)
    print(f"rehearsing runbook {name!r} ({runbook.title}) on a simulated incident, nobody paged")
    print(f"  {incident.id} [{incident.severity.value}] {incident.title}")
    attached = runbook_attached(incident, name, runbook, now)
    incident, timeline, at = apply(incident, attached), [opening, attached], now

    def command(kind: CommandKind, actor: str, **fields: str | None) -> None:
        nonlocal incident, at
        at += _STEP
        cmd = Command(
            id=f"rehearsal-{len(timeline) + 1}", kind=kind, incident_id=incident.id,
            routing_key=incident.routing_key, actor=actor, issued_at=at, **fields,
        )  # fmt: skip
        outcome = on_command(incident, cmd, at)
        if outcome.rejection or outcome.incident is None:
            raise RehearsalError(f"{kind.value} {fields.get('task') or ''}: {outcome.rejection}")
        incident = outcome.incident
        timeline.extend(outcome.events)

    for phase in PHASES:
        begins = PHASE_BEGINS[phase]
        if begins in _MOVE and incident.status is not begins:
            command(_MOVE[begins], "rehearsal")
        tasks = getattr(runbook.phases, phase)
        print(f"\n{phase} (begins {_BEGINS[begins]})")
        if not tasks:
            print("  (no tasks)")
        for task in tasks:
            print(f"  - {task.id}: {task.title}  [{task.owner_role}, {task.kind.value}]")
            if task.kind is not TaskKind.AUTOMATED or task.webhook is None:
                command(CommandKind.COMPLETE_TASK, task.owner_role, task=task.id)
                continue
            hook = task.webhook
            verb = "calls" if call_webhooks else "would call"
            print(f"      {verb} {hook.method} {hook.url} (timeout {hook.timeout_s:g}s)")
            if not call_webhooks:
                text = "rehearsal: webhook not called"
                command(CommandKind.COMPLETE_TASK, "rehearsal", task=task.id, text=text)
                continue
            from streams.agents.run_automation import call_webhook

            headers = {**hook.headers, "Idempotency-Key": f"{incident.id}/{task.id}/rehearsal"}
            body = incident.model_dump_json().encode()
            result = asyncio.run(call_webhook(hook.url, body, headers, hook.timeout_s))
            print(f"      -> {result}")
            command(CommandKind.COMPLETE_TASK, AUTOMATION, task=task.id, text=result)
    command(CommandKind.RESOLVE, "rehearsal")
    print("\ntimeline")
    for e in timeline:
        print(f"  #{e.seq} +{(e.at - now).total_seconds():.0f}s {e.kind.value} by {e.actor}"
              f"{_summary(e)}")  # fmt: skip
    failed = [k for k, state in incident.tasks.items() if state != "done"]
    print(f"\n{len(incident.tasks)} tasks rehearsed, {len(failed)} not done" +
          (f": {', '.join(failed)}" if failed else ""))  # fmt: skip
    return timeline


def main(args: argparse.Namespace) -> int:
    from streams.app import catalog_for_command

    catalog = catalog_for_command(args.catalog, "warroom runbook")
    if catalog is None:
        return 2
    if args.name not in catalog.runbooks:
        known = ", ".join(sorted(catalog.runbooks)) or "none in this catalog"
        print(f"warroom runbook: unknown runbook {args.name!r} ({known})", file=sys.stderr)
        return 2
    try:
        timeline = rehearse(
            catalog, args.name, args.service, datetime.now(tz=UTC), args.call_webhooks
        )
    except RehearsalError as exc:
        print(f"warroom runbook: rehearsal stopped: {exc}", file=sys.stderr)
        return 1
    failed = [e for e in timeline if isinstance(e.data, TaskDone) and e.data.outcome == "failed"]
    return 1 if failed else 0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", metavar="NAME", help="the runbook's name in the catalog")
    parser.add_argument("--catalog", default=None, help="catalog YAML (WARROOM_CATALOG_PATH)")
    parser.add_argument("--service", default=None, help="the simulated incident's service")
    parser.add_argument(
        "--call-webhooks", action="store_true", help="call automated tasks' webhooks for real"
    )
