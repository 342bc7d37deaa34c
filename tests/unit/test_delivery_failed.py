"""A page that reached nobody: recorded on the timeline, and the next step is paged at once
while it is the step the unacknowledged incident is on."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from responders.correlation import Group, Timing, on_command_in_group, on_detection_in_group
from schemas import Catalog, Command, Detection, Incident

T0 = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
CATALOG = Catalog.model_validate(
    {
        "services": {"api": {"team": "core", "tier": 1}},
        "teams": {
            "core": {
                "escalation": [
                    {"targets": ["ann"]},
                    {"delay_s": 600, "targets": ["bob"]},
                ]
            }
        },
        "people": {
            "ann": {"contacts": [{"channel": "console"}]},
            "bob": {"contacts": [{"channel": "console"}]},
        },
    }
)
TIMING = Timing(group_wait_s=0, group_interval_s=300, repeat_interval_s=4 * 3600)


def opened() -> tuple[Group, Incident]:
    det = Detection(id="d1", ts=T0, service="api", signal="latency", detector="x", score=1.0)
    step = on_detection_in_group(Group("api"), None, det, CATALOG, TIMING, T0)
    assert step.outcome.incident is not None
    assert [p.recipient for p in step.outcome.pages] == ["ann"]
    return step.group, step.outcome.incident


def failed(incident: Incident, step: int, at: datetime, cmd_id: str = "dlv-1") -> Command:
    return Command(
        id=cmd_id, kind="delivery_failed", incident_id=incident.id, routing_key="api",
        actor="warroom", issued_at=at, text="timed out", person="ann",
        page=f"{incident.id}/{step}/ann/console", step=step,
    )  # fmt: skip


def test_a_failed_page_of_the_current_step_pages_the_next_step_now() -> None:
    group, incident = opened()
    at = T0 + timedelta(seconds=40)  # long before step 1 falls due (600 s)
    step = on_command_in_group(group, incident, failed(incident, 0, at), at, CATALOG)
    kinds = [e.kind.value for e in step.outcome.events]
    assert kinds == ["delivery_failed", "escalated"]
    recorded, escalated = step.outcome.events
    assert (
        recorded.data.wire()["recipient"] == "ann" and recorded.data.wire()["detail"] == "timed out"
    )
    assert (
        escalated.data.wire()["reason"] == "delivery failed" and escalated.data.wire()["step"] == 1
    )
    assert [p.recipient for p in step.outcome.pages] == ["bob"]
    assert step.group.step == 1 and step.group.step_paged_at == at


@pytest.mark.parametrize(
    ("case", "ack_first", "failed_step"),
    [("acknowledged meanwhile", True, 0), ("an older step's page", False, 5)],
    ids=["acknowledged", "older-step"],
)
def test_a_failed_page_is_recorded_without_escalating(
    case: str, ack_first: bool, failed_step: int
) -> None:
    group, incident = opened()
    at = T0 + timedelta(seconds=40)
    if ack_first:
        ack = Command(id="ack", kind="acknowledge", incident_id=incident.id, routing_key="api",
                      actor="ann", issued_at=at)  # fmt: skip
        acked = on_command_in_group(group, incident, ack, at, CATALOG)
        group, incident = acked.group, acked.outcome.incident  # type: ignore[assignment]
    step = on_command_in_group(group, incident, failed(incident, failed_step, at), at, CATALOG)
    assert [e.kind.value for e in step.outcome.events] == ["delivery_failed"], case
    assert step.outcome.pages == ()


def test_the_same_failure_delivered_twice_changes_nothing_the_second_time() -> None:
    group, incident = opened()
    at = T0 + timedelta(seconds=40)
    first = on_command_in_group(group, incident, failed(incident, 0, at), at, CATALOG)
    assert first.outcome.incident is not None
    again = on_command_in_group(
        first.group, first.outcome.incident, failed(incident, 0, at), at + timedelta(seconds=1),
        CATALOG,
    )  # fmt: skip
    assert again.outcome.events == () and again.outcome.pages == ()


def test_a_failure_on_a_resolved_incident_is_refused_with_the_reason() -> None:
    group, incident = opened()
    at = T0 + timedelta(seconds=40)
    resolve = Command(id="r", kind="resolve", incident_id=incident.id, routing_key="api",
                      actor="ann", issued_at=at)  # fmt: skip
    done = on_command_in_group(group, incident, resolve, at, CATALOG)
    assert done.outcome.incident is not None
    step = on_command_in_group(
        done.group, done.outcome.incident, failed(incident, 0, at, "dlv-2"), at, CATALOG
    )
    assert step.outcome.rejection == "the incident is resolved"
    assert step.outcome.events == ()
