"""Wire contracts: frozen pydantic v2 models for everything that crosses Kafka or HTTP.

Pure: imports only the standard library and pydantic, does no I/O and never reads the clock.
"""

from schemas.aggregates import DurationStats, MttrAggregate, MttrContribution
from schemas.catalog import Catalog, ContactMethod, EscalationStep, Person, Service, Team
from schemas.commands import Command, CommandKind
from schemas.common import Severity, Timestamp, WireModel, format_errors
from schemas.deadletter import DeadLetter
from schemas.detections import Detection, DetectionSeverity, DetectionStatus
from schemas.incidents import Incident, IncidentEvent, IncidentEventKind, IncidentStatus
from schemas.logs import LogBatch, LogRecord
from schemas.metrics import MetricBatch, MetricPoint
from schemas.mobilization import Channel, Page, Receipt, ReceiptOutcome
from schemas.runbooks import PHASES, Runbook, TaskKind

__all__ = [
    "PHASES",
    "Catalog",
    "Channel",
    "Command",
    "CommandKind",
    "ContactMethod",
    "DeadLetter",
    "Detection",
    "DetectionSeverity",
    "DetectionStatus",
    "DurationStats",
    "EscalationStep",
    "Incident",
    "IncidentEvent",
    "IncidentEventKind",
    "IncidentStatus",
    "LogBatch",
    "LogRecord",
    "MetricBatch",
    "MetricPoint",
    "MttrAggregate",
    "MttrContribution",
    "Page",
    "Person",
    "Receipt",
    "ReceiptOutcome",
    "Runbook",
    "Service",
    "Severity",
    "TaskKind",
    "Team",
    "Timestamp",
    "WireModel",
    "format_errors",
]
