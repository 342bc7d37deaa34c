"""A declared incident opens at once with the title and severity a person gave, ahead of
detections its group holds, and pages as any incident of its service."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from responders.correlation import Group, Timing, on_detection_in_group
from responders.lifecycle import DECLARED, incident_id_for
from schemas import Catalog, Detection

T0 = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
CATALOG = Catalog.model_validate(
    {
        "services": {"api": {"team": "core", "tier": 3}},
        "teams": {"core": {"escalation": [{"targets": ["ann"]}]}},
        "people": {"ann": {"contacts": [{"channel": "console"}]}},
    }
)
TIMING = Timing(group_wait_s=30)


def declared(at: datetime, severity: str = "SEV1") -> Detection:
    return Detection(id="dcl-1", ts=at, service="api", signal="declared", detector=DECLARED,
                     score=1.0, severity="critical", impact_started_at=at,
                     context={"title": "Checkout returns 500s for EU cards", "severity": severity,
                              "declared_by": "ann"})  # fmt: skip


def test_a_declaration_opens_at_once_with_its_title_and_severity() -> None:
    step = on_detection_in_group(Group("api"), None, declared(T0), CATALOG, TIMING, T0)
    incident = step.outcome.incident
    assert incident is not None and step.outcome.opened
    assert incident.title == "Checkout returns 500s for EU cards"
    assert incident.severity.value == "SEV1"  # as declared, not tier 3's milder one
    assert incident.id == incident_id_for("api", "dcl-1")
    assert [p.recipient for p in step.outcome.pages] == ["ann"]


def test_a_declaration_goes_ahead_of_held_detections_and_takes_them_along() -> None:
    held = Detection(id="d-1", ts=T0, service="api", signal="latency", detector="x", score=1.0)
    waiting = on_detection_in_group(Group("api"), None, held, CATALOG, TIMING, T0)
    assert waiting.outcome.incident is None  # held for the group wait
    at = T0 + timedelta(seconds=5)
    step = on_detection_in_group(waiting.group, None, declared(at, "SEV2"), CATALOG, TIMING, at)
    incident = step.outcome.incident
    assert incident is not None
    assert incident.id == incident_id_for("api", "dcl-1")
    assert incident.title == "Checkout returns 500s for EU cards"
    assert incident.severity.value == "SEV2"
    assert incident.detection_ids == ("dcl-1", "d-1")


def test_a_detection_of_another_detector_cannot_pose_as_a_declaration() -> None:
    spoof = declared(T0).model_copy(update={"detector": "external"})
    step = on_detection_in_group(Group("api"), None, spoof, CATALOG, TIMING, T0)
    assert step.outcome.incident is None  # an ordinary detection waits out the group wait
