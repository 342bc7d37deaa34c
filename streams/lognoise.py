"""The Kafka client's repeated complaints, said once and then counted.

aiokafka logs each failed attempt: with the broker away, ``Unable connect to node``, ``Failed
fetch messages`` and ``Unable to update metadata`` come every 100 ms from each client (about
8,000 ERROR lines a minute from one worker), and a first start logs some 80 lines of leaders
not elected yet. :class:`Repeats` lets through the first warning or error of each message (its
template, whatever its arguments) and then one every ``every_s``, which says how many like it
were held back; anything below a warning passes as it is.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

#: The aiokafka loggers that complain about each attempt (their records do not reach a filter
#: set on the ``aiokafka`` logger: a logger's filters see only its own records).
CLIENT_LOGGERS = (
    "aiokafka",
    "aiokafka.conn",
    "aiokafka.cluster",
    "aiokafka.consumer.consumer",
    "aiokafka.consumer.fetcher",
    "aiokafka.consumer.group_coordinator",
    "aiokafka.producer.producer",
    "aiokafka.producer.sender",
    "aiokafka.admin.client",
)
EVERY_S = 30.0


class Repeats(logging.Filter):
    """The first warning or error of each message template, then one every ``every_s`` (with
    the count of those held back since the last one let through)."""

    def __init__(self, every_s: float = EVERY_S, clock: Callable[[], float] = time.monotonic):
        super().__init__()
        self.every_s = every_s
        self.clock = clock
        self._seen: dict[tuple[str, str], tuple[float, int]] = {}  # -> (let through at, held)

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return True
        key = (record.name, str(record.msg))
        now = self.clock()
        last = self._seen.get(key)
        if last is not None and now - last[0] < self.every_s:
            self._seen[key] = (last[0], last[1] + 1)
            return False
        self._seen[key] = (now, 0)
        if last is not None and last[1]:
            # No ``%`` in what is added: the record's arguments are formatted into it later.
            record.msg = f"{record.msg} ({last[1]} more like it held back in the last "
            record.msg += f"{now - last[0]:.0f} s)"
        return True


def quiet_client_repeats(every_s: float = EVERY_S) -> Repeats:
    """Put one :class:`Repeats` on every aiokafka logger that complains per attempt."""
    repeats = Repeats(every_s)
    for name in CLIENT_LOGGERS:
        logger = logging.getLogger(name)
        for old in [f for f in logger.filters if isinstance(f, Repeats)]:
            logger.removeFilter(old)
        logger.addFilter(repeats)
    return repeats
