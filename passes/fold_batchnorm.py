"""fold-batchnorm: fold inference BatchNormalization and per-channel scale/shift into weights.

Rewrites, in this order:

1. **Into the producer.**  A per-output-channel affine step ``y * s + t`` that
   directly follows a Conv, ConvTranspose or Gemm is folded into that op's
   constant weights and bias.  A step is an inference BatchNormalization
   (``training_mode`` 0, one output, constant scale/B/mean/var: ``s = scale /
   sqrt(var + eps)``, ``t = B - mean * s``), or a Mul / Add / Sub by a constant
   that varies only along the channel axis (caffe2 "Scale" layers after BN).
   Chains of such steps are folded at once:  Conv: ``W' = W * s`` per output
   channel, ``b' = b * s + t``; Gemm (channels = output axis 1): the columns of
   ``B`` are scaled, ``C' = beta * C * s + t`` and ``beta`` becomes 1.
2. **Lowering.**  A BatchNormalization that could not be folded becomes
   ``Mul(x, s) -> Add(., t)`` with constants shaped ``[C, 1, ..., 1]``, so
   backends need no BN kernel and elementwise fusion sees plain ops.
3. **Affine chains.**  A chain of Mul/Add/Sub by constants (each one not
   enlarging its input by broadcasting) becomes one Mul then one Add when that
   saves nodes, e.g. DenseNet's BN-after-Concat followed by a Scale layer.

Must not fire when: the producer's output has another reader or is a graph
output; weights or bias are not constants; the constant does not broadcast
along the channel axis only (a ``[C]`` constant after a 4-D Conv scales the
*last* axis); the BN is in training mode or has non-constant statistics; the
dtype is not floating point.  Graph output names are kept (the value that
replaces an output takes its name).  New constants are computed in float64
and stored in the original dtype; results match within fp32 rounding.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from ir.graph import Graph, Node, Value
from ir.types import TensorType

from .manager import PassContext, register_pass

PRODUCERS = ("Conv", "ConvTranspose", "Gemm")
AFFINE_OPS = ("Mul", "Add", "Sub")


# ------------------------------------------------------------------ helpers
def is_float(v: Optional[Value]) -> bool:
    return v is not None and isinstance(v.type, TensorType) and v.type.dtype.is_float


def sole_reader(v: Value) -> Optional[Node]:
    """The node reading ``v`` when it is read exactly once and is not a graph output."""
    if len(v.uses) != 1 or v.is_graph_output:
        return None
    return v.uses[0].node


def const_operand(node: Node) -> Optional[tuple[Value, np.ndarray]]:
    """``(x, c)`` for a binary ``op(x, c)`` / ``op(c, x)`` with one constant operand.

    Sub qualifies only as ``x - c`` (``c - x`` negates x).
    """
    if node.domain or len(node.inputs) != 2 or any(v is None for v in node.inputs):
        return None
    a, b = node.inputs
    if b.const is not None and a.const is None:
        return a, b.const
    if a.const is not None and b.const is None and node.op != "Sub":
        return b, a.const
    return None


def per_channel(c: np.ndarray, rank: Optional[int], channels: int) -> Optional[np.ndarray]:
    """``c`` as a length-``channels`` float64 vector when it broadcasts along axis 1 only.

    ``c`` is a constant combined with a rank-``rank`` tensor whose axis 1 has
    ``channels`` entries; every other axis of ``c`` (left-padded to ``rank``)
    must be 1, so the op neither enlarges nor reshapes the tensor.
    """
    if rank is None or rank < 2 or c.ndim > rank:
        return None
    padded = (1,) * (rank - c.ndim) + tuple(c.shape)
    if any(d != 1 for i, d in enumerate(padded) if i != 1) or padded[1] not in (1, channels):
        return None
    return np.broadcast_to(c.astype(np.float64).reshape(-1), (channels,)).copy()


def batchnorm_affine(node: Node) -> Optional[tuple[np.ndarray, np.ndarray]]:
    """``(s, t)`` with ``BN(x) = x * s + t`` per channel, for a foldable inference BN."""
    if node.op != "BatchNormalization" or node.domain or len(node.outputs) != 1:
        return None
    if node.attr("training_mode") or not is_float(node.inputs[0]):
        return None
    params = [node.input(i) for i in range(1, 5)]
    if any(p is None or p.const is None for p in params):
        return None
    scale, bias, mean, var = (p.const.astype(np.float64).reshape(-1) for p in params)
    s = scale / np.sqrt(var + float(node.attr("epsilon")))
    return s, bias - mean * s


def step_affine(node: Node, x: Value, rank: Optional[int], channels: int
                ) -> Optional[tuple[np.ndarray, np.ndarray]]:
    """``(s, t)`` when ``node`` computes ``x * s + t`` per channel from input ``x``."""
    if node.op == "BatchNormalization":
        st = batchnorm_affine(node)
        if st is None or node.inputs[0] is not x or len(st[0]) != channels:
            return None
        return st
    if node.op not in AFFINE_OPS or node.domain:
        return None
    found = const_operand(node)
    if found is None or found[0] is not x or not is_float(x):
        return None
    vec = per_channel(found[1], rank, channels)
    if vec is None:
        return None
    one, zero = np.ones(channels), np.zeros(channels)
    return {"Mul": (vec, zero), "Add": (one, vec), "Sub": (one, -vec)}[node.op]


def traffic(v: Value, passes: int) -> Optional[int]:
    """Bytes no longer moved when ``passes`` elementwise ops over ``v`` disappear (read + write)."""
    n = v.type.nbytes if isinstance(v.type, TensorType) else None
    return None if n is None else 2 * n * passes


def replace_with(graph: Graph, old: Value, new: Value) -> None:
    """Make readers of ``old`` read ``new`` and give ``new`` the name of ``old``."""
    name = old.name
    graph.replace_all_uses(old, new)
    graph.remove_node(old.producer)
    if new.name != name and not graph.has_value(name) and new.producer is not None:
        graph.rename(new, name)


# ----------------------------------------------- stage 1: into the producer
def output_channels(node: Node) -> Optional[int]:
    """Number of output channels of a Conv/ConvTranspose/Gemm with constant weights."""
    w = node.input(1)
    if w is None or w.const is None or w.const.ndim < 2:
        return None
    if node.op == "Conv":
        return int(w.const.shape[0])
    if node.op == "ConvTranspose":
        return int(w.const.shape[1]) * int(node.attr("group"))
    return int(w.const.shape[0] if node.attr("transB") else w.const.shape[1])


def foldable_producer(node: Node) -> Optional[int]:
    """Output channel count when ``node``'s weights and bias can absorb a scale/shift."""
    if node.op not in PRODUCERS or node.domain or not is_float(node.output):
        return None
    bias = node.input(2)
    if bias is not None and bias.const is None:
        return None
    if node.op == "Gemm" and node.output.type.rank != 2:
        return None
    return output_channels(node)


def collect_chain(node: Node, channels: int) -> tuple[list[Node], np.ndarray, np.ndarray]:
    """The affine steps following ``node`` and their composed per-channel ``(s, t)``."""
    chain: list[Node] = []
    s, t = np.ones(channels), np.zeros(channels)
    cur = node.output
    rank = cur.type.rank
    while True:
        reader = sole_reader(cur)
        if reader is None or len(reader.outputs) != 1:
            break
        st = step_affine(reader, cur, rank, channels)
        if st is None or reader.output.type.rank != rank:
            break
        s, t = s * st[0], t * st[0] + st[1]
        chain.append(reader)
        cur = reader.output
    return chain, s, t


def scaled_weight(node: Node, s: np.ndarray) -> np.ndarray:
    """The producer's weight with output channel ``m`` scaled by ``s[m]``."""
    w = node.inputs[1].const.astype(np.float64)
    if node.op == "Conv":
        return w * s.reshape((-1,) + (1,) * (w.ndim - 1))
    if node.op == "ConvTranspose":  # W: (C_in, M / group, *k), out channel = g * M/group + j
        g = int(node.attr("group"))
        blocks = w.reshape((g, w.shape[0] // g) + w.shape[1:])
        sb = s.reshape((g, 1, w.shape[1]) + (1,) * (w.ndim - 2))
        return (blocks * sb).reshape(w.shape)
    return w * (s[:, None] if node.attr("transB") else s[None, :])  # Gemm: scale B's columns


def shifted_bias(node: Node, s: np.ndarray, t: np.ndarray) -> np.ndarray:
    """The producer's new bias (Conv B, Gemm C) after ``y * s + t``."""
    b = node.input(2)
    if node.op != "Gemm":
        return (0.0 if b is None else b.const.astype(np.float64)) * s + t
    if b is None:
        return t
    c = b.const.astype(np.float64) * float(node.attr("beta"))
    c = c.reshape((1,) * (2 - c.ndim) + c.shape) if c.ndim < 2 else c
    out = c * s[None, :] + t[None, :]
    return out[0] if b.const.ndim < 2 and out.shape[0] == 1 else out


def fold_into_producer(graph: Graph, node: Node, chain: list[Node], s: np.ndarray,
                       t: np.ndarray) -> None:
    """Rewrite ``node``'s weight and bias, then bypass and delete ``chain``."""
    w, b = node.inputs[1], node.input(2)
    dtype = w.type.dtype
    new_w = graph.add_constant(scaled_weight(node, s), w.name + "_fused", dtype=dtype)
    bias_name = (b.name if b is not None else node.output.name + "_bias") + "_fused"
    new_b = graph.add_constant(shifted_bias(node, s, t), bias_name, dtype=dtype)
    graph.set_input(node, 1, new_w)
    graph.set_input(node, 2, new_b)
    if node.op == "Gemm" and "beta" in node.attrs:
        del node.attrs["beta"]
    graph.replace_all_uses(chain[-1].output, node.output)
    for step in reversed(chain):
        graph.remove_node(step)


def fold_into_producers(graph: Graph, ctx: PassContext) -> int:
    folded = 0
    for node in list(graph.nodes):
        if node.graph is not graph:
            continue
        channels = foldable_producer(node)
        if channels is None:
            continue
        chain, s, t = collect_chain(node, channels)
        if not chain:
            continue
        ops = [n.op for n in chain]
        saved_bytes = traffic(node.output, len(chain))
        fold_into_producer(graph, node, chain, s, t)
        rule = "BatchNormalization" if "BatchNormalization" in ops else "per-channel scale/shift"
        ctx.decide(f"fold {rule} into {node.op}", node=node.name or node.output.name,
                   ops=ops, saves_nodes=len(chain), saves_bytes_moved=saved_bytes,
                   rule="inference BN / per-channel constant after an op with constant weights")
        folded += len(chain)
    return folded


# --------------------------------------------------------- stage 2: lowering
def lower_batchnorm(graph: Graph, node: Node, ctx: PassContext) -> bool:
    """Replace an unfoldable inference BN with ``Mul`` + ``Add`` by ``[C, 1, ...]`` constants."""
    st = batchnorm_affine(node)
    x, out = node.inputs[0], node.outputs[0]
    rank = x.type.rank
    if st is None or rank is None or rank < 2:
        return False
    shape = (len(st[0]),) + (1,) * (rank - 2)
    dtype = x.type.dtype
    s = graph.add_constant(st[0].reshape(shape), out.name + "_scale", dtype=dtype)
    t = graph.add_constant(st[1].reshape(shape), out.name + "_shift", dtype=dtype)
    mul = graph.create_node("Mul", [x, s], output_names=[out.name + "_mul"], before=node)
    add = graph.create_node("Add", [mul.output, t], output_names=[out.name + "_add"], before=node)
    replace_with(graph, out, add.output)
    ctx.decide("lower BatchNormalization to Mul + Add", node=node.name or out.name,
               channels=len(st[0]), saves_nodes=-1,
               rule="unfoldable inference BN: backends need no BN kernel; Mul/Add fuse")
    return True


# ---------------------------------------------------- stage 3: affine chains
def affine_step(node: Node) -> Optional[tuple[Value, np.ndarray]]:
    """``(x, c)`` when ``node`` is Mul/Add/Sub of float ``x`` by a constant not enlarging it."""
    if node.op not in AFFINE_OPS or node.domain or len(node.outputs) != 1:
        return None
    found = const_operand(node)
    if found is None or not is_float(found[0]):
        return None
    x, c = found
    xt, ot = x.type, node.output.type
    if xt.shape is None or ot.shape is None or tuple(xt.shape) != tuple(ot.shape) \
            or c.ndim > len(xt.shape) or any(d is None for d in xt.shape):
        return None
    return found


def merge_affine_chains(graph: Graph, ctx: PassContext) -> int:
    """Collapse Mul/Add/Sub-by-constant chains into at most one Mul and one Add."""
    done: set[int] = set()
    saved = 0
    for node in list(graph.nodes):
        if id(node) in done or node.graph is not graph or affine_step(node) is None:
            continue
        chain = [node]
        while True:
            reader = sole_reader(chain[-1].output)
            step = None if reader is None else affine_step(reader)
            if step is None or step[0] is not chain[-1].output:
                break
            chain.append(reader)
        done.update(id(n) for n in chain)
        has_mul = any(n.op == "Mul" for n in chain)
        has_add = any(n.op != "Mul" for n in chain)
        if len(chain) <= has_mul + has_add:
            continue
        saved_bytes = traffic(chain[-1].output, len(chain) - has_mul - has_add)
        rewrite_chain(graph, chain, has_mul, has_add)
        ctx.decide("merge per-channel affine chain into Mul + Add", node=chain[-1].output.name,
                   ops=[n.op for n in chain], saves_nodes=len(chain) - has_mul - has_add,
                   saves_bytes_moved=saved_bytes,
                   rule="(x*a + b)*c + d = x*(a*c) + (b*c + d) with constant a, b, c, d")
        saved += len(chain) - has_mul - has_add
    return saved


def rewrite_chain(graph: Graph, chain: list[Node], has_mul: bool, has_add: bool) -> None:
    x = affine_step(chain[0])[0]
    scale, shift = np.ones(()), np.zeros(())
    for n in chain:
        c = affine_step(n)[1].astype(np.float64)
        if n.op == "Mul":
            scale, shift = scale * c, shift * c
        else:
            shift = shift + (c if n.op == "Add" else -c)
    last, dtype = chain[-1].output, x.type.dtype
    cur = x
    if has_mul:
        a = graph.add_constant(scale, last.name + "_scale", dtype=dtype)
        cur = graph.create_node("Mul", [cur, a], output_names=[last.name + "_mul"],
                                before=chain[-1]).output
    if has_add:
        b = graph.add_constant(shift, last.name + "_shift", dtype=dtype)
        cur = graph.create_node("Add", [cur, b], output_names=[last.name + "_add"],
                                before=chain[-1]).output
    name = last.name
    graph.replace_all_uses(last, cur)
    for n in reversed(chain):
        graph.remove_node(n)
    if cur.name != name and not graph.has_value(name):
        graph.rename(cur, name)


@register_pass("fold-batchnorm")
def fold_batchnorm(graph: Graph, ctx: PassContext) -> bool:
    """Fold inference BatchNormalization / per-channel scale-shift into Conv/Gemm weights."""
    folded = fold_into_producers(graph, ctx)
    lowered = sum(lower_batchnorm(graph, n, ctx) for n in list(graph.nodes)
                  if n.op == "BatchNormalization" and not n.domain)
    merged = merge_affine_chains(graph, ctx)
    for key, n in (("bn_folded_steps", folded), ("bn_lowered", lowered),
                   ("affine_nodes_saved", merged)):
        if n:
            ctx.stats[key] = ctx.stats.get(key, 0) + n
    return bool(folded or lowered or merged)
