"""Quantization ops of the ONNX domain: QuantizeLinear, DequantizeLinear,
DynamicQuantizeLinear, MatMulInteger, ConvInteger, QLinearMatMul, QLinearConv.

The arithmetic (rounding, saturation, per-axis/blocked parameters,
requantization) lives in ``ir.quant``; this file adds the type rules and the
integer matmul/convolution the references need.  The com.microsoft contrib
ops onnxruntime's quantizer emits (QGemm, QLinearAdd...) are in
``quantization_contrib.py``, registered from the bottom of this file.
"""

from __future__ import annotations

import math
from typing import Any, Optional

import numpy as np

from .. import quant
from ..dtypes import DType
from ..registry import COMPLEX, OPAQUE, Attr, InferContext, define
from ..shapes import broadcast_shapes, conv_output_dim
from ..types import Dim, Shape, TensorType

Q8 = frozenset({DType.U8, DType.I8})
SCALE_TYPES = frozenset({DType.F32, DType.F16, DType.BF16})


# =================================================================== helpers
def check_in(ctx: InferContext, i: int, allowed: frozenset, what: str) -> DType:
    """dtype of input ``i`` (named ``what``), failing clearly when not allowed."""
    dt = ctx.dtype(i)
    if dt not in allowed:
        ctx.fail(f"{what} has an unsupported element type", found=dt.short,
                 expected=" or ".join(sorted(t.short for t in allowed)))
    return dt


def check_scalar(ctx: InferContext, i: int, what: str) -> None:
    """Input ``i`` must be a scalar or a one-element 1-D tensor (per-tensor parameter)."""
    if not ctx.has_input(i):
        return
    shape = ctx.shape(i)
    if shape is None:
        return
    if len(shape) > 1 or (len(shape) == 1 and isinstance(shape[0], int) and shape[0] != 1):
        ctx.fail(f"{what} must be a scalar (per-tensor quantization)", found=f"shape {list(shape)}")


def check_vector(ctx: InferContext, i: int, length: Dim, what: str) -> None:
    """Input ``i`` is a scalar, or a 1-D tensor of ``length`` (per channel)."""
    if not ctx.has_input(i):
        return
    shape = ctx.shape(i)
    if shape is None or len(shape) == 0:
        return
    if len(shape) > 1:
        ctx.fail(f"{what} must be a scalar or a 1-D tensor", found=f"shape {list(shape)}")
    n = shape[0]
    if isinstance(n, int) and isinstance(length, int) and n not in (1, length):
        ctx.fail(f"{what} has the wrong length", expected=f"1 or {length}", found=str(n))


def check_zero_point_type(ctx: InferContext, zp: int, data: int, what: str) -> None:
    if ctx.has_input(zp) and ctx.dtype(zp) != ctx.dtype(data):
        ctx.fail(f"{what} zero point must have the data's element type",
                 expected=ctx.dtype(data).short, found=ctx.dtype(zp).short)


def check_quant_params(ctx: InferContext, data: int, scale: int, zp: Optional[int]) -> None:
    """Scale/zero-point shapes for QuantizeLinear/DequantizeLinear (see quant.expand_param)."""
    x, s = ctx.shape(data), ctx.shape(scale)
    axis, block = ctx.attr("axis"), ctx.attr("block_size")
    if block < 0:
        ctx.fail("block_size must be >= 0", found=str(block))
    if zp is not None and ctx.has_input(zp):
        z = ctx.shape(zp)
        one = (lambda t: len(t) == 0 or (len(t) == 1 and t[0] == 1))  # scalar or [1]
        if s is not None and z is not None and not (one(s) and one(z)) and (len(s) != len(z) or any(
                isinstance(a, int) and isinstance(b, int) and a != b for a, b in zip(s, z))):
            ctx.fail("scale and zero point must have the same shape",
                     found=f"{list(s)} and {list(z)}")
    if s is None or x is None:
        return
    if len(s) == 0 or (len(s) == 1 and s[0] == 1 and block == 0):
        return  # per tensor
    rank = len(x)
    if not -rank <= axis < rank:
        ctx.fail("axis out of range", expected=f"in [{-rank}, {rank})", found=str(axis))
    ax = axis % rank
    if block == 0:
        if len(s) != 1:
            ctx.fail("scale must be a scalar or 1-D unless block_size is set",
                     found=f"shape {list(s)}")
        if isinstance(s[0], int) and isinstance(x[ax], int) and s[0] != x[ax]:
            ctx.fail(f"per-axis scale length must equal dim {ax} of the input",
                     expected=str(x[ax]), found=str(s[0]))
        return
    if len(s) != rank:
        ctx.fail("blocked quantization needs a scale of the input's rank",
                 expected=str(rank), found=f"shape {list(s)}")
    for i, (a, b) in enumerate(zip(x, s)):
        want = -(-a // block) if (i == ax and isinstance(a, int)) else a
        if isinstance(want, int) and isinstance(b, int) and want != b:
            ctx.fail(f"blocked scale has the wrong size along dim {i}", expected=str(want),
                     found=str(b), hint=f"input {list(x)}, axis {ax}, block_size {block}")


def matmul_shape(ctx: InferContext, a: Shape, b: Shape) -> Shape:
    """NumPy matmul's result shape (1-D operands promoted), symbolic dims kept."""
    if a is None or b is None:
        return None
    if len(a) == 0 or len(b) == 0:
        ctx.fail("matmul operands must be at least 1-D", found=f"{list(a)} and {list(b)}")
    a2 = (1,) + tuple(a) if len(a) == 1 else tuple(a)
    b2 = tuple(b) + (1,) if len(b) == 1 else tuple(b)
    k1, k2 = a2[-1], b2[-2]
    if isinstance(k1, int) and isinstance(k2, int) and k1 != k2:
        ctx.fail("matmul inner dimensions differ", found=f"{list(a)} @ {list(b)}")
    try:
        batch = broadcast_shapes(a2[:-2], b2[:-2])
    except Exception as exc:  # noqa: BLE001
        ctx.fail(f"matmul batch dims do not broadcast: {exc}", found=f"{list(a)} @ {list(b)}")
    out = tuple(batch) + (a2[-2], b2[-1])
    if len(a) == 1:
        out = out[:-2] + out[-1:]
    if len(b) == 1:
        out = out[:-1]
    return out


# ------------------------------------------------------------- convolution
CONV_ATTRS = {"auto_pad": Attr.string("NOTSET"), "dilations": Attr.ints(), "group": Attr.int(1),
              "kernel_shape": Attr.ints(), "pads": Attr.ints(), "strides": Attr.ints()}


def _conv_geometry(spatial: tuple, kernel: tuple, attrs: dict) -> tuple[list, list, list, list]:
    """(strides, dilations, pad_begin, pad_end) with defaults and auto_pad resolved.

    ``spatial`` may hold non-int dims; SAME padding then gives None pads.
    """
    d = len(kernel)
    strides = list(attrs.get("strides") or [1] * d)
    dil = list(attrs.get("dilations") or [1] * d)
    pads = list(attrs.get("pads") or [0] * (2 * d))
    auto = attrs.get("auto_pad") or "NOTSET"
    begin, end = pads[:d], pads[d:]
    if auto == "VALID":
        begin, end = [0] * d, [0] * d
    elif auto in ("SAME_UPPER", "SAME_LOWER"):
        begin, end = [], []
        for size, k, s, dl in zip(spatial, kernel, strides, dil):
            if not isinstance(size, int):
                begin.append(None)
                end.append(None)
                continue
            total = max(0, (-(-size // s) - 1) * s + (k - 1) * dl + 1 - size)
            small, big = total // 2, total - total // 2
            begin.append(small if auto == "SAME_UPPER" else big)
            end.append(big if auto == "SAME_UPPER" else small)
    return strides, dil, begin, end


def conv_type(ctx: InferContext, x: int, w: int, dtype: DType) -> TensorType:
    """Output type of a conv-like op: input ``x`` (N, C, ...), weights ``w`` (M, C/g, ...)."""
    xs, ws = ctx.shape(x), ctx.shape(w)
    attrs = ctx.attrs
    if xs is None and ws is None:
        return TensorType(dtype, None)
    rank = len(xs) if xs is not None else len(ws)
    if rank < 3 or (ws is not None and len(ws) != rank) or (xs is not None and len(xs) != rank):
        ctx.fail("convolution input and weights must have the same rank >= 3",
                 found=f"{None if xs is None else list(xs)} and {None if ws is None else list(ws)}")
    d = rank - 2
    kernel = tuple(attrs.get("kernel_shape") or (ws[2:] if ws is not None else (None,) * d))
    for name in ("strides", "dilations"):
        v = attrs.get(name)
        if v and (len(v) != d or min(v) < 1):
            ctx.fail(f"{name} must hold {d} positive values", found=str(list(v)))
    if attrs.get("pads") and len(attrs["pads"]) != 2 * d:
        ctx.fail(f"pads must hold {2 * d} values", found=str(list(attrs["pads"])))
    group = attrs.get("group") or 1
    if xs is not None and ws is not None and isinstance(xs[1], int) and isinstance(ws[1], int) \
            and xs[1] != ws[1] * group:
        ctx.fail("input channels must equal weight channels * group",
                 expected=f"{ws[1]} * {group}", found=str(xs[1]))
    if xs is None:
        return TensorType(dtype, (None, ws[0]) + (None,) * d)
    strides, dil, begin, end = _conv_geometry(tuple(xs[2:]), kernel, attrs)
    out = []
    for size, k, s, dl, b, e in zip(xs[2:], kernel, strides, dil, begin, end):
        if attrs.get("auto_pad") in ("SAME_UPPER", "SAME_LOWER") and isinstance(size, int):
            out.append(-(-size // s))
        elif isinstance(k, int) and b is not None:
            out.append(conv_output_dim(size, k, s, b, e, dl))
        else:
            out.append(None)
    m = ws[0] if ws is not None else None
    return TensorType(dtype, (xs[0], m) + tuple(out))


def conv_int(x: np.ndarray, w: np.ndarray, attrs: dict) -> np.ndarray:
    """Exact integer N-d convolution (zero points already subtracted): int32 (N, M, ...).

    im2col: every output position's receptive field becomes one row of a
    (positions, C/g * prod(kernel)) matrix, multiplied by the weights with
    ``quant.int_matmul``.  Padding is zero (i.e. the zero point before
    subtraction, so padded taps contribute nothing).
    """
    n, c = x.shape[:2]
    m, kernel = w.shape[0], w.shape[2:]
    d = len(kernel)
    group = attrs.get("group") or 1
    strides, dil, begin, end = _conv_geometry(x.shape[2:], kernel, attrs)
    # Pick the exact accumulation type once, on the small operands, and build
    # the (large) im2col matrix directly in it.
    work = quant.accumulation_dtype(float(np.max(np.abs(x), initial=0)),
                                    float(np.max(np.abs(w), initial=0)), w[0].size)
    xp = np.pad(x.astype(work), [(0, 0), (0, 0)] + list(zip(begin, end)))
    eff = [(k - 1) * dl + 1 for k, dl in zip(kernel, dil)]
    win = np.lib.stride_tricks.sliding_window_view(xp, eff, axis=tuple(range(2, 2 + d)))
    win = win[(slice(None), slice(None)) + tuple(slice(None, None, s) for s in strides)
              + tuple(slice(None, None, dl) for dl in dil)]
    out_sizes = win.shape[2:2 + d]
    positions = math.prod(out_sizes)
    # (N, C, O..., K...) -> (N, O..., C, K...) -> (N * P, group, C/g * prod(K))
    perm = (0,) + tuple(range(2, 2 + d)) + (1,) + tuple(range(2 + d, 2 + 2 * d))
    cols = win.transpose(perm).reshape(n * positions, group, -1)
    wmat = w.astype(work).reshape(group, m // group, -1)
    # One batched matmul over the groups: (G, N*P, K) @ (G, K, M/g) -> (G, N*P, M/g)
    acc = quant.int_matmul(cols.transpose(1, 0, 2), wmat.transpose(0, 2, 1), dtype=work)
    acc = acc.transpose(1, 0, 2).reshape((n,) + out_sizes + (m,))
    return np.moveaxis(acc, -1, 1)


def _per_channel(p: Optional[np.ndarray], rank: int, axis: int = 1) -> Any:
    """A scalar or per-channel 1-D parameter laid along ``axis`` of a rank-``rank`` tensor."""
    if p is None:
        return 0
    p = np.asarray(p)
    if p.size == 1:
        return p.reshape(())
    shape = [1] * rank
    shape[axis] = p.size
    return p.reshape(shape)


def _minus(q: np.ndarray, zp: Any) -> np.ndarray:
    """``q - zp`` exactly, in int32."""
    return q.astype(np.int32) - np.asarray(zp).astype(np.int32)


# ========================================================== Quantize/Dequant
quantize_linear = define(
    "QuantizeLinear", inputs=["x", "y_scale", "y_zero_point?"], outputs=["y"], kind=OPAQUE,
    attrs={"axis": Attr.int(1), "block_size": Attr.int(0), "output_dtype": Attr.int(0),
           "precision": Attr.int(0), "saturate": Attr.int(1)},
    doc="y = saturate(round_half_even(x / y_scale) + y_zero_point); per tensor, axis or block.")


@quantize_linear.infer
def _(ctx: InferContext) -> list[TensorType]:
    check_in(ctx, 0, SCALE_TYPES | {DType.I32}, "x")
    check_in(ctx, 1, SCALE_TYPES | {DType.I32, DType.F8E8M0}, "y_scale")
    out = DType.U8
    od = ctx.attr("output_dtype")
    if od:
        try:
            out = DType.from_onnx(od)
        except Exception:
            ctx.fail("output_dtype is not an element type", found=str(od))
    if ctx.has_input(2):
        zt = ctx.dtype(2)
        if od and zt != out:
            ctx.fail("output_dtype and the zero point's type differ",
                     found=f"{out.short} and {zt.short}")
        out = zt
    if out not in quant.QUANT_TYPES:
        ctx.fail("cannot quantize to this type", found=out.short,
                 expected=" or ".join(sorted(t.short for t in quant.QUANT_TYPES)))
    prec = ctx.attr("precision")
    if prec and DType.from_onnx(prec) not in SCALE_TYPES | {DType.F64}:
        ctx.fail("precision must be a float type", found=DType.from_onnx(prec).short)
    check_quant_params(ctx, 0, 1, 2)
    return [TensorType(out, ctx.shape(0))]


@quantize_linear.reference
def _(x, y_scale, y_zero_point=None, *, axis, block_size, output_dtype, precision, saturate):
    dtype = (DType.from_numpy(y_zero_point.dtype) if y_zero_point is not None
             else DType.from_onnx(output_dtype) if output_dtype else DType.U8)
    return quant.quantize(x, y_scale, y_zero_point, dtype, axis=axis, block_size=block_size,
                          saturate=bool(saturate),
                          precision=DType.from_onnx(precision) if precision else None)


dequantize_linear = define(
    "DequantizeLinear", inputs=["x", "x_scale", "x_zero_point?"], outputs=["y"], kind=OPAQUE,
    attrs={"axis": Attr.int(1), "block_size": Attr.int(0), "output_dtype": Attr.int(0)},
    doc="y = (x - x_zero_point) * x_scale; per tensor, axis or block.")


@dequantize_linear.infer
def _(ctx: InferContext) -> list[TensorType]:
    xt = check_in(ctx, 0, quant.QUANT_TYPES | {DType.I32}, "x")
    st = check_in(ctx, 1, SCALE_TYPES | {DType.F8E8M0}, "x_scale")
    check_zero_point_type(ctx, 2, 0, "x")
    od = ctx.attr("output_dtype")
    out = DType.from_onnx(od) if od else st
    if out not in SCALE_TYPES:
        ctx.fail("output type must be float, float16 or bfloat16", found=out.short,
                 hint="set output_dtype when x_scale is float8e8m0")
    if xt == DType.I32 and ctx.has_input(2) and ctx.const(2) is not None and np.any(ctx.const(2)):
        ctx.fail("int32 input must have a zero point of 0", found=str(ctx.const(2).ravel()[:4]))
    check_quant_params(ctx, 0, 1, 2)
    return [TensorType(out, ctx.shape(0))]


@dequantize_linear.reference
def _(x, x_scale, x_zero_point=None, *, axis, block_size, output_dtype):
    dtype = DType.from_onnx(output_dtype) if output_dtype else DType.from_numpy(x_scale.dtype)
    return quant.dequantize(x, x_scale, x_zero_point, dtype, axis=axis, block_size=block_size)


dynamic_quantize = define(
    "DynamicQuantizeLinear", inputs=["x"], outputs=["y", "y_scale", "y_zero_point"], kind=OPAQUE,
    doc="Quantizes x to uint8 with a scale and zero point covering [min(x, 0), max(x, 0)].")


@dynamic_quantize.infer
def _(ctx: InferContext) -> list[TensorType]:
    check_in(ctx, 0, frozenset({DType.F32}), "x")
    return [TensorType(DType.U8, ctx.shape(0)), TensorType(DType.F32, ()),
            TensorType(DType.U8, ())]


@dynamic_quantize.reference
def _(x):
    scale, zp = quant.dynamic_qparams(x, DType.U8)
    y = quant.quantize(x, np.array(scale, np.float32), np.array(zp, np.uint8), DType.U8)
    return y, np.array(scale, np.float32), np.array(zp, np.uint8)


# =================================================================== integer
matmul_integer = define(
    "MatMulInteger", inputs=["A", "B", "a_zero_point?", "b_zero_point?"], outputs=["Y"],
    kind=COMPLEX, doc="int32 (A - a_zero_point) @ (B - b_zero_point); zero points per "
                      "tensor, per row of A or per column of B.")


@matmul_integer.infer
def _(ctx: InferContext) -> list[TensorType]:
    check_in(ctx, 0, Q8, "A")
    check_in(ctx, 1, Q8, "B")
    check_zero_point_type(ctx, 2, 0, "A")
    check_zero_point_type(ctx, 3, 1, "B")
    return [TensorType(DType.I32, matmul_shape(ctx, ctx.shape(0), ctx.shape(1)))]


def _row_param(p: Optional[np.ndarray], a: np.ndarray) -> Any:
    """A per-row parameter of A (1-D of length M) as an (M, 1) column; scalars as they are."""
    if p is None:
        return 0
    p = np.asarray(p)
    if p.ndim == 1 and p.size > 1 and a.ndim >= 2:
        return p.reshape(-1, 1)
    return p.reshape(()) if p.size == 1 else p


@matmul_integer.reference
def _(a, b, a_zero_point=None, b_zero_point=None):
    return quant.int_matmul(_minus(a, _row_param(a_zero_point, a)),
                            _minus(b, 0 if b_zero_point is None else b_zero_point))


conv_integer = define(
    "ConvInteger", inputs=["x", "w", "x_zero_point?", "w_zero_point?"], outputs=["y"],
    attrs=CONV_ATTRS, kind=COMPLEX,
    doc="int32 convolution of (x - x_zero_point) and (w - w_zero_point); w's zero point per "
        "tensor or per output channel.")


@conv_integer.infer
def _(ctx: InferContext) -> list[TensorType]:
    check_in(ctx, 0, Q8, "x")
    check_in(ctx, 1, Q8, "w")
    check_zero_point_type(ctx, 2, 0, "x")
    check_zero_point_type(ctx, 3, 1, "w")
    check_scalar(ctx, 2, "x_zero_point")
    m = ctx.shape(1)[0] if ctx.shape(1) is not None else None
    check_vector(ctx, 3, m, "w_zero_point")
    return [conv_type(ctx, 0, 1, DType.I32)]


@conv_integer.reference
def _(x, w, x_zero_point=None, w_zero_point=None, **attrs):
    xi = _minus(x, 0 if x_zero_point is None else np.asarray(x_zero_point).reshape(()))
    wi = _minus(w, _per_channel(w_zero_point, w.ndim, axis=0))
    return conv_int(xi, wi, attrs)


# =================================================================== QLinear
qlinear_matmul = define(
    "QLinearMatMul",
    inputs=["a", "a_scale", "a_zero_point", "b", "b_scale", "b_zero_point", "y_scale",
            "y_zero_point"],
    outputs=["y"], kind=COMPLEX,
    doc="Quantized matmul: int32 accumulation, requantized with a_scale * b_scale / y_scale.")


@qlinear_matmul.infer
def _(ctx: InferContext) -> list[TensorType]:
    check_in(ctx, 0, Q8, "a")
    check_in(ctx, 3, Q8, "b")
    check_zero_point_type(ctx, 2, 0, "a")
    check_zero_point_type(ctx, 5, 3, "b")
    out = check_in(ctx, 7, Q8, "y_zero_point")
    for i, what in ((1, "a_scale"), (4, "b_scale"), (6, "y_scale")):
        check_in(ctx, i, SCALE_TYPES, what)
    check_scalar(ctx, 6, "y_scale")
    check_scalar(ctx, 7, "y_zero_point")
    return [TensorType(out, matmul_shape(ctx, ctx.shape(0), ctx.shape(3)))]


def scale_product(*scales: np.ndarray) -> np.ndarray:
    """``s0 * s1 / s2`` in the scales' own float type (float32 for bfloat16), as float32."""
    dt = np.result_type(*[s.dtype for s in scales])
    if dt not in (np.float16, np.float32, np.float64):
        dt = np.float32
    s0, s1, s2 = (np.asarray(s).astype(dt) for s in scales)
    return (s0 * s1 / s2).astype(np.float32)


@qlinear_matmul.reference
def _(a, a_scale, a_zero_point, b, b_scale, b_zero_point, y_scale, y_zero_point):
    acc = quant.int_matmul(_minus(a, _row_param(a_zero_point, a)), _minus(b, b_zero_point))
    mult = scale_product(np.asarray(_row_param(a_scale, a)), b_scale, y_scale)
    return quant.requantize(acc, mult, y_zero_point, DType.from_numpy(y_zero_point.dtype))


qlinear_conv = define(
    "QLinearConv",
    inputs=["x", "x_scale", "x_zero_point", "w", "w_scale", "w_zero_point", "y_scale",
            "y_zero_point", "B?"],
    outputs=["y"], attrs=CONV_ATTRS, kind=COMPLEX,
    doc="Quantized convolution: int32 accumulation plus int32 bias B, requantized with "
        "x_scale * w_scale / y_scale (w per tensor or per output channel).")


@qlinear_conv.infer
def _(ctx: InferContext) -> list[TensorType]:
    check_in(ctx, 0, Q8, "x")
    check_in(ctx, 3, Q8, "w")
    check_zero_point_type(ctx, 2, 0, "x")
    check_zero_point_type(ctx, 5, 3, "w")
    out = check_in(ctx, 7, Q8, "y_zero_point")
    for i, what in ((1, "x_scale"), (4, "w_scale"), (6, "y_scale")):
        check_in(ctx, i, frozenset({DType.F32}), what)
    for i, what in ((1, "x_scale"), (2, "x_zero_point"), (6, "y_scale"), (7, "y_zero_point")):
        check_scalar(ctx, i, what)
    m = ctx.shape(3)[0] if ctx.shape(3) is not None else None
    check_vector(ctx, 4, m, "w_scale")
    check_vector(ctx, 5, m, "w_zero_point")
    if ctx.has_input(8):
        check_in(ctx, 8, frozenset({DType.I32}), "bias B")
        check_vector(ctx, 8, m, "bias B")
    return [conv_type(ctx, 0, 3, out)]


@qlinear_conv.reference
def _(x, x_scale, x_zero_point, w, w_scale, w_zero_point, y_scale, y_zero_point, b=None,
      **attrs):
    acc = conv_int(_minus(x, np.asarray(x_zero_point).reshape(())),
                   _minus(w, _per_channel(w_zero_point, w.ndim, axis=0)), attrs)
    if b is not None:
        acc = acc.astype(np.int64) + _per_channel(b, acc.ndim)
    mult = quant.output_multiplier(x_scale, _per_channel(w_scale, acc.ndim), y_scale)
    return quant.requantize(acc, mult, y_zero_point, DType.from_numpy(y_zero_point.dtype))
