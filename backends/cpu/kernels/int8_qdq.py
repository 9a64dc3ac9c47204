"""QuantizeLinear / DequantizeLinear kernels: the float <-> integer boundaries of a quantized model.

Per-tensor and per-axis parameters (constants).  The data is viewed as
``[outer, C, inner]`` with ``C`` the quantization axis (1 for per tensor);
each (outer, c) row loads its scale and zero point once and runs the inner
axis a vector at a time, the last vector masked.  The arithmetic is
``ir.quant.quantize``/``dequantize``'s: ``x / scale`` in float32, clamp to the
type's range less the zero point (NaN goes to the lowest value), round half to
even, add the zero point; and ``float32(q - zp) * scale``.
"""

from __future__ import annotations

import math
from typing import Any, Optional

import llvmlite.ir as ir

from ir import quant
from ir.dtypes import DType
from ir.graph import Node

from ..expr import register_elementwise
from ..codegen import F32, I32, I64, KernelBuilder, const_int, for_range, lane_mask, masked_load, masked_store, splat
from . import Kernel, generator, label_of

QDQ_OPS = ["QuantizeLinear", "DequantizeLinear"]
INT_TYPES = (DType.U8, DType.I8, DType.I32)
MIN_TASK_ELEMENTS = 1 << 15


def support(node: Node) -> Optional[str]:
    if node.domain or node.op not in QDQ_OPS:
        return f"{node.qualified_op} is not QuantizeLinear/DequantizeLinear"
    x, y = node.inputs[0], node.outputs[0]
    if not (getattr(x.type, "is_static", False) and getattr(y.type, "is_static", False)):
        return f"{node.op} needs static shapes on the cpu target"
    if node.attr("block_size"):
        return f"blocked {node.op} (block_size) is not supported by the cpu target"
    q, f = (y, x) if node.op == "QuantizeLinear" else (x, y)
    if q.type.dtype not in INT_TYPES or (node.op == "QuantizeLinear" and q.type.dtype == DType.I32):
        return f"{node.op} to/from {q.type.dtype.short} is not supported by the cpu target (int8/uint8 only)"
    if f.type.dtype != DType.F32:
        return f"{node.op} with {f.type.dtype.short} floats is not supported by the cpu target (float32 only)"
    for i in (1, 2):
        v = node.input(i)
        if v is not None and (not getattr(v.type, "is_static", False) or len(v.type.shape) > 1):
            return f"{node.op}: scale and zero point must be per-tensor or per-axis on the cpu target"
    if node.input(1).type.dtype != DType.F32:
        return f"{node.op}: the cpu target needs a float32 scale"
    return None


def _layout(node: Node) -> tuple[int, int, int]:
    shape = tuple(node.inputs[0].type.shape)
    sshape = tuple(node.input(1).type.shape)
    if len(sshape) == 0 or (len(sshape) == 1 and sshape[0] == 1):
        return 1, 1, max(1, math.prod(shape))
    axis = node.attr("axis") % len(shape)
    return math.prod(shape[:axis]), shape[axis], math.prod(shape[axis + 1:])


@generator("quantize", supports=support, ops=QDQ_OPS)
def emit(kb: KernelBuilder, node: Node, schedule: Any) -> Kernel:
    outer, chans, inner = _layout(node)
    tf = kb.task_function(f"{node.op.lower()}_{node.outputs[0].name}")
    b = tf.builder
    L = kb.lanes
    quantizing = node.op == "QuantizeLinear"
    q_val = node.outputs[0] if quantizing else node.inputs[0]
    qdt = q_val.type.dtype
    # Scale and zero point are read from their buffers (constants or run-time inputs), once per row.
    sc_ptr = tf.value_pointer(node.input(1))
    zp_in = node.input(2)
    zp_ptr = tf.value_pointer(zp_in) if zp_in is not None else None
    zp_signed = zp_in is not None and zp_in.type.dtype in (DType.I8, DType.I32)
    x = tf.value_pointer(node.inputs[0])
    y = tf.value_pointer(node.outputs[0])
    rows = outer * chans
    per_task = max(1, MIN_TASK_ELEMENTS // max(1, inner))
    n_tasks = -(-rows // per_task)
    start = b.mul(tf.task, const_int(per_task))
    stop = b.select(b.icmp_signed("<", b.add(start, const_int(per_task)), const_int(rows)),
                    b.add(start, const_int(per_task)), const_int(rows))
    fv, iv = ir.VectorType(F32, L), ir.VectorType(I32, L)
    with for_range(b, start, stop, name="row") as r:
        ch = b.srem(r, const_int(chans))
        if zp_ptr is None:
            zp = const_int(0, I32)
        else:
            raw = b.load(b.gep(zp_ptr, [ch]))
            zp = raw if raw.type == I32 else (b.sext(raw, I32) if zp_signed else b.zext(raw, I32))
        sc = b.load(b.gep(sc_ptr, [ch]))
        zpv, scv = splat(b, zp, L), splat(b, sc, L)
        base = b.mul(r, const_int(inner))
        with for_range(b, 0, inner, L, name="e") as i:
            mask = lane_mask(b, b.select(b.icmp_signed("<", b.sub(const_int(inner), i), const_int(L)),
                                         b.sub(const_int(inner), i), const_int(L)), L)
            idx = b.add(base, i)
            v = masked_load(kb, b, x, idx, mask, L)
            if quantizing:
                lo, hi = quant.qrange(qdt)
                f = b.fdiv(v, scv)
                lo_v = b.sitofp(b.sub(ir.Constant(iv, [lo] * L), zpv), fv)
                hi_v = b.sitofp(b.sub(ir.Constant(iv, [hi] * L), zpv), fv)
                f = b.select(b.fcmp_ordered(">", f, lo_v), f, lo_v)  # NaN -> lowest
                f = b.select(b.fcmp_ordered("<", f, hi_v), f, hi_v)
                f = b.call(kb.intrinsic("roundeven", fv), [f])
                out = b.trunc(b.add(b.fptosi(f, iv), zpv), ir.VectorType(y.type.pointee, L))
            else:
                wide = ir.VectorType(I64, L)
                qi = b.sext(v, wide) if qdt in (DType.I8, DType.I32) else b.zext(v, wide)
                d = b.sub(qi, b.sext(zpv, wide))
                out = b.fmul(b.sitofp(d, fv), scv)
            masked_store(kb, b, out, y, idx, mask)
    b.ret_void()
    return Kernel(tf.fn.name, n_tasks, tf.buffers, label_of(node))


def _qlinear_add(kb: KernelBuilder, b: ir.IRBuilder, node: Node, xs: list) -> ir.Value:
    """com.microsoft.QLinearAdd in MLAS's float order (see its reference), on scalars or vectors.

    ``((zc - (ra * za + rb * zb)) + a * ra) + b * rb`` with ``r = scale / c_scale``, no fused
    multiply-add (LLVM contracts nothing without fast-math flags), then round half to even and
    saturate: the reference's value bit for bit.
    """
    a, a_s, a_zp, bb, b_s, b_zp, c_s, c_zp = xs
    dt = node.inputs[0].type.dtype
    signed = dt == DType.I8

    def f(v: Optional[ir.Value], like: ir.Value) -> ir.Value:
        if v is None:
            return _fconst(like, 0.0)
        return b.sitofp(v, _fty(v)) if signed else b.uitofp(v, _fty(v))

    ra, rb = b.fdiv(a_s, c_s), b.fdiv(b_s, c_s)
    fixed = b.fsub(f(c_zp, ra), b.fadd(b.fmul(ra, f(a_zp, ra)), b.fmul(rb, f(b_zp, ra))))
    v = b.fadd(b.fadd(fixed, b.fmul(f(a, ra), ra)), b.fmul(f(bb, ra), rb))
    lo, hi = quant.qrange(dt)
    v = b.select(b.fcmp_ordered(">", v, _fconst(v, lo)), v, _fconst(v, lo))
    v = b.select(b.fcmp_ordered("<", v, _fconst(v, hi)), v, _fconst(v, hi))
    v = b.call(kb.intrinsic("roundeven", v.type), [v])
    return b.fptosi(v, a.type)


def _fty(v: ir.Value) -> ir.Type:
    return ir.VectorType(F32, v.type.count) if isinstance(v.type, ir.VectorType) else F32


def _fconst(like: ir.Value, value: float) -> ir.Value:
    if isinstance(like.type, ir.VectorType):
        return ir.Constant(ir.VectorType(F32, like.type.count), [float(value)] * like.type.count)
    return ir.Constant(F32, float(value))


register_elementwise("QLinearAdd", _qlinear_add, domain="com.microsoft", ints=True, positional=True)
