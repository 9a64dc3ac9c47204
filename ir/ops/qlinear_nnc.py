"""``nnc.QConv`` and ``nnc.QMatMul``: the compiler's integer convolution and matmul.

The ``fold-qdq`` pass rewrites every quantized conv/matmul form a model may
use (``DequantizeLinear -> Conv/MatMul/Gemm -> [Relu|Clip] -> QuantizeLinear``
chains, QLinearConv, QLinearMatMul, QGemm, ConvInteger, MatMulInteger) into
these two ops, so a backend implements one integer conv and one integer matmul:

    acc = sum_k (x - x_zp) * (w - w_zp[oc])          exact, int32 (wraps like hardware)
    acc += bias[oc]                                   int32
    y   = clamp(requantize(acc, multiplier[oc], y_zp), act_min, act_max)   (ir.quant)

``multiplier`` is ``x_scale * w_scale[oc] / y_scale`` computed once in float32
(onnxruntime's order), ``act_min``/``act_max`` hold a fused Relu/Clip as
saturation bounds.  Without ``y_zero_point`` the op returns the int32
accumulator (ConvInteger/MatMulInteger; dynamic quantization).

Weights are int8 (uint8 weights are shifted by 128 with their zero points, see
``quant.to_signed_weights``) and *packed* in the layout the VNNI kernels read
(``quant.pack_conv_weights``/``pack_matmul_weights``); ``colsum`` holds each
output channel's sum of weights, which turns the input zero point into one
multiply per output (``acc = dot - x_zp * colsum - ...``) instead of a
subtraction per tap.  The reference unpacks and computes the formula above.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from .. import quant
from ..dtypes import DType
from ..registry import BROADCAST, OPAQUE, Attr, InferContext, define
from ..shapes import broadcast_shapes, conv_output_dim
from ..types import TensorType
from .quantization import Q8, _minus, _per_channel, check_in, check_scalar, conv_int

NNC = "nnc"
I32_MIN, I32_MAX = -2**31, 2**31 - 1

_COMMON_INPUTS = ["bias", "multiplier", "x_zero_point", "w_zero_point", "colsum", "y_zero_point?"]
_BOUNDS = {"act_min": Attr.int(I32_MIN), "act_max": Attr.int(I32_MAX)}


def _check_common(ctx: InferContext, channels) -> DType:
    """Types of the shared operands; returns the output element type."""
    check_in(ctx, 0, Q8, "X")
    check_in(ctx, 1, frozenset({DType.I8}), "packed weights")
    check_in(ctx, 2, frozenset({DType.I32}), "bias")
    check_in(ctx, 3, frozenset({DType.F32}), "multiplier")
    if ctx.dtype(4) != ctx.dtype(0):
        ctx.fail("x_zero_point must have X's element type", expected=ctx.dtype(0).short,
                 found=ctx.dtype(4).short)
    check_scalar(ctx, 4, "x_zero_point")
    check_in(ctx, 5, frozenset({DType.I32}), "w_zero_point")
    check_in(ctx, 6, frozenset({DType.I32}), "colsum")
    for i, what in ((2, "bias"), (3, "multiplier"), (5, "w_zero_point"), (6, "colsum")):
        s = ctx.shape(i)
        if s is not None and (len(s) != 1 or (isinstance(channels, int) and s[0] not in (1, channels))):
            ctx.fail(f"{what} must be a 1-D per-output-channel vector", expected=f"[{channels}]",
                     found=f"shape {list(s)}")
    if ctx.has_input(7):
        check_scalar(ctx, 7, "y_zero_point")
        return check_in(ctx, 7, Q8, "y_zero_point")
    return DType.I32


def _epilogue(acc: np.ndarray, bias, multiplier, y_zero_point, act_min: int, act_max: int,
              axis: int) -> np.ndarray:
    acc = acc.astype(np.int64) + _per_channel(bias, acc.ndim, axis)
    if y_zero_point is None:
        return acc.astype(np.int32)  # wraps like the 32-bit accumulator
    dt = DType.from_numpy(np.asarray(y_zero_point).dtype)
    lo, hi = quant.qrange(dt)
    return quant.requantize_clamped(acc, _per_channel(multiplier, acc.ndim, axis),
                                    np.asarray(y_zero_point).reshape(()), dt,
                                    max(lo, act_min), min(hi, act_max))


# ====================================================================== QConv
qconv = define(
    "QConv", domain=NNC, kind=OPAQUE,
    inputs=["X", "W"] + _COMMON_INPUTS, outputs=["Y"],
    attrs={"kernel_shape": Attr.ints(), "strides": Attr.ints(), "pads": Attr.ints(),
           "dilations": Attr.ints(), "group": Attr.int(1), "channels_out": Attr.int(0), **_BOUNDS},
    doc="Integer 2-D convolution (NCHW) with int32 accumulation, int32 bias and requantization; "
        "W packed [M, Kp] (ir.quant.pack_conv_weights).")


@qconv.infer
def _(ctx: InferContext) -> list[TensorType]:
    m = ctx.attr("channels_out")
    out = _check_common(ctx, m)
    xs = ctx.shape(0)
    kernel = list(ctx.attr("kernel_shape") or [])
    if len(kernel) != 2:
        ctx.fail("nnc.QConv is 2-D: kernel_shape must hold 2 values", found=str(kernel))
    strides = list(ctx.attr("strides") or [1, 1])
    dil = list(ctx.attr("dilations") or [1, 1])
    pads = list(ctx.attr("pads") or [0, 0, 0, 0])
    group = ctx.attr("group")
    if xs is None:
        return [TensorType(out, None)]
    if len(xs) != 4:
        ctx.fail("nnc.QConv takes NCHW input", found=f"shape {list(xs)}")
    ws = ctx.shape(1)
    c = xs[1]
    if isinstance(c, int) and ws is not None and isinstance(ws[1], int):
        k = (c // group) * kernel[0] * kernel[1]
        if ws[0] != m or ws[1] != -(-k // quant.PACK_K) * quant.PACK_K or c % group:
            ctx.fail("packed weights do not match the input", expected=f"[{m}, {k} rounded up to 4]",
                     found=f"shape {list(ws)}", hint="build them with ir.quant.pack_conv_weights")
    dims = [conv_output_dim(xs[2 + i], kernel[i], strides[i], pads[i], pads[2 + i], dil[i])
            for i in range(2)]
    return [TensorType(out, (xs[0], m) + tuple(dims))]


def conv_attrs(attrs: dict) -> dict:
    return {"kernel_shape": attrs["kernel_shape"], "strides": attrs.get("strides") or [1, 1],
            "pads": attrs.get("pads") or [0, 0, 0, 0], "dilations": attrs.get("dilations") or [1, 1],
            "group": attrs.get("group") or 1}


@qconv.reference
def _(x, w, bias, multiplier, x_zero_point, w_zero_point, colsum, y_zero_point=None, **attrs):
    group = attrs.get("group") or 1
    kh, kw = attrs["kernel_shape"]
    wt = quant.unpack_conv_weights(w, (x.shape[1] // group, kh, kw))
    acc = conv_int(_minus(x, np.asarray(x_zero_point).reshape(())),
                   _minus(wt, _per_channel(w_zero_point, 4, axis=0)), conv_attrs(attrs))
    return _epilogue(acc, bias, multiplier, y_zero_point, attrs["act_min"], attrs["act_max"], 1)


# ==================================================================== QMatMul
qmatmul = define(
    "QMatMul", domain=NNC, kind=OPAQUE,
    inputs=["A", "B"] + _COMMON_INPUTS, outputs=["Y"],
    attrs={"n": Attr.int(required=True), **_BOUNDS},
    doc="Integer A[..., M, K] @ B[K, n] with int32 accumulation, int32 bias and requantization; "
        "B packed (ir.quant.pack_matmul_weights).")


@qmatmul.infer
def _(ctx: InferContext) -> list[TensorType]:
    n = ctx.attr("n")
    out = _check_common(ctx, n)
    a = ctx.shape(0)
    if a is None:
        return [TensorType(out, None)]
    if len(a) < 2:
        ctx.fail("nnc.QMatMul needs A of rank >= 2", found=f"shape {list(a)}")
    bs = ctx.shape(1)
    k = a[-1]
    if isinstance(k, int) and bs is not None and tuple(bs) != (-(-n // 16), -(-k // 4), 16, 4):
        ctx.fail("packed B does not match A and n", expected=f"[{-(-n // 16)}, {-(-k // 4)}, 16, 4]",
                 found=f"shape {list(bs)}", hint="build it with ir.quant.pack_matmul_weights")
    return [TensorType(out, tuple(a[:-1]) + (n,))]


@qmatmul.reference
def _(a, b, bias, multiplier, x_zero_point, w_zero_point, colsum, y_zero_point=None, *, n, act_min,
      act_max):
    bt = quant.unpack_matmul_weights(b, a.shape[-1], n)
    acc = quant.int_matmul(_minus(a, np.asarray(x_zero_point).reshape(())),
                           _minus(bt, np.asarray(w_zero_point).reshape(1, -1)
                                  if np.asarray(w_zero_point).size > 1 else np.asarray(w_zero_point)))
    return _epilogue(acc, bias, multiplier, y_zero_point, act_min, act_max, -1)


def weight_colsum(w_rows: np.ndarray) -> np.ndarray:
    """Sum of each output channel's (signed) weights, int32: rows of ``w_rows`` [M, K]."""
    return w_rows.astype(np.int64).sum(axis=1).astype(np.int32)


def output_type_of(y_zero_point: Optional[np.ndarray]) -> DType:
    return DType.I32 if y_zero_point is None else DType.from_numpy(np.asarray(y_zero_point).dtype)


# ======================================================================= QAdd
qadd = define(
    "QAdd", domain=NNC, kind=BROADCAST,
    inputs=["A", "a_scale", "a_zero_point", "B", "b_scale", "b_zero_point", "y_scale", "y_zero_point"],
    outputs=["Y"], attrs=dict(_BOUNDS),
    doc="quantize(dequantize(A) + dequantize(B)) in float32 (the DQ -> Add [-> Relu|Clip] -> Q group "
        "fold-qdq folds), with a fused Relu/Clip as saturation bounds: one pass over 8-bit data.")


@qadd.infer
def _(ctx: InferContext) -> list[TensorType]:
    check_in(ctx, 0, Q8, "A")
    check_in(ctx, 3, Q8, "B")
    for i, data, what in ((1, None, "a_scale"), (4, None, "b_scale"), (6, None, "y_scale")):
        check_in(ctx, i, frozenset({DType.F32}), what)
        check_scalar(ctx, i, what)
    for i, data, what in ((2, 0, "a_zero_point"), (5, 3, "b_zero_point")):
        if ctx.dtype(i) != ctx.dtype(data):
            ctx.fail(f"{what} must have its input's element type", expected=ctx.dtype(data).short,
                     found=ctx.dtype(i).short)
        check_scalar(ctx, i, what)
    check_scalar(ctx, 7, "y_zero_point")
    out = check_in(ctx, 7, Q8, "y_zero_point")
    try:
        shape = broadcast_shapes(ctx.shape(0), ctx.shape(3))
    except Exception as exc:  # noqa: BLE001
        ctx.fail(str(exc), found=f"{ctx.input_type(0)} and {ctx.input_type(3)}")
    return [TensorType(out, shape)]


@qadd.reference
def _(a, a_scale, a_zero_point, b, b_scale, b_zero_point, y_scale, y_zero_point, *, act_min, act_max):
    s = quant.dequantize(a, a_scale, a_zero_point) + quant.dequantize(b, b_scale, b_zero_point)
    dt = DType.from_numpy(np.asarray(y_zero_point).dtype)
    y = quant.quantize(s.astype(np.float32), np.asarray(y_scale, np.float32), y_zero_point, dt)
    lo, hi = quant.qrange(dt)
    return np.clip(y, max(lo, act_min), min(hi, act_max)).astype(dt.np)
