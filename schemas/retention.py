"""Internal: the message that asks a stream about one entry of a log it writes (the
``notification-log`` on ``mobilization.deliveries.v1``, the ``automation-log`` on
``incidents.automation-retention.v1``); see :mod:`responders.retention`."""

from __future__ import annotations

from typing import Literal

from schemas.common import Name, Timestamp, WireModel


class PruneEntry(WireModel):
    """Forget the entry ``key`` if its retention has run out (stamp it with the time if it was
    stored before entries recorded it). Sent by a worker's timer to the partition that holds the
    entry, keyed by ``key``: a log's key is not the key of the stream that writes it, so the
    partition is given, not derived from the key."""

    kind: Literal["prune"] = "prune"
    key: Name
    at: Timestamp
