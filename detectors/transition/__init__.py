"""Transition novelty: has the series ever moved between these coarse levels in this order?

A value becomes one of eight equal levels over the series' range, and the detector remembers, as
bit sets, every level, every pair of consecutive levels and every sequence of ``order`` levels
that it has seen. A point's novelty is the share of those sequences ending with it that were never
seen before: 1 for a level never reached, ``(order - 1) / order`` for a known level reached by a
new step, less for a new longer sequence of known steps. The score is the novelty times how often
the memory is right lately (one minus the recent rate of novelty), so a young memory or a noisy
spell counts for little, except for a value more than a whole span beyond the range, which
scores 1 however young the memory. A score of ``base_threshold`` or more silences the next
``rest_period`` points: one alert per episode.

Where level boundaries fall is arbitrary, and with eight levels it matters: a series that sits
on a boundary looks new at every wobble, one that sits inside a level hides a real step. So the
detector keeps ``grids`` memories over grids shifted by ``1 / grids`` of a level from each other,
and a point's novelty is the average over them. Noise near one grid's boundary is inside a level
of the others; a real change is new in all of them.

This keeps the core of the Contextual Anomaly Detector (novel contexts of coarse levels) in a
fixed few hundred bytes per series. The range cannot be known in advance: it is the minimum and
maximum of the first ``warmup`` points and afterwards only widens, by doubling the span towards a
value beyond it (beyond by more than rounding: a periodic series computes its extremes again a
hair apart, and that is no new ground). Doubling merges pairs of old levels exactly, so the
remembered sequences are carried over rather than scrambled; the grids' shifts are fixed amounts
of the value, so the doubled grids' boundaries are some of the old ones too.

``TolerantNovelty`` asks the same memory a stricter question: is the step new even allowing for
the series' own step noise? It also remembers the values seen at ``FINE`` levels, so that
"within the tolerance" means near a value seen, not somewhere in a coarse level one was seen in.

One compiled kernel scores and learns a sequence of points of many series in the order given,
for the worker (``score_learn_sequence``) and for the batch form alike. The package's modules:

- ``detectors``: the detector classes, each allocating the arrays it uses;
- ``state``: ``State``, every array the kernel takes as one record, and ``Config``, its settings;
- ``kernel``: the kernel, as small functions over the state (``observe``, ``observe_point``,
  ``look``, ``remember``, ``widen`` ...);
- ``levels``: coarse and fine levels and the memory of level sequences;
- ``daily``: the memory of values by time of day;
- ``deviation``: the deviation arm.
"""

from detectors.transition.daily import DAY_S, HOUR_S, MAX_DAY_PARTS
from detectors.transition.detectors import (
    MAX_BLOCK,
    MAX_SCALES,
    TolerantNovelty,
    TolerantNoveltyBatch,
    TransitionNovelty,
    TransitionNoveltyBatch,
)
from detectors.transition.kernel import WHY_DEVIATION, WHY_HOUR
from detectors.transition.levels import FINE, LEVELS

__all__ = [
    "DAY_S",
    "FINE",
    "HOUR_S",
    "LEVELS",
    "MAX_BLOCK",
    "MAX_DAY_PARTS",
    "MAX_SCALES",
    "WHY_DEVIATION",
    "WHY_HOUR",
    "TolerantNovelty",
    "TolerantNoveltyBatch",
    "TransitionNovelty",
    "TransitionNoveltyBatch",
]
