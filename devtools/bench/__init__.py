"""Benchmarks behind ``warroom bench``: each prints a table and a final JSON line."""

from __future__ import annotations

import argparse
import json
import os
import platform
from pathlib import Path
from typing import Any


def machine() -> dict[str, Any]:
    """The CPU model, core count and Python version a benchmark ran on."""
    model = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": model, "cores": os.cpu_count(), "python": platform.python_version()}


def add_detector_choice(parser: argparse.ArgumentParser) -> None:
    """The ``--detector`` (repeatable) and ``--detector-params`` options, read by
    ``chosen_detectors``."""
    parser.add_argument("--detector", action="append", default=[], help="only these (repeatable)")
    add_detector_params(parser)


def chosen_detectors(
    args: argparse.Namespace, default: list[str]
) -> tuple[list[str], dict[str, Any]]:
    """The detectors ``--detector`` names (else ``default``) and ``--detector-params``, every
    one checked; ``ValueError`` says what is wrong."""
    from detectors.registry import DETECTORS

    names: list[str] = list(args.detector) or default
    unknown = [n for n in names if n not in DETECTORS]
    if unknown:
        raise ValueError(f"unknown detector(s) {', '.join(unknown)}")
    return names, detector_params(args.detector_params, names)


def add_detector_params(parser: argparse.ArgumentParser) -> None:
    """The ``--detector-params`` option, parsed by ``detector_params``."""
    parser.add_argument(
        "--detector-params",
        default="{}",
        help="the detectors' parameters (JSON), as WARROOM_DETECTOR_PARAMS",
    )


def detector_params(text: str, names: list[str]) -> dict[str, Any]:
    """``--detector-params``: a JSON object every detector in ``names`` accepts (checked as the
    worker checks ``WARROOM_DETECTOR_PARAMS``); ``ValueError`` says what is wrong."""
    from detectors.registry import make_batch

    params = json.loads(text)  # a JSONDecodeError is a ValueError
    if not isinstance(params, dict):
        raise ValueError("--detector-params must be a JSON object")
    for name in names:
        make_batch(name, 1, **params)
    return params


def detector_label(name: str) -> str:
    """A detector's name in a bench table, the default marked with ``*``."""
    from detectors.registry import DEFAULT_DETECTOR

    return name + (" *" if name == DEFAULT_DETECTOR else "")


def machine_line(figures: dict[str, Any]) -> str:
    """``machine: <cpu>, <n> cores, Python <version>`` for a table's heading."""
    return f"machine: {figures['cpu']}, {figures['cores']} cores, Python {figures['python']}"
