"""``nnc.QAdd``: a quantized residual add as one elementwise pass over 8-bit data.

The arithmetic is the unfused ``DequantizeLinear -> Add [-> Relu|Clip] ->
QuantizeLinear`` group's, step for step in float32 (``float32(q - zp) * scale``
for each input, one add, ``/ y_scale``, clamp, round half to even, ``+ y_zp``,
then the integer bounds of a fused Relu/Clip), with no fused multiply-add
(LLVM contracts nothing without fast-math flags).  So it equals the reference,
the float group on every target and onnxruntime's float group bit for bit,
while reading two int8 tensors and writing one instead of three float passes.

The common case, two inputs of one shape (a residual add), gets a flat kernel
(16 lanes over the whole tensor, one masked tail); broadcasting adds go
through the generic elementwise kernels with the same emitter.
"""

from __future__ import annotations

import llvmlite.ir as ir

from ir import quant
from ir.dtypes import DType
from ir.graph import Node

from typing import Any, Optional

from ..codegen import F32, I32, KernelBuilder, const_int, for_range, lane_mask, masked_load, masked_store, splat
from ..expr import register_elementwise
from . import Kernel, generator, label_of

CHUNK = 1 << 15   # elements per task of the flat kernel


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


def _flat_support(node: Node) -> Optional[str]:
    if (node.domain, node.op) != ("nnc", "QAdd"):
        return "not a plain nnc.QAdd"
    a, b, y = node.inputs[0], node.inputs[3], node.outputs[0]
    if not all(getattr(v.type, "is_static", False) for v in (a, b, y)) or a.type.shape != b.type.shape:
        return "nnc.QAdd with broadcasting (the elementwise kernels handle it)"
    return None


@generator("elementwise", supports=_flat_support, priority=10, ops=[("nnc", "QAdd")])
def emit_flat(kb: KernelBuilder, node: Node, schedule: Any) -> Kernel:
    total = 1
    for d in node.outputs[0].type.shape:
        total *= d
    tf = kb.task_function(f"qadd_{node.outputs[0].name}")
    b = tf.builder
    L = 16
    ptrs = [tf.value_pointer(v) for v in node.inputs]
    y = tf.value_pointer(node.outputs[0])
    scalars = {i: splat(b, b.load(ptrs[i]), L) for i in (1, 2, 4, 5, 6, 7)}
    start = b.mul(tf.task, const_int(CHUNK))
    stop = b.select(b.icmp_signed("<", b.add(start, const_int(CHUNK)), const_int(total)),
                    b.add(start, const_int(CHUNK)), const_int(total))
    with for_range(b, start, stop, L, name="e") as i:
        left = b.sub(stop, i)
        mask = lane_mask(b, b.select(b.icmp_signed("<", left, const_int(L)), left, const_int(L)), L)
        xs = [masked_load(kb, b, ptrs[k], i, mask, L) if k in (0, 3) else scalars[k] for k in range(8)]
        masked_store(kb, b, _qadd(kb, b, node, xs), y, i, mask)
    b.ret_void()
    return Kernel(tf.fn.name, -(-total // CHUNK), tf.buffers, label_of(node))
