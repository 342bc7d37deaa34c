"""Contextual anomaly detection: is the step from the last point to this one a known context?

This is the Contextual Anomaly Detector (Open Source Edition) as published for the Numenta Anomaly
Benchmark, written afresh for this package's detector contract. A value becomes a few *facts*: the
bits of its bin among ``2**value_bits`` equal bins over the range learned so far (bit position and
bit value). A step's *left* facts are the previous value's facts plus the ids of the contexts that
were fully active then (the "neurons" of the previous step); its *right* facts are the current
value's facts. A *context* is a pair (left facts, right facts); the context memory learns which
pairs occur, how often each was selected (its left side fully present) and how well its right side
came true. Each step records the full pair (a zero-level context) and, when that pair is new, the
partial overlaps of known zero-level contexts with it. The anomaly score is

    (1 - share of selected contexts fully true + share of candidate contexts that are new) / 2

and 0 when the current facts were all predicted by the best-weighted selected contexts. A score of
``base_threshold`` or more silences the following ``rest_period`` points: one alert per episode.

Differences from the published detector: the bin range is learned online (the benchmark run gave
it each file's global min/max in advance) and a value beyond it doubles the span on that side;
ties among equally activated contexts are broken by context id; and the memory is bounded: beyond
``max_contexts`` contexts the least recently used quarter is forgotten, so a series' state stays
below a fixed size.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, ClassVar, Self

from detectors.base import Hyperparameters, check_version

Facts = tuple[int, ...]

#: Facts of a context id ("neuron") are offset above every value-bit fact.
_NEURON = 1 << 20


@dataclass
class _Context:
    """One (left, right) pair of fact sets and what the memory learned about it."""

    left: Facts
    right: Facts
    zero_level: bool
    selected: int = 0  # right-side facts offered while the left side was fully present
    hits: int = 0  # of those, facts that came true
    activations: int = 0  # times both sides were fully present
    used: int = 0  # step it was last created or selected (for eviction)


@dataclass(frozen=True)
class _Step:
    """What one value does to the memory, computed before learning it."""

    facts: Facts
    score: float
    zero_new: bool
    selected: tuple[int, ...]  # ids of contexts whose left side was fully present
    candidates: tuple[tuple[Facts, Facts], ...]  # new contexts to record, in order
    lo: float
    hi: float


@dataclass
class _Memory:
    """The context dictionary, indexed for the two questions a step asks of it.

    ``by_key`` finds the left sides that can lie wholly within a fact set (each is filed under its
    largest fact, which the set must contain); ``zero`` holds the full pairs, whose overlaps with a
    new pair are the candidate new contexts.
    """

    contexts: dict[int, _Context] = field(default_factory=dict)
    by_pair: dict[tuple[Facts, Facts], int] = field(default_factory=dict)
    by_left: dict[Facts, list[int]] = field(default_factory=dict)
    by_key: dict[int, set[Facts]] = field(default_factory=dict)
    zero: dict[Facts, list[int]] = field(default_factory=dict)
    next_id: int = 0

    def add(self, left: Facts, right: Facts, zero_level: bool, now: int) -> int:
        cid = self.next_id
        self.next_id += 1
        self.insert(cid, _Context(left, right, zero_level, used=now))
        return cid

    def insert(self, cid: int, ctx: _Context) -> None:
        self.contexts[cid] = ctx
        self.by_pair[(ctx.left, ctx.right)] = cid
        self.by_left.setdefault(ctx.left, []).append(cid)
        self.by_key.setdefault(ctx.left[-1], set()).add(ctx.left)
        if ctx.zero_level:
            self.zero.setdefault(ctx.left, []).append(cid)

    def mark_zero(self, cid: int) -> None:
        ctx = self.contexts[cid]
        if not ctx.zero_level:
            ctx.zero_level = True
            self.zero.setdefault(ctx.left, []).append(cid)

    def evict(self, keep: int) -> None:
        """Forget the least recently used contexts until ``keep`` remain."""
        order = sorted(self.contexts, key=lambda c: (self.contexts[c].used, c))
        for cid in order[: len(self.contexts) - keep]:
            ctx = self.contexts.pop(cid)
            del self.by_pair[(ctx.left, ctx.right)]
            _drop(self.by_left, ctx.left, cid)
            if ctx.zero_level:
                _drop(self.zero, ctx.left, cid)
            if ctx.left not in self.by_left:
                lefts = self.by_key[ctx.left[-1]]
                lefts.discard(ctx.left)
                if not lefts:
                    del self.by_key[ctx.left[-1]]


def _drop(index: dict[Facts, list[int]], key: Facts, cid: int) -> None:
    ids = index[key]
    ids.remove(cid)
    if not ids:
        del index[key]


class ContextAnomalyDetector(Hyperparameters):
    """Share of unseen contexts between consecutive values, one alert per episode.

    >>> import random
    >>> rng = random.Random(7)
    >>> d = ContextAnomalyDetector()
    >>> for t in range(600):
    ...     v = 100.0 + 10.0 * (t % 20 < 10) + rng.gauss(0.0, 0.3)
    ...     _ = d.score_one(v, float(t))
    ...     d.learn_one(v, float(t))
    >>> d.score_one(105.0, 600.0) >= ContextAnomalyDetector.threshold
    True
    """

    name: ClassVar[str] = "context_ose"
    state_version: ClassVar[int] = 1
    #: The published detector's own alert level, which also starts its rest period.
    threshold: ClassVar[float] = 0.75
    #: It silences the points after an alert itself: decide on a single point.
    for_points: ClassVar[int] = 1

    def __init__(
        self,
        base_threshold: float = 0.75,
        rest_period: int = 120,
        max_left_facts: int = 7,
        max_active: int = 15,
        value_bits: int = 3,
        warmup: int = 30,
        max_contexts: int = 4000,
    ) -> None:
        if value_bits < 1 or max_active < 0 or max_left_facts < 1 or max_contexts < 4:
            raise ValueError("value_bits, max_left_facts and max_contexts must be positive")
        if value_bits > 16:
            raise ValueError("value_bits is at most 16 (2**16 bins over the range)")
        self.base_threshold, self.rest_period = base_threshold, rest_period
        self.max_left_facts, self.max_active = max_left_facts, max_active
        self.value_bits, self.warmup, self.max_contexts = value_bits, warmup, max_contexts
        self._memory = _Memory()
        self._lo = 0.0
        self._hi = 0.0
        self._count = 0
        self._quiet = 0
        self._left: Facts = ()
        self._cache: tuple[float, _Step] | None = None

    @property
    def warmed_up(self) -> bool:
        return self._count >= self.warmup

    def _facts(self, x: float, lo: float, hi: float) -> Facts:
        top = (1 << self.value_bits) - 1
        span = hi - lo if hi > lo else float(top)
        code = min(max(int((x - lo) / (span / top)), 0), top)
        return tuple(2 * bit + ((code >> bit) & 1) for bit in range(self.value_bits))

    def _range(self, x: float) -> tuple[float, float]:
        """The bin range once ``x`` is in it: a value outside doubles the span on its side.

        Doubling moves the bins only a few times over a series' life, where following the running
        min/max would move them at every new extreme and scramble what the memory learned.
        """
        lo, hi = self._lo, self._hi
        if self._count == 0 or not lo < hi:
            return min(lo, x) if self._count else x, max(hi, x) if self._count else x
        if x > hi:
            return lo, lo + 2.0 * (x - lo)
        if x < lo:
            return hi - 2.0 * (hi - x), hi
        return lo, hi

    def _evaluate(self, x: float) -> _Step:
        """The step ``x`` makes against the memory as it is (cached for ``learn_one``)."""
        if self._cache is not None and self._cache[0] == x:
            return self._cache[1]
        lo, hi = self._range(x)
        facts = self._facts(x, lo, hi)
        step = self._match(facts, lo, hi)
        self._cache = (x, step)
        return step

    def _match(self, facts: Facts, lo: float, hi: float) -> _Step:
        memory, prev = self._memory, self._left
        if not prev:
            return _Step(facts, 0.0, False, (), (), lo, hi)
        now = set(facts)
        before = set(prev)
        zero_new = (prev, facts) not in memory.by_pair
        selected: list[int] = []
        active = 0
        best = 0.0
        predicted: set[int] = set()
        candidates: dict[tuple[Facts, Facts], None] = {(prev, facts): None}
        for key in prev:
            for left in memory.by_key.get(key, ()):
                if not before.issuperset(left):
                    continue
                for cid in memory.by_left[left]:
                    ctx = memory.contexts[cid]
                    weight = ctx.hits / ctx.selected if ctx.selected else 0.0
                    if weight > best:
                        best, predicted = weight, set(ctx.right)
                    elif weight == best:
                        predicted.update(ctx.right)
                    selected.append(cid)
                    active += now.issuperset(ctx.right)
        if zero_new:
            limit = self.max_left_facts
            for left, ids in memory.zero.items():
                crossed = tuple(f for f in left if f in before)
                if not crossed or len(crossed) > limit:
                    continue
                full = len(crossed) == len(left)
                for cid in ids:
                    right = tuple(f for f in memory.contexts[cid].right if f in now)
                    if right and not (full and len(right) == len(memory.contexts[cid].right)):
                        candidates[(crossed, right)] = None
        unseen = not now <= predicted
        new = [pair for pair in candidates if pair not in memory.by_pair] if zero_new else []
        score = 0.0
        if unseen:
            share_active = active / len(selected) if selected else 0.0
            share_new = len(new) / len(candidates) if zero_new else 0.0
            score = (1.0 - share_active + share_new) / 2.0
        return _Step(facts, score, zero_new, tuple(selected), tuple(new), lo, hi)

    def score_one(self, value: float, ts: float) -> float:
        if not math.isfinite(value):
            return 0.0
        step = self._evaluate(value)
        if self._count < self.warmup or self._quiet > 0:
            return 0.0
        return min(max(step.score, 0.0), 1.0)

    def learn_one(self, value: float, ts: float) -> None:
        if not math.isfinite(value):
            return
        step = self._evaluate(value)
        self._cache = None
        memory, now, facts = self._memory, self._count, step.facts
        self._quiet = self.rest_period if step.score >= self.base_threshold else self._quiet - 1
        self._quiet = max(self._quiet, 0)
        if self._left and not step.zero_new:
            memory.mark_zero(memory.by_pair[(self._left, facts)])
        current = set(facts)
        active: list[tuple[int, int]] = []
        for cid in step.selected:
            ctx = memory.contexts[cid]
            hit = sum(1 for f in ctx.right if f in current)
            ctx.selected += len(ctx.right)
            ctx.hits += hit
            ctx.used = now
            if hit == len(ctx.right):
                ctx.activations += 1
                active.append((ctx.activations, cid))
        # The full pair (new when ``zero_new``) comes first, then the new partial overlaps.
        for i, (left, right) in enumerate(step.candidates):
            memory.add(left, right, i == 0, now)
        neurons = [_NEURON + cid for _, cid in sorted(active)[-self.max_active :]]
        self._left = tuple(sorted(set(facts).union(neurons)))
        if len(memory.contexts) > self.max_contexts:
            memory.evict(self.max_contexts * 3 // 4)
        self._lo, self._hi = step.lo, step.hi
        self._count += 1

    def to_state(self) -> dict[str, Any]:
        memory = self._memory
        return {
            "name": self.name,
            "version": self.state_version,
            "params": self.params(),
            "state": {
                "lo": self._lo,
                "hi": self._hi,
                "count": self._count,
                "quiet": self._quiet,
                "left": list(self._left),
                "next_id": memory.next_id,
                "contexts": [
                    [
                        cid,
                        list(c.left),
                        list(c.right),
                        int(c.zero_level),
                        c.selected,
                        c.hits,
                        c.activations,
                        c.used,
                    ]
                    for cid, c in memory.contexts.items()
                ],
            },
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Self:
        check_version(state, cls.name, cls.state_version)
        detector = cls(**state["params"])
        body = state["state"]
        detector._lo, detector._hi = float(body["lo"]), float(body["hi"])
        detector._count, detector._quiet = int(body["count"]), int(body["quiet"])
        detector._left = tuple(int(f) for f in body["left"])
        memory = detector._memory
        for cid, left, right, zero, selected, hits, activations, used in body["contexts"]:
            ctx = _Context(tuple(left), tuple(right), bool(zero), selected, hits, activations, used)
            memory.insert(cid, ctx)
        memory.next_id = int(body["next_id"])
        return detector
