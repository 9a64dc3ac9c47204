"""TE rules for the float <-> integer boundaries: QuantizeLinear, DequantizeLinear, DynamicQuantizeLinear.

The arithmetic is ``ir.quant``'s (and the cpu kernels'): ``x / scale`` in
float32, clamped to the type's range less the zero point (NaN goes to the
lowest value), rounded half to even (``nearbyint``), plus the zero point;
and ``float32(q - zp) * scale``.  Parameters are per tensor or per axis;
blocked quantization is refused, as on the cpu target.
"""

from __future__ import annotations

from typing import Any, Optional

from tvm import te, tirx

from ir import quant
from ir.dtypes import DType
from ir.graph import Node

from .rules import Scalar, rule, static_shape, tvm_dtype
from .te_elementwise import etype

_INT8 = (DType.U8, DType.I8, DType.U16, DType.I16,
         DType.U4, DType.I4, DType.U2, DType.I2)  # the narrow ones held in a byte


def _check(node: Node) -> Optional[str]:
    quantizing = node.op == "QuantizeLinear"
    q, f = (node.outputs[0], node.inputs[0]) if quantizing else (node.inputs[0], node.outputs[0])
    if node.attr("block_size"):
        return f"blocked {node.op} (block_size) is not supported by the tvm target"
    if q.type.dtype not in _INT8 + (() if quantizing else (DType.I32,)):
        return f"{node.op} to/from {q.type.dtype.short} is not supported by the tvm target (8- and 16-bit, int4, int2)"
    if f.type.dtype != DType.F32 or node.input(1).type.dtype != DType.F32:
        return f"{node.op} with {f.type.dtype.short} data or scale is not supported by the tvm target (float32)"
    if quantizing and node.attr("precision") not in (0, DType.F32.onnx):
        return "QuantizeLinear with a precision other than float32 is not supported by the tvm target"
    for i in (1, 2):
        v = node.input(i)
        if v is not None and len(v.type.shape) > 1:
            return f"{node.op}: scale and zero point must be per tensor or per axis on the tvm target"
    return None


def _param(p: Any, axis: int, idx: tuple, dtype: str) -> Any:
    """A per-tensor (Scalar or one-element tensor) or per-axis parameter at output index ``idx``."""
    if p is None:
        return tirx.const(0, dtype)
    if isinstance(p, Scalar):
        return tirx.const(p.value, dtype)
    n = int(p.shape[0]) if len(p.shape) else 1
    v = p(*([0] * len(p.shape))) if n == 1 or not idx else p(idx[axis])
    return v if etype(v) == dtype else tirx.Cast(dtype, v)


def _quantize(f: Any, scale: Any, zp: Any, qdtype: DType) -> Any:
    """float32 ``f``, scale and int32 zero point -> the quantized value (saturated, half to even)."""
    lo, hi = quant.qrange(qdtype)
    v = f / scale
    lo_v = tirx.Cast("float32", tirx.const(lo, "int32") - zp)
    hi_v = tirx.Cast("float32", tirx.const(hi, "int32") - zp)
    v = tirx.Select(v > lo_v, v, lo_v)  # NaN fails the comparison: lowest
    v = tirx.Select(v < hi_v, v, hi_v)
    return tirx.Cast(tvm_dtype(qdtype), tirx.Cast("int32", tirx.nearbyint(v)) + zp)


@rule("QuantizeLinear", check=_check)
def _quantize_linear(node: Node, xs: list) -> list:
    x, scale, zp = (xs + [None])[:3]
    shape = static_shape(node.outputs[0])
    axis = node.attr("axis") % max(1, len(shape))
    qdtype = node.outputs[0].type.dtype

    def body(*idx: Any) -> Any:
        return _quantize(x(*idx), _param(scale, axis, idx, "float32"), _param(zp, axis, idx, "int32"), qdtype)
    return [te.compute(shape, body, name="quantize")]


@rule("DequantizeLinear", check=_check)
def _dequantize_linear(node: Node, xs: list) -> list:
    x, scale, zp = (xs + [None])[:3]
    shape = static_shape(node.outputs[0])
    axis = node.attr("axis") % max(1, len(shape))

    def body(*idx: Any) -> Any:
        d = tirx.Cast("int64", x(*idx)) - _param(zp, axis, idx, "int64")
        return tirx.Cast("float32", d) * _param(scale, axis, idx, "float32")
    return [te.compute(shape, body, name="dequantize")]


def _check_dynamic(node: Node) -> Optional[str]:
    if node.inputs[0].type.dtype != DType.F32:
        return "DynamicQuantizeLinear takes float32 data"
    return None


@rule("DynamicQuantizeLinear", check=_check_dynamic)
def _dynamic_quantize_linear(node: Node, xs: list) -> list:
    """``quant.dynamic_qparams``: the range [min(x, 0), max(x, 0)] onto uint8; an all-zero x gets
    scale 1 and zero point 0, as onnxruntime does."""
    x = xs[0]
    shape = static_shape(node.inputs[0])
    lo, hi = quant.qrange(DType.U8)

    def reduce(fn: Any, name: str) -> te.Tensor:
        rs = [te.reduce_axis((0, d), name=f"r{i}") for i, d in enumerate(shape)]
        return te.compute((), lambda: fn(x(*rs) if rs else x(), axis=rs), name=name) if rs else \
            te.compute((), lambda: x(), name=name)
    mx_t, mn_t = reduce(te.max, "xmax"), reduce(te.min, "xmin")
    zero = tirx.const(0.0, "float32")

    def params() -> tuple[Any, Any, Any]:
        mx, mn = tirx.max(mx_t(), zero), tirx.min(mn_t(), zero)
        empty = mx == mn
        scale = tirx.Select(empty, tirx.const(1.0, "float32"), (mx - mn) / tirx.const(float(hi - lo), "float32"))
        initial = tirx.const(float(lo), "float32") - mn / scale
        clipped = tirx.min(tirx.max(initial, tirx.const(float(lo), "float32")), tirx.const(float(hi), "float32"))
        zp = tirx.Select(empty, tirx.const(lo, "int32"), tirx.Cast("int32", tirx.nearbyint(clipped)))
        return scale, zp, empty
    scale_t = te.compute((), lambda: params()[0], name="scale")
    zp_t = te.compute((), lambda: tirx.Cast("uint8", params()[1]), name="zero_point")
    y = te.compute(shape, lambda *idx: _quantize(x(*idx), scale_t(), tirx.Cast("int32", zp_t()), DType.U8),
                   name="quantize")
    return [y, scale_t, zp_t]
