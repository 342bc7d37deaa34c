"""What an install ships: every package under the top-level packages, and every data file the
code reads at run time (the local broker's pom and logging configuration, the web pages); the
worker image copies every top-level package the install needs."""

from __future__ import annotations

import re
import tomllib
from fnmatch import fnmatch
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SETUPTOOLS = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
TOP_LEVEL = ["schemas", "detectors", "responders", "streams", "devtools"]
DATA = [("devtools", "kafka"), ("streams.http", "static")]


def packages_on_disk() -> list[str]:
    found = []
    for top in TOP_LEVEL:
        for init in sorted((ROOT / top).rglob("__init__.py")):
            found.append(".".join(init.parent.relative_to(ROOT).parts))
    return found


def test_every_package_on_disk_is_shipped() -> None:
    on_disk = packages_on_disk()
    assert "devtools" in on_disk
    assert [p for p in on_disk if p not in SETUPTOOLS["packages"]] == []


def test_every_shipped_package_is_on_disk() -> None:
    assert [p for p in SETUPTOOLS["packages"] if p not in packages_on_disk()] == []


@pytest.mark.parametrize(("package", "folder"), DATA, ids=lambda v: str(v))
def test_every_data_file_is_shipped_with_its_package(package: str, folder: str) -> None:
    base = ROOT / Path(*package.split("."))
    files = [p.relative_to(base).as_posix() for p in (base / folder).iterdir()]
    assert files
    globs = SETUPTOOLS["package-data"][package]
    assert [f for f in files if not any(fnmatch(f, g) for g in globs)] == []


def test_the_local_broker_finds_its_pom_and_logging_configuration() -> None:
    from devtools import kafka_local

    assert kafka_local._POM.is_file()
    assert kafka_local._LOG4J.is_file()


def test_the_worker_image_copies_every_shipped_top_level_package() -> None:
    # ``pip install .`` in the image fails on a package it was not given.
    copied = set(re.findall(r"^COPY (\w+) ", (ROOT / "Dockerfile").read_text(), re.MULTILINE))
    top = {p.split(".")[0] for p in SETUPTOOLS["packages"]}
    assert top - copied == set()
