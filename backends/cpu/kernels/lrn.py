"""LRN (local response normalization across channels), CumSum and CumProd kernels.

LRN, NCHW (AlexNet, ZFNet, Inception-v1)::

    y[n, c, s] = x[n, c, s] / (bias + alpha / size * sum_{c' in window(c)} x[n, c', s]^2) ^ beta

Tasks split the (n, c) pairs; for each, the spatial positions (one flat
axis when the tensors allow it) go ``lanes`` at a time: ``size`` vector
loads of neighbouring channels (a channel outside [0, C) counts as zero),
a sum of squares, and the power computed with square roots for the usual
beta = 0.75 (``t^0.75 = sqrt(t) * sqrt(sqrt(t))``) or 0.5, ``llvm.pow``
otherwise.

CumSum (CumProd) runs along its axis with a running sum (product) per row, in the order the
``reverse`` attribute asks, vectorized across the last axis when the scan
axis is another one (``rows.RowSpace`` in ``inner`` mode).
"""

from __future__ import annotations

import math
from typing import Any, Optional

import llvmlite.ir as ir
import numpy as np

from ir.dtypes import DType
from ir.graph import Node

from ..codegen import KernelBuilder, const_int, for_range, task_range
from ..evaluator import shape_of
from ..expr import compute_type, constant
from . import Kernel, label_of
from .anchored import Anchored, Epilogue, collapsible, fused_support, has_injective, path_values, task_count
from .rows import Row, RowSpace
from .vecmath import Var, combine, const_like, like

LRN_OPS = frozenset({"LRN", "CumSum", "CumProd"})
_FLOATS = {DType.F32, DType.F64, DType.F16}
_NUMERIC = _FLOATS | {DType.I32, DType.I64, DType.U32, DType.U64}


def support(node: Node) -> Optional[str]:
    why = fused_support(node, LRN_OPS)
    if why is not None:
        return why
    anchor = Anchored.of(node).anchor
    dtype = anchor.inputs[0].type.dtype
    if anchor.op == "LRN":
        if dtype not in _FLOATS:
            return f"LRN on {dtype.short} is not supported by the cpu target"
        if len(shape_of(anchor.inputs[0])) < 3:
            return "LRN needs an input with spatial axes (N, C, D1, ...)"
        return None
    if dtype not in _NUMERIC:
        return f"{anchor.op} on {dtype.short} is not supported by the cpu target"
    if anchor.inputs[1].const is None:
        return f"{anchor.op} with a run-time axis (specialize first)"
    return None


def emit(kb: KernelBuilder, node: Node, schedule: Any) -> Kernel:
    anchor = Anchored.of(node).anchor
    return _emit_lrn(kb, node) if anchor.op == "LRN" else _emit_cumsum(kb, node)


# ---------------------------------------------------------------------- LRN
def _emit_lrn(kb: KernelBuilder, node: Node) -> Kernel:
    a = Anchored.of(node)
    anchor = a.anchor
    xs = shape_of(anchor.inputs[0])
    n, c = xs[0], xs[1]
    spatial = math.prod(xs[2:])
    tf = kb.task_function(f"k_{node.outputs[0].name}")
    b = tf.builder
    ep = Epilogue(kb, tf, a, kb.lanes)
    lanes = kb.lanes
    # Walk the spatial axes as one when every tensor allows it, else only the last one is vectorized.
    values = path_values([anchor.inputs[0]], a.members) + ep.epilogue_values(ep.direct) + [a.result]
    flat = len(xs) == 3 or (collapsible(values, xs, range(2, len(xs))) and not ep.expanded
                            and not has_injective(values, a.members))
    inner_n = spatial if flat else xs[-1]
    outer_spatial = () if flat else xs[2:-1]
    vec = inner_n >= lanes and ep.input_vector_ok()
    vec_out = ep.output_vector_ok() and all(ep.output_vector_ok([o]) for o in ep.expanded)
    outer = n * c * math.prod(outer_spatial)
    n_tasks = task_count(n * c * spatial, outer)
    size = int(anchor.attr("size"))
    before = (size - 1) // 2
    alpha, beta, bias = float(anchor.attr("alpha")) / size, float(anchor.attr("beta")), float(anchor.attr("bias"))

    def index(cc: ir.Value, mids: list, pos: ir.Value) -> list:
        rest = [const_int(0)] * (len(xs) - 3) if flat else list(mids)
        return [n_i, cc, *rest, pos]

    def point(pos: ir.Value, vector: bool) -> None:
        x = ep.input(index(c_i, mids, pos), vector)
        acc = None
        for k in range(size):
            ck = b.add(c_i, const_int(k - before))
            ok = b.and_(b.icmp_signed(">=", ck, const_int(0)), b.icmp_signed("<", ck, const_int(c)))
            v = ep.input(index(b.select(ok, ck, const_int(0)), mids, pos), vector)
            sq = b.fmul(v, v)
            sq = b.select(like(b, ok, vector, lanes), sq, constant(sq, 0.0))
            acc = sq if acc is None else b.fadd(acc, sq)
        t = b.fadd(constant(acc, bias), b.fmul(constant(acc, alpha), acc))
        y = b.fdiv(x, _power(kb, b, t, beta))
        ep.store(index(c_i, mids, pos), y, vector, base=pos, vector_out=vec_out)

    start, stop = task_range(b, tf.task, n_tasks, outer)
    with for_range(b, start, stop, name="nc") as flat_i:
        rem = flat_i
        mids = []
        for d in reversed(outer_spatial):
            mids.insert(0, b.srem(rem, const_int(d)))
            rem = b.sdiv(rem, const_int(d))
        c_i = b.srem(rem, const_int(c))
        n_i = b.sdiv(rem, const_int(c))
        full = inner_n // lanes * lanes if vec else 0
        if full:
            with for_range(b, 0, full, lanes, name="s") as pos:
                point(pos, True)
            ep.forget()
        if full < inner_n:
            with for_range(b, full, inner_n, name="st") as pos:
                point(pos, False)
            ep.forget()
    ep.forget()
    b.ret_void()
    return Kernel(tf.fn.name, n_tasks, tf.buffers, label_of(node))


def _power(kb: KernelBuilder, b: ir.IRBuilder, t: ir.Value, beta: float) -> ir.Value:
    """t ** beta; square roots for the betas LRN uses in practice."""
    sqrt = lambda v: b.call(kb.intrinsic("sqrt", v.type), [v])  # noqa: E731
    if beta == 0.75:
        r = sqrt(t)
        return b.fmul(r, sqrt(r))
    if beta == 0.5:
        return sqrt(t)
    if beta == 1.0:
        return t
    return b.call(kb.intrinsic("pow", t.type, 2), [t, constant(t, beta)])


# ------------------------------------------------------------------- CumSum
def _emit_cumsum(kb: KernelBuilder, node: Node) -> Kernel:
    a = Anchored.of(node)
    anchor = a.anchor
    xs = shape_of(anchor.inputs[0])
    rank = len(xs)
    axis = int(np.asarray(anchor.inputs[1].const).reshape(-1)[0]) % max(rank, 1)
    tf = kb.task_function(f"k_{node.outputs[0].name}")
    ep = Epilogue(kb, tf, a, kb.lanes)
    rs = RowSpace(kb, tf, ep, xs, [axis] if rank else [], lambda ax: ax, unroll=False)
    dtype = anchor.inputs[0].type.dtype
    ct = compute_type(dtype)
    exclusive, reverse = bool(anchor.attr("exclusive")), bool(anchor.attr("reverse"))
    kind = "add" if anchor.op == "CumSum" else "mul"

    def row(r: Row) -> None:
        b = r.b
        ty = ir.VectorType(ct, r.lanes) if r.vector else ct
        acc = Var(rs.tf, ty, "running")
        acc.set(const_like(ty, 0 if kind == "add" else 1))

        def step(idx, vector, pos):
            v = r.input(idx, vector)
            if exclusive:
                r.store(idx, acc.get(), vector)
                acc.set(combine(kb, b, kind, acc.get(), v))
            else:
                acc.set(combine(kb, b, kind, acc.get(), v))
                r.store(idx, acc.get(), vector)

        r.each(step, reverse=reverse, vectorize=False)

    rs.run(row)
    tf.builder.ret_void()
    return Kernel(tf.fn.name, rs.n_tasks, tf.buffers, label_of(node))


__all__ = ["LRN_OPS", "emit", "support"]
