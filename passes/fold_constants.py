"""fold-constants: evaluate nodes whose inputs are all known at compile time.

Folds any pure node whose inputs are constants (ConstantOfShape, shape
arithmetic, weight transposes...), and ``Shape``/``Size`` of tensors whose
shape is static.  Results replace the node as graph constants that keep the
node's output name.  Types downstream are then refined, so a Reshape whose
target shape became constant gets a static output shape.
"""

from __future__ import annotations

import numpy as np

from ir.errors import TypeInferenceError
from ir.graph import Graph, Node
from ir.infer import refine_types
from ir.interpreter import Interpreter
from ir.registry import get_schema
from ir.types import TensorType

from .manager import PassContext, register_pass


def _static_shape_value(node: Node):
    """Value of Shape/Size on a statically shaped input, else None."""
    t = node.inputs[0].type if node.inputs and node.inputs[0] is not None else None
    if not isinstance(t, TensorType) or not t.is_static:
        return None
    if node.op == "Shape" and node.domain == "":
        shape = np.array(t.shape, dtype=np.int64)
        rank = len(shape)
        start = node.attr("start") or 0
        end = node.attr("end")
        start = max(0, min(rank, start + rank if start < 0 else start))
        end = rank if end is None else max(0, min(rank, end + rank if end < 0 else end))
        return [shape[start:end]]
    if node.op == "Size" and node.domain == "":
        return [np.array(t.numel, dtype=np.int64)]
    return None


def _foldable(node: Node, max_elements: int) -> bool:
    schema = get_schema(node.op, node.domain)
    if not schema.pure or schema.reference_fn is None or any(True for _ in node.subgraphs()):
        return False
    if not all(v is None or v.const is not None for v in node.inputs):
        return False
    for out in node.outputs:
        if not isinstance(out.type, TensorType):
            return False
        n = out.type.numel
        if n is not None and n > max_elements:
            return False
    return True


@register_pass("fold-constants")
def fold_constants(graph: Graph, ctx: PassContext, *, max_elements: int = 1 << 28) -> bool:
    """Evaluate nodes whose inputs are all constant (and Shape/Size of static shapes)."""
    total = 0
    while True:  # folding can make shapes static, which lets more Shape nodes fold
        folded = _fold_once(graph, max_elements)
        if not folded:
            break
        total += folded
        rejected: list = []
        refine_types(graph, rejected)
        if rejected:
            # Folding only evaluated the model's own constants: a node whose rule now rejects its
            # inputs (a Reshape to a folded shape of another size, say) is the model's mistake.
            node, exc = rejected[0]
            raise TypeInferenceError(f"the model is inconsistent once its constants are folded: {exc.message}",
                                     subject=exc.subject or node.describe(), expected=exc.expected,
                                     found=exc.found, hint=exc.hint)
    if total:
        ctx.stats["folded_nodes"] = ctx.stats.get("folded_nodes", 0) + total
    return total > 0


def _fold_once(graph: Graph, max_elements: int) -> int:
    interp = Interpreter(graph, check_types=False)
    folded = 0
    for node in list(graph.nodes):
        values = _static_shape_value(node)
        if values is None:
            if not _foldable(node, max_elements):
                continue
            values = interp.run_node(node, [None if v is None else v.const for v in node.inputs])
        for out, arr in zip(node.outputs, values):
            name = out.name  # the constant takes the name (graph outputs keep theirs)
            graph.rename(out, name + "_folded")
            const = graph.add_constant(np.asarray(arr), name, dtype=out.type.dtype)
            if out.type.layout is not None:  # keep a blocked layout tag (e.g. a re-laid-out constant)
                const.type = const.type.with_layout(out.type.layout)
            graph.replace_all_uses(out, const)
        graph.remove_node(node)
        folded += 1
    return folded
