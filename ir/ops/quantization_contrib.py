"""The com.microsoft quantized ops that onnxruntime's quantizer emits.

QGemm, QLinearAdd, QLinearMul, QLinearLeakyRelu, QLinearSigmoid,
QLinearGlobalAveragePool, QLinearConcat, MatMulIntegerToFloat and
DynamicQuantizeMatMul.  Their semantics are onnxruntime's CPU kernels (the
contrib ops have no other specification), written with ``ir.quant``; where
onnxruntime evaluates a formula in a particular float32 order we keep that
order, so results match bit for bit.  Registered by ``quantization.py``.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from .. import quant
from ..dtypes import DType
from ..registry import BROADCAST, COMPLEX, OPAQUE, REDUCTION, Attr, InferContext, define
from ..shapes import broadcast_shapes, normalize_axis
from ..types import TensorType
from .quantization import (Q8, _minus, _row_param, check_in, check_scalar, check_vector,
                           check_zero_point_type, matmul_shape)

MS = "com.microsoft"
F32 = frozenset({DType.F32})
f32 = np.float32


def _zp(z: Optional[np.ndarray]) -> np.ndarray:
    """A (possibly omitted) per-tensor zero point as an int32 scalar."""
    return np.int32(0) if z is None else np.asarray(z).reshape(-1)[0].astype(np.int32)


def _s(s: np.ndarray) -> np.float32:
    """A per-tensor scale as a float32 scalar."""
    return f32(np.asarray(s).reshape(-1)[0])


# ===================================================================== QGemm
qgemm = define(
    "QGemm", domain=MS, kind=COMPLEX,
    inputs=["A", "a_scale", "a_zero_point", "B", "b_scale", "b_zero_point", "C?", "y_scale?",
            "y_zero_point?"],
    outputs=["Y"], attrs={"alpha": Attr.float(1.0), "transA": Attr.int(0), "transB": Attr.int(0)},
    doc="Quantized Gemm: int32 A'B' (+ int32 C), scaled by alpha * a_scale * b_scale; "
        "requantized to y_zero_point's type when given, else float32.")


@qgemm.infer
def _(ctx: InferContext) -> list[TensorType]:
    check_in(ctx, 0, Q8, "A")
    check_in(ctx, 3, Q8, "B")
    check_zero_point_type(ctx, 2, 0, "A")
    check_zero_point_type(ctx, 5, 3, "B")
    for i, what in ((1, "a_scale"), (4, "b_scale"), (7, "y_scale")):
        if ctx.has_input(i):
            check_in(ctx, i, F32, what)
    a, b = ctx.shape(0), ctx.shape(3)
    for shape, what in ((a, "A"), (b, "B")):
        if shape is not None and len(shape) != 2:
            ctx.fail(f"{what} must be 2-D", found=f"shape {list(shape)}")
    m = None if a is None else a[1 if ctx.attr("transA") else 0]
    k1 = None if a is None else a[0 if ctx.attr("transA") else 1]
    n = None if b is None else b[0 if ctx.attr("transB") else 1]
    k2 = None if b is None else b[1 if ctx.attr("transB") else 0]
    if isinstance(k1, int) and isinstance(k2, int) and k1 != k2:
        ctx.fail("inner dimensions of A and B differ", found=f"{k1} and {k2}")
    for i, what in ((1, "a_scale"), (2, "a_zero_point"), (7, "y_scale"), (8, "y_zero_point")):
        check_scalar(ctx, i, what)
    check_vector(ctx, 4, n, "b_scale")
    check_vector(ctx, 5, n, "b_zero_point")
    if ctx.has_input(6):
        check_in(ctx, 6, frozenset({DType.I32}), "C")
    if ctx.has_input(8):
        out = check_in(ctx, 8, Q8, "y_zero_point")
    else:
        out = DType.F32
    return [TensorType(out, (m, n))]


@qgemm.reference
def _(a, a_scale, a_zero_point, b, b_scale, b_zero_point, c=None, y_scale=None,
      y_zero_point=None, *, alpha, transA, transB):
    a = a.T if transA else a
    b = b.T if transB else b
    acc = quant.int_matmul(_minus(a, _zp(a_zero_point)), _minus(b, b_zero_point))
    if c is not None:
        acc = acc.astype(np.int64) + c
    # onnxruntime: scale[n] = alpha * a_scale * b_scale[n] (/ y_scale), in float32.
    scale = f32(alpha) * _s(a_scale) * np.asarray(b_scale, f32)
    if y_scale is not None:
        scale = scale / _s(y_scale)
    if y_zero_point is None:
        return (acc.astype(f32) * scale).astype(f32)
    return quant.requantize(acc, scale, _zp(y_zero_point), DType.from_numpy(y_zero_point.dtype))


# ========================================================= integer -> float
def _matmul_to_float(ctx: InferContext, a: int, b: int) -> Optional[tuple]:
    check_in(ctx, a, Q8, "A")
    check_in(ctx, b, Q8, "B")
    return matmul_shape(ctx, ctx.shape(a), ctx.shape(b))


def _scale_bias(acc: np.ndarray, scale: np.ndarray, bias: Optional[np.ndarray],
                dtype=np.float32) -> np.ndarray:
    """``float(acc) * scale (+ bias)`` in float32, as ``dtype``."""
    y = acc.astype(f32) * np.asarray(scale).astype(f32)
    if bias is not None:
        y = y + np.asarray(bias).astype(f32)
    return y.astype(dtype)


mm_to_float = define(
    "MatMulIntegerToFloat", domain=MS, kind=COMPLEX,
    inputs=["A", "B", "a_scale", "b_scale", "a_zero_point?", "b_zero_point?", "bias?"],
    outputs=["Y"],
    doc="(A - a_zp) @ (B - b_zp) exactly in int32, then * a_scale * b_scale (+ bias) in float.")


@mm_to_float.infer
def _(ctx: InferContext) -> list[TensorType]:
    shape = _matmul_to_float(ctx, 0, 1)
    out = check_in(ctx, 2, frozenset({DType.F32, DType.F16}), "a_scale")
    check_zero_point_type(ctx, 4, 0, "A")
    check_zero_point_type(ctx, 5, 1, "B")
    return [TensorType(out, shape)]


@mm_to_float.reference
def _(a, b, a_scale, b_scale, a_zero_point=None, b_zero_point=None, bias=None):
    acc = quant.int_matmul(_minus(a, _row_param(a_zero_point, a)),
                           _minus(b, 0 if b_zero_point is None else b_zero_point))
    scale = np.asarray(a_scale).astype(f32) * np.asarray(b_scale).astype(f32)
    return _scale_bias(acc, scale, bias, a_scale.dtype)


dq_matmul = define(
    "DynamicQuantizeMatMul", domain=MS, kind=COMPLEX,
    inputs=["A", "B", "b_scale", "b_zero_point?", "bias?"], outputs=["Y"],
    doc="A quantized to uint8 on the fly (DynamicQuantizeLinear), then MatMulIntegerToFloat.")


@dq_matmul.infer
def _(ctx: InferContext) -> list[TensorType]:
    check_in(ctx, 0, F32, "A")
    check_in(ctx, 1, Q8, "B")
    check_in(ctx, 2, F32, "b_scale")
    check_zero_point_type(ctx, 3, 1, "B")
    return [TensorType(DType.F32, matmul_shape(ctx, ctx.shape(0), ctx.shape(1)))]


@dq_matmul.reference
def _(a, b, b_scale, b_zero_point=None, bias=None):
    a_scale, a_zp = quant.dynamic_qparams(a, DType.U8)
    qa = quant.quantize(a, np.array(a_scale, f32), np.array(a_zp, np.uint8), DType.U8)
    acc = quant.int_matmul(_minus(qa, a_zp), _minus(b, 0 if b_zero_point is None else b_zero_point))
    return _scale_bias(acc, a_scale * np.asarray(b_scale, f32), bias)


# ============================================================ elementwise
def _binary_infer(ctx: InferContext) -> list[TensorType]:
    dt = check_in(ctx, 0, Q8, "A")
    if ctx.dtype(3) != dt:
        ctx.fail("A and B must share one element type",
                 found=f"{dt.short} and {ctx.dtype(3).short}")
    for i, what in ((1, "A_scale"), (4, "B_scale"), (6, "C_scale")):
        check_in(ctx, i, F32, what)
        check_scalar(ctx, i, what)
    for i, data, what in ((2, 0, "A"), (5, 3, "B"), (7, 0, "C")):
        check_zero_point_type(ctx, i, data, what)
        check_scalar(ctx, i, what + "_zero_point")
    try:
        shape = broadcast_shapes(ctx.shape(0), ctx.shape(3))
    except Exception as exc:  # noqa: BLE001
        ctx.fail(str(exc), found=f"{ctx.input_type(0)} and {ctx.input_type(3)}")
    return [TensorType(dt, shape)]


_BINARY_INPUTS = ["A", "A_scale", "A_zero_point?", "B", "B_scale", "B_zero_point?", "C_scale",
                  "C_zero_point?"]


def _round_store(v: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """float32 -> round half to even -> saturate to ``dtype`` (MLAS's pack)."""
    return quant.saturate_int(quant.round_half_even(v), None, quant.as_dtype(dtype))


qlinear_add = define("QLinearAdd", domain=MS, kind=BROADCAST, inputs=_BINARY_INPUTS,
                     outputs=["C"], doc="Quantized A + B with NumPy broadcasting.")
qlinear_add.infer(_binary_infer)


@qlinear_add.reference
def _(a, a_scale, a_zp, b, b_scale, b_zp, c_scale, c_zp=None):
    # MLAS (x86): ((zc - (ra * za + rb * zb)) + a * ra) + b * rb with r = scale / c_scale.
    ra, rb = _s(a_scale) / _s(c_scale), _s(b_scale) / _s(c_scale)
    fixed = f32(_zp(c_zp)) - (ra * f32(_zp(a_zp)) + rb * f32(_zp(b_zp)))
    v = (fixed + a.astype(f32) * ra) + b.astype(f32) * rb
    return _round_store(v, a.dtype)


qlinear_mul = define("QLinearMul", domain=MS, kind=BROADCAST, inputs=_BINARY_INPUTS,
                     outputs=["C"], doc="Quantized A * B with NumPy broadcasting.")
qlinear_mul.infer(_binary_infer)


@qlinear_mul.reference
def _(a, a_scale, a_zp, b, b_scale, b_zp, c_scale, c_zp=None):
    # MLAS (x86): round(float((a - za) * (b - zb)) * (a_scale * b_scale / c_scale) + zc):
    # the zero point is added before rounding, so ties round differently from requantize().
    mult = _s(a_scale) * _s(b_scale) / _s(c_scale)
    prod = _minus(a, _zp(a_zp)) * _minus(b, _zp(b_zp))
    return _round_store(prod.astype(f32) * mult + f32(_zp(c_zp)), a.dtype)


def _unary(name: str, fn, attrs=None, doc: str = ""):
    """A quantized elementwise op: ``quantize(fn(dequantize(x)))`` through a 256-entry table."""
    schema = define(name, domain=MS, kind=BROADCAST, attrs=attrs, doc=doc,
                    inputs=["X", "X_scale", "X_zero_point?", "Y_scale", "Y_zero_point?"],
                    outputs=["Y"])

    @schema.infer
    def _(ctx: InferContext) -> list[TensorType]:
        dt = check_in(ctx, 0, Q8, "X")
        for i, what in ((1, "X_scale"), (3, "Y_scale")):
            check_in(ctx, i, F32, what)
            check_scalar(ctx, i, what)
        for i, what in ((2, "X"), (4, "Y")):
            check_zero_point_type(ctx, i, 0, what)
            check_scalar(ctx, i, what + "_zero_point")
        return [TensorType(dt, ctx.shape(0))]

    @schema.reference
    def _(x, x_scale, x_zp=None, y_scale=None, y_zp=None, **kw):
        # onnxruntime builds the same table (QlinearBuildLookupTable), in float32.
        lo, hi = quant.qrange(x.dtype)
        codes = np.arange(lo, hi + 1)
        real = (f32(_s(x_scale)) * (codes - _zp(x_zp)).astype(f32)).astype(f32)
        table = quant.quantize(fn(real, **kw).astype(f32), _s(y_scale), _zp(y_zp),
                               quant.as_dtype(x.dtype))
        return table[x.astype(np.int64) - lo]

    return schema


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return (1.0 / (1.0 + np.exp(-x.astype(np.float64)))).astype(f32)


_unary("QLinearLeakyRelu", lambda x, alpha: np.where(x >= 0, x, x * f32(alpha)),
       attrs={"alpha": Attr.float(0.01)}, doc="quantize(LeakyRelu(dequantize(X))).")
_unary("QLinearSigmoid", lambda x: _sigmoid(x), doc="quantize(Sigmoid(dequantize(X))).")


# ================================================================ pooling
qgap = define(
    "QLinearGlobalAveragePool", domain=MS, kind=REDUCTION,
    inputs=["X", "x_scale", "x_zero_point", "y_scale", "y_zero_point"], outputs=["Y"],
    attrs={"channels_last": Attr.int(0)},
    doc="Mean over the spatial dims of a quantized tensor (NCHW, or NHWC with channels_last).")


@qgap.infer
def _(ctx: InferContext) -> list[TensorType]:
    dt = check_in(ctx, 0, Q8, "X")
    for i in (1, 2, 3, 4):
        check_scalar(ctx, i, qgap.inputs[i].name)
    check_zero_point_type(ctx, 4, 0, "y")
    shape = ctx.shape(0)
    if shape is None:
        return [TensorType(dt, None)]
    if len(shape) < 3:
        ctx.fail("X must have spatial dims (rank >= 3)", found=f"shape {list(shape)}")
    if ctx.attr("channels_last"):
        return [TensorType(dt, (shape[0],) + (1,) * (len(shape) - 2) + (shape[-1],))]
    return [TensorType(dt, tuple(shape[:2]) + (1,) * (len(shape) - 2))]


@qgap.reference
def _(x, x_scale, x_zero_point, y_scale, y_zero_point, *, channels_last):
    axes = tuple(range(1, x.ndim - 1)) if channels_last else tuple(range(2, x.ndim))
    count = int(np.prod([x.shape[i] for i in axes]))
    acc = np.sum(x.astype(np.int64), axis=axes, keepdims=True) - _zp(x_zero_point) * count
    # MLAS: requantize the int32 sum with x_scale / (y_scale * count).
    mult = _s(x_scale) / (_s(y_scale) * f32(count))
    return quant.requantize(acc, mult, _zp(y_zero_point), quant.as_dtype(x.dtype))


# ================================================================= concat
qconcat = define(
    "QLinearConcat", domain=MS, kind=OPAQUE, attrs={"axis": Attr.int(required=True)},
    inputs=["Y_scale", "Y_zero_point", "inputs..."], outputs=["Y"],
    doc="Concatenates (tensor, scale, zero point) triples, requantizing each to Y's parameters.")


@qconcat.infer
def _(ctx: InferContext) -> list[TensorType]:
    dt = check_in(ctx, 1, Q8, "Y_zero_point")
    n = ctx.num_inputs - 2
    if n < 3 or n % 3:
        ctx.fail("inputs must be (tensor, scale, zero point) triples", found=f"{n} inputs")
    shapes = []
    for t in range(2, ctx.num_inputs, 3):
        if ctx.dtype(t) != dt:
            ctx.fail(f"input {t} must have Y's element type", expected=dt.short,
                     found=ctx.dtype(t).short)
        shapes.append(ctx.shape(t))
    if any(s is None for s in shapes):
        return [TensorType(dt, None)]
    rank = len(shapes[0])
    axis = normalize_axis(ctx.attr("axis"), rank)
    out = list(shapes[0])
    for s in shapes[1:]:
        if len(s) != rank:
            ctx.fail("inputs must have the same rank", found=str([list(x) for x in shapes]))
        out[axis] = out[axis] + s[axis] if isinstance(out[axis], int) and isinstance(
            s[axis], int) else None
    return [TensorType(dt, tuple(out))]


@qconcat.reference
def _(y_scale, y_zero_point, *triples, axis):
    dtype = quant.as_dtype(y_zero_point.dtype)
    parts = []
    for x, s, z in zip(triples[0::3], triples[1::3], triples[2::3]):
        if _s(s) == _s(y_scale) and _zp(z) == _zp(y_zero_point):
            parts.append(x)  # same parameters: copied as is
        else:
            real = (_s(s) * (x.astype(np.int32) - _zp(z)).astype(f32)).astype(f32)
            parts.append(quant.quantize(real, _s(y_scale), _zp(y_zero_point), dtype))
    return np.concatenate(parts, axis=axis)
