"""Detectors by name, so configuration and the CLI can pick one."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from detectors.base import Detector
from detectors.robust import MedianMad

DETECTORS: Mapping[str, type[Any]] = {MedianMad.name: MedianMad}
"""Every registered detector class, by its ``name``."""

DEFAULT_DETECTOR = MedianMad.name


def make_detector(name: str = DEFAULT_DETECTOR, **params: Any) -> Detector:
    """A fresh detector; unknown names and parameters are errors that say what exists.

    >>> make_detector("nope")
    Traceback (most recent call last):
    ...
    ValueError: unknown detector 'nope'; known: median_mad
    """
    try:
        cls: Callable[..., Detector] = DETECTORS[name]
    except KeyError:
        known = ", ".join(sorted(DETECTORS))
        raise ValueError(f"unknown detector {name!r}; known: {known}") from None
    try:
        return cls(**params)
    except TypeError as exc:
        raise ValueError(f"bad parameters for detector {name!r}: {exc}") from None


def restore_detector(state: dict[str, Any]) -> Detector:
    """Rebuild a detector from ``to_state()`` output."""
    name = state.get("name")
    if not isinstance(name, str) or name not in DETECTORS:
        raise ValueError(f"state names unknown detector {name!r}")
    detector: Detector = DETECTORS[name].from_state(state)
    return detector
