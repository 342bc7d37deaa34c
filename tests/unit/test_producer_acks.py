"""Every record the worker writes waits for all in-sync replicas (``acks=all``): with
``min.insync.replicas=2`` a write acknowledged by the broker survives the loss of any one broker.
Checked on the source, so a new producer cannot quietly use aiokafka's default (``acks=1``)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

STREAMS = Path(__file__).resolve().parents[2] / "streams"
#: Programs that stand in for outside producers (synthetic load), not part of the worker.
OUTSIDE = {"demo.py", "bench"}


def calls(name: str) -> list[tuple[str, ast.Call]]:
    found = []
    for path in sorted(STREAMS.rglob("*.py")):
        if OUTSIDE & set(path.relative_to(STREAMS).parts):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call):
                func = node.func
                called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
                if called == name:
                    found.append((f"{path.relative_to(STREAMS)}:{node.lineno}", node))
    return found


def keyword(call: ast.Call, name: str) -> object:
    for kw in call.keywords:
        if kw.arg == name and isinstance(kw.value, ast.Constant | ast.UnaryOp):
            return ast.literal_eval(kw.value)
    return None


@pytest.mark.parametrize(
    ("where", "call"), calls("AIOKafkaProducer"), ids=[w for w, _ in calls("AIOKafkaProducer")]
)
def test_every_plain_producer_waits_for_all_in_sync_replicas(where: str, call: ast.Call) -> None:
    assert keyword(call, "acks") == "all", f"{where}: AIOKafkaProducer without acks='all'"


def test_faust_producer_waits_for_all_in_sync_replicas() -> None:
    [(where, app)] = calls("App")
    assert keyword(app, "producer_acks") == -1, f"{where}: faust.App without producer_acks=-1"
