"""Log template mining and log anomaly detection, pure: event time comes from each record."""

from detectors.logs.detectors import (
    ERROR_LEVELS,
    LogDetector,
    LogDetectorConfig,
    LogRule,
    detection_id,
)
from detectors.logs.masks import WILDCARD, Masker, MaskRule, mask_token
from detectors.logs.miner import Match, MinerConfig, Template, TemplateMiner, template_text
from detectors.logs.source import LogSource

__all__ = [
    "ERROR_LEVELS",
    "WILDCARD",
    "LogDetector",
    "LogDetectorConfig",
    "LogRule",
    "LogSource",
    "MaskRule",
    "Masker",
    "Match",
    "MinerConfig",
    "Template",
    "TemplateMiner",
    "detection_id",
    "mask_token",
    "template_text",
]
