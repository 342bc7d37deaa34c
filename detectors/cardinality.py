"""How many series a points partition watches: limits on new series, and when idle ones go.

Series ids carry their labels, so one careless label (a request id, a timestamp) makes every
point a new series, each holding a row of detector state. ``SeriesLimits`` bounds the rows a
service and a partition may hold, and frees a series' row once it has seen no point for
``idle_s`` of event time (``RoutedBanks.evict_idle``). A point of a new series beyond a limit
is refused with the reason (``refusal``); series already watched are never refused.
"""

from __future__ import annotations

from dataclasses import dataclass

#: The limits' names, as ``Refusal.limit`` and the worker's counters have them.
PER_SERVICE = "per_service"
PER_PARTITION = "per_partition"


@dataclass(frozen=True)
class SeriesLimits:
    """Most series per service and per partition; idle time after which a series is evicted
    (0: never); how much event time passes between two sweeps for idle series."""

    per_service: int = 10_000
    per_partition: int = 200_000
    idle_s: float = 3 * 86_400.0
    sweep_s: float = 60.0

    def __post_init__(self) -> None:
        if self.per_service < 1 or self.per_partition < 1:
            raise ValueError("series limits are at least 1")
        if self.idle_s < 0 or self.sweep_s < 0:
            raise ValueError("idle_s and sweep_s are not negative")


@dataclass(frozen=True)
class Refusal:
    """A new series refused: which limit (``PER_SERVICE`` or ``PER_PARTITION``), and why."""

    limit: str
    reason: str


def refusal(
    service: str, of_service: int, on_partition: int, limits: SeriesLimits
) -> Refusal | None:
    """Whether a new series of ``service`` may take a row, given the series the service and the
    partition already hold (None: it may).

    >>> refusal("api", 9, 100, SeriesLimits(per_service=10)) is None
    True
    >>> refusal("api", 10, 100, SeriesLimits(per_service=10)).limit
    'per_service'
    """
    if on_partition >= limits.per_partition:
        return Refusal(
            PER_PARTITION,
            f"series limit: the partition already holds {on_partition} series, the most it may "
            f"hold (max_series_per_partition={limits.per_partition}); new series of service "
            f"{service!r} refused",
        )
    if of_service >= limits.per_service:
        return Refusal(
            PER_SERVICE,
            f"series limit: service {service!r} already has {of_service} series, the most one "
            f"service may have (max_series_per_service={limits.per_service})",
        )
    return None
