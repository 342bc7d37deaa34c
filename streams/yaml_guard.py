"""Reading the catalog's YAML with limits: PyYAML's safe loader, checked before it builds anything.

A YAML file can be small and still expand without bound: each alias (``*a``) is the whole anchored
value again, so nine lines of ten aliases each are a billion strings ("billion laughs"), and an
anchor may refer to itself. The document's node graph is therefore measured first: the text it
expands to (``MAX_CHARS``, aliases counted each time they are used), how deep it nests
(``MAX_DEPTH``), no anchor inside itself, and no key twice in one mapping (YAML would keep the last
one silently). Every refusal is ``YamlRefused``, one line that says where.
"""

from __future__ import annotations

from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, SequenceNode

#: Characters a catalog may expand to (its scalars, one more for each value), aliases counted each
#: time they are used; also the most text it may have. A catalog that one Kafka record holds
#: (900,000 bytes as JSON) is far under this.
MAX_CHARS = 8_000_000
#: How deep a catalog may nest; the deepest catalog field is about eight levels down.
MAX_DEPTH = 64


class YamlRefused(ValueError):
    """The text is not YAML, or not YAML a catalog can be: one line that says why and where."""


def load(text: str) -> Any:
    """The one document in ``text`` as Python values, once it is within the limits."""
    if len(text) > MAX_CHARS:
        raise YamlRefused(f"more than {MAX_CHARS:,} characters")
    loader = yaml.SafeLoader(text)
    try:
        try:
            node = loader.get_single_node()
        except RecursionError:
            raise YamlRefused(f"nested deeper than {MAX_DEPTH} levels") from None
        except yaml.MarkedYAMLError as exc:
            raise YamlRefused(_one_line(exc)) from None
        except yaml.YAMLError as exc:
            raise YamlRefused(f"not valid YAML: {' '.join(str(exc).split())}") from None
        if node is None:
            return None
        _measure(node)
        try:
            return loader.construct_document(node)
        except yaml.MarkedYAMLError as exc:
            raise YamlRefused(_one_line(exc)) from None
    finally:
        loader.dispose()


def _one_line(exc: yaml.MarkedYAMLError) -> str:
    mark = exc.problem_mark or exc.context_mark
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    problem = " ".join(str(exc.problem or exc.context or "unreadable").split())
    return f"not valid YAML{where}: {problem}"


def _where(node: Node) -> str:
    return f"line {node.start_mark.line + 1}, column {node.start_mark.column + 1}"


def _children(node: Node) -> list[Node]:
    if isinstance(node, SequenceNode):
        return list(node.value)
    if isinstance(node, MappingNode):
        _no_duplicate_keys(node)
        return [part for pair in node.value for part in pair]
    return []


def _no_duplicate_keys(node: MappingNode) -> None:
    seen: set[str] = set()
    for key, _ in node.value:
        if key.tag == "tag:yaml.org,2002:merge" or not isinstance(key.value, str):
            continue
        if key.value in seen:
            raise YamlRefused(f"{_where(key)}: duplicate key {key.value!r}")
        seen.add(key.value)


def _measure(root: Node) -> None:
    """Refuse ``root`` if it expands past ``MAX_CHARS``, nests past ``MAX_DEPTH`` or holds an
    anchor inside itself. Each node is walked once (aliases share the node they name)."""
    sizes: dict[int, tuple[int, int]] = {}  # id(node) -> (characters it expands to, its depth)
    open_nodes: set[int] = set()
    stack: list[tuple[Node, list[Node] | None]] = [(root, None)]
    while stack:
        node, children = stack.pop()
        if children is None:
            if id(node) in sizes:
                continue
            if id(node) in open_nodes:
                raise YamlRefused(f"{_where(node)}: an anchor refers to itself")
            open_nodes.add(id(node))
            kids = _children(node)
            if len(open_nodes) > MAX_DEPTH:
                raise YamlRefused(f"{_where(node)}: nested deeper than {MAX_DEPTH} levels")
            stack.append((node, kids))
            stack.extend((kid, None) for kid in kids)
            continue
        done = [sizes[id(kid)] for kid in children]
        own = len(node.value) if isinstance(node.value, str) else 0
        values = 1 + own + sum(v for v, _ in done)
        if values > MAX_CHARS:
            raise YamlRefused(f"{_where(node)}: expands to more than {MAX_CHARS:,} characters")
        sizes[id(node)] = (values, 1 + max((d for _, d in done), default=0))
        open_nodes.discard(id(node))
