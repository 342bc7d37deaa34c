"""``warroom incidents``' table: one aligned line per incident, with its runbook's progress."""

from __future__ import annotations

from typing import Any

from streams.tools import incident_table


def _incident(n: int, tasks: dict[str, str] | None, resolved: str | None = None) -> dict[str, Any]:
    return {
        "id": f"inc-{n}", "status": "resolved" if resolved else "triggered", "severity": "SEV3",
        "service": "search", "opened_at": "2026-11-27T10:00:00Z", "resolved_at": resolved,
        "title": f"incident {n}", "tasks": tasks,
    }  # fmt: skip


def test_tasks_column_shows_done_of_total_and_failures_or_a_dash() -> None:
    lines = incident_table(
        [
            _incident(1, None),
            _incident(2, {"mobilize/a": "done", "resolve/b": "done"}, "2026-11-27T11:30:00Z"),
            _incident(3, {"mobilize/a": "failed", "diagnose/b": "pending", "diagnose/c": "done"}),
        ]
    )
    assert len(lines) == 4
    start = lines[0].index("TASKS")
    cells = [line[start:].split("  ")[0] for line in lines[1:]]
    assert cells == ["-", "2/2", "1/3, 1 failed"]
    # Every line's title starts in the same column.
    assert {line.index("incident") for line in lines[1:]} == {lines[0].index("TITLE")}
    assert "2026-11-27 11:30:00" in lines[2]
