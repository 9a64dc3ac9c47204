"""Row-normalizing kernels: Softmax, LogSoftmax, Hardmax, LayerNormalization,
RMSNormalization, InstanceNormalization, LpNormalization, MeanVarianceNormalization.

Each output element depends on its input element and a few statistics of
its *row* (the softmax axis, the normalized trailing axes, the spatial axes
of one instance).  Per row, the kernel folds the statistics in one pass
each over the row (``rows.Row.fold``: max, then sum of exp(x - max) for a
softmax; mean, then the mean of squared deviations for the norms, as the
reference computes them), then walks the row once more computing and
storing the output (``Row.each``), fused epilogue included.  Rows are read
two or three times; they are short enough to stay in L1/L2 in the models
we target.  Softmax subtracts the row max before ``exp``, so no input
overflows; ``exp`` is the vectorized polynomial of ``vecmath``.

The loop shapes are those of ``rows.RowSpace``: along the last axis when
it is normalized (one horizontal step per statistic), across the last axis
when it is not (a softmax over the channels of NCHW vectorizes over H*W,
each lane its own row).
"""

from __future__ import annotations

from typing import Any, Optional

import llvmlite.ir as ir

from ir.dtypes import DType
from ir.graph import Node

from ..codegen import KernelBuilder, const_int, load_vector, store_vector
from ..evaluator import linear_offset, shape_of
from ..expr import compute_type, constant, store_convert
from . import Kernel, label_of
from .anchored import Anchored, Epilogue, fused_support
from .rows import Row, RowSpace, Stat
from .vecmath import like, vexp

NORMALIZE_OPS = frozenset({"Softmax", "LogSoftmax", "Hardmax", "LayerNormalization", "RMSNormalization",
                           "InstanceNormalization", "LpNormalization", "MeanVarianceNormalization"})
_FLOATS = {DType.F32, DType.F64, DType.F16}
_SOFTMAXES = frozenset({"Softmax", "LogSoftmax"})  # also on bfloat16: computed in float32, rounded on store


def support(node: Node) -> Optional[str]:
    why = fused_support(node, NORMALIZE_OPS)
    if why is not None:
        return why
    anchor = Anchored.of(node).anchor
    dtype = anchor.inputs[0].type.dtype
    if dtype not in _FLOATS and not (dtype is DType.BF16 and anchor.op in _SOFTMAXES):
        return f"{anchor.op} on {dtype.short} is not supported by the cpu target"
    if anchor.op == "RMSNormalization" and anchor.inputs[1].type.dtype != dtype:
        return "RMSNormalization with a scale of another element type than X"
    if anchor.op == "LayerNormalization":
        if len(anchor.outputs) > 1 and node is not anchor:
            return "LayerNormalization with Mean/InvStdDev outputs inside a fused group"
        for o in anchor.outputs[1:]:
            if o.type.dtype not in _FLOATS:
                return f"LayerNormalization statistics in {o.type.dtype.short}"
    return None


def _row_axes(anchor: Node, rank: int) -> list[int]:
    op = anchor.op
    if op == "InstanceNormalization":
        return list(range(2, rank))
    if op == "MeanVarianceNormalization":
        return sorted({a % rank for a in anchor.attr("axes")})
    axis = anchor.attr("axis") % rank
    if op in ("LayerNormalization", "RMSNormalization"):
        return list(range(axis, rank))
    return [axis]


def emit(kb: KernelBuilder, node: Node, schedule: Any) -> Kernel:
    a = Anchored.of(node)
    anchor = a.anchor
    xs = shape_of(anchor.inputs[0])
    rank = len(xs)
    axes = _row_axes(anchor, rank)
    tf = kb.task_function(f"k_{node.outputs[0].name}")
    ep = Epilogue(kb, tf, a, kb.lanes)
    operands = [v for v in anchor.inputs[1:3] if v is not None] \
        if anchor.op in ("LayerNormalization", "RMSNormalization") else []
    rs = RowSpace(kb, tf, ep, xs, axes, lambda ax: ax, x_operands=operands)
    ct = compute_type(anchor.inputs[0].type.dtype)
    count = 1
    for ax in axes:
        count *= xs[ax]
    builders = {"Softmax": _softmax_row, "LogSoftmax": _softmax_row, "Hardmax": _hardmax_row,
                "LayerNormalization": _layernorm_row, "InstanceNormalization": _instnorm_row,
                "LpNormalization": _lpnorm_row, "RMSNormalization": _rmsnorm_row,
                "MeanVarianceNormalization": _mvn_row}
    rs.run(builders[anchor.op](anchor, ct, count, xs))
    tf.builder.ret_void()
    return Kernel(tf.fn.name, rs.n_tasks, tf.buffers, label_of(node))


# ------------------------------------------------------------------ softmax
def _softmax_row(anchor: Node, ct: ir.Type, count: int, xs: tuple):
    log = anchor.op == "LogSoftmax"

    def row(r: Row) -> None:
        b, kb, lanes = r.b, r.kb, r.lanes
        ep = r.s.ep
        (m,) = r.fold([Stat("max", ct)], lambda idx, vec, pos: [r.input(idx, vec)])
        # Without an epilogue the output buffer holds exp(x - max) between the passes: exp
        # once per element, and the last pass only scales (each element is read before it is
        # overwritten, at the same index, so an in-place output is fine).
        keep = not log and ep.plain and ep.direct[0][1].type.dtype.np.itemsize == ct_bytes(ct)

        def exp_terms(idx, vector, pos):
            e = vexp(kb, b, b.fsub(r.input(idx, vector), like(b, m, vector, lanes)))
            if keep:
                _raw_store(b, ep.raw_pointer(), idx, xs, e, vector)
            return [e]

        (s,) = r.fold([Stat("add", ct)], exp_terms)
        if log:
            log_s = b.call(kb.intrinsic("log", s.type), [s])
        else:
            inv_s = b.fdiv(constant(s, 1.0), s)

        def write(idx, vector, pos):
            if keep:
                y = b.fmul(_raw_load(b, ep.raw_pointer(), idx, xs, vector, lanes), like(b, inv_s, vector, lanes))
                _raw_store(b, ep.raw_pointer(), idx, xs, y, vector)
                return
            shifted = b.fsub(r.input(idx, vector), like(b, m, vector, lanes))
            if log:
                y = b.fsub(shifted, like(b, log_s, vector, lanes))
            else:
                y = b.fmul(vexp(kb, b, shifted), like(b, inv_s, vector, lanes))
            r.store(idx, y, vector)

        r.each(write)

    return row


def ct_bytes(ct: ir.Type) -> int:
    return {"float": 4, "double": 8}.get(str(ct), 0)


def _raw_store(b: ir.IRBuilder, base: ir.Value, idx: list, shape: tuple, value: ir.Value, vector: bool) -> None:
    off = linear_offset(b, idx, shape)
    if vector:
        store_vector(b, value, base, off)
    else:
        b.store(value, b.gep(base, [off]))


def _raw_load(b: ir.IRBuilder, base: ir.Value, idx: list, shape: tuple, vector: bool, lanes: int) -> ir.Value:
    off = linear_offset(b, idx, shape)
    return load_vector(b, base, off, lanes) if vector else b.load(b.gep(base, [off]))


def _hardmax_row(anchor: Node, ct: ir.Type, count: int, xs: tuple):
    from .reduction import first_position

    def row(r: Row) -> None:
        b, lanes = r.b, r.lanes
        (m,) = r.fold([Stat("max", ct)], lambda idx, vec, pos: [r.input(idx, vec)])
        p = first_position(r, m, True, False)

        def write(idx, vector, pos):
            hit = b.icmp_signed("==", like(b, pos, vector, lanes), like(b, p, vector, lanes))
            one = like(b, constant(ir.Constant(ct, 0), 1.0), vector, lanes)
            zero = like(b, constant(ir.Constant(ct, 0), 0.0), vector, lanes)
            r.store(idx, b.select(hit, one, zero), vector)

        r.each(write)

    return row


# -------------------------------------------------------------- norms
def _mean_and_inv_std(r: Row, ct: ir.Type, count: int, eps: float) -> tuple[ir.Value, ir.Value]:
    """Row mean and 1/sqrt(var + eps), var the mean squared deviation (two passes, as the reference)."""
    b, kb, lanes = r.b, r.kb, r.lanes
    (total,) = r.fold([Stat("add", ct)], lambda idx, vec, pos: [r.input(idx, vec)])
    mean = b.fdiv(total, constant(total, float(count)))

    def sq_dev(idx, vector, pos):
        d = b.fsub(r.input(idx, vector), like(b, mean, vector, lanes))
        return [b.fmul(d, d)]

    (ss,) = r.fold([Stat("add", ct)], sq_dev)
    var = b.fdiv(ss, constant(ss, float(count)))
    std = b.call(kb.intrinsic("sqrt", var.type), [b.fadd(var, constant(var, eps))])
    return mean, b.fdiv(constant(std, 1.0), std)


def _layernorm_row(anchor: Node, ct: ir.Type, count: int, xs: tuple):
    eps = float(anchor.attr("epsilon"))
    scale, bias = anchor.inputs[1], anchor.input(2)
    stats_out = list(anchor.outputs[1:])

    def row(r: Row) -> None:
        b, lanes = r.b, r.lanes
        ep = r.s.ep
        mean, inv = _mean_and_inv_std(r, ct, count, eps)
        for value, out in zip((mean, inv), stats_out):
            _store_stat(r, out, value)

        def write(idx, vector, pos):
            y = b.fmul(b.fsub(r.input(idx, vector), like(b, mean, vector, lanes)), like(b, inv, vector, lanes))
            y = b.fmul(y, ep.operand(scale, idx, xs, vector))
            if bias is not None:
                y = b.fadd(y, ep.operand(bias, idx, xs, vector))
            r.store(idx, y, vector)

        r.each(write)

    return row


def _store_stat(r: Row, out, value: ir.Value) -> None:
    """LayerNormalization's Mean / InvStdDev output at this row (a plain node's extra output)."""
    b = r.b
    idx = r.x_index()
    off = linear_offset(b, idx, shape_of(out))
    dst = r.s.tf.value_pointer(out)
    dtype = out.type.dtype
    if isinstance(value.type, ir.VectorType):
        value = _cast(b, value, compute_type(dtype))
        store_vector(b, store_convert(b, value, dtype), dst, off)
    else:
        b.store(store_convert(b, _cast(b, value, compute_type(dtype)), dtype), b.gep(dst, [off]))


def _cast(b: ir.IRBuilder, v: ir.Value, elem: ir.Type) -> ir.Value:
    cur = v.type.element if isinstance(v.type, ir.VectorType) else v.type
    if cur == elem:
        return v
    ty = ir.VectorType(elem, v.type.count) if isinstance(v.type, ir.VectorType) else elem
    widths = {"float": 32, "double": 64, "half": 16}
    return b.fpext(v, ty) if widths[str(cur)] < widths[str(elem)] else b.fptrunc(v, ty)


def _instnorm_row(anchor: Node, ct: ir.Type, count: int, xs: tuple):
    eps = float(anchor.attr("epsilon"))
    scale, bias = anchor.inputs[1], anchor.inputs[2]

    def row(r: Row) -> None:
        b, lanes = r.b, r.lanes
        ev = r.s.ep.ev
        mean, inv = _mean_and_inv_std(r, ct, count, eps)
        c = b.srem(r.x_index()[1], const_int(xs[1]))  # (N, C may walk as one flat axis)
        g = ev.value_at(scale, [c], False)
        h = ev.value_at(bias, [c], False)
        gain = b.fmul(inv, like(b, g, isinstance(inv.type, ir.VectorType), lanes))

        def write(idx, vector, pos):
            y = b.fmul(b.fsub(r.input(idx, vector), like(b, mean, vector, lanes)), like(b, gain, vector, lanes))
            r.store(idx, b.fadd(y, like(b, h, vector, lanes)), vector)

        r.each(write)

    return row


def _rmsnorm_row(anchor: Node, ct: ir.Type, count: int, xs: tuple):
    """x / sqrt(mean(x^2) + eps) * scale."""
    eps = float(anchor.attr("epsilon"))
    scale = anchor.inputs[1]

    def row(r: Row) -> None:
        b, kb, lanes = r.b, r.kb, r.lanes
        ep = r.s.ep

        def squares(idx, vector, pos):
            v = r.input(idx, vector)
            return [b.fmul(v, v)]

        (ss,) = r.fold([Stat("add", ct)], squares)
        ms = b.fadd(b.fdiv(ss, constant(ss, float(count))), constant(ss, eps))
        rms = b.call(kb.intrinsic("sqrt", ms.type), [ms])

        def write(idx, vector, pos):
            y = b.fdiv(r.input(idx, vector), like(b, rms, vector, lanes))
            r.store(idx, b.fmul(y, ep.operand(scale, idx, xs, vector)), vector)

        r.each(write)

    return row


def _mvn_row(anchor: Node, ct: ir.Type, count: int, xs: tuple):
    """(x - mean) / (sqrt(E[x^2] - mean^2) + 1e-9), the moments from one pass as the reference."""

    def row(r: Row) -> None:
        b, kb, lanes = r.b, r.kb, r.lanes

        def moments(idx, vector, pos):
            v = r.input(idx, vector)
            return [v, b.fmul(v, v)]

        total, squares = r.fold([Stat("add", ct), Stat("add", ct)], moments)
        n = constant(total, float(count))
        mean = b.fdiv(total, n)
        var = b.fsub(b.fdiv(squares, n), b.fmul(mean, mean))
        den = b.fadd(b.call(kb.intrinsic("sqrt", var.type), [var]), constant(var, 1e-9))

        def write(idx, vector, pos):
            d = b.fsub(r.input(idx, vector), like(b, mean, vector, lanes))
            r.store(idx, b.fdiv(d, like(b, den, vector, lanes)), vector)

        r.each(write)

    return row


def _lpnorm_row(anchor: Node, ct: ir.Type, count: int, xs: tuple):
    p = int(anchor.attr("p"))

    def row(r: Row) -> None:
        b, kb, lanes = r.b, r.kb, r.lanes

        def terms(idx, vector, pos):
            v = r.input(idx, vector)
            return [b.call(kb.intrinsic("fabs", v.type), [v]) if p == 1 else b.fmul(v, v)]

        (acc,) = r.fold([Stat("add", ct)], terms)
        norm = acc if p == 1 else b.call(kb.intrinsic("sqrt", acc.type), [acc])
        zero = b.fcmp_ordered("==", norm, constant(norm, 0.0))
        safe = b.select(zero, constant(norm, 1.0), norm)

        def write(idx, vector, pos):
            y = b.fdiv(r.input(idx, vector), like(b, safe, vector, lanes))
            r.store(idx, b.select(like(b, zero, vector, lanes), constant(y, 0.0), y), vector)

        r.each(write)

    return row


__all__ = ["NORMALIZE_OPS", "emit", "support"]
