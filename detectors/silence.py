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
    """The watch over one partition's series: their last points, cadences and silences."""

    def __init__(self, params: SilenceParams | None = None) -> None:
        self.params = params or SilenceParams()
        self._last: dict[str, float] = {}
        self._gaps: dict[str, list[float]] = {}
        self._medians: dict[str, float] = {}
        #: The learned deadline of each regular series (its last point plus the expectation).
        self._due: dict[str, float] = {}
        #: Keys reported silent, with the expectation they were judged by.
        self._firing: dict[str, float] = {}
        self._services: dict[str, float] = {}
        self.clock = -math.inf
        self._arrived_wall: float | None = None
        self._lag = math.inf
        self._forgot_at = -math.inf

    def __len__(self) -> int:
        return len(self._last)

    STATE_VERSION = 1

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

        services = {k: [t, self._firing.get(SERVICE_KEY + k)] for k, t in self._services.items()}
        return {
            "v": self.STATE_VERSION,
            "clock": finite(self.clock),
            "lag": finite(self._lag),
            "arrived": self._arrived_wall,
            "series": {
                k: [t, self._due.get(k), self._firing.get(k), *self._gaps.get(k, [])]
                for k, t in self._last.items()
            },
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
            watch._last[key] = float(last)
            if due is not None:
                watch._due[key] = float(due)
            if firing is not None:
                watch._firing[key] = float(firing)
            if gaps:
                watch._gaps[key] = [float(g) for g in gaps]
                watch._medians[key] = _median(watch._gaps[key])
        for service, (last, firing) in state.get("services", {}).items():
            watch._services[service] = float(last)
            if firing is not None:
                watch._firing[SERVICE_KEY + service] = float(firing)
        return watch

    def expected_s(self, key: str) -> float | None:
        """The learned expectation of series ``key`` (None: not regular, or not seen enough)."""
        gaps = self._gaps.get(key, [])
        p = self.params
        if not p.learned or len(gaps) < p.min_intervals:
            return None
        expected = max(p.factor * self._medians[key], p.floor_s)
        return None if max(gaps) >= expected else expected

    def now(self, wall_s: float) -> float:
        """The partition's event time at wall-clock ``wall_s`` (see the module docstring)."""
        if self._arrived_wall is None or self._lag > self.params.live_lag_s:
            return self.clock
        return self.clock + max(wall_s - self._arrived_wall, 0.0)

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
        return self._take(spans, received_s, wall_s, deadlines)

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
        spans = {
            name_of(r): [a, b, c]
            for r, a, b, c in zip(
                seen.tolist(), lo[seen].tolist(), hi[seen].tolist(), counts[seen].tolist(),
                strict=True,
            )
        }  # fmt: skip
        return self._take(spans, received_s, wall_s, deadlines)

    def _take(
        self,
        spans: dict[str, list[float]],
        received_s: float,
        wall_s: float,
        deadlines: Deadlines | None,
    ) -> list[Silent]:
        """Each series' points of a batch as (oldest, newest, count): a batch brings one or a
        few points of each series, and what is done here is per series, not per point."""
        if not spans:
            return []
        ended: list[Silent] = []
        reached = -math.inf
        for key, (lo, hi, count) in spans.items():
            reached = max(reached, self._plausible(key, lo, hi, count, deadlines))
            ended += self._series(key, lo, hi, int(count), deadlines)
            service = key.partition("|")[0]
            before = self._services.get(service, -math.inf)
            if hi > before:
                self._services[service] = hi
                skey = SERVICE_KEY + service
                if skey in self._firing:
                    first = lo if lo > before else hi
                    ended.append(self._ended(skey, service, first, before, "heartbeat"))
        # A live partition keeps the wall-clock time it gained since its last batch, even when
        # this batch's points move nothing (a new series): else each such batch set it back.
        gained = self.now(wall_s)
        self.clock = max(self.clock, min(max(gained, reached), received_s))
        self._lag = received_s - self.clock
        self._arrived_wall = wall_s
        return ended

    def _plausible(
        self, key: str, lo: float, hi: float, count: float, deadlines: Deadlines | None
    ) -> float:
        """How far a series' points (``count`` from ``lo`` to ``hi``) may move the clock: as far
        as each step from the one before is within two of its median intervals, or, before it
        has a cadence, within the catalog's expectation of it (its heartbeat's, else its
        service's); not past its last point otherwise. The first point of a partition sets the
        clock."""
        last = self._last.get(key)
        if last is None:
            return hi if self.clock == -math.inf else min(lo, self.clock)
        median = self._medians.get(key)
        bound = 2.0 * median if median is not None else _expected(key, deadlines)
        if bound is None or hi <= last:
            return last
        if lo > last and lo - last > bound:
            return last
        step = (hi - lo) / (count - 1) if count > 1 else 0.0
        return hi if step <= bound else max(lo, last)

    def _series(
        self, key: str, lo: float, hi: float, count: int, deadlines: Deadlines | None
    ) -> list[Silent]:
        last = self._last.get(key)
        if last is not None and hi <= last:
            return []
        silent = key in self._firing
        gaps = self._gaps.setdefault(key, [])
        if last is not None and not silent and lo > last:
            gaps.append(lo - last)  # a silence is no interval of the cadence
        if count > 1 and hi > lo:
            gaps.extend([(hi - lo) / (count - 1)] * min(count - 1, self.params.keep))
        if len(gaps) > self.params.keep:
            del gaps[: len(gaps) - self.params.keep]
        if gaps:
            self._medians[key] = _median(gaps)
        self._last[key] = hi
        catalog_s = deadlines.series.get(key) if deadlines is not None else None
        expected = catalog_s if catalog_s is not None else self.expected_s(key)
        if expected is None:
            self._due.pop(key, None)
        else:
            self._due[key] = hi + expected
        if not silent:
            return []
        source: Source = "heartbeat" if catalog_s is not None else "learned"
        first = lo if last is None or lo > last else hi
        return [self._ended(key, key.partition("|")[0], first, last or first, source)]

    def _ended(self, key: str, service: str, at: float, before: float, source: Source) -> Silent:
        return Silent(key, service, "resolved", at, before, self._firing.pop(key), source)

    def check(self, wall_s: float, deadlines: Deadlines | None = None) -> list[Silent]:
        """The silences that begin by the partition's event time at ``wall_s``: each key once,
        until a point of it returns."""
        now = self.now(wall_s)
        found: list[Silent] = []
        for key, due in self._due.items():
            if due < now and key not in self._firing:
                last = self._last[key]
                catalog_s = deadlines.series.get(key) if deadlines is not None else None
                source: Source = "heartbeat" if catalog_s is not None else "learned"
                median = self._medians.get(key)
                found.append(
                    Silent(
                        key, key.partition("|")[0], "firing", due, last, due - last, source, median
                    )
                )
        for service, within_s in deadlines.services.items() if deadlines is not None else ():
            key = SERVICE_KEY + service
            heard = self._services.get(service)
            if heard is not None and heard + within_s < now and key not in self._firing:
                found.append(
                    Silent(key, service, "firing", heard + within_s, heard, within_s, "heartbeat")
                )
        for s in found:
            self._firing[s.key] = s.expected_s
        self._forget(now)
        return sorted(found, key=lambda s: (s.at, s.key))

    def unfire(self, keys: Sequence[str]) -> None:
        """Forget that ``keys`` were reported silent (their report did not get out): the next
        ``check`` reports them again."""
        for key in keys:
            self._firing.pop(key, None)

    def _forget(self, now: float) -> None:
        """Forget the series not heard of for ``forget_s``, looking at most once a minute of
        event time (the look reads every series)."""
        forget_s = self.params.forget_s
        if forget_s <= 0 or now < self._forgot_at + FORGET_EVERY_S:
            return
        self._forgot_at = now
        gone = [k for k, last in self._last.items() if last < now - forget_s]
        for key in gone:
            del self._last[key]
            self._gaps.pop(key, None)
            self._medians.pop(key, None)
            self._due.pop(key, None)
            self._firing.pop(key, None)


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
    """
    service_wide = silent.key.startswith(SERVICE_KEY)
    metric = "" if service_wide else silent.key.split("|", 2)[1]
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
