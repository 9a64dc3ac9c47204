"""fuse-bias: merge a constant bias Add into the Conv/ConvTranspose/Gemm before it.

Rewrites:

* ``Add(Conv(x, W, b), c)`` with ``c`` constant and per-output-channel (shape
  ``[C, 1, ..]``, ``[1, C, 1, ..]`` or a scalar, i.e. varying along axis 1 only)
  becomes ``Conv(x, W, b + c)``; likewise for ConvTranspose.  A ``[C]``
  constant after a 4-D Conv broadcasts along the *last* axis, so it is not a
  channel bias and the pass leaves it alone.
* ``Add(Gemm(A, B, C), d)`` with constant ``C`` (or none) and constant ``d``
  broadcastable to the ``[M, N]`` result without enlarging it becomes
  ``Gemm(A, B, beta * C + d)`` with ``beta`` 1.
* ``Add(MatMul(A, B), bias)`` with ``A`` of rank 2, ``B`` a constant matrix and
  ``bias`` constant broadcastable to ``[M, N]`` becomes ``Gemm(A, B, bias)``
  (batched or 1-D MatMuls are left alone: Gemm is rank 2 only).

Must not fire when the producer's output has another reader or is a graph
output, when weights/bias are not constants, or when the Add would broadcast
the result to a larger shape.  Graph output names are kept.  The new bias is
computed in float64 and stored in the original dtype.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from ir.graph import Graph, Node, Value
from ir.types import TensorType

from .fold_batchnorm import (const_operand, foldable_producer, per_channel, sole_reader,
                             traffic)
from .manager import PassContext, register_pass


def _bias_add(node: Node) -> Optional[tuple[Value, np.ndarray, Node]]:
    """``(y, c, add)`` when ``node``'s output is read only by ``Add(y, c)`` with constant ``c``."""
    reader = sole_reader(node.output)
    if reader is None or reader.op != "Add" or reader.domain:
        return None
    found = const_operand(reader)
    if found is None or found[0] is not node.output:
        return None
    return found[0], found[1], reader


def _matrix_bias(c: np.ndarray, out: TensorType) -> Optional[np.ndarray]:
    """``c`` when it broadcasts into the rank-2 ``out`` without enlarging it."""
    if out.shape is None or len(out.shape) != 2 or c.ndim > 2:
        return None
    padded = (1,) * (2 - c.ndim) + tuple(c.shape)
    if any(d != 1 and d != o for d, o in zip(padded, out.shape)):
        return None
    return c


def _finish(graph: Graph, add: Node, producer: Node) -> None:
    """Bypass the Add: its readers (and output name) go to the producer."""
    graph.replace_all_uses(add.output, producer.output)
    graph.remove_node(add)


def _fuse_conv(graph: Graph, node: Node, ctx: PassContext) -> bool:
    if node.op == "Gemm":
        return False
    channels = foldable_producer(node)
    found = None if channels is None else _bias_add(node)
    if found is None:
        return False
    y, c, add = found
    vec = per_channel(c, y.type.rank, channels)
    if vec is None:
        return False
    b = node.input(2)
    old = np.zeros(channels) if b is None else b.const.astype(np.float64)
    name = (b.name if b is not None else node.output.name + "_bias") + "_fused"
    graph.set_input(node, 2, graph.add_constant(old + vec, name, dtype=y.type.dtype))
    _finish(graph, add, node)
    ctx.decide(f"merge constant Add into {node.op} bias", node=node.name or y.name,
               saves_nodes=1, saves_bytes_moved=traffic(y, 1),
               rule="per-output-channel constant Add after a convolution")
    return True


def _fuse_gemm(graph: Graph, node: Node, ctx: PassContext) -> bool:
    c_in = node.input(2)
    if node.op != "Gemm" or node.domain or (c_in is not None and c_in.const is None):
        return False
    found = _bias_add(node)
    if found is None:
        return False
    y, d, add = found
    if _matrix_bias(d, y.type) is None or not y.type.dtype.is_float:
        return False
    beta = float(node.attr("beta"))
    old = np.zeros(()) if c_in is None else c_in.const.astype(np.float64) * beta
    new = old + d.astype(np.float64)
    name = (c_in.name if c_in is not None else y.name + "_bias") + "_fused"
    graph.set_input(node, 2, graph.add_constant(new, name, dtype=y.type.dtype))
    node.attrs.pop("beta", None)
    _finish(graph, add, node)
    ctx.decide("merge constant Add into Gemm C", node=node.name or y.name, saves_nodes=1,
               saves_bytes_moved=traffic(y, 1),
               rule="Gemm(A, B, C) + d = Gemm(A, B, beta*C + d) with beta 1")
    return True


def _fuse_matmul(graph: Graph, node: Node, ctx: PassContext) -> bool:
    if node.op != "MatMul" or node.domain:
        return False
    a, b = node.inputs
    if a.type.rank != 2 or b.const is None or b.const.ndim != 2:
        return False
    found = _bias_add(node)
    if found is None:
        return False
    y, bias, add = found
    if _matrix_bias(bias, y.type) is None:
        return False
    bias_value = add.inputs[1] if add.inputs[1].const is not None else add.inputs[0]
    name = y.name
    gemm = graph.create_node("Gemm", [a, b, bias_value], output_names=[name + "_gemm"],
                             before=node)
    graph.replace_all_uses(add.output, gemm.output)
    graph.remove_node(add)
    graph.remove_node(node)
    if not gemm.output.is_graph_output:
        graph.rename(gemm.output, name)
    ctx.decide("turn MatMul + Add into Gemm", node=node.name or name, saves_nodes=1,
               rule="rank-2 MatMul by a constant matrix followed by a constant bias Add")
    return True


@register_pass("fuse-bias")
def fuse_bias(graph: Graph, ctx: PassContext) -> bool:
    """Merge constant bias Adds into Conv/ConvTranspose/Gemm; MatMul + Add becomes Gemm."""
    fused = 0
    for node in list(graph.nodes):
        if node.graph is not graph or node.op not in ("Conv", "ConvTranspose", "Gemm", "MatMul"):
            continue
        fused += _fuse_conv(graph, node, ctx) or _fuse_gemm(graph, node, ctx) \
            or _fuse_matmul(graph, node, ctx)
    if fused:
        ctx.stats["bias_fused"] = ctx.stats.get("bias_fused", 0) + fused
    return fused > 0
