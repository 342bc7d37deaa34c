"""Every counter the worker writes is declared in ``streams.metrics.COUNTERS`` (and so exported
by ``/metrics`` with its help text), and every declared one is written somewhere.

The names are read from the source: the first argument of each ``.count(...)`` call, the
``errors=`` and ``counter=`` keywords (``each_input``, ``LogRetention``), and the
``(name, n)`` pairs of the engine's ``counts`` (``Decision.counts`` and functions returning
``Counts``). A name built by an f-string counts as written for each declared name it matches.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

from streams.metrics import COUNTERS, UNDECLARED, counter_families

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("streams", "responders")
IDENTIFIER = re.compile(r"[a-z][a-z0-9_]*")
#: Keywords that name a counter, and the callables they do so for (None: any).
NAMING_KEYWORDS: dict[str, str | None] = {"errors": "each_input", "counter": None}


@dataclass
class Written:
    """Counter names found in source: literal names, and f-string names as patterns."""

    names: dict[str, str] = field(default_factory=dict)  # name -> where
    patterns: dict[str, str] = field(default_factory=dict)  # regex -> where

    def add(self, node: ast.expr, where: str) -> None:
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            if IDENTIFIER.fullmatch(node.value):
                self.names[node.value] = where
        elif isinstance(node, ast.IfExp):
            self.add(node.body, where)
            self.add(node.orelse, where)
        elif isinstance(node, ast.JoinedStr):
            parts = [
                re.escape(str(v.value)) if isinstance(v, ast.Constant) else "[a-z0-9_]+"
                for v in node.values
            ]
            self.patterns["".join(parts)] = where

    def add_pairs(self, node: ast.AST, where: str) -> None:
        """The ``("name", n)`` pairs anywhere under ``node``."""
        for sub in ast.walk(node):
            if isinstance(sub, ast.Tuple) and len(sub.elts) == 2:
                self.add(sub.elts[0], where)


def scan(source: str, path: str, into: Written) -> None:
    for node in ast.walk(ast.parse(source)):
        where = f"{path}:{getattr(node, 'lineno', 0)}"
        if isinstance(node, ast.Call):
            scan_call(node, where, into)
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and returns_counts(node):
            for ret in ast.walk(node):
                if isinstance(ret, ast.Return) and ret.value is not None:
                    into.add_pairs(ret.value, where)


def scan_call(node: ast.Call, where: str, into: Written) -> None:
    func = node.func
    if isinstance(func, ast.Attribute) and func.attr == "count" and node.args:
        into.add(node.args[0], where)
    called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
    for kw in node.keywords:
        if kw.arg in NAMING_KEYWORDS and NAMING_KEYWORDS[kw.arg] in (None, called):
            into.add(kw.value, where)
        elif kw.arg == "counts":
            into.add_pairs(kw.value, where)


def returns_counts(node: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    return node.returns is not None and "Counts" in ast.unparse(node.returns)


def written_counters() -> Written:
    found = Written()
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            scan(path.read_text(), str(path.relative_to(ROOT)), found)
    return found


WRITTEN = written_counters()


def test_the_scan_finds_the_counters_of_every_kind_of_write() -> None:
    """``p.count``, ``self.count``, ``errors=``, ``counter=``, ``counts=`` and ``-> Counts``."""
    assert {
        "pages_delivered", "pages_dead_lettered", "catalogs_applied", "aggregate_errors",
        "automation_log_forgotten", "groups_forgotten", "incidents_unrouted",
        "detections_silenced",
    } <= set(WRITTEN.names)  # fmt: skip
    assert any(re.fullmatch(p, "ingest_otlp_entries") for p in WRITTEN.patterns)


@pytest.mark.parametrize(
    "snippet",
    [
        'p.count("nobody_declared_me")',
        'self.p.count("nobody_declared_me", 3)',
        'p.count("pages_delivered" if ok else "nobody_declared_me")',
        'each_input(p, s, "a", h, stage="a", errors="nobody_declared_me")',
        'LogRetention(p, t, topic, counter="nobody_declared_me")',
        'Decision(k, now, g, counts=(("nobody_declared_me", 1),))',
        'def f() -> Counts:\n    return (("nobody_declared_me", 1),)',
    ],
    ids=["count", "self-count", "either", "errors", "counter", "counts", "returns-counts"],
)
def test_an_undeclared_counter_is_found(snippet: str) -> None:
    found = Written()
    scan(snippet, "snippet.py", found)
    assert set(found.names) - set(COUNTERS) == {"nobody_declared_me"}


def test_every_counter_written_is_declared() -> None:
    undeclared = {n: w for n, w in WRITTEN.names.items() if n not in COUNTERS}
    assert not undeclared, f"declare these in streams.metrics.COUNTERS: {undeclared}"
    for pattern, where in WRITTEN.patterns.items():
        assert any(re.fullmatch(pattern, n) for n in COUNTERS), (
            f"no declared counter matches {pattern!r} ({where})"
        )


def test_every_declared_counter_is_written() -> None:
    stale = [
        n
        for n in COUNTERS
        if n not in WRITTEN.names and not any(re.fullmatch(p, n) for p in WRITTEN.patterns)
    ]
    assert not stale, f"declared in streams.metrics.COUNTERS but never written: {stale}"


def test_every_declared_counter_is_exported_with_its_help_and_so_is_an_undeclared_one() -> None:
    written = {"pages_delivered": 3, "a_counter_nobody_declared": 2}

    class Counters(Collector):
        def collect(self) -> Iterator[Metric]:
            return counter_families(written)

    registry = CollectorRegistry(auto_describe=False)
    registry.register(Counters())
    families = {
        f.name: f for f in text_string_to_metric_families(generate_latest(registry).decode())
    }
    for name, doc in COUNTERS.items():
        family = families[f"warroom_{name}"]
        assert family.documentation == doc
        assert family.samples[0].value == written.get(name, 0)
    extra = families["warroom_a_counter_nobody_declared"]
    assert (extra.documentation, extra.samples[0].value) == (UNDECLARED, 2)


def test_declared_help_texts_are_sentences() -> None:
    bad = [n for n, doc in COUNTERS.items() if not (doc[:1].isupper() and doc.endswith("."))]
    assert not bad, bad
