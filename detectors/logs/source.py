"""One log source under watch: its template miner and its detectors, with one versioned state.

>>> from schemas import LogRecord
>>> src = LogSource.create()
>>> src.process([LogRecord(ts=0, service="api", message="started worker 1")])
[]
>>> restored = LogSource.from_state(src.to_state())
>>> restored.miner.templates[0].text
'started worker <*>'
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Self

from detectors.logs.detectors import LogDetector, LogDetectorConfig
from detectors.logs.miner import Match, MinerConfig, TemplateMiner
from schemas import Detection, LogRecord


class LogSource:
    """Mine each record's message, then let the detectors look at it."""

    state_version = 1

    def __init__(self, miner: TemplateMiner, detector: LogDetector) -> None:
        self.miner = miner
        self.detector = detector

    @classmethod
    def create(
        cls,
        miner: MinerConfig | None = None,
        detector: LogDetectorConfig | None = None,
    ) -> Self:
        return cls(TemplateMiner(miner), LogDetector(detector))

    def observe(self, record: LogRecord) -> tuple[Match, list[Detection]]:
        """Mine and check one record."""
        ts = record.ts.timestamp()
        match = self.miner.add(record.message, ts)
        return match, self.detector.observe(record.service, ts, record.level, record.message, match)

    def process(self, records: Iterable[LogRecord]) -> list[Detection]:
        """Mine and check records in order; every detection they trigger."""
        out: list[Detection] = []
        for record in records:
            out.extend(self.observe(record)[1])
        return out

    def to_state(self) -> dict[str, Any]:
        return {
            "version": self.state_version,
            "miner": self.miner.to_state(),
            "detector": self.detector.to_state(),
        }

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> Self:
        if state.get("version") != cls.state_version:
            raise ValueError(f"log source state version {state.get('version')!r} is unknown")
        return cls(
            TemplateMiner.from_state(state["miner"]), LogDetector.from_state(state["detector"])
        )
