"""expand-flex-attention: FlexAttention (ai.onnx.preview) as the ops its definition names.

For a target without a FlexAttention kernel (asked through ``ctx.backend``)::

    S = (Q @ K^T) * scale;  S = score_mod(S);  P = Softmax(S, -1);  P = prob_mod(P);  Y = P @ V

K and V are repeated over the query heads of each group (Unsqueeze, Expand,
Reshape), computed in the softmax precision (Cast where it differs), and the
``score_mod`` / ``prob_mod`` subgraphs are inlined with their captured
values (the node's trailing inputs).  The same steps as the reference
(``ir/ops/flex_attention.py``), so the semantics are the op's; the target
then compiles MatMul, Softmax and whatever the modifiers hold (the
attention fusion may match the result again).
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from ir.dtypes import DType
from ir.graph import Graph, Node, Value
from ir.types import TensorType

from .manager import PassContext, register_pass

DOMAIN = "ai.onnx.preview"


def _softmax_dtype(node: Node) -> DType:
    precision = node.attr("softmax_precision")
    if precision is not None:
        return DType.from_onnx(precision)
    return DType.F64 if node.inputs[0].type.dtype is DType.F64 else DType.F32


def _inline(graph: Graph, body: Graph, args: list[Value], node: Node, tag: str) -> Value:
    """Copy ``body``'s nodes into ``graph`` reading ``args``; returns its (first) output."""
    mapping: dict[int, Value] = {id(b): v for b, v in zip(body.inputs, args)}
    for c in body.constants.values():
        mapping[id(c)] = graph.add_constant(c.const, graph.fresh_name(f"{node.outputs[0].name}_{tag}_{c.name}"),
                                            dtype=c.type.dtype)
    for n in body.nodes:
        new = graph.create_node(n.op, [None if v is None else mapping[id(v)] for v in n.inputs], dict(n.attrs),
                                domain=n.domain, name=node.name,
                                output_names=[f"{node.outputs[0].name}_{tag}_{o.name}" for o in n.outputs],
                                before=node)
        for old, out in zip(n.outputs, new.outputs):
            mapping[id(old)] = out
    return mapping[id(body.outputs[0])]


def _static(node: Node) -> bool:
    return all(isinstance(v.type, TensorType) and v.type.is_static for v in node.inputs[:3])


def expand(graph: Graph, node: Node) -> None:
    q, k, v = node.inputs[:3]
    captures = list(node.inputs[3:])
    n_score = node.attr("num_score_captures") or 0
    ct = _softmax_dtype(node)
    name = node.outputs[0].name

    def add(op: str, *inputs: Value, **attrs) -> Value:
        return graph.create_node(op, list(inputs), attrs, name=node.name, before=node,
                                 output_names=[graph.fresh_name(f"{name}_{op.lower()}")]).output

    def const(arr, dtype: Optional[DType] = None) -> Value:
        return graph.add_constant(np.asarray(arr), graph.fresh_name(f"{name}_c"), dtype=dtype)

    def cast(x: Value, to: DType) -> Value:
        return x if x.type.dtype is to else add("Cast", x, to=to.onnx)

    b, hq, sq, d = q.type.shape
    hk = k.type.shape[1]
    group = hq // hk

    def repeat(x: Value) -> Value:
        if group == 1:
            return x
        _, _, s, e = x.type.shape
        x = add("Unsqueeze", x, const([2], DType.I64))
        x = add("Expand", x, const([b, hk, group, s, e], DType.I64))
        return add("Reshape", x, const([b, hq, s, e], DType.I64))

    kk, vv = cast(repeat(k), ct), cast(repeat(v), ct)
    scale = node.attr("scale")
    scale = 1.0 / np.sqrt(d) if scale is None else scale
    scores = add("MatMul", cast(q, ct), add("Transpose", kk, perm=(0, 1, 3, 2)))
    scores = add("Mul", scores, const(np.asarray(scale, ct.np), ct))
    if node.attr("score_mod") is not None:
        scores = cast(_inline(graph, node.attr("score_mod"), [scores, *captures[:n_score]], node, "score"), ct)
    probs = add("Softmax", scores, axis=-1)
    if node.attr("prob_mod") is not None:
        probs = cast(_inline(graph, node.attr("prob_mod"), [probs, *captures[n_score:]], node, "prob"), ct)
    y = cast(add("MatMul", probs, vv), q.type.dtype)
    graph.replace_all_uses(node.outputs[0], y)
    graph.remove_node(node)


@register_pass("expand-flex-attention")
def expand_flex_attention(graph: Graph, ctx: PassContext) -> bool:
    """Rewrite FlexAttention into MatMul, Softmax and its inlined modifiers (for targets without its kernel)."""
    backend = ctx.backend
    changed = False
    for node in list(graph.nodes):
        if node.op != "FlexAttention" or node.domain != DOMAIN:
            continue
        if backend is not None and backend.supports(node).ok:
            continue
        if not _static(node):
            ctx.decide("keep FlexAttention", node=node.describe(), reason="needs static shapes")
            continue
        label = node.describe()
        expand(graph, node)
        ctx.decide("expand FlexAttention", node=label, rule="MatMul, Softmax and the inlined modifiers")
        changed = True
    if changed:
        graph.topological_sort()
    return changed
