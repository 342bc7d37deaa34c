"""One agent per module; each exposes ``attach(pipeline)``."""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger(__name__)


class FirstInput:
    """Logs an agent's first input after the worker started (topic, partition, offset), once:
    after a crash and restart the worker log then says which stages have resumed and which
    still wait for input.

    >>> import types
    >>> first = FirstInput("open_incidents")
    >>> message = types.SimpleNamespace(topic="detections.v1", partition=1, offset=7)
    >>> first(message), first(message)
    (True, False)
    """

    def __init__(self, agent: str) -> None:
        self.agent = agent
        self.seen = False

    def __call__(self, message: Any) -> bool:
        """Whether this was the first input (and so was logged)."""
        if self.seen:
            return False
        self.seen = True
        log.info(
            "%s: first input since start: %s[%s]@%s",
            self.agent, message.topic, message.partition, message.offset,
        )  # fmt: skip
        return True
