"""Online anomaly detectors, score-to-detection policies and the name-to-factory registry.

Pure: no Kafka, no clock, no environment. Timestamps are event time, passed in as epoch seconds.
"""

from detectors.bank import Fired, SeriesBank
from detectors.base import Detector, DetectorFactory
from detectors.policy import Decision, ThresholdPolicy
from detectors.registry import DETECTORS, make_detector, restore_detector
from detectors.robust import MedianMad

__all__ = [
    "DETECTORS",
    "Decision",
    "Detector",
    "DetectorFactory",
    "Fired",
    "MedianMad",
    "SeriesBank",
    "ThresholdPolicy",
    "make_detector",
    "restore_detector",
]
