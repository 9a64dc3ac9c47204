"""inline-constant-if: an If whose condition is a constant becomes the branch it takes.

Exported models and ONNX function bodies branch on shapes (AffineGrid's
body picks its 2-D or 3-D form with an If on theta's rank); once shapes are
static the condition folds to a constant, and the taken branch's nodes are
spliced into the graph, reading the If's captured values (its trailing
inputs, which the branch's inputs mirror).  A target then compiles the
branch's ops instead of refusing the If.  Constants are folded again after
a splice, which may decide further Ifs (up to ``max_rounds``).
"""

from __future__ import annotations

import numpy as np

from ir.graph import Graph, Node, Value

from .manager import PassContext, register_pass


def _inline(graph: Graph, node: Node, branch: Graph) -> None:
    mapping: dict[int, Value] = {id(b): v for b, v in zip(branch.inputs, node.inputs[1:])}
    tag = node.outputs[0].name if node.outputs else "if"
    for c in branch.constants.values():
        mapping[id(c)] = graph.add_constant(c.const, graph.fresh_name(f"{tag}_{c.name}"), dtype=c.type.dtype)
    for n in branch.nodes:
        new = graph.create_node(n.op, [None if v is None else mapping[id(v)] for v in n.inputs], dict(n.attrs),
                                domain=n.domain, name=n.name,
                                output_names=[graph.fresh_name(f"{tag}_{o.name}") for o in n.outputs],
                                output_types=[o.type for o in n.outputs], before=node)
        for old, out in zip(n.outputs, new.outputs):
            mapping[id(old)] = out
    for old, inner in zip(node.outputs, branch.outputs):
        new = mapping[id(inner)]
        if not graph.can_replace(old, new):
            new = graph.create_node("Identity", [new], {}, output_types=[old.type],
                                    output_names=[graph.fresh_name(old.name + "_id")], before=node).output
        graph.replace_all_uses(old, new)
    graph.remove_node(node)


@register_pass("inline-constant-if")
def inline_constant_if(graph: Graph, ctx: PassContext, *, max_rounds: int = 4) -> bool:
    """Replace each If with a constant condition by the nodes of the branch it takes."""
    changed = False
    for _ in range(max_rounds):
        todo = [n for n in graph.nodes if n.op == "If" and n.domain == "" and n.inputs[0].const is not None]
        for node in todo:
            taken = bool(np.asarray(node.inputs[0].const).reshape(-1)[0])
            label = node.describe()
            _inline(graph, node, node.attr("then_branch" if taken else "else_branch"))
            ctx.decide("inline If", node=label, branch="then" if taken else "else")
        if not todo:
            break
        changed = True
        graph.topological_sort()
        from .fold_constants import fold_constants
        fold_constants(graph, ctx)
    return changed
