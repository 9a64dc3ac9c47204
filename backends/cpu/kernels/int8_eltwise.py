"""``nnc.QAdd``: a quantized residual add as one elementwise pass over 8-bit data.

The arithmetic is the unfused ``DequantizeLinear -> Add [-> Relu|Clip] ->
QuantizeLinear`` group's, step for step in float32 (``float32(q - zp) * scale``
for each input, one add, ``/ y_scale``, clamp, round half to even, ``+ y_zp``,
then the integer bounds of a fused Relu/Clip), with no fused multiply-add
(LLVM contracts nothing without fast-math flags).  So it equals the reference,
the float group on every target and onnxruntime's float group bit for bit,
while reading two int8 tensors and writing one instead of three float passes.
"""

from __future__ import annotations

import llvmlite.ir as ir

from ir import quant
from ir.dtypes import DType
from ir.graph import Node

from ..codegen import F32, I32, KernelBuilder
from ..expr import register_elementwise


def _like(v: ir.Value, elem: ir.Type) -> ir.Type:
    return ir.VectorType(elem, v.type.count) if isinstance(v.type, ir.VectorType) else elem


def _const(like: ir.Value, elem: ir.Type, value) -> ir.Constant:
    if isinstance(like.type, ir.VectorType):
        return ir.Constant(ir.VectorType(elem, like.type.count), [value] * like.type.count)
    return ir.Constant(elem, value)


def _qadd(kb: KernelBuilder, b: ir.IRBuilder, node: Node, xs: list) -> ir.Value:
    a, a_s, a_zp, bb, b_s, b_zp, y_s, y_zp = xs

    def widen(v: ir.Value, index: int) -> ir.Value:
        signed = node.inputs[index].type.dtype == DType.I8
        return (b.sext if signed else b.zext)(v, _like(v, I32))

    def dequant(q: ir.Value, zp: ir.Value, scale: ir.Value, index: int) -> ir.Value:
        return b.fmul(b.sitofp(b.sub(widen(q, index), widen(zp, index)), _like(q, F32)), scale)

    s = b.fadd(dequant(a, a_zp, a_s, 0), dequant(bb, b_zp, b_s, 3))
    out_dt = node.outputs[0].type.dtype
    zp = widen(y_zp, 7)
    lo, hi = quant.qrange(out_dt)
    f = b.fdiv(s, y_s)
    lo_f = b.sitofp(b.sub(_const(zp, I32, lo), zp), f.type)
    hi_f = b.sitofp(b.sub(_const(zp, I32, hi), zp), f.type)
    f = b.select(b.fcmp_ordered(">", f, lo_f), f, lo_f)
    f = b.select(b.fcmp_ordered("<", f, hi_f), f, hi_f)
    f = b.call(kb.intrinsic("roundeven", f.type), [f])
    q = b.add(b.fptosi(f, zp.type), zp)
    amin, amax = max(lo, node.attr("act_min")), min(hi, node.attr("act_max"))
    if amin > lo:
        c = _const(q, I32, amin)
        q = b.select(b.icmp_signed("<", q, c), c, q)
    if amax < hi:
        c = _const(q, I32, amax)
        q = b.select(b.icmp_signed(">", q, c), c, q)
    return b.trunc(q, a.type if node.inputs[0].type.dtype == out_dt else _like(a, ir.IntType(8)))


register_elementwise("QAdd", _qadd, domain="nnc", ints=True, positional=True)
