"""Runbooks in the catalog: which incidents one applies to, and its tasks, phase by phase.

A runbook's phases follow the lifecycle (``mobilize``, ``diagnose``, ``mitigate``, ``resolve``);
each task has an owner role and is either done by people (``manual``) or by calling a webhook
(``automated``), whose result is recorded on the timeline:

>>> rb = Runbook.model_validate({
...     "title": "Checkout latency",
...     "applies_to": {"services": ["checkout"]},
...     "phases": {"diagnose": [
...         {"id": "traces", "title": "Grab traces", "kind": "automated",
...          "webhook": {"url": "http://127.0.0.1:9000/traces"}}]}})
>>> [(phase, t.id, t.kind.value, t.owner_role) for phase, t in rb.tasks()]
[('diagnose', 'traces', 'automated', 'responder')]
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from schemas.common import Name, Severity

Phase = Literal["mobilize", "diagnose", "mitigate", "resolve"]
PHASES: tuple[Phase, ...] = ("mobilize", "diagnose", "mitigate", "resolve")
"""The phases of a runbook, in lifecycle order."""

OwnerRole = Literal["commander", "scribe", "communications", "responder", "subject_matter_expert"]
"""Who owns a task: one of the incident roles (``responders.lifecycle.ROLES``)."""

Slug = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9-]{0,62}$")]
"""A task id: lower-case letters, digits and dashes, at most 63 characters."""


class _Config(BaseModel):
    """Runbooks are catalog config: frozen, and unknown fields are errors."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class TaskKind(StrEnum):
    """Done by people, or by a webhook call whose result lands on the timeline."""

    MANUAL = "manual"
    AUTOMATED = "automated"


class Webhook(_Config):
    """The call an automated task makes: the incident as a JSON body, with a timeout."""

    url: str
    method: Literal["POST"] = "POST"
    headers: dict[str, str] = Field(default_factory=dict)
    timeout_s: float = Field(default=10.0, gt=0.0, le=120.0)

    @model_validator(mode="after")
    def _http(self) -> Self:
        if not self.url.startswith(("http://", "https://")):
            raise ValueError(f"a webhook url starts with http:// or https://, got {self.url!r}")
        return self


class Task(_Config):
    """One step of a runbook; ``automated`` tasks need a ``webhook``, manual ones have none."""

    id: Slug
    title: str = Field(min_length=1, max_length=200)
    owner_role: OwnerRole = "responder"
    kind: TaskKind = TaskKind.MANUAL
    webhook: Webhook | None = None

    @model_validator(mode="after")
    def _webhook_fits_kind(self) -> Self:
        if self.kind is TaskKind.AUTOMATED and self.webhook is None:
            raise ValueError("an automated task needs a webhook")
        if self.kind is TaskKind.MANUAL and self.webhook is not None:
            raise ValueError("a manual task has no webhook (set kind: automated)")
        return self


class Phases(_Config):
    """The tasks of each phase, in the order they are listed."""

    mobilize: tuple[Task, ...] = ()
    diagnose: tuple[Task, ...] = ()
    mitigate: tuple[Task, ...] = ()
    resolve: tuple[Task, ...] = ()


class AppliesTo(_Config):
    """Which incidents a runbook is for. Each non-empty list must match (services: the incident's
    service; signals: any of its signals; detectors: its detector; severities: its severity);
    an empty ``applies_to`` matches every incident (a catch-all runbook)."""

    services: tuple[Name, ...] = ()
    signals: tuple[Name, ...] = ()
    detectors: tuple[Name, ...] = ()
    severities: tuple[Severity, ...] = ()


class Runbook(_Config):
    """A runbook: its title, which incidents it applies to, and its phases' tasks."""

    title: str = Field(min_length=1, max_length=200)
    applies_to: AppliesTo = Field(default_factory=AppliesTo)
    phases: Phases

    @model_validator(mode="after")
    def _tasks_unique(self) -> Self:
        seen: set[str] = set()
        for _, task in self.tasks():
            if task.id in seen:
                raise ValueError(f"task id {task.id!r} is used twice; task ids are unique")
            seen.add(task.id)
        if not seen:
            raise ValueError("a runbook has at least one task")
        return self

    def tasks(self) -> list[tuple[Phase, Task]]:
        """Every task with its phase, in phase order then listed order."""
        return [(phase, task) for phase in PHASES for task in getattr(self.phases, phase)]
