"""QLinearMatMul and MatMulInteger whose B is a run-time tensor.

``fold-qdq`` turns these ops into ``nnc.QMatMul`` (the packed int8 GEMM) when
B is a constant; this kernel covers the rest with the reference's integer
arithmetic (``ir.ops.quantization``): an int32 accumulation of
``(a - a_zero_point) * (b - b_zero_point)`` (zero points per tensor, per row
of A or per column of B; the sum wraps like a 32-bit accumulator), then for
QLinearMatMul ``saturate(round_half_even(float32(acc) * multiplier) +
y_zero_point)`` with ``multiplier = a_scale * b_scale / y_scale`` formed in
the scales' own float type.  Rows of the output are split over tasks;
batch dims broadcast as in MatMul.
"""

from __future__ import annotations

import math
from typing import Any, Optional

import llvmlite.ir as ir
import numpy as np

from ir.dtypes import DType
from ir.graph import Node, Value

from ..codegen import F32, F64, I32, KernelBuilder, const_int, for_range, llvm_type, loop_carry, task_range
from ..evaluator import delinearize, shape_of
from . import Kernel, generator, label_of

OPS = ("QLinearMatMul", "MatMulInteger")
_Q8 = {DType.I8, DType.U8}
_SCALES = {DType.F32, DType.F16, DType.F64}
MIN_TASK_ROWS = 16


def _params(node: Node) -> tuple[Optional[Value], Optional[Value], Optional[Value], Optional[Value],
                                  Optional[Value], Optional[Value], Value, Value]:
    """(a, a_scale, a_zp, b, b_scale, b_zp, y_scale, y_zp) for either op (absent ones None)."""
    if node.op == "MatMulInteger":
        return node.inputs[0], None, node.input(2), node.inputs[1], None, node.input(3), None, None
    return tuple(node.input(i) for i in range(8))  # type: ignore[return-value]


def support(node: Node) -> Optional[str]:
    if node.domain != "" or node.op not in OPS:
        return f"no cpu kernel for {node.qualified_op}"
    a, a_s, a_zp, b, b_s, b_zp, y_s, y_zp = _params(node)
    for v in (a, a_s, a_zp, b, b_s, b_zp, y_s, y_zp, node.outputs[0]):
        if v is not None and not getattr(v.type, "is_static", False):
            return "the cpu target needs static shapes here"
    if a.type.dtype not in _Q8 or b.type.dtype not in _Q8:
        return f"{node.op} on {a.type.dtype.short} x {b.type.dtype.short} is not supported by the cpu target"
    if len(shape_of(a)) < 2 or len(shape_of(b)) < 2:
        return f"{node.op} with a 1-D operand is not supported by the cpu target"
    m, n = shape_of(a)[-2], shape_of(b)[-1]
    for v, size, what in ((a_s, m, "a_scale"), (a_zp, m, "a_zero_point"), (b_s, n, "b_scale"),
                          (b_zp, n, "b_zero_point"), (y_s, 1, "y_scale"), (y_zp, 1, "y_zero_point")):
        if v is not None and math.prod(shape_of(v)) not in (1, size):
            return f"{node.op} with a {what} of shape {shape_of(v)} is not supported by the cpu target"
    if any(v is not None and v.type.dtype not in _SCALES for v in (a_s, b_s, y_s)):
        return f"{node.op} scales must be float16, float32 or float64 on the cpu target"
    return None


@generator("qmatmul_runtime", supports=support, ops=OPS)
def emit(kb: KernelBuilder, node: Node, schedule: Any) -> Kernel:
    a, a_s, a_zp, b, b_s, b_zp, y_s, y_zp = _params(node)
    y = node.outputs[0]
    As, Bs, Ys = shape_of(a), shape_of(b), shape_of(y)
    m, k, n = As[-2], As[-1], Bs[-1]
    batch = Ys[:-2]
    rows = math.prod(batch) * m
    n_tasks = max(1, min(rows, rows // MIN_TASK_ROWS))
    tf = kb.task_function(f"k_{y.name}")
    bld = tf.builder
    ptr = lambda v: tf.value_pointer(v)  # noqa: E731

    def widen(v: ir.Value, dtype: DType) -> ir.Value:
        return bld.sext(v, I32) if dtype.is_signed else bld.zext(v, I32)

    def param(v: Optional[Value], at: ir.Value, ty: Optional[ir.Type] = None) -> Optional[ir.Value]:
        """v[at] (or v[0] for one element), as i32 for zero points / ``ty`` for scales."""
        if v is None:
            return None
        pos = at if math.prod(shape_of(v)) > 1 else const_int(0)
        raw = bld.load(bld.gep(ptr(v), [pos]))
        if ty is None:
            return widen(raw, v.type.dtype)
        return raw

    def batch_offset(bidx: list, shape: tuple, mat: int) -> ir.Value:
        """Element offset of the matrix of ``shape`` that output batch index ``bidx`` reads (broadcast)."""
        lead = shape[:-2]
        off = const_int(0)
        stride = mat
        for d, i in zip(reversed(lead), reversed(bidx)):
            if d != 1:
                off = bld.add(off, bld.mul(i, const_int(stride)))
            stride *= d
        return off

    start, stop = task_range(bld, tf.task, n_tasks, rows)
    with for_range(bld, start, stop, name="row") as row:
        bi = bld.sdiv(row, const_int(m))
        mi = bld.srem(row, const_int(m))
        bidx = delinearize(bld, bi, batch) if batch else []
        a_base = bld.add(batch_offset(bidx, As, m * k), bld.mul(mi, const_int(k)))
        b_base = batch_offset(bidx, Bs, k * n)
        azp = param(a_zp, mi) or ir.Constant(I32, 0)
        with for_range(bld, 0, n, name="col") as ni:
            bzp = param(b_zp, ni) or ir.Constant(I32, 0)

            def body(kk, vals):
                av = widen(bld.load(bld.gep(ptr(a), [bld.add(a_base, kk)])), a.type.dtype)
                bv = widen(bld.load(bld.gep(ptr(b), [bld.add(b_base, bld.add(bld.mul(kk, const_int(n)), ni))])),
                           b.type.dtype)
                return [bld.add(vals[0], bld.mul(bld.sub(av, azp), bld.sub(bv, bzp)))]
            acc = loop_carry(bld, 0, k, 1, [ir.Constant(I32, 0)], body, name="k")[0]
            out_at = bld.add(bld.mul(row, const_int(n)), ni)
            if y_s is None:  # MatMulInteger: the int32 accumulator
                bld.store(acc, bld.gep(ptr(y), [out_at]))
            else:
                scales = param(a_s, mi, F32), param(b_s, ni, F32), param(y_s, const_int(0), F32)
                q = _requantize(kb, bld, acc, *scales, param(y_zp, const_int(0)), (a_s, b_s, y_s), y.type.dtype)
                bld.store(q, bld.gep(ptr(y), [out_at]))
    bld.ret_void()
    return Kernel(tf.fn.name, n_tasks, tf.buffers, label_of(node))


def _requantize(kb: KernelBuilder, b: ir.IRBuilder, acc: ir.Value, s0: ir.Value, s1: ir.Value, s2: ir.Value,
                zp: ir.Value, scales: tuple, dtype: DType) -> ir.Value:
    """saturate(round_half_even(float32(acc) * (s0 * s1 / s2)) + zp), as the reference's requantize."""
    # The multiplier in the scales' common type (NumPy's result_type), then float32.
    common = np.result_type(*[s.type.dtype.np for s in scales])
    cty = llvm_type(DType.from_numpy(common))

    def to(v: ir.Value, ty: ir.Type) -> ir.Value:
        if v.type == ty:
            return v
        order = {"half": 0, "float": 1, "double": 2}
        return b.fpext(v, ty) if order[str(v.type)] < order[str(ty)] else b.fptrunc(v, ty)

    mult = b.fdiv(b.fmul(to(s0, cty), to(s1, cty)), to(s2, cty))
    v = b.fmul(b.sitofp(acc, F32), to(mult, F32))
    r = b.fpext(b.call(kb.intrinsic("roundeven", F32), [v]), F64)
    r = b.fadd(r, b.sitofp(zp, F64))
    info = np.iinfo(dtype.np)
    lo, hi = ir.Constant(F64, float(info.min)), ir.Constant(F64, float(info.max))
    r = b.select(b.fcmp_ordered(">", r, hi), hi, r)
    r = b.select(b.fcmp_unordered("<", r, lo), lo, r)  # NaN saturates to the lowest value too
    return (b.fptosi if dtype.is_signed else b.fptoui)(r, llvm_type(dtype))


__all__ = ["OPS", "emit", "support"]
