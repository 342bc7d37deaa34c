"""argparse types the command line's options share: counts and durations, each refused with
the value it was given."""

from __future__ import annotations

import argparse


def positive_int(text: str) -> int:
    """An argparse type: a count of 1 or more, refused with the value otherwise."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be 1 or more")
    return value


def positive_float(text: str) -> float:
    """An argparse type: a finite number above 0, refused with the value otherwise."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0.0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r} must be above 0 and finite")
    return value
