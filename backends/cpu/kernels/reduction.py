"""Reduction kernels: ReduceSum & co, the global pools, ArgMax/ArgMin; dispatch of the kind.

Every kernel of the ``reduction`` kind starts here: window pools (LpPool)
go to ``pool``, the softmax family and the normalizations to
``normalize``, LRN, CumSum and CumProd to ``lrn``; the plain reductions
are below.  The shared machinery: ``anchored`` (prologue/epilogue around
the anchor op), ``rows`` (loop nests), ``vecmath`` (folds, exp).

A reduction is ``post(fold(pre(x)))`` over its axes for each kept index
(``pre`` = x*x for ReduceSumSquare, ``post`` = sqrt for ReduceL2...),
computed by the loop nests of ``rows.RowSpace``: vectorized along the last
axis whether it is kept (blocked ``[N, C/16, H, W, 16]`` tensors reduced
over H, W: one vector of 16 channels per fold, no horizontal step) or
reduced (rows folded with 4 vector accumulators, then one horizontal
step).  Sums accumulate in the compute type (f32 for f32/f16), spread over
``4 * lanes`` partial sums, which keeps rounding well below the test
tolerance of NumPy's pairwise sums.  ReduceLogSumExp subtracts the max
first; ArgMax/ArgMin fold the extreme value, then the first (or last)
position holding it (NaN counts as the extreme, as in NumPy).
"""

from __future__ import annotations

from typing import Any, Optional

import llvmlite.ir as ir
import numpy as np

from ir.dtypes import DType
from ir.graph import Node

from ..codegen import I64, KernelBuilder, const_int
from ..evaluator import shape_of
from ..expr import compute_type, constant, is_float
from . import Kernel, generator, label_of
from .anchored import Anchored, Epilogue, fused_support
from .rows import Row, RowSpace, Stat
from .vecmath import is_signed_dtype, like, vexp

# op -> (pre, fold, post); see _pre/_post.
_REDUCE = {
    "ReduceSum": ("id", "add", "id"), "ReduceSumSquare": ("sq", "add", "id"),
    "ReduceL1": ("abs", "add", "id"), "ReduceL2": ("sq", "add", "sqrt"),
    "ReduceLogSum": ("id", "add", "log"), "ReduceMean": ("id", "add", "mean"),
    "ReduceProd": ("id", "mul", "id"), "ReduceMax": ("id", "max", "id"), "ReduceMin": ("id", "min", "id"),
    "GlobalAveragePool": ("id", "add", "mean"), "GlobalMaxPool": ("id", "max", "id"),
    "GlobalLpPool": ("lp", "add", "lp"),
}
_FLOAT_ONLY = {"ReduceL2", "ReduceLogSum", "ReduceLogSumExp", "GlobalAveragePool", "GlobalMaxPool",
               "GlobalLpPool"}
REDUCE_OPS = frozenset(_REDUCE) | {"ReduceLogSumExp", "ArgMax", "ArgMin"}
_NUMERIC = {DType.F32, DType.F64, DType.F16, DType.I8, DType.U8, DType.I16, DType.U16, DType.I32, DType.U32,
            DType.I64, DType.U64}
# bfloat16 reductions whose result is one of the inputs (exact whatever the order; sums are not:
# the reference rounds every bfloat16 addition).
_EXACT_ON_BF16 = frozenset({"ReduceMax", "ReduceMin", "ArgMax", "ArgMin"})


def _others() -> dict[str, Any]:
    """Ops of this kind whose kernels live in other modules: op -> (support, emit)."""
    from . import lrn, normalize, pool
    table = {op: (normalize.support, normalize.emit) for op in normalize.NORMALIZE_OPS}
    table.update({op: (pool.support, pool.emit) for op in pool.POOL_OPS})
    table.update({op: (lrn.support, lrn.emit) for op in lrn.LRN_OPS})
    return table


def support(node: Node) -> Optional[str]:
    anchor = Anchored.of(node).anchor
    other = _others().get(anchor.op) if anchor.domain == "" else None
    if other is not None:
        return other[0](node)
    why = fused_support(node, REDUCE_OPS)
    if why is not None:
        return why
    x = anchor.inputs[0]
    dtype = x.type.dtype
    if dtype not in _NUMERIC and not (dtype is DType.BF16 and anchor.op in _EXACT_ON_BF16) \
            and not (dtype is DType.BOOL and anchor.op in ("ReduceMax", "ReduceMin")):
        return f"{anchor.op} on {dtype.short} is not supported by the cpu target"
    if anchor.op in _FLOAT_ONLY and not dtype.is_float:
        return f"{anchor.op} on {dtype.short} (integer) is not supported by the cpu target"
    if anchor.op.startswith("Reduce") and anchor.input(1) is not None and anchor.input(1).const is None:
        return f"{anchor.op} with run-time axes (specialize first)"
    if len(anchor.outputs) != 1:
        return f"{anchor.op} with {len(anchor.outputs)} outputs"
    return None


@generator("reduction", supports=support, ops=lambda: REDUCE_OPS | set(_others()))
def emit(kb: KernelBuilder, node: Node, schedule: Any) -> Kernel:
    anchor = Anchored.of(node).anchor
    other = _others().get(anchor.op)
    if other is not None:
        return other[1](kb, node, schedule)
    return emit_reduce(kb, node)


# ----------------------------------------------------------------- axes
def reduce_axes(anchor: Node, rank: int) -> tuple[list[int], bool]:
    """(sorted reduced axes, keepdims) of a reduction-like op."""
    op = anchor.op
    if op.startswith("Global"):
        return list(range(2, rank)), True
    if op in ("ArgMax", "ArgMin"):
        return [anchor.attr("axis") % rank], bool(anchor.attr("keepdims"))
    axes_v = anchor.input(1)
    axes = [] if axes_v is None else [int(a) % rank for a in np.asarray(axes_v.const).reshape(-1)]
    if not axes and not anchor.attr("noop_with_empty_axes"):
        axes = list(range(rank))
    return sorted(set(axes)), bool(anchor.attr("keepdims"))


def out_axis_map(rank: int, reduced: list[int], keep: bool):
    """x axis -> output axis (None for reduced axes)."""
    kept = [a for a in range(rank) if a not in reduced]
    table = {a: (a if keep else kept.index(a)) for a in kept}
    return lambda a: table.get(a)


# ----------------------------------------------------------------- emit
def emit_reduce(kb: KernelBuilder, node: Node) -> Kernel:
    a = Anchored.of(node)
    anchor = a.anchor
    x = anchor.inputs[0]
    xs = shape_of(x)
    reduced, keep = reduce_axes(anchor, len(xs))
    tf = kb.task_function(f"k_{node.outputs[0].name}")
    ep = Epilogue(kb, tf, a, kb.lanes)
    rs = RowSpace(kb, tf, ep, xs, reduced, out_axis_map(len(xs), reduced, keep))
    count = int(np.prod([xs[i] for i in reduced])) if reduced else 1
    dtype = x.type.dtype
    if anchor.op in ("ArgMax", "ArgMin"):
        row_fn = _arg_row(anchor, dtype)
    elif anchor.op == "ReduceLogSumExp":
        row_fn = _logsumexp_row(dtype)
    else:
        row_fn = _fold_row(anchor, dtype, count)
    rs.run(row_fn)
    tf.builder.ret_void()
    return Kernel(tf.fn.name, rs.n_tasks, tf.buffers, label_of(node))


def _fold_row(anchor: Node, dtype: DType, count: int):
    pre, kind, post = _REDUCE[anchor.op]
    ct = compute_type(dtype)
    signed = is_signed_dtype(dtype)
    wide_mean = post == "mean" and not dtype.is_float  # integer means sum in 64 bits, as onnxruntime
    acc_ty = I64 if wide_mean else ct
    p = int(anchor.attr("p")) if pre == "lp" else 0

    def row(r: Row) -> None:
        b, kb = r.b, r.kb

        def contrib(idx, vector, pos):
            v = r.input(idx, vector)
            if pre == "sq" or (pre == "lp" and p == 2):
                v = b.fmul(v, v) if is_float(v.type) else b.mul(v, v)
            elif pre == "abs" or pre == "lp":
                if is_float(v.type):
                    v = b.call(kb.intrinsic("fabs", v.type), [v])
                elif signed:
                    v = b.select(b.icmp_signed("<", v, constant(v, 0)), b.sub(constant(v, 0), v), v)
                if pre == "lp" and p > 2:
                    base = v
                    for _ in range(p - 1):
                        v = b.fmul(v, base)
            if wide_mean:
                v = b.sext(v, _with(v, I64)) if signed else b.zext(v, _with(v, I64))
            return [v]

        (acc,) = r.fold([Stat(kind, acc_ty, signed)], contrib)
        r.store(r.x_index(), _post(r, post, acc, count, p, ct, signed), r.vector)

    return row


def _with(v: ir.Value, elem: ir.Type) -> ir.Type:
    return ir.VectorType(elem, v.type.count) if isinstance(v.type, ir.VectorType) else elem


def _post(r: Row, post: str, acc: ir.Value, count: int, p: int, ct: ir.Type, signed: bool) -> ir.Value:
    b, kb = r.b, r.kb
    if post == "sqrt" or (post == "lp" and p == 2):
        return b.call(kb.intrinsic("sqrt", acc.type), [acc])
    if post == "log":
        return b.call(kb.intrinsic("log", acc.type), [acc])
    if post == "lp" and p > 2:
        return b.call(kb.intrinsic("pow", acc.type, 2), [acc, constant(acc, 1.0 / p)])
    if post == "mean":
        if count == 0:  # the mean of an empty set is 0, as the reference (and onnxruntime) store
            return constant(acc, 0, ct)
        if is_float(acc.type):
            return b.fdiv(acc, constant(acc, float(count)))
        q = b.sdiv(acc, constant(acc, count)) if signed else b.udiv(acc, constant(acc, count))
        return b.trunc(q, _with(q, ct)) if ct != I64 else q
    return acc


def _logsumexp_row(dtype: DType):
    ct = compute_type(dtype)

    def row(r: Row) -> None:
        b, kb = r.b, r.kb
        (m,) = r.fold([Stat("max", ct)], lambda idx, vec, pos: [r.input(idx, vec)])
        finite = b.fcmp_ordered("<", b.call(kb.intrinsic("fabs", m.type), [m]), constant(m, float("inf")))
        m = b.select(finite, m, constant(m, 0.0))

        def contrib(idx, vector, pos):
            v = r.input(idx, vector)
            return [vexp(kb, b, b.fsub(v, like(b, m, vector, r.lanes)))]

        (s,) = r.fold([Stat("add", ct)], contrib)
        out = b.fadd(b.call(kb.intrinsic("log", s.type), [s]), m)
        r.store(r.x_index(), out, r.vector)

    return row


def _arg_row(anchor: Node, dtype: DType):
    ct = compute_type(dtype)
    signed = is_signed_dtype(dtype)
    kind = "max" if anchor.op == "ArgMax" else "min"
    last = bool(anchor.attr("select_last_index"))

    def row(r: Row) -> None:
        (m,) = r.fold([Stat(kind, ct, signed)], lambda idx, vec, pos: [r.input(idx, vec)])
        r.store(r.x_index(), first_position(r, m, signed, last), r.vector)

    return row


def first_position(r: Row, m: ir.Value, signed: bool, last: bool) -> ir.Value:
    """The first (or last) position along the reduced axis where x equals ``m`` (or is NaN)."""
    b = r.b
    none = const_int(-1) if last else const_int(1 << 62)

    def contrib(idx, vector, pos):
        v = r.input(idx, vector)
        mm = like(b, m, vector, r.lanes)
        if is_float(v.type):
            hit = b.or_(b.fcmp_ordered("==", v, mm), b.fcmp_unordered("uno", v, v))
        else:
            hit = b.icmp_signed("==", v, mm)
        pos = like(b, pos, vector, r.lanes)
        return [b.select(hit, pos, like(b, none, vector, r.lanes))]

    (p,) = r.fold([Stat("max" if last else "min", I64)], contrib)
    return p


__all__ = ["REDUCE_OPS", "emit", "first_position", "out_axis_map", "reduce_axes", "support"]
