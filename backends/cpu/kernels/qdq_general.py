"""QuantizeLinear / DequantizeLinear for what ``int8_qdq`` leaves out.

int4/uint4/int2/uint2, int16/uint16, float8, float4 data; float16 and
bfloat16 scales and outputs; blocked parameters (``block_size``).  One scalar
loop over the flat data, split into tasks; each element reads its scale and
zero point at the position ``ir.quant.expand_param`` gives it (per tensor,
per axis or per block).  The arithmetic is ``ir.quant.quantize`` /
``dequantize``'s step by step:

* quantize: ``x / scale`` in the scale's precision (float32; float16 rounds
  ``x`` and the quotient to float16; bfloat16 rounds the float32 quotient);
  integers: round half to even, add the zero point, clamp (NaN -> lowest);
  float8: add the zero point, then Cast with ``saturate``; float4: add, Cast;
* dequantize: ``float32(q - zero_point) * float32(scale)``, rounded once to
  the output type.
"""

from __future__ import annotations

import math
from typing import Any, Optional

import llvmlite.ir as ir

from ir import quant
from ir.dtypes import DType
from ir.graph import Node

from .. import narrow
from ..codegen import F16, F32, F64, I64, KernelBuilder, const_int, for_range
from ..expr import compute_type, load_convert, store_convert
from . import Kernel, generator, label_of

QDQ_OPS = ["QuantizeLinear", "DequantizeLinear"]
FLOATS = (DType.F32, DType.F16, DType.BF16)  # the real side and the scale
MIN_TASK_ELEMENTS = 1 << 14


def support(node: Node) -> Optional[str]:
    if node.domain or node.op not in QDQ_OPS:
        return f"{node.qualified_op} is not QuantizeLinear/DequantizeLinear"
    values = [v for v in list(node.inputs) + list(node.outputs) if v is not None]
    if not all(getattr(v.type, "is_static", False) for v in values):
        return f"{node.op} needs static shapes on the cpu target"
    quantizing = node.op == "QuantizeLinear"
    q, f = (node.outputs[0], node.inputs[0]) if quantizing else (node.inputs[0], node.outputs[0])
    qdt = q.type.dtype
    if qdt not in quant.QUANT_TYPES or qdt in (DType.F6E2M3, DType.F6E3M2):
        return f"{node.op} to/from {qdt.short} is not supported by the cpu target"
    if f.type.dtype not in FLOATS or node.input(1).type.dtype not in FLOATS:
        return f"{node.op} with {f.type.dtype.short} data and a {node.input(1).type.dtype.short} scale is " \
               f"not supported by the cpu target (float32, float16 or bfloat16 only)"
    if quantizing and node.attr("precision"):
        return "QuantizeLinear's precision attribute is not supported by the cpu target"
    try:
        _param_index_plan(node)
    except ValueError as e:
        return f"{node.op}: {e}"
    return None


def _param_index_plan(node: Node) -> tuple[str, int, int, int, int]:
    """(mode, outer, chans, inner, block): how a flat data index finds its parameter."""
    shape = tuple(node.inputs[0].type.shape)
    pshape = tuple(node.input(1).type.shape)
    rank = len(shape)
    if len(pshape) == 0 or (len(pshape) == 1 and pshape[0] == 1):
        return "tensor", 1, 1, max(1, math.prod(shape)), 0
    axis = node.attr("axis")
    axis = axis + rank if axis < 0 else axis
    if not 0 <= axis < rank:
        raise ValueError("quantization axis out of range")
    outer, chans, inner = math.prod(shape[:axis]), shape[axis], math.prod(shape[axis + 1:])
    block = node.attr("block_size") or 0
    if len(pshape) == 1 and block <= 0:
        if pshape[0] != chans:
            raise ValueError("per-axis parameter of the wrong length")
        return "axis", outer, chans, inner, 0
    if len(pshape) != rank or block <= 0 or pshape[axis] != -(-chans // block):
        raise ValueError("unsupported parameter shape")
    return "block", outer, chans, inner, block


@generator("quantize", supports=support, ops=QDQ_OPS, priority=-1)
def emit(kb: KernelBuilder, node: Node, schedule: Any) -> Kernel:
    mode, outer, chans, inner, block = _param_index_plan(node)
    total = outer * chans * inner
    tf = kb.task_function(f"{node.op.lower()}_{node.outputs[0].name}")
    b = tf.builder
    x_val, y_val = node.inputs[0], node.outputs[0]
    sc_val, zp_val = node.input(1), node.input(2)
    x, y, sc = tf.value_pointer(x_val), tf.value_pointer(y_val), tf.value_pointer(sc_val)
    zp = tf.value_pointer(zp_val) if zp_val is not None else None
    per_task = max(MIN_TASK_ELEMENTS, -(-total // 64))
    n_tasks = max(1, -(-total // per_task))
    start = b.mul(tf.task, const_int(per_task))
    end = b.add(start, const_int(per_task))
    stop = b.select(b.icmp_signed("<", end, const_int(total)), end, const_int(total))
    blocks = -(-chans // block) if block else 0
    with for_range(b, start, stop, name="e") as i:
        if mode == "tensor":
            p = const_int(0)
        elif mode == "axis":
            p = b.srem(b.sdiv(i, const_int(inner)), const_int(chans))
        else:
            o = b.sdiv(i, const_int(chans * inner))
            c = b.srem(b.sdiv(i, const_int(inner)), const_int(chans))
            k = b.srem(i, const_int(inner))
            p = b.add(b.mul(b.add(b.mul(o, const_int(blocks)), b.sdiv(c, const_int(block))), const_int(inner)), k)
        xv = load_convert(b, b.load(b.gep(x, [i])), x_val.type.dtype)
        s = _as_f32(b, load_convert(b, b.load(b.gep(sc, [p])), sc_val.type.dtype))
        z = load_convert(b, b.load(b.gep(zp, [p])), zp_val.type.dtype) if zp is not None else None
        if node.op == "QuantizeLinear":
            out = _quantize(kb, b, node, xv, s, z)
        else:
            out = _dequantize(b, node, xv, s, z)
        b.store(store_convert(b, out, y_val.type.dtype), b.gep(y, [i]))
    b.ret_void()
    return Kernel(tf.fn.name, n_tasks, tf.buffers, label_of(node))


def _as_f32(b: ir.IRBuilder, v: ir.Value) -> ir.Value:
    return b.fpext(v, F32) if v.type == F16 else v


def _f16_round(b: ir.IRBuilder, v: ir.Value) -> ir.Value:
    return b.fpext(b.fptrunc(v, F16), F32)


def _quantize(kb: KernelBuilder, b: ir.IRBuilder, node: Node, x: ir.Value, s: ir.Value,
              z: Optional[ir.Value]) -> ir.Value:
    qdt = node.outputs[0].type.dtype
    prec = node.input(1).type.dtype
    x = _as_f32(b, x)
    if prec is DType.F16:           # x.astype(f16) / scale in float16 (one rounding: f32 has the bits)
        v = _f16_round(b, b.fdiv(_f16_round(b, x), s))
    else:
        v = b.fdiv(x, s)
        if prec is DType.BF16:
            v = narrow.round_to(b, v, DType.BF16)
    if qdt in quant.INT_RANGES:
        lo, hi = quant.qrange(qdt)
        r = b.fpext(b.call(kb.intrinsic("roundeven", F32), [v]), F64)
        if z is not None:
            zdt = node.input(2).type.dtype
            zi = _int_compute_to_f64(b, z, zdt)
            r = b.fadd(r, zi)
        r = b.select(b.fcmp_ordered(">", r, ir.Constant(F64, float(lo))), r, ir.Constant(F64, float(lo)))  # NaN
        r = b.select(b.fcmp_ordered("<", r, ir.Constant(F64, float(hi))), r, ir.Constant(F64, float(hi)))
        return b.fptosi(r, compute_type(qdt)) if qdt.is_signed else b.fptoui(r, compute_type(qdt))
    if z is not None:               # float targets: add the zero point in the quotient's precision
        v = b.fadd(v, z)
        if prec is DType.F16:
            v = _f16_round(b, v)
    if qdt in narrow.FLOAT8:
        return narrow.convert(b, v, DType.F32, qdt, saturate=bool(node.attr("saturate")))
    return narrow.convert(b, v, DType.F32, qdt)


def _int_compute_to_f64(b: ir.IRBuilder, v: ir.Value, dtype: DType) -> ir.Value:
    signed = dtype.is_signed
    return b.sitofp(v, F64) if signed else b.uitofp(v, F64)


def _dequantize(b: ir.IRBuilder, node: Node, q: ir.Value, s: ir.Value, z: Optional[ir.Value]) -> ir.Value:
    qdt = node.inputs[0].type.dtype
    if isinstance(q.type, ir.IntType):
        signed = qdt.is_signed
        d = b.sext(q, I64) if signed else b.zext(q, I64)
        if z is not None:
            zdt = node.input(2).type.dtype
            d = b.sub(d, b.sext(z, I64) if zdt.is_signed else b.zext(z, I64))
        d = b.sitofp(d, F32)
    else:
        d = q
        if z is not None:
            d = b.fsub(d, z)
    return b.fmul(d, s)
