"""Runbooks: the catalog model, which runbook an incident gets, tasks on the timeline, when
automation runs, and the rehearsal command."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any, get_args

import pytest

from responders.lifecycle import ROLES, on_command, on_detection, replay
from responders.review import render_review
from responders.runbooks import (
    AUTOMATION,
    begun_phases,
    due_tasks,
    progress,
    result_text,
    runbook_for,
    succeeded,
    task_board,
)
from schemas import (
    Catalog,
    Command,
    CommandKind,
    Detection,
    Incident,
    IncidentEvent,
    IncidentEventKind,
    IncidentStatus,
)
from schemas.runbooks import OwnerRole
from schemas.timeline import RunbookAttached
from streams.app import ConfigError, load_catalog
from streams.cli import main

FIXTURES = Path(__file__).parent.parent / "fixtures" / "catalogs"
GOOD = FIXTURES / "good_runbooks.yaml"
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
E = IncidentEventKind


def catalog() -> Catalog:
    return load_catalog(GOOD)


def detection(
    service: str = "checkout", signal: str = "latency_ms", severity: str = "error"
) -> Detection:
    return Detection(
        id=f"d-{service}-{signal}-{severity}", ts=T0, service=service, signal=signal,
        detector="median_mad", score=0.999, severity=severity,
    )  # fmt: skip


def opened(det: Detection | None = None) -> tuple[Incident, list[IncidentEvent]]:
    outcome = on_detection(None, det or detection(), catalog(), T0 + timedelta(seconds=2))
    assert outcome.incident is not None
    return outcome.incident, list(outcome.events)


def complete(
    incident: Incident, task: str | None, actor: str = "alice", text: str | None = None,
    minutes: float = 5, **kw: Any,
) -> Command:  # fmt: skip
    return Command.model_validate(
        {
            "id": f"c-{task}-{actor}-{minutes}", "kind": CommandKind.COMPLETE_TASK,
            "incident_id": incident.id, "routing_key": incident.routing_key, "actor": actor,
            "issued_at": T0 + timedelta(minutes=minutes), "text": text, "task": task, **kw,
        }
    )  # fmt: skip


# --- the catalog model ----------------------------------------------------------------------


def test_good_runbooks_load() -> None:
    c = catalog()
    assert sorted(c.runbooks) == ["checkout", "checkout-latency", "critical", "default"]
    rb = c.runbooks["checkout-latency"]
    assert [(phase, t.id) for phase, t in rb.tasks()] == [
        ("mobilize", "open-channel"),
        ("diagnose", "collect-traces"),
        ("diagnose", "check-deploys"),
        ("mitigate", "roll-back"),
        ("resolve", "write-review"),
    ]
    hook = rb.phases.diagnose[0].webhook
    assert hook is not None and hook.method == "POST" and hook.timeout_s == 5
    # The service's runbook link stays what it was.
    assert c.services["checkout"].runbook == "https://runbooks.example/checkout"


@pytest.mark.parametrize(
    ("fixture", "expected"),
    [
        ("unknown_service", "runbooks.checkout.applies_to.services.0: unknown service 'chekout'"),
        (
            "automated_without_webhook",
            "runbooks.checkout.phases.diagnose.0: an automated task needs a webhook",
        ),
        ("owner_role", "runbooks.checkout.phases.mobilize.0.owner_role: Input should be"),
        ("phase", "runbooks.checkout.phases.triage: Extra inputs are not permitted"),
        ("duplicate_task", "runbooks.checkout: task id 'page-lead' is used twice"),
        ("task_id", "runbooks.checkout.phases.mobilize.0.id: String should match pattern"),
        ("webhook_url", "webhook: a webhook url starts with http:// or https://"),
        (
            "same_applies_to",
            "runbooks.checkout-again.applies_to: runbook 'checkout' applies to exactly the same",
        ),
        ("no_tasks", "runbooks.checkout: a runbook has at least one task"),
    ],
    ids=lambda v: v if "." not in v else "",
)
def test_bad_runbooks_name_the_field(fixture: str, expected: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_catalog(FIXTURES / f"bad_runbook_{fixture}.yaml")
    assert expected in str(caught.value)


def test_owner_roles_are_the_incident_roles() -> None:
    assert get_args(OwnerRole) == ROLES


def test_config_check_counts_runbooks(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config", "check", str(GOOD)]) == 0
    assert capsys.readouterr().out.strip().endswith("4 runbooks")


# --- which runbook ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("service", "signal", "severity", "expected"),
    [
        ("checkout", "latency_ms", "error", "checkout-latency"),  # service and signal
        ("checkout", "error_rate", "error", "checkout"),  # the service's own
        ("checkout", "error_rate", "critical", "checkout"),  # a service beats a severity
        ("search", "latency_ms", "critical", "critical"),  # SEV1 on a tier-2 service
        ("search", "latency_ms", "warning", "default"),  # the catch-all
        ("unlisted", "latency_ms", "info", "default"),
    ],
    ids=[
        "service-and-signal",
        "service",
        "service-over-severity",
        "severity",
        "default",
        "unlisted",
    ],
)
def test_the_most_specific_runbook_wins(
    service: str, signal: str, severity: str, expected: str
) -> None:
    incident, _ = opened(detection(service, signal, severity))
    found = runbook_for(catalog(), incident)
    assert found is not None and found[0] == expected


def test_no_runbooks_no_match() -> None:
    incident, _ = opened()
    assert runbook_for(catalog().model_copy(update={"runbooks": {}}), incident) is None


# --- the timeline -----------------------------------------------------------------------------


def test_runbook_attached_right_after_opened() -> None:
    incident, events = opened()
    assert [e.kind for e in events] == [E.OPENED, E.RUNBOOK_ATTACHED, E.PAGED]
    assert [e.seq for e in events] == [1, 2, 3] and incident.last_seq == 3
    attached = events[1].data.wire()
    assert attached["runbook"] == "checkout-latency" and attached["title"] == "Checkout latency"
    assert [t["id"] for t in attached["tasks"]] == [
        "open-channel", "collect-traces", "check-deploys", "roll-back", "write-review",
    ]  # fmt: skip
    traces = attached["tasks"][1]
    assert traces == {
        "id": "collect-traces",
        "title": "Collect the slowest traces",
        "phase": "diagnose",
        "owner_role": "responder",
        "kind": "automated",
        # Header values stay in the catalog: they may be credentials.
        "webhook": {
            "url": "https://automation.example/traces",
            "method": "POST",
            "timeout_s": 5.0,
            "header_names": ["Authorization"],
        },
    }
    assert "not-a-real-token" not in json.dumps(attached)
    assert incident.tasks == {
        "mobilize/open-channel": "pending",
        "diagnose/collect-traces": "pending",
        "diagnose/check-deploys": "pending",
        "mitigate/roll-back": "pending",
        "resolve/write-review": "pending",
    }
    assert replay(events)[incident.id] == incident


@pytest.mark.parametrize(
    ("task", "actor", "text", "outcome", "recorded"),
    [
        ("open-channel", "alice", None, "done", {}),
        ("check-deploys", "bob", "nothing deployed", "done", {"text": "nothing deployed"}),
        ("collect-traces", AUTOMATION, "HTTP 200: ok", "done", {"result": "HTTP 200: ok"}),
        (
            "collect-traces",
            AUTOMATION,
            "HTTP 503 (after 4 attempts)",
            "failed",
            {"result": "HTTP 503 (after 4 attempts)"},
        ),
        (
            "collect-traces",
            AUTOMATION,
            "timed out after 5s",
            "failed",
            {"result": "timed out after 5s"},
        ),
    ],
    ids=["manual", "manual-with-note", "automated-ok", "automated-5xx", "automated-timeout"],
)
def test_completing_a_task(
    task: str, actor: str, text: str | None, outcome: str, recorded: dict[str, str]
) -> None:
    incident, events = opened()
    result = on_command(incident, complete(incident, task, actor, text), T0 + timedelta(hours=1))
    assert result.rejection is None and result.incident is not None
    [done] = result.events
    assert done.kind is E.TASK_DONE and done.seq == 4 and done.actor == actor
    phase = "mobilize" if task == "open-channel" else "diagnose"
    assert done.data.wire() == {
        "task_id": task,
        "task": task,
        "phase": phase,
        "outcome": outcome,
        "duration_s": 298.0,  # since the runbook was attached, at opening (T0 + 2 s)
        **recorded,
    }
    assert result.incident.tasks[f"{phase}/{task}"] == outcome
    assert replay([*events, done])[incident.id] == result.incident


def _after(incident: Incident, *commands: Command) -> Incident:
    for c in commands:
        outcome = on_command(incident, c, T0 + timedelta(hours=1))
        assert outcome.rejection is None and outcome.incident is not None, outcome.rejection
        incident = outcome.incident
    return incident


def _status(incident: Incident, kind: CommandKind, minutes: float) -> Command:
    return Command(
        id=f"c-{kind.value}", kind=kind, incident_id=incident.id,
        routing_key=incident.routing_key, actor="alice", issued_at=T0 + timedelta(minutes=minutes),
    )  # fmt: skip


@pytest.mark.parametrize(
    ("setup", "task", "reason"),
    [
        ([], "nope", "unknown task 'nope'; one of open-channel, collect-traces, check-deploys"),
        ([], None, "task: required"),
        ([("open-channel", "alice", None)], "open-channel", "task 'open-channel' is already done"),
        ([("collect-traces", AUTOMATION, "HTTP 200")], "collect-traces", "is already done"),
        (["resolve"], "open-channel", "cannot complete a task of a resolved incident"),
    ],
    ids=["unknown", "missing", "done", "automated-done", "resolved"],
)
def test_completing_a_task_is_rejected_with_the_reason(
    setup: list[Any], task: str | None, reason: str
) -> None:
    incident, _ = opened()
    for i, step in enumerate(setup):
        if step == "resolve":
            incident = _after(incident, _status(incident, CommandKind.RESOLVE, 3))
        else:
            done, actor, text = step
            incident = _after(incident, complete(incident, done, actor, text, minutes=1 + i))
    outcome = on_command(incident, complete(incident, task), T0 + timedelta(hours=1))
    assert outcome.rejection is not None and reason in outcome.rejection
    assert outcome.events == ()


def test_a_failed_task_can_be_done_by_hand_and_no_runbook_means_no_tasks() -> None:
    incident, _ = opened()
    incident = _after(incident, complete(incident, "collect-traces", AUTOMATION, "timed out"))
    assert incident.tasks["diagnose/collect-traces"] == "failed"
    incident = _after(incident, complete(incident, "collect-traces", "bob", minutes=6))
    assert incident.tasks["diagnose/collect-traces"] == "done"

    bare = catalog().model_copy(update={"runbooks": {}})
    plain = on_detection(None, detection(), bare, T0).incident
    assert plain is not None and plain.tasks == {}
    outcome = on_command(plain, complete(plain, "open-channel"), T0 + timedelta(hours=1))
    assert outcome.rejection == "the incident has no runbook tasks"


def test_the_review_lists_the_tasks() -> None:
    incident, events = opened()
    done = on_command(incident, complete(incident, "roll-back", "bob"), T0 + timedelta(hours=1))
    md = render_review([*events, *done.events])
    assert "| roll-back | commander | bob |" in md  # its owner role; nobody holds it


# --- progress, as the dashboard shows it ------------------------------------------------------


@pytest.mark.parametrize(
    ("tasks", "expected"),
    [
        ({}, {"total": 0, "done": 0, "failed": 0, "pending": 0}),
        ({"mobilize/a": "pending"}, {"total": 1, "done": 0, "failed": 0, "pending": 1}),
        (
            {"mobilize/a": "done", "diagnose/b": "failed", "diagnose/c": "done", "resolve/d": "x"},
            {"total": 4, "done": 2, "failed": 1, "pending": 1},
        ),
    ],
    ids=["no-runbook", "one-pending", "mixed"],
)
def test_progress_counts_the_states(tasks: dict[str, str], expected: dict[str, int]) -> None:
    assert progress(tasks) == expected


def test_the_task_board_follows_the_timeline() -> None:
    incident, events = opened()
    board = task_board(incident, events)
    assert (board["runbook"], board["title"]) == ("checkout-latency", "Checkout latency")
    assert board["incident_id"] == incident.id and board["last_seq"] == 3
    assert board["progress"] == {"total": 5, "done": 0, "failed": 0, "pending": 5}
    assert [(p["phase"], [t["id"] for t in p["tasks"]]) for p in board["phases"]] == [
        ("mobilize", ["open-channel"]),
        ("diagnose", ["collect-traces", "check-deploys"]),
        ("mitigate", ["roll-back"]),
        ("resolve", ["write-review"]),
    ]
    assert board["phases"][1]["tasks"][0] == {
        "id": "collect-traces", "title": "Collect the slowest traces", "owner_role": "responder",
        "kind": "automated", "state": "pending", "actor": None, "at": None, "detail": None,
    }  # fmt: skip

    timeline = list(events)
    for command in (
        complete(incident, "collect-traces", AUTOMATION, "HTTP 503 (after 4 attempts)", 1),
        complete(incident, "open-channel", "alice", "#inc-checkout", 2),
    ):
        outcome = on_command(incident, command, T0 + timedelta(hours=1))
        assert outcome.rejection is None and outcome.incident is not None, outcome.rejection
        incident, timeline = outcome.incident, [*timeline, *outcome.events]
    board = task_board(incident, timeline)
    assert board["progress"] == {"total": 5, "done": 1, "failed": 1, "pending": 3}
    assert board["last_seq"] == 5
    tasks = {t["id"]: t for p in board["phases"] for t in p["tasks"]}
    assert tasks["collect-traces"]["state"] == "failed"
    assert tasks["collect-traces"]["actor"] == AUTOMATION
    assert tasks["collect-traces"]["detail"] == "HTTP 503 (after 4 attempts)"
    assert tasks["open-channel"]["state"] == "done" and tasks["open-channel"]["actor"] == "alice"
    assert tasks["open-channel"]["detail"] == "#inc-checkout"
    assert tasks["open-channel"]["at"] == (T0 + timedelta(minutes=2)).isoformat()
    assert tasks["roll-back"]["state"] == "pending" and tasks["roll-back"]["actor"] is None

    # A failed task completed by hand: the person's word replaces the automation's result.
    later = T0 + timedelta(hours=1)
    outcome = on_command(incident, complete(incident, "collect-traces", "bob", minutes=3), later)
    assert outcome.rejection is None and outcome.incident is not None, outcome.rejection
    board = task_board(outcome.incident, [*timeline, *outcome.events])
    [traces] = [t for t in board["phases"][1]["tasks"] if t["id"] == "collect-traces"]
    assert (traces["state"], traces["actor"], traces["detail"]) == ("done", "bob", None)


def test_an_incident_without_a_runbook_has_an_empty_board() -> None:
    bare = catalog().model_copy(update={"runbooks": {}})
    outcome = on_detection(None, detection(), bare, T0)
    assert outcome.incident is not None
    board = task_board(outcome.incident, list(outcome.events))
    assert board["runbook"] is None and board["title"] is None and board["phases"] == []
    assert board["progress"]["total"] == 0


# --- automation -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "phases"),
    [
        (IncidentStatus.TRIGGERED, ("mobilize",)),
        (IncidentStatus.ACKNOWLEDGED, ("mobilize", "diagnose", "mitigate")),
        (IncidentStatus.MITIGATED, ("mobilize", "diagnose", "mitigate", "resolve")),
        (IncidentStatus.RESOLVED, ()),
    ],
    ids=lambda v: v.value if isinstance(v, IncidentStatus) else None,
)
def test_phases_begin_with_the_lifecycle(status: IncidentStatus, phases: tuple[str, ...]) -> None:
    assert begun_phases(status) == phases


def test_automated_tasks_are_due_once_their_phase_begins() -> None:
    incident, events = opened()
    attached = events[1].data
    assert isinstance(attached, RunbookAttached)
    assert due_tasks(attached, incident) == []  # diagnose has not begun
    acked = _after(incident, _status(incident, CommandKind.ACKNOWLEDGE, 1))
    assert [t["id"] for t in due_tasks(attached, acked)] == ["collect-traces"]
    assert due_tasks(attached, acked, frozenset({"collect-traces"})) == []  # ran already
    by_hand = _after(acked, complete(acked, "collect-traces", "bob", minutes=2))
    assert due_tasks(attached, by_hand) == []  # a person did it
    resolved = _after(acked, _status(acked, CommandKind.RESOLVE, 3))
    assert due_tasks(attached, resolved) == []  # closed


def test_results_are_short_and_classified() -> None:
    assert result_text(200, "x" * 500) == "HTTP 200: " + "x" * 200
    assert result_text(204, "") == "HTTP 204"
    assert result_text(500, "line one\n  line two") == "HTTP 500: line one line two"
    assert succeeded("HTTP 201: created") and not succeeded("HTTP 2000")
    assert not succeeded(None) and not succeeded("ClientConnectorError: refused")


# --- rehearsal --------------------------------------------------------------------------------


class _Hook(BaseHTTPRequestHandler):
    received: list[dict[str, Any]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        _Hook.received.append({"headers": dict(self.headers), "json": json.loads(body)})
        reply = b"traces collected"
        self.send_response(200)
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def hook_url() -> Iterator[str]:
    _Hook.received = []
    server = HTTPServer(("127.0.0.1", 0), _Hook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/traces"
    finally:
        server.shutdown()
        server.server_close()


def test_rehearsal_walks_the_phases_without_calling(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["runbook", "rehearse", "checkout-latency", "--catalog", str(GOOD)]) == 0
    out = capsys.readouterr().out
    assert "nobody paged" in out
    for phase in ("mobilize", "diagnose", "mitigate", "resolve"):
        assert f"\n{phase} (begins" in out
    assert "- open-channel: Open the incident channel  [communications, manual]" in out
    assert "- collect-traces: Collect the slowest traces  [responder, automated]" in out
    assert "would call POST https://automation.example/traces (timeout 5s)" in out
    assert "task_done by rehearsal: collect-traces (diagnose) done" in out
    assert "#1 +0s opened by warroom" in out and "resolved by rehearsal" in out
    assert "5 tasks rehearsed, 0 not done" in out
    assert "paged by" not in out


def test_rehearsal_can_call_the_webhooks(
    hook_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = GOOD.read_text().replace("https://automation.example/traces", hook_url)
    path = tmp_path / "catalog.yaml"
    path.write_text(text)
    args = ["runbook", "rehearse", "checkout-latency", "--catalog", str(path)]
    assert main([*args, "--service", "checkout", "--call-webhooks"]) == 0
    out = capsys.readouterr().out
    assert f"calls POST {hook_url}" in out and "-> HTTP 200: traces collected" in out
    assert "task_done by automation: collect-traces (diagnose) done (HTTP 200: traces" in out
    [request] = _Hook.received
    assert request["json"]["service"] == "checkout" and request["json"]["status"] == "acknowledged"
    assert request["headers"]["Authorization"] == "Bearer not-a-real-token"


def test_rehearsal_errors(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["runbook", "rehearse", "nope", "--catalog", str(GOOD)]) == 2
    assert "unknown runbook 'nope' (checkout, checkout-latency, critical, default)" in (
        capsys.readouterr().err
    )
    bad = FIXTURES / "bad_runbook_unknown_service.yaml"
    assert main(["runbook", "rehearse", "checkout", "--catalog", str(bad)]) == 2
    assert "unknown service 'chekout'" in capsys.readouterr().err
