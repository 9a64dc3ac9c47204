"""What the layout passes (layout-nchwc, layout-nhwc) share.

Both walk the graph once, give convertible nodes a twin in the new layout,
and then drop the original nodes, routing readers that still need the plain
NCHW value through one conversion each.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from ir.graph import Graph, Node, Value
from ir.registry import BROADCAST, ELEMENTWISE

from .manager import PassContext

# Elementwise-kind ops that are not independent per element along C.
_NOT_PER_ELEMENT = {"BatchNormalization", "SwiGLU", "BitCast"}


def is_per_element(node: Node) -> bool:
    """An elementwise/broadcast op computing each element on its own: any layout can flow through it."""
    return node.schema.kind in (ELEMENTWISE, BROADCAST) and node.op not in _NOT_PER_ELEMENT


def drop_replaced(graph: Graph, ctx: PassContext, replaced: Sequence[Node], twin: dict[int, Value],
                  to_plain: Callable[[Value, Value], Value], decision: str) -> int:
    """Remove ``replaced`` nodes; readers of their outputs (and graph outputs) get ``to_plain(twin, out)``.

    Returns how many conversions back to the plain layout were inserted.
    """
    conversions = 0
    for node in reversed(replaced):
        out = node.output
        if out.uses or out.is_graph_output:
            readers = sorted({u.node.op for u in out.uses}) + (["graph output"] if out.is_graph_output else [])
            graph.replace_all_uses(out, to_plain(twin[id(out)], out))
            conversions += 1
            ctx.decide(decision, value=out.name, read_by=readers,
                       reason="these readers need the plain NCHW layout")
        graph.remove_node(node)
    return conversions
