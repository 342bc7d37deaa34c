"""Silent streams: a series, a service or a cron job's heartbeat whose expected points stop.

Expectations come from two places:

- **learned**, for every series seen regularly: after ``min_intervals`` intervals between its
  points, a series is expected again within ``max(factor * median, floor_s)`` of its last point
  (the median of its last ``keep`` intervals). A series whose recent intervals already hold a
  gap that long is not regular (a batch job, a sparse counter) and is not watched;
- **the catalog**: a service's ``heartbeat.within_s`` (any point of the service) and a named
  heartbeat's ``within_s`` (its series), watched from the first point on.

Time is event time, per partition of the points topic (a service's series share one). The
clock is the newest point time, where a point counts only as far as its own series makes
plausible (at most two of its median intervals past the series' previous point; a series
without a cadence yet moves nothing), and never ahead of the newest broker time of the points
read: one point from the far future moves the clock by its series' cadence, not by a week.

When the partition is live (its clock was within ``live_lag_s`` of the broker time of its last
batch), the wall-clock time since that batch is added: a whole partition that stops is noticed.
A replay (its points far behind the broker time) gets no wall-clock time: pausing a replay is
not an outage.

A silence is reported once (``firing``), with the last point's time, and once more
(``resolved``) when a point of it returns. Pure: ``wall_s`` is always an argument.

>>> w = SilenceWatch(SilenceParams(factor=3.0, floor_s=1.0, min_intervals=3))
>>> ts = np.arange(0.0, 60.0, 10.0)
>>> _ = w.observe(["a|x"] * 6 + ["b|x"] * 6, np.concatenate([ts, ts]), 50.0, 1000.0)
>>> [t.status for t in w.check(1000.0 + 20.0)]  # 10 s cadence, 30 s expected: not yet
[]
>>> _ = w.observe(["b|x"] * 4, np.arange(60.0, 100.0, 10.0), 90.0, 1040.0)
>>> [(t.key, t.status, t.last_ts) for t in w.check(1040.0)]
[('a|x', 'firing', 50.0)]
>>> w.check(1045.0)  # once per silence
[]
>>> [(t.key, t.status) for t in w.observe(["a|x"], np.array([95.0]), 95.0, 1046.0)]
[('a|x', 'resolved')]
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import numba
import numpy as np
from numpy.typing import NDArray

from schemas.catalog import Catalog
from schemas.detections import Detection, DetectionSeverity, DetectionStatus
from schemas.metrics import series_id

#: The metric and label of a named heartbeat's points (``POST /api/heartbeats/{name}``).
HEARTBEAT_METRIC = "heartbeat"
HEARTBEAT_LABEL = "heartbeat"
#: Key prefix of a service's own heartbeat (any point of the service).
SERVICE_KEY = "service:"
#: Seconds of event time between looks for series to forget.
FORGET_EVERY_S = 60.0
#: The detector name of silence detections.
DETECTOR = "silence"
_TEXT = 200


@dataclass(frozen=True)
class SilenceParams:
    """How a learned cadence becomes an expectation, and when wall-clock time counts."""

    factor: float = 5.0
    floor_s: float = 300.0
    min_intervals: int = 5
    keep: int = 9
    live_lag_s: float = 300.0
    learned: bool = True
    #: A silent series not heard of for this long (event time) is forgotten (0: never).
    forget_s: float = 0.0


@dataclass(frozen=True)
class Deadlines:
    """The catalog's expectations: by service, and by series (named heartbeats)."""

    services: Mapping[str, float] = field(default_factory=dict)
    series: Mapping[str, float] = field(default_factory=dict)

    @classmethod
    def of(cls, catalog: Catalog) -> Deadlines:
        """The heartbeats of ``catalog``.

        >>> c = Catalog.model_validate({"services": {"db": {"team": "t", "heartbeat":
        ...     {"within_s": 60}}}, "teams": {"t": {"members": ["a"], "escalation":
        ...     [{"targets": ["a"]}]}}, "people": {"a": {"contacts": [{"channel": "console"}]}},
        ...     "heartbeats": {"backup": {"service": "db", "within_s": 90000}}})
        >>> d = Deadlines.of(c)
        >>> dict(d.services), dict(d.series)
        ({'db': 60.0}, {'db|heartbeat|heartbeat=backup': 90000.0})
        """
        services = {
            name: s.heartbeat.within_s
            for name, s in catalog.services.items()
            if s.heartbeat is not None
        }
        series = {
            heartbeat_series(b.service, name): b.within_s for name, b in catalog.heartbeats.items()
        }
        return cls(services, series)


def _expected(key: str, deadlines: Deadlines | None) -> float | None:
    """The catalog's expectation of series ``key``: its named heartbeat's, else its service's."""
    if deadlines is None:
        return None
    found = deadlines.series.get(key)
    return found if found is not None else deadlines.services.get(key.partition("|")[0])


def heartbeat_series(service: str, name: str) -> str:
    """The series id of the named heartbeat ``name`` of ``service``."""
    return series_id(service, HEARTBEAT_METRIC, {HEARTBEAT_LABEL: name})


Source = Literal["learned", "heartbeat"]


@dataclass(frozen=True)
class Silent:
    """A silence begins (``firing``) or ends (``resolved``) for ``key`` at event time ``at``."""

    key: str
    service: str
    status: Literal["firing", "resolved"]
    at: float
    last_ts: float
    expected_s: float
    source: Source
    median_s: float | None = None


def _median(gaps: list[float]) -> float:
    ordered = sorted(gaps)
    n = len(ordered)
    if not n:
        return math.nan
    return ordered[n // 2] if n % 2 else (ordered[n // 2 - 1] + ordered[n // 2]) / 2.0


class SilenceWatch:
    """The watch over one partition's series: their last points, cadences and silences.

    Each series has a slot in arrays (last point, recent intervals, their median, deadline,
    whether it is reported silent), so a batch's per-series work is one compiled pass over the
    slots it touches (``_take_slots``); only the series whose silence ends come back to Python.
    """

    STATE_VERSION = 1

    def __init__(self, params: SilenceParams | None = None) -> None:
        self.params = params or SilenceParams()
        self._slot: dict[str, int] = {}  # series -> slot
        self._keys: list[str] = []  # slot -> series ("": free)
        self._free: list[int] = []
        keep = self.params.keep
        self._last = np.full(0, math.nan)  # NaN: a free slot
        self._gaps = np.zeros((0, keep))  # the recent intervals, oldest first
        self._ngaps = np.zeros(0, dtype=np.int64)
        self._medians = np.full(0, math.nan)  # NaN: no interval yet
        #: The deadline of each series watched (its last point plus the expectation; NaN: none).
        self._due = np.full(0, math.nan)
        self._silent = np.zeros(0, dtype=np.bool_)  # its key is in ``_firing``
        self._service_of = np.zeros(0, dtype=np.int64)
        self._service_index: dict[str, int] = {}
        self._service_names: list[str] = []
        self._service_last = np.full(0, -math.inf)  # -inf: no point yet
        self._service_silent = np.zeros(0, dtype=np.bool_)
        #: Keys reported silent, with the expectation they were judged by.
        self._firing: dict[str, float] = {}
        self.clock = -math.inf
        self._arrived_wall: float | None = None
        self._lag = math.inf
        self._forgot_at = -math.inf

    def __len__(self) -> int:
        return len(self._slot)

    # -- slots -------------------------------------------------------------------------------

    def _service(self, name: str) -> int:
        found = self._service_index.get(name)
        if found is not None:
            return found
        found = self._service_index[name] = len(self._service_names)
        self._service_names.append(name)
        if found >= len(self._service_last):
            extra = max(16, len(self._service_last) // 2)
            self._service_last = np.concatenate([self._service_last, np.full(extra, -math.inf)])
            self._service_silent = np.concatenate(
                [self._service_silent, np.zeros(extra, dtype=np.bool_)]
            )
        return found

    def _new_slot(self, key: str) -> int:
        if self._free:
            slot = self._free.pop()
            self._keys[slot] = key
        else:
            slot = len(self._keys)
            self._keys.append(key)
            if slot >= len(self._last):
                self._grow(max(64, len(self._last) // 2))
        self._slot[key] = slot
        self._service_of[slot] = self._service(key.partition("|")[0])
        self._silent[slot] = key in self._firing
        return slot

    def _grow(self, extra: int) -> None:
        self._last = np.concatenate([self._last, np.full(extra, math.nan)])
        self._gaps = np.concatenate([self._gaps, np.zeros((extra, self.params.keep))])
        self._ngaps = np.concatenate([self._ngaps, np.zeros(extra, dtype=np.int64)])
        self._medians = np.concatenate([self._medians, np.full(extra, math.nan)])
        self._due = np.concatenate([self._due, np.full(extra, math.nan)])
        self._silent = np.concatenate([self._silent, np.zeros(extra, dtype=np.bool_)])
        self._service_of = np.concatenate([self._service_of, np.zeros(extra, dtype=np.int64)])

    def _slots(self, keys: Sequence[str]) -> NDArray[np.intp]:
        """The slot of each of ``keys`` (distinct); new keys take free slots, then new ones."""
        get = self._slot.get
        slots = [get(k, -1) for k in keys]
        new = [i for i, s in enumerate(slots) if s < 0]
        free = len(self._free)
        for i in new[:free]:
            slots[i] = self._new_slot(keys[i])
        if len(new) > free:  # a fleet's first points: their slots in one step
            self._append_slots(keys, new[free:], slots)
        return np.asarray(slots, dtype=np.intp)

    def _append_slots(self, keys: Sequence[str], new: list[int], slots: list[int]) -> None:
        """New slots after the last for ``keys[i]`` of each ``i`` in ``new`` (into ``slots``),
        as ``_new_slot`` gives them one after another."""
        first = len(self._keys)
        added = [keys[i] for i in new]
        size = len(self._last)
        while size < first + len(added):
            size += max(64, size // 2)
        if size > len(self._last):
            self._grow(size - len(self._last))
        at = range(first, first + len(added))
        self._keys += added
        self._slot.update(zip(added, at, strict=True))
        for i, slot in zip(new, at, strict=True):
            slots[i] = slot
        service = self._service
        self._service_of[first : first + len(added)] = [service(k.partition("|")[0]) for k in added]
        firing = self._firing
        self._silent[first : first + len(added)] = [k in firing for k in added]

    def _gaps_of(self, slot: int) -> list[float]:
        return self._gaps[slot, : self._ngaps[slot]].tolist()  # type: ignore[no-any-return]

    # -- state -------------------------------------------------------------------------------

    def to_state(self) -> dict[str, Any]:
        """The watch as plain data (JSON), for its checkpoint: per series ``[last point, its
        deadline or None, its silence's expectation or None, *recent intervals]``, per service
        ``[last point, its silence's expectation or None]``.

        >>> w = SilenceWatch(SilenceParams(floor_s=1.0, min_intervals=2))
        >>> _ = w.observe(["a|x"] * 4, np.array([0.0, 10.0, 20.0, 30.0]), 30.0, 100.0)
        >>> again = SilenceWatch.from_state(w.params, w.to_state())
        >>> again.to_state() == w.to_state(), again.check(200.0) == w.check(200.0)
        (True, True)
        """

        def finite(x: float) -> float | None:
            return x if math.isfinite(x) else None

        used = len(self._keys)
        last, due = self._last[:used].tolist(), self._due[:used].tolist()
        gaps, held = self._gaps[:used].tolist(), self._ngaps[:used].tolist()
        firing = self._firing.get
        series = {
            key: [last[s], None if math.isnan(due[s]) else due[s], firing(key), *gaps[s][: held[s]]]
            for key, s in self._slot.items()
        }
        services = {
            name: [float(last), self._firing.get(SERVICE_KEY + name)]
            for name, last in zip(self._service_names, self._service_last.tolist(), strict=False)
            if last > -math.inf
        }
        return {
            "v": self.STATE_VERSION,
            "clock": finite(self.clock),
            "lag": finite(self._lag),
            "arrived": self._arrived_wall,
            "series": series,
            "services": services,
        }

    @classmethod
    def from_state(cls, params: SilenceParams, state: Mapping[str, Any]) -> SilenceWatch:
        """The watch ``to_state`` saved (an empty one for a state of another version)."""
        watch = cls(params)
        if state.get("v") != cls.STATE_VERSION:
            return watch
        clock, lag = state.get("clock"), state.get("lag")
        watch.clock = -math.inf if clock is None else float(clock)
        watch._lag = math.inf if lag is None else float(lag)
        arrived = state.get("arrived")
        watch._arrived_wall = None if arrived is None else float(arrived)
        for key, (last, due, firing, *gaps) in state.get("series", {}).items():
            if firing is not None:
                watch._firing[key] = float(firing)
            s = watch._new_slot(key)
            watch._last[s] = float(last)
            if due is not None:
                watch._due[s] = float(due)
            kept = [float(g) for g in gaps][-params.keep :] if params.keep else []
            watch._gaps[s, : len(kept)] = kept
            watch._ngaps[s] = len(kept)
            if kept:
                watch._medians[s] = _median(kept)
        for service, (last, firing) in state.get("services", {}).items():
            k = watch._service(service)
            watch._service_last[k] = float(last)
            if firing is not None:
                watch._firing[SERVICE_KEY + service] = float(firing)
                watch._service_silent[k] = True
        return watch

    # -- expectations and time ---------------------------------------------------------------

    def expected_s(self, key: str) -> float | None:
        """The learned expectation of series ``key`` (None: not regular, or not seen enough)."""
        s = self._slot.get(key)
        gaps = [] if s is None else self._gaps_of(s)
        p = self.params
        if not p.learned or len(gaps) < p.min_intervals or s is None:
            return None
        expected = max(p.factor * float(self._medians[s]), p.floor_s)
        return None if max(gaps) >= expected else expected

    def now(self, wall_s: float) -> float:
        """The partition's event time at wall-clock ``wall_s`` (see the module docstring)."""
        if self._arrived_wall is None or self._lag > self.params.live_lag_s:
            return self.clock
        return self.clock + max(wall_s - self._arrived_wall, 0.0)

    # -- points ------------------------------------------------------------------------------

    def observe(
        self,
        series: Sequence[str],
        ts: NDArray[np.float64],
        received_s: float,
        wall_s: float,
        deadlines: Deadlines | None = None,
    ) -> list[Silent]:
        """Take a batch's points (``series[i]`` at ``ts[i]``, newest broker time
        ``received_s``); the silences they end."""
        spans: dict[str, list[float]] = {}
        for key, t in zip(series, ts.tolist(), strict=True):
            span = spans.get(key)
            if span is None:
                spans[key] = [t, t, 1.0]
            else:
                span[0], span[1], span[2] = min(span[0], t), max(span[1], t), span[2] + 1.0
        if not spans:
            return []
        lo, hi, count = np.array(list(spans.values()), dtype=np.float64).T
        return self._take(list(spans), lo, hi, count, received_s, wall_s, deadlines)

    def observe_rows(
        self,
        rows: NDArray[np.intp],
        ts: NDArray[np.float64],
        name_of: Callable[[int], str],
        received_s: float,
        wall_s: float,
        deadlines: Deadlines | None = None,
    ) -> list[Silent]:
        """``observe`` for points given by row numbers (``name_of(row)`` is the series id):
        the per-point work is vectorized, what is left is per series."""
        if not len(rows):
            return []
        n = int(rows.max()) + 1
        lo, hi = np.full(n, np.inf), np.full(n, -np.inf)
        np.minimum.at(lo, rows, ts)
        np.maximum.at(hi, rows, ts)
        counts = np.bincount(rows, minlength=n)
        seen = np.flatnonzero(counts)
        keys = list(map(name_of, seen.tolist()))
        return self._take(
            keys, lo[seen], hi[seen], counts[seen].astype(np.float64), received_s, wall_s,
            deadlines,
        )  # fmt: skip

    def _take(
        self,
        keys: list[str],
        lo: NDArray[np.float64],
        hi: NDArray[np.float64],
        count: NDArray[np.float64],
        received_s: float,
        wall_s: float,
        deadlines: Deadlines | None,
    ) -> list[Silent]:
        """Each series' points of a batch as (oldest, newest, count): a batch brings one or a
        few points of each series, and what is done here is per series, not per point."""
        slots = self._slots(keys)
        catalog_s, bound = self._catalog(slots, deadlines)
        p = self.params
        ends = np.zeros((len(slots), 2), dtype=np.bool_)  # a series' end, a service's end
        at = np.zeros((len(slots), 4))  # their first point back and last point before
        reached = _take_slots(
            slots, lo, hi, count.astype(np.int64), catalog_s, bound, self.clock,
            (self._last, self._gaps, self._ngaps, self._medians, self._due, self._silent),
            (self._service_of, self._service_last, self._service_silent),
            (p.factor, p.floor_s, float(p.min_intervals), float(p.learned)), ends, at,
        )  # fmt: skip
        ended: list[Silent] = []
        for i in np.flatnonzero(ends.any(axis=1)).tolist():
            key = keys[i]
            service = key.partition("|")[0]
            if ends[i, 0]:
                source: Source = "heartbeat" if not math.isnan(catalog_s[i]) else "learned"
                ended.append(self._ended(key, service, float(at[i, 0]), float(at[i, 1]), source))
            if ends[i, 1]:
                skey = SERVICE_KEY + service
                ended.append(
                    self._ended(skey, service, float(at[i, 2]), float(at[i, 3]), "heartbeat")
                )
        # A live partition keeps the wall-clock time it gained since its last batch, even when
        # this batch's points move nothing (a new series): else each such batch set it back.
        gained = self.now(wall_s)
        self.clock = max(self.clock, min(max(gained, reached), received_s))
        self._lag = received_s - self.clock
        self._arrived_wall = wall_s
        return ended

    def _catalog(
        self, slots: NDArray[np.intp], deadlines: Deadlines | None
    ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """The catalog's expectation of each slot's series (its named heartbeat's; NaN:
        none), and that or its service's (what lets a point move the clock before the series
        has a cadence)."""
        nan = np.full(len(slots), math.nan)
        if deadlines is None or not (deadlines.series or deadlines.services):
            return nan, nan
        by_slot = np.full(len(self._last), math.nan)
        for key, within_s in deadlines.series.items():
            s = self._slot.get(key)
            if s is not None:
                by_slot[s] = within_s
        by_service = np.full(len(self._service_names), math.nan)
        for name, within_s in deadlines.services.items():
            k = self._service_index.get(name)
            if k is not None:
                by_service[k] = within_s
        mine = by_slot[slots]
        return mine, np.where(np.isnan(mine), by_service[self._service_of[slots]], mine)

    def _ended(self, key: str, service: str, at: float, before: float, source: Source) -> Silent:
        return Silent(key, service, "resolved", at, before, self._firing.pop(key), source)

    # -- silences ----------------------------------------------------------------------------

    def check(self, wall_s: float, deadlines: Deadlines | None = None) -> list[Silent]:
        """The silences that begin by the partition's event time at ``wall_s``: each key once,
        until a point of it returns."""
        now = self.now(wall_s)
        found: list[Silent] = []
        used = len(self._keys)
        for s in np.flatnonzero((self._due[:used] < now) & ~self._silent[:used]).tolist():
            key, due, last = self._keys[s], float(self._due[s]), float(self._last[s])
            catalog_s = deadlines.series.get(key) if deadlines is not None else None
            source: Source = "heartbeat" if catalog_s is not None else "learned"
            median = float(self._medians[s])
            found.append(
                Silent(
                    key, key.partition("|")[0], "firing", due, last, due - last, source,
                    None if math.isnan(median) else median,
                )
            )  # fmt: skip
        for service, within_s in deadlines.services.items() if deadlines is not None else ():
            key = SERVICE_KEY + service
            k = self._service_index.get(service)
            heard = None if k is None else float(self._service_last[k])
            if heard is None or heard == -math.inf:
                continue
            if heard + within_s < now and key not in self._firing:
                found.append(
                    Silent(key, service, "firing", heard + within_s, heard, within_s, "heartbeat")
                )
        for silent in found:
            self._firing[silent.key] = silent.expected_s
            self._mark(silent.key, True)
        self._forget(now)
        return sorted(found, key=lambda s: (s.at, s.key))

    def _mark(self, key: str, silent: bool) -> None:
        """Mirror whether ``key`` is in ``_firing`` where the compiled pass reads it."""
        s = self._slot.get(key)
        if s is not None:
            self._silent[s] = silent
        elif key.startswith(SERVICE_KEY):
            k = self._service_index.get(key[len(SERVICE_KEY) :])
            if k is not None:
                self._service_silent[k] = silent

    def unfire(self, keys: Sequence[str]) -> None:
        """Forget that ``keys`` were reported silent (their report did not get out): the next
        ``check`` reports them again."""
        for key in keys:
            if self._firing.pop(key, None) is not None:
                self._mark(key, False)

    def _forget(self, now: float) -> None:
        """Forget the series not heard of for ``forget_s``, looking at most once a minute of
        event time (the look reads every series)."""
        forget_s = self.params.forget_s
        if forget_s <= 0 or now < self._forgot_at + FORGET_EVERY_S:
            return
        self._forgot_at = now
        used = len(self._keys)
        gone = np.flatnonzero(self._last[:used] < now - forget_s)
        for s in gone.tolist():
            key = self._keys[s]
            del self._slot[key]
            self._firing.pop(key, None)
            self._keys[s] = ""
        self._last[gone] = math.nan
        self._ngaps[gone] = 0
        self._medians[gone] = math.nan
        self._due[gone] = math.nan
        self._silent[gone] = False
        self._free = sorted(set(self._free) | set(gone.tolist()), reverse=True)


@numba.njit(cache=True, nogil=True)
def _take_slots(
    slots: Any,
    lo: Any,
    hi: Any,
    count: Any,
    catalog_s: Any,
    bound: Any,
    clock: float,
    series: Any,
    services: Any,
    params: Any,
    ends: Any,
    at: Any,
) -> float:
    """One pass over a batch's series (slot ``slots[i]``, points from ``lo[i]`` to ``hi[i]``,
    ``count[i]`` of them), in order: how far they move the clock (the largest plausible point,
    see ``_plausible`` in the module docstring), and each series' and service's state moved
    on. ``ends[i]`` says whether the series' silence (0) or its service's (1) ended there, and
    ``at[i]`` the first point back and the last one before, for each."""
    last, gaps, ngaps, medians, due, silent = series
    service_of, service_last, service_silent = services
    factor, floor_s, min_intervals, learned = params
    keep = gaps.shape[1]
    scratch = np.empty(keep)
    reached = -np.inf
    for i in range(slots.shape[0]):
        s, a, b, c = slots[i], lo[i], hi[i], count[i]
        before = last[s]
        known = not np.isnan(before)
        # How far this series' points may move the clock.
        if not known:
            reach = b if clock == -np.inf else min(a, clock)
        else:
            m = medians[s]
            limit = 2.0 * m if not np.isnan(m) else bound[i]
            step = (b - a) / (c - 1) if c > 1 else 0.0
            if np.isnan(limit) or b <= before or (a > before and a - before > limit):
                reach = before
            else:
                reach = b if step <= limit else max(a, before)
        reached = max(reached, reach)
        # The series' cadence and deadline.
        if not known or b > before:
            n = ngaps[s]
            if known and not silent[s] and a > before:
                n = _push(gaps[s], n, a - before)  # a silence is no interval of the cadence
            if c > 1 and b > a:
                for _ in range(min(c - 1, keep)):
                    n = _push(gaps[s], n, (b - a) / (c - 1))
            ngaps[s] = n
            if n > 0:
                medians[s] = _median_of(gaps[s, :n], scratch)
            last[s] = b
            expected = catalog_s[i]
            if np.isnan(expected) and learned and n >= min_intervals and n > 0:
                expected = max(factor * medians[s], floor_s)
                if gaps[s, :n].max() >= expected:
                    expected = np.nan
            due[s] = b + expected  # NaN: not watched
            if silent[s]:
                silent[s] = False
                first = a if not known or a > before else b
                ends[i, 0] = True
                at[i, 0], at[i, 1] = first, before if known and before != 0.0 else first
        # The service's last point.
        k = service_of[s]
        heard = service_last[k]
        if b > heard:
            service_last[k] = b
            if service_silent[k]:
                service_silent[k] = False
                ends[i, 1] = True
                at[i, 2], at[i, 3] = (a if a > heard else b), heard
    return reached


@numba.njit(cache=True, nogil=True)
def _push(ring: Any, n: int, gap: float) -> int:
    """Append ``gap`` to the intervals ``ring[:n]``, the oldest dropped when full; the count."""
    if n < ring.shape[0]:
        ring[n] = gap
        return n + 1
    for j in range(n - 1):
        ring[j] = ring[j + 1]
    ring[n - 1] = gap
    return n


@numba.njit(cache=True, nogil=True)
def _median_of(gaps: Any, ordered: Any) -> float:
    """The median of ``gaps``, sorted into ``ordered`` (scratch room, at least as long)."""
    n = gaps.shape[0]
    for j in range(n):  # insertion sort: a few intervals, and no allocation
        g, k = gaps[j], j
        while k > 0 and ordered[k - 1] > g:
            ordered[k] = ordered[k - 1]
            k -= 1
        ordered[k] = g
    return float(ordered[n // 2] if n % 2 else (ordered[n // 2 - 1] + ordered[n // 2]) / 2.0)


def _labels(series: str) -> dict[str, str]:
    """The labels of a series id (``service|metric|k=v,...``), as far as the id tells them."""
    text = series.split("|", 2)[2] if series.count("|") >= 2 else ""
    pairs = (item.partition("=") for item in text.split(",") if "=" in item)
    return {k[:_TEXT]: v[:_TEXT] for k, _, v in pairs if k}


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).isoformat()


def detection(silent: Silent) -> Detection:
    """The ``silence`` detection of a silence beginning or ending; its id depends only on the
    key, the last point before the silence and the status, so a replay sends the same one.

    >>> gone = Silent("api|rps|zone=a", "api", "firing", 350.0, 300.0, 50.0, "learned", 10.0)
    >>> d = detection(gone)
    >>> d.signal, d.detector, d.labels, d.impact_started_at.timestamp(), d.ts.timestamp()
    ('rps silent', 'silence', {'zone': 'a'}, 310.0, 350.0)

    A key that is not a series id (no ``|``) is named as it is rather than failing the watch
    (seen once in a benchmark, from a row emptied under the watch):

    >>> detection(Silent("odd", "api", "firing", 350.0, 300.0, 50.0, "learned", 10.0)).signal
    'odd silent'
    """
    service_wide = silent.key.startswith(SERVICE_KEY)
    parts = silent.key.split("|", 2)
    metric = "" if service_wide else (parts[1] if len(parts) > 1 else parts[0])
    labels = {} if service_wide else _labels(silent.key)
    name = labels.get(HEARTBEAT_LABEL) if metric == HEARTBEAT_METRIC else None
    signal = "heartbeat" if service_wide else (f"heartbeat {name}" if name else f"{metric} silent")
    digest = hashlib.sha256(
        f"{silent.key}\x00{silent.last_ts!r}\x00{silent.status}".encode("utf-8", "surrogatepass")
    ).hexdigest()[:20]
    first_missing = silent.last_ts + (silent.median_s or 0.0)
    firing = silent.status == "firing"
    fields: dict[str, Any] = dict(
        id=f"sil-{digest}",
        ts=datetime.fromtimestamp(silent.at, tz=UTC),
        service=silent.service,
        signal=signal[:_TEXT],
        detector=DETECTOR,
        score=1.0,
        severity=DetectionSeverity.ERROR
        if silent.source == "heartbeat"
        else DetectionSeverity.WARNING,
        impact_started_at=datetime.fromtimestamp(first_missing, tz=UTC) if firing else None,
        labels=labels,
        context={
            "series": silent.key[:_TEXT],
            "last_point_at": _iso(silent.last_ts),
            "expected_within_s": silent.expected_s,
            "cadence": silent.source,
            **({"median_interval_s": silent.median_s} if silent.median_s else {}),
        },
        status=DetectionStatus.FIRING if firing else DetectionStatus.RESOLVED,
    )
    try:
        return Detection.model_validate(fields)
    except ValueError:  # labels read back from a series id that do not pass as labels
        return Detection.model_validate({**fields, "labels": {}})
