"""dce: dead-code elimination.

Removes pure nodes none of whose outputs is read or returned, then constants
nobody reads.  Graph inputs stay: they are the model's interface.
"""

from __future__ import annotations

from ir.graph import Graph

from .manager import PassContext, register_pass


@register_pass("dce")
def dce(graph: Graph, ctx: PassContext) -> bool:
    """Remove nodes and constants whose values are never used."""
    outputs = {id(v) for v in graph.outputs}
    removed = 0
    for node in reversed(list(graph.nodes)):
        if not node.schema.pure:
            continue
        if any(out.uses or id(out) in outputs for out in node.outputs):
            continue
        graph.remove_node(node)
        removed += 1
    for c in list(graph.constants.values()):
        if not c.uses and id(c) not in outputs:
            graph.remove_constant(c)
            removed += 1
    return removed > 0
