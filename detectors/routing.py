"""Per-series detector rules: the series an operator names get their own detector and policy.

One detector for every series is the right start, but some series are known: an error ratio has
an SLO, a disk has a hard limit, a batch job's heartbeat must not stop. ``RoutedBanks`` holds a
``SeriesBank`` per rule and one for everything else, and sends each new series to the first rule
whose service and metric patterns (shell-style, as in ``fnmatch``) both match it, or to the
default. A series keeps its bank for as long as this object lives.

Rows handed out are global: row ``r`` of bank ``k`` is ``k + banks * r``. Checkpoint blocks of
the default bank keep their plain number as key (``"7"``, or ``"7.1"`` for a block's second part),
so checkpoints written before any rule existed restore as they were; a rule's blocks are keyed
``"<rule name>/<block>"``. A block
whose rule is gone, or whose rule now has another configuration, is counted as stale and its
series start afresh wherever the rules now send them.

New series are admitted within ``SeriesLimits`` (``admit``), counted per service over every
bank; ``evict_idle`` frees the rows of series idle for the limits' ``idle_s``.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from fnmatch import fnmatchcase
from itertools import repeat
from operator import itemgetter
from typing import Any

import numpy as np
from numpy.typing import NDArray

from detectors.bank import Fired, Rows, SeriesBank
from detectors.cardinality import Refusal, SeriesLimits, refusal
from detectors.registry import outside_domain, value_domain
from detectors.vector import Floats


@dataclass(frozen=True)
class DetectorRule:
    """Series whose service matches one of ``services`` and metric one of ``metrics`` (an empty
    list matches any) are watched by ``detector`` with ``params``, decided by ``policy``."""

    name: str
    detector: str
    services: tuple[str, ...] = ()
    metrics: tuple[str, ...] = ()
    params: Mapping[str, Any] = field(default_factory=dict)
    policy: Mapping[str, Any] = field(default_factory=dict)

    def matches(self, service: str, metric: str) -> bool:
        """Whether the rule covers this service's metric.

        >>> r = DetectorRule("disk", "static_threshold", metrics=("disk_*",))
        >>> r.matches("db", "disk_used_ratio"), r.matches("db", "cpu")
        (True, False)
        """
        return _any(self.services, service) and _any(self.metrics, metric)


def _any(patterns: Sequence[str], name: str) -> bool:
    return not patterns or any(fnmatchcase(name, p) for p in patterns)


def service_metric(series: str) -> tuple[str, str]:
    """Service and metric of a series id (``service|metric[|labels]``).

    >>> service_metric("api|p99|region=eu")
    ('api', 'p99')
    """
    service, _, rest = series.partition("|")
    return service, rest.partition("|")[0]


class NumberedSeries(list[str]):
    """Series ids, each with a number (``numbers[i]`` for ``self[i]``) that stands for the
    same id wherever it is given with the same ``numbering`` object: ``RoutedBanks.admit``
    finds their rows by number, in arrays, rather than by id in a dict."""

    def __init__(self, ids: Sequence[str], numbers: NDArray[np.intp], numbering: object) -> None:
        super().__init__(ids)
        self.numbers = numbers
        self.numbering = numbering


class RoutedBanks:
    """A bank per rule, then the default bank; the interface of one ``SeriesBank``."""

    def __init__(
        self,
        detector: str,
        detector_params: Mapping[str, Any] | None = None,
        policy_params: Mapping[str, Any] | None = None,
        rules: Sequence[DetectorRule] = (),
        limits: SeriesLimits | None = None,
    ) -> None:
        names = [r.name for r in rules]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"detector rule names must be unique ({', '.join(twice)})")
        if any(not n or "/" in n or n.isdigit() for n in names):
            raise ValueError("a detector rule name is not empty, has no '/' and is not a number")
        self.rules = list(rules)
        self.banks = [SeriesBank(r.detector, r.params, r.policy) for r in self.rules]
        self.banks.append(SeriesBank(detector, detector_params, policy_params))
        #: The detector name of each bank, for the detections it fires.
        self.detectors = [r.detector for r in self.rules] + [detector]
        self.index: dict[str, int] = {}
        self.limits = limits or SeriesLimits()
        #: Series held per service, over every bank.
        self.per_service: Counter[str] = Counter()
        #: The newest event time given to ``evict_idle``, and that of its last sweep.
        self.clock = -math.inf
        self._swept_at = -math.inf
        domains = [value_domain(d) or (-math.inf, math.inf) for d in self.detectors]
        self._bounds = np.asarray(domains, dtype=np.float64).T
        self._bounded = bool(np.isfinite(self._bounds).any())
        self._forget_numbers()

    def _forget_numbers(self, numbering: object = None) -> None:
        """No series' row known by number (``NumberedSeries``) of ``numbering`` yet."""
        self._numbering = numbering
        #: By number: the series' global row (-1: not known) and its row's ``_stamps`` then.
        self._row_of = np.full(0, -1, dtype=np.intp)
        self._stamp_of = np.zeros(0, dtype=np.int64)
        #: By global row: how many times it was given back (a number's row is stale after).
        self._stamps = np.zeros(0, dtype=np.int64)

    @property
    def default(self) -> SeriesBank:
        return self.banks[-1]

    def __len__(self) -> int:
        return len(self.index)

    @property
    def deciding(self) -> bool:
        return any(b.deciding for b in self.banks)

    def route(self, series: str) -> int:
        """The bank a new series goes to: the first matching rule's, else the default."""
        service, metric = service_metric(series)
        for k, rule in enumerate(self.rules):
            if rule.matches(service, metric):
                return k
        return len(self.rules)

    def rows_for(self, series: Sequence[str]) -> Rows:
        """The global row of each of ``series``; new series get fresh rows in their bank, or
        -1 beyond a limit (``admit`` says why)."""
        return self.admit(series)[0]

    def admit(self, series: Sequence[str]) -> tuple[Rows, dict[int, Refusal]]:
        """The global row of each of ``series`` (new series get fresh rows in their bank), and
        the positions of the points of new series refused by a limit, with the refusal (their
        row is -1)."""
        if isinstance(series, NumberedSeries) and len(series):
            return self._admit_numbered(series)
        return self._admit(series)

    def _admit_numbered(self, series: NumberedSeries) -> tuple[Rows, dict[int, Refusal]]:
        """``admit`` with each series' row found by its number; those not found are admitted
        by id, in order (the same rows and refusals as admitting them all by id: the others
        are series already held)."""
        if series.numbering is not self._numbering:
            self._forget_numbers(series.numbering)
        numbers = np.asarray(series.numbers, dtype=np.intp)
        most = int(numbers.max()) + 1
        if most > len(self._row_of):
            grow = max(most, 2 * len(self._row_of)) - len(self._row_of)
            self._row_of = np.concatenate([self._row_of, np.full(grow, -1, dtype=np.intp)])
            self._stamp_of = np.concatenate([self._stamp_of, np.zeros(grow, dtype=np.int64)])
        rows = self._row_of[numbers]
        found = rows >= 0
        found[found] = self._stamp_of[numbers[found]] == self._stamps[rows[found]]
        if found.all():
            return rows, {}
        missed = np.flatnonzero(~found)
        got, refused = self._admit([series[i] for i in missed.tolist()])
        rows[missed] = got
        held = got >= 0
        if held.any():
            top = int(got.max()) + 1
            if top > len(self._stamps):
                grow = max(top, 2 * len(self._stamps)) - len(self._stamps)
                self._stamps = np.concatenate([self._stamps, np.zeros(grow, dtype=np.int64)])
            self._row_of[numbers[missed[held]]] = got[held]
            self._stamp_of[numbers[missed[held]]] = self._stamps[got[held]]
        return rows, {int(missed[i]): no for i, no in refused.items()}

    def _admit(self, series: Sequence[str]) -> tuple[Rows, dict[int, Refusal]]:
        n = len(series)
        if n > 1:
            try:  # mostly every series is known: all looked up in one call
                known = itemgetter(*series)(self.index)
                return np.fromiter(known, dtype=np.intp, count=n), {}
            except KeyError:
                pass
        get = self.index.get
        rows = np.fromiter(map(get, series, repeat(-1)), dtype=np.intp, count=n)
        new = np.flatnonzero(rows < 0).tolist()
        if self._admit_all(series, new):
            for i in new:
                rows[i] = self.index[series[i]]
            return rows, {}
        refused: dict[int, Refusal] = {}
        admitted: dict[str, int] = {}  # new series let in by this call -> their bank
        held = len(self.index)
        for i in new:
            sid = series[i]
            if sid in admitted:  # the same new series earlier in this call
                continue
            service = service_metric(sid)[0]
            no = refusal(service, self.per_service[service], held, self.limits)
            if no is not None:
                refused[i] = no
                continue
            admitted[sid] = self.route(sid) if self.rules else len(self.rules)
            self.per_service[service] += 1
            held += 1
        self._add(admitted)
        for i in new:
            if i not in refused:
                rows[i] = self.index[series[i]]
        return rows, refused

    def _admit_all(self, series: Sequence[str], new: list[int]) -> bool:
        """Admit the new series at ``new`` at once, if no limit refuses any of them (what
        admitting them one after another would do then); False, admitting none, if one would
        be refused."""
        unique = dict.fromkeys(series[i] for i in new)
        services = Counter(sid.partition("|")[0] for sid in unique)
        limits = self.limits
        if len(self.index) + len(unique) > limits.per_partition or any(
            self.per_service[service] + n > limits.per_service for service, n in services.items()
        ):
            return False
        default = len(self.rules)
        self._add({sid: self.route(sid) if self.rules else default for sid in unique})
        self.per_service.update(services)
        return True

    def _add(self, admitted: Mapping[str, int]) -> None:
        """Rows for new series in their banks (``admitted``: series -> bank), in order."""
        n = len(self.banks)
        for k in sorted(set(admitted.values())):
            sids = [sid for sid, bank in admitted.items() if bank == k]
            rows = self.banks[k].add_rows(sids)
            self.index.update(zip(sids, (k + n * r for r in rows), strict=True))

    def evict_idle(self, now: float) -> list[str]:
        """Free the rows of series without a point for ``limits.idle_s`` before ``now`` (event
        time; the newest ``now`` given so far counts), sweeping at most every
        ``limits.sweep_s``; returns the series evicted."""
        self.clock = max(self.clock, now)
        idle_s = self.limits.idle_s
        if idle_s <= 0 or self.clock < self._swept_at + self.limits.sweep_s:
            return []
        self._swept_at = self.clock
        n = len(self.banks)
        gone: list[str] = []
        for k, bank in enumerate(self.banks):
            for sid in bank.evict_idle(self.clock - idle_s):
                found = self.index.get(sid)
                if found is not None and found % n == k:
                    del self.index[sid]
                    if found < len(self._stamps):
                        self._stamps[found] += 1  # its number no longer finds this row
                    self.per_service[service_metric(sid)[0]] -= 1
                    gone.append(sid)
        self.per_service = +self.per_service  # drop the services left without series
        return gone

    def series(self, row: int) -> str:
        return self.banks[row % len(self.banks)].ids[row // len(self.banks)]

    def detector(self, row: int) -> str:
        """The name of the detector watching global row ``row``."""
        return self.detectors[row % len(self.banks)]

    def refused(self, rows: Rows, values: Floats) -> NDArray[np.bool_] | None:
        """Which points lie outside their detector's domain (``None``: none can, no bank has
        a domain). They are not for ``observe_rows``: ``why_refused`` says why, for the
        dead letter."""
        if not self._bounded:
            return None
        k = np.asarray(rows, dtype=np.intp) % len(self.banks)
        lo, hi = self._bounds
        inside: NDArray[np.bool_] = (values >= lo[k]) & (values <= hi[k])
        return ~inside

    def why_refused(self, row: int, value: float) -> str:
        k = row % len(self.banks)
        rule = self.rules[k].name if k < len(self.rules) else None
        return outside_domain(self.detectors[k], value, rule) or ""

    def observe_rows(
        self, rows: Rows, values: Floats, ts: Floats, *, ends: bool = False
    ) -> tuple[Floats, list[Fired]]:
        """Each bank observes its points, in order; scores and firings in point order."""
        rows = np.asarray(rows, dtype=np.intp)
        n = len(self.banks)
        if n == 1:
            return self.default.observe_rows(rows // n, values, ts, ends=ends)
        values = np.asarray(values, dtype=np.float64)
        ts = np.asarray(ts, dtype=np.float64)
        scores = np.zeros(len(rows))
        fired: list[Fired] = []
        which = rows % n
        for k in np.unique(which).tolist():
            at = np.flatnonzero(which == k)
            got, hits = self.banks[k].observe_rows(rows[at] // n, values[at], ts[at], ends=ends)
            scores[at] = got
            fired += [replace(f, index=int(at[f.index])) for f in hits]
        fired.sort(key=lambda f: f.index)
        return scores, fired

    def observe(
        self, series: Sequence[str], values: Floats, ts: Floats, *, ends: bool = False
    ) -> tuple[Floats, list[Fired]]:
        return self.observe_rows(self.rows_for(series), values, ts, ends=ends)

    # -- checkpoints -------------------------------------------------------------------------

    def _key(self, k: int, block: str) -> str:
        return block if k == len(self.rules) else f"{self.rules[k].name}/{block}"

    def take_dirty_blocks(self) -> dict[str, dict[str, Any]]:
        """Changed blocks of every bank, keyed as the module docstring says."""
        out: dict[str, dict[str, Any]] = {}
        for k, bank in enumerate(self.banks):
            for block, state in bank.take_dirty_blocks().items():
                out[self._key(k, block)] = state
        return out

    def take_deciding_blocks(self) -> dict[str, dict[str, Any]]:
        """``SeriesBank.take_deciding_blocks`` of every bank, keyed as ``take_dirty_blocks``."""
        out: dict[str, dict[str, Any]] = {}
        for k, bank in enumerate(self.banks):
            for block, state in bank.take_deciding_blocks().items():
                out[self._key(k, block)] = state
        return out

    def load_blocks(self, blocks: Mapping[str, Mapping[str, Any]]) -> int:
        """Put checkpointed blocks back in their banks; returns how many are stale."""
        self._forget_numbers()
        by_name = {r.name: k for k, r in enumerate(self.rules)}
        per_bank: list[dict[str, Mapping[str, Any]]] = [{} for _ in self.banks]
        stale = 0
        for key, state in blocks.items():
            name, _, number = key.rpartition("/")
            k = by_name.get(name) if name else len(self.rules)
            block, _, part = number.partition(".")
            if k is None or not block.isdigit() or not (part.isdigit() or number == block):
                stale += 1  # a rule that is gone: its series are routed afresh
                continue
            per_bank[k][number] = state
        n = len(self.banks)
        for k, bank in enumerate(self.banks):
            # A bank holds no more rows than the partition has series, and the holes it keeps:
            # twice the limit is room enough; a block past it is crafted, or from a larger limit.
            stale += bank.load_blocks(per_bank[k], max_rows=2 * self.limits.per_partition)
            for row, sid in enumerate(bank.ids):
                # Restored series that the rules now send elsewhere start afresh there.
                if sid and bank.index.get(sid) == row and self.route(sid) == k:
                    self.index[sid] = k + n * row
        self.per_service = Counter(service_metric(sid)[0] for sid in self.index)
        return stale
