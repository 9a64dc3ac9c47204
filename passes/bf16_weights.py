"""bf16-weights: float32 MatMul/Gemm with constant weights -> ``nnc.BF16MatMul`` (opt-in).

Runs only when the target asks for it (cpu ``--option precision=bf16``): the
weights are rounded to bfloat16 and packed once, at build time (half the
bytes), and the kernel rounds the activations to bfloat16 as it reads them.
Matches ``MatMul(A, const B[K, N])`` and ``Gemm(A, const B, [const C[N]])``
with ``transA = 0``, ``alpha = beta = 1``.  Convolutions stay float32.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from ir.dtypes import DType
from ir.graph import Graph, Node
from ir.ops.bf16_nnc import NNC, pack_bf16_weights

from .manager import PassContext, register_pass

MIN_MACS = 4096  # smaller matmuls gain nothing from tiles


def wanted(ctx: PassContext) -> bool:
    """Whether the target compiling the graph asked for bfloat16 (``precision=bf16``)."""
    config = getattr(ctx.backend, "config", None) or {}
    return config.get("precision") == "bf16"


def _rewrite(graph: Graph, node: Node) -> Optional[Node]:
    if node.domain or node.op not in ("MatMul", "Gemm"):
        return None
    a, b = node.inputs[0], node.input(1)
    if a.type.dtype != DType.F32 or b is None or b.const is None or b.const.ndim != 2 or a.type.rank is None \
            or a.type.rank < 2:
        return None
    w = np.asarray(b.const, np.float32)
    bias = None
    if node.op == "Gemm":
        if node.attr("transA") or float(node.attr("alpha")) != 1.0:
            return None
        w = w.T if node.attr("transB") else w
        c = node.input(2)
        if c is not None:
            if c.const is None or float(node.attr("beta")) != 1.0 or np.size(c.const) not in (1, w.shape[1]):
                return None
            bias = np.broadcast_to(np.asarray(c.const, np.float32).reshape(-1), (w.shape[1],)).copy()
    k, n = w.shape
    rows = int(np.prod([d for d in a.type.shape[:-1]])) if a.type.is_static else 1
    if k * n * rows < MIN_MACS:
        return None
    base = node.output.name
    ins = [a, graph.add_constant(pack_bf16_weights(w), base + "_bf16w")]
    if bias is not None:
        ins.append(graph.add_constant(bias, base + "_bias"))
    new = graph.create_node("BF16MatMul", ins, {"n": int(n)}, domain=NNC, output_names=[base + "_bf16"],
                            before=node)
    graph.replace_all_uses(node.output, new.output)
    graph.remove_node(node)
    return new


@register_pass("bf16-weights", "float MatMul/Gemm with constant weights -> nnc.BF16MatMul (cpu precision=bf16)")
def bf16_weights(graph: Graph, ctx: PassContext) -> bool:
    if not wanted(ctx):
        return False
    changed = 0
    for node in list(graph.nodes):
        if node.graph is graph and _rewrite(graph, node) is not None:
            changed += 1
    if changed:
        ctx.decide(f"{changed} matmuls on bfloat16 inputs", rule="precision=bf16: weights rounded and packed "
                   "at build time")
        ctx.stats["bf16_matmuls"] = changed
        for name, v in list(graph.constants.items()):
            if not v.uses and not v.is_graph_output:
                graph.remove_constant(v)
    return changed > 0
