"""``detect``: metric points in (``metrics.points.v1``), detections out (``detections.v1``);
the service is :mod:`streams.detect.service`."""

from streams.detect.service import Detect, attach

__all__ = ["Detect", "attach"]
