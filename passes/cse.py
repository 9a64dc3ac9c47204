"""cse: common-subexpression elimination.

Two pure nodes with the same op, the same inputs and the same attributes
compute the same values; the later one is replaced by the earlier.  Equal
constants are merged first, so duplicated shape tensors and weights also
collapse.  Nodes with subgraphs are left alone.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ir.digest import array_digest
from ir.graph import Graph, Node

from .manager import PassContext, register_pass


def _freeze(v: Any) -> Any:
    if isinstance(v, np.ndarray):
        return ("tensor", str(v.dtype), v.shape, array_digest(v))
    if isinstance(v, (list, tuple)):
        return tuple(_freeze(x) for x in v)
    if isinstance(v, float) and v != v:
        return ("nan",)
    return v


def _constant_key(arr: np.ndarray) -> tuple:
    return _freeze(arr)


def _node_key(node: Node) -> tuple:
    return (node.domain, node.op, tuple(None if v is None else id(v) for v in node.inputs),
            len(node.outputs), tuple(sorted((k, _freeze(a)) for k, a in node.attrs.items())))


@register_pass("cse")
def cse(graph: Graph, ctx: PassContext) -> bool:
    """Merge equal constants and identical pure nodes."""
    replaced = 0
    seen_consts: dict[tuple, Any] = {}
    for c in list(graph.constants.values()):
        key = (c.type, _constant_key(c.const))
        first = seen_consts.setdefault(key, c)
        if first is not c and graph.can_replace(c, first):
            graph.replace_all_uses(c, first)
            graph.remove_constant(c)
            replaced += 1
    seen: dict[tuple, Node] = {}
    for node in list(graph.nodes):
        if not node.schema.pure or any(True for _ in node.subgraphs()):
            continue
        key = _node_key(node)
        first = seen.setdefault(key, node)
        if first is node:
            continue
        if not all(graph.can_replace(a, b) for a, b in zip(node.outputs, first.outputs)):
            continue
        for a, b in zip(node.outputs, first.outputs):
            graph.replace_all_uses(a, b)
        graph.remove_node(node)
        replaced += 1
    return replaced > 0
