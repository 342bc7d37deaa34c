"""Typed timeline payloads (``schemas.timeline``): each kind of event reads its ``data`` as its
own model, and the wire form is what it was: the same JSON, key for key, for the events already
on the topic."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import ValidationError

from schemas import IncidentEvent, IncidentEventKind
from schemas.timeline import (
    PAYLOADS,
    Paged,
    Payload,
    RoleAssigned,
    StatusChanged,
    TaskDone,
    Text,
    Unrouted,
)

#: ``data`` as the writers put it on the topic, one or more shapes per kind.
WRITTEN: dict[str, list[dict[str, Any]]] = {
    "opened": [{"incident": {"id": "inc-1", "service": "api"}, "detection": {"id": "d1"}}],
    "detection_attached": [
        {"detection_id": "d2", "signal": "latency", "detector": "zscore", "score": 0.98,
         "detected_at": "2026-03-01T12:00:20+00:00", "context": {"value": 380.0}},
    ],
    "paged": [
        {"step": 0, "recipients": ["ann"]},
        {"update": 2, "signals": ["errors"], "recipients": ["ann", "bob"]},
        {"repeat": 1, "recipients": []},
    ],
    "escalated": [
        {"step": 1, "recipients": ["bob"]},
        {"step": 1, "recipients": ["bob"], "reason": "delivery failed"},
    ],
    "acknowledged": [{}, {"text": "looking"}],
    "status_changed": [
        {"from": "acknowledged", "to": "triggered", "reason": "acknowledgement timed out"}
    ],
    "note": [{"text": "rolled back"}],
    "runbook_attached": [
        {"runbook": "api", "title": "API", "tasks": [
            {"id": "rollback", "title": "Roll back", "phase": "mitigate",
             "owner_role": "commander", "kind": "manual"}]},
    ],
    "task_done": [
        {"task_id": "t", "task": "t", "phase": "diagnose", "outcome": "done", "duration_s": 90.0},
        {"task_id": "t", "task": "t", "phase": "diagnose", "outcome": "failed",
         "duration_s": 1.5, "result": "HTTP 500"},
        {"task_id": "t", "task": "t", "phase": "diagnose", "outcome": "done",
         "duration_s": 2.0, "text": "done by hand"},
    ],
    "resolved": [{"text": "auto-resolved: no detections for 3600s"}],
    "signals_recovered": [{"suggestion": "mitigate", "signal": "latency"}],
    "severity_changed": [{"from": "SEV2", "to": "SEV1", "text": None}],
    "inhibited": [{"by": "inc-db", "recipients_not_paged": ["ann"]}],
    "inhibition_released": [{"by": "inc-db", "recipients": ["ann"]}],
    "role_assigned": [{"role": "commander", "person": "bo", "previous": None}],
    "delivery_failed": [{"page": "inc-1/0/ann/webhook", "step": 0, "recipient": "ann",
                         "detail": "timed out"}],
    "unrouted": [{"reason": "nobody on call", "fallback": None, "step": 0}],
}  # fmt: skip


def event(kind: str, data: object) -> IncidentEvent:
    return IncidentEvent.model_validate(
        {"id": "inc-1:2", "incident_id": "inc-1", "routing_key": "api", "seq": 2, "kind": kind,
         "at": "2026-03-01T12:00:00Z", "actor": "warroom", "data": data}
    )  # fmt: skip


CASES = [(kind, data) for kind, shapes in WRITTEN.items() for data in shapes]


def test_every_kind_has_a_payload_model() -> None:
    assert set(PAYLOADS) == {k.value for k in IncidentEventKind}


@pytest.mark.parametrize(
    ("kind", "data"), CASES, ids=[f"{k}-{i}" for i, (k, _) in enumerate(CASES)]
)
def test_an_event_on_the_topic_reads_typed_and_writes_back_the_same_bytes(
    kind: str, data: dict[str, Any]
) -> None:
    ev = event(kind, data)
    assert type(ev.data) is PAYLOADS[kind]
    written = json.loads(ev.model_dump_json())["data"]
    assert json.dumps(written) == json.dumps(data)  # same keys, same order, same values
    assert IncidentEvent.model_validate_json(ev.model_dump_json()) == ev


def test_payload_fields_are_typed() -> None:
    paged = event("paged", {"update": 2, "signals": ["errors"], "recipients": ["ann"]}).data
    assert isinstance(paged, Paged) and paged.update == 2 and paged.step is None
    changed = event("status_changed", {"from": "acknowledged", "to": "triggered"}).data
    assert isinstance(changed, StatusChanged) and changed.from_ == "acknowledged"
    done = event("task_done", WRITTEN["task_done"][1]).data
    assert isinstance(done, TaskDone) and done.result == "HTTP 500" and done.duration_s == 1.5
    assert isinstance(event("note", {"text": "x"}).data, Text)
    assert isinstance(event("unrouted", {"reason": "r"}).data, Unrouted)


def test_unknown_keys_an_older_or_newer_writer_added_are_kept() -> None:
    data = {"text": "hi", "owner": "bob", "duration": 90}
    ev = event("note", data)
    assert json.loads(ev.model_dump_json())["data"] == data
    assert ev.data.wire() == data


def test_a_payload_without_what_its_kind_needs_is_refused_naming_the_field() -> None:
    with pytest.raises(ValidationError, match=r"data\.to"):
        event("status_changed", {"from": "acknowledged"})
    with pytest.raises(ValidationError, match=r"data\.person"):
        event("role_assigned", {"role": "commander"})
    with pytest.raises(ValidationError, match=r"data\.recipients"):
        event("paged", {"step": 0, "recipients": "ann"})


def test_a_payload_object_is_taken_as_it_is() -> None:
    assigned = RoleAssigned(role="scribe", person="dan")
    ev = event("role_assigned", assigned)
    assert ev.data is assigned and ev.data.wire() == {"role": "scribe", "person": "dan"}
    assert isinstance(event("note", None).data, Payload)
