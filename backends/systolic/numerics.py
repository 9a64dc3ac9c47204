"""The array's arithmetic, executed for real: fp32 or int8 x int8 -> int32 GEMMs in fold-sized K chunks.

Every GEMM-like op becomes ``A [G, rows, K] x B [G, K, N]`` (``G`` groups or
batch).  The reduction is cut into the chunks the array reduces at once (``R``
rows of K per fold under ws/is; all of K, streamed through one PE, under os)
and the partial sums are added like the ofmap accumulators do: in float32 for
float graphs, in int32 (two's-complement wrap-around) for integer graphs.
Integer results are exact whatever the order, so they equal the reference bit
for bit; the quantized ops' zero points, bias and requantization call the same
functions as their references (``ir.quant`` and ``ir.ops.quantization``), the one
definition every target shares.
"""

from __future__ import annotations

from typing import Any, Callable, Optional, Sequence

import numpy as np

from ir import quant
from ir.dtypes import DType
from ir.graph import Node
from ir.ops.quantization import _conv_geometry, _minus, _per_channel, _row_param, scale_product
from ir.ops.qlinear_nnc import _epilogue as qlinear_epilogue
from ir.ops.qlinear_nnc import conv_attrs as qconv_attrs
from ir.ops.quantization_contrib import _s, _zp

f32 = np.float32

# (domain, op) -> handler(node, args, chunk) -> output array
_HANDLERS: dict[tuple[str, str], Callable[[Node, Sequence[Any], int], np.ndarray]] = {}


def handles(op: str, domain: str = "") -> Callable:
    def deco(fn: Callable) -> Callable:
        _HANDLERS[(domain, op)] = fn
        return fn
    return deco


# Float ops run on the array only with float16/32 data (its fp32 datapath); other types go to the host.
_FLOAT_OPS = {("", "Conv"), ("nnc", "ConvNHWC"), ("", "Gemm"), ("", "MatMul")}


def is_gemm_like(node: Node) -> bool:
    """Whether ``node`` is one of the ops the array computes (for some data types)."""
    return (node.domain, node.op) in _HANDLERS


def is_array_op(node: Node) -> bool:
    """Whether the array computes ``node`` (else the vector unit or the host does)."""
    key = (node.domain, node.op)
    if key not in _HANDLERS:
        return False
    if key in _FLOAT_OPS:
        t = node.inputs[0].type if node.inputs and node.inputs[0] is not None else None
        return getattr(getattr(t, "dtype", None), "np", np.dtype(np.int8)) in (np.float32, np.float16)
    return True


def run_on_array(node: Node, args: Sequence[Any], chunk: int) -> np.ndarray:
    """``node``'s output computed by the array with K cut into ``chunk``-long pieces."""
    return _HANDLERS[(node.domain, node.op)](node, args, chunk)


# ------------------------------------------------------------------ the engine
def array_matmul(a: np.ndarray, b: np.ndarray, chunk: int, integer: bool) -> np.ndarray:
    """``a @ b`` (NumPy broadcasting) accumulated over K in ``chunk``-long pieces.

    Integer operands (zero points already subtracted) accumulate exactly into
    int32 with wrap-around; float operands in float32.
    """
    k = a.shape[-1]
    chunk = max(1, min(chunk, k)) if k else 1
    if integer:
        amax = float(np.max(np.abs(a), initial=0))
        bmax = float(np.max(np.abs(b), initial=0))
        work = quant.accumulation_dtype(amax, bmax, chunk)
        a = a.astype(work, copy=False)
        b = b.astype(work, copy=False)
        acc: Optional[np.ndarray] = None
        for s in range(0, max(k, 1), chunk):
            part = quant.int_matmul(a[..., s:s + chunk], b[..., s:s + chunk, :], dtype=work).astype(np.int64)
            acc = part if acc is None else acc + part
        return acc.astype(np.int32)  # int64 -> int32 keeps the low 32 bits: the accumulator's wrap
    a = a.astype(f32, copy=False)
    b = b.astype(f32, copy=False)
    out = None
    for s in range(0, max(k, 1), chunk):
        part = np.matmul(a[..., s:s + chunk], b[..., s:s + chunk, :])
        out = part if out is None else out + part
    return out.astype(f32, copy=False)


def im2col(x: np.ndarray, kernel: Sequence[int], attrs: dict) -> tuple[np.ndarray, tuple[int, ...]]:
    """NC... input -> (G, N*P, C/g * prod(kernel)) patches (zero padding) and the output sizes.

    Column order (channel, kernel...) matches ``w.reshape(G, M/g, -1)``.
    """
    n, c = x.shape[:2]
    d = len(kernel)
    group = attrs.get("group") or 1
    strides, dil, begin, end = _conv_geometry(x.shape[2:], tuple(kernel), attrs)
    xp = np.pad(x, [(0, 0), (0, 0)] + list(zip(begin, end)))
    eff = [(k - 1) * dl + 1 for k, dl in zip(kernel, dil)]
    win = np.lib.stride_tricks.sliding_window_view(xp, eff, axis=tuple(range(2, 2 + d)))
    win = win[(slice(None), slice(None)) + tuple(slice(None, None, s) for s in strides)
              + tuple(slice(None, None, dl) for dl in dil)]
    out_sizes = tuple(win.shape[2:2 + d])
    positions = int(np.prod(out_sizes))
    perm = (0,) + tuple(range(2, 2 + d)) + (1,) + tuple(range(2 + d, 2 + 2 * d))
    cols = win.transpose(perm).reshape(n * positions, group, (c // group) * int(np.prod(kernel)))
    return cols.transpose(1, 0, 2), out_sizes


def conv_gemm(x: np.ndarray, w: np.ndarray, attrs: dict, chunk: int, integer: bool) -> np.ndarray:
    """Convolution (NC..., OI...) as grouped GEMMs on the array; result (N, M, ...)."""
    n = x.shape[0]
    m, kernel = w.shape[0], w.shape[2:]
    group = attrs.get("group") or 1
    cols, out_sizes = im2col(x, kernel, attrs)
    wmat = w.reshape(group, m // group, -1).transpose(0, 2, 1)
    acc = array_matmul(cols, wmat, chunk, integer)            # (G, N*P, M/g)
    acc = acc.transpose(1, 0, 2).reshape((n,) + out_sizes + (m,))
    return np.moveaxis(acc, -1, 1)


def _conv_attrs(node: Node) -> dict:
    return {k: node.attr(k) for k in ("auto_pad", "dilations", "group", "kernel_shape", "pads", "strides")
            if k in node.schema.attrs}


# ------------------------------------------------------------------ float ops
@handles("Conv")
def _conv(node: Node, args: Sequence[Any], chunk: int) -> np.ndarray:
    x, w = args[0], args[1]
    y = conv_gemm(x, w, _conv_attrs(node), chunk, integer=False)
    if len(args) > 2 and args[2] is not None:
        y = y + args[2].astype(f32).reshape((1, -1) + (1,) * (y.ndim - 2))
    return y.astype(f32)


@handles("ConvNHWC", "nnc")
def _conv_nhwc(node: Node, args: Sequence[Any], chunk: int) -> np.ndarray:
    x, w = args[0], args[1]                         # NHWC input, HWIO weights
    y = conv_gemm(np.moveaxis(x, -1, 1), np.transpose(w, (3, 2, 0, 1)), _conv_attrs(node), chunk, False)
    if len(args) > 2 and args[2] is not None:
        y = y + args[2].astype(f32).reshape(1, -1, 1, 1)
    return np.ascontiguousarray(np.moveaxis(y, 1, -1)).astype(f32)


@handles("Gemm")
def _gemm(node: Node, args: Sequence[Any], chunk: int) -> np.ndarray:
    a, b = args[0], args[1]
    a = a.T if node.attr("transA") else a
    b = b.T if node.attr("transB") else b
    y = array_matmul(a, b, chunk, integer=False)
    alpha, beta = f32(node.attr("alpha")), f32(node.attr("beta"))
    if alpha != 1:
        y = y * alpha
    if len(args) > 2 and args[2] is not None:
        y = y + beta * args[2].astype(f32)
    return y.astype(f32)


@handles("MatMul")
def _matmul(node: Node, args: Sequence[Any], chunk: int) -> np.ndarray:
    a, b = args
    squeeze_a, squeeze_b = a.ndim == 1, b.ndim == 1
    a2 = a[None, :] if squeeze_a else a
    b2 = b[:, None] if squeeze_b else b
    y = array_matmul(a2, b2, chunk, integer=False)
    if squeeze_a:
        y = y[..., 0, :]
    if squeeze_b:
        y = y[..., 0]
    return y.astype(f32)


# --------------------------------------------------------------- integer ops
@handles("QLinearConv")
def _qlinear_conv(node: Node, args: Sequence[Any], chunk: int) -> np.ndarray:
    x, x_scale, x_zp, w, w_scale, w_zp, y_scale, y_zp = args[:8]
    b = args[8] if len(args) > 8 else None
    acc = conv_gemm(_minus(x, np.asarray(x_zp).reshape(())), _minus(w, _per_channel(w_zp, w.ndim, axis=0)),
                    _conv_attrs(node), chunk, integer=True)
    if b is not None:
        acc = acc.astype(np.int64) + _per_channel(b, acc.ndim)
    mult = quant.output_multiplier(x_scale, _per_channel(w_scale, acc.ndim), y_scale)
    return quant.requantize(acc, mult, y_zp, DType.from_numpy(y_zp.dtype))


@handles("ConvInteger")
def _conv_integer(node: Node, args: Sequence[Any], chunk: int) -> np.ndarray:
    x, w = args[0], args[1]
    x_zp = args[2] if len(args) > 2 else None
    w_zp = args[3] if len(args) > 3 else None
    xi = _minus(x, 0 if x_zp is None else np.asarray(x_zp).reshape(()))
    wi = _minus(w, _per_channel(w_zp, w.ndim, axis=0))
    return conv_gemm(xi, wi, _conv_attrs(node), chunk, integer=True)


@handles("QLinearMatMul")
def _qlinear_matmul(node: Node, args: Sequence[Any], chunk: int) -> np.ndarray:
    a, a_scale, a_zp, b, b_scale, b_zp, y_scale, y_zp = args
    acc = array_matmul(_minus(a, _row_param(a_zp, a)), _minus(b, b_zp), chunk, integer=True)
    mult = scale_product(np.asarray(_row_param(a_scale, a)), b_scale, y_scale)
    return quant.requantize(acc, mult, y_zp, DType.from_numpy(y_zp.dtype))


@handles("MatMulInteger")
def _matmul_integer(node: Node, args: Sequence[Any], chunk: int) -> np.ndarray:
    a, b = args[0], args[1]
    a_zp = args[2] if len(args) > 2 else None
    b_zp = args[3] if len(args) > 3 else None
    return array_matmul(_minus(a, _row_param(a_zp, a)), _minus(b, 0 if b_zp is None else b_zp), chunk, True)


@handles("QGemm", "com.microsoft")
def _qgemm(node: Node, args: Sequence[Any], chunk: int) -> np.ndarray:
    a, a_scale, a_zp, b, b_scale, b_zp = args[:6]
    c = args[6] if len(args) > 6 else None
    y_scale = args[7] if len(args) > 7 else None
    y_zp = args[8] if len(args) > 8 else None
    a = a.T if node.attr("transA") else a
    b = b.T if node.attr("transB") else b
    acc = array_matmul(_minus(a, _zp(a_zp)), _minus(b, b_zp), chunk, integer=True)
    if c is not None:
        acc = acc.astype(np.int64) + c
    scale = f32(node.attr("alpha")) * _s(a_scale) * np.asarray(b_scale, f32)
    if y_scale is not None:
        scale = scale / _s(y_scale)
    if y_zp is None:
        return (acc.astype(f32) * scale).astype(f32)
    return quant.requantize(acc, scale, _zp(y_zp), DType.from_numpy(y_zp.dtype))


# ------------------------------------- the compiler's integer ops (fold-qdq's output)
# fold-qdq packs weights for the cpu's VNNI kernels; the array reads them row by
# row in (c, kh, kw) x output-channel order, so they are unpacked into that layout
# (a build-time reordering; the arithmetic is untouched) and the zero points are
# subtracted as the PEs would, rather than through the VNNI kernels' colsum trick.
@handles("QConv", "nnc")
def _nnc_qconv(node: Node, args: Sequence[Any], chunk: int) -> np.ndarray:
    x, w, bias, multiplier, x_zp, w_zp = args[:6]
    y_zp = args[7] if len(args) > 7 else None
    attrs = qconv_attrs(node.attrs)
    kh, kw = attrs["kernel_shape"]
    taps = quant.unpack_conv_weights(w, (x.shape[1] // attrs["group"], kh, kw))
    acc = conv_gemm(_minus(x, np.asarray(x_zp).reshape(())), _minus(taps, _per_channel(w_zp, 4, axis=0)),
                    attrs, chunk, integer=True)
    return qlinear_epilogue(acc, bias, multiplier, y_zp, node.attr("act_min"), node.attr("act_max"), 1)


@handles("QMatMul", "nnc")
def _nnc_qmatmul(node: Node, args: Sequence[Any], chunk: int) -> np.ndarray:
    a, b, bias, multiplier, x_zp, w_zp = args[:6]
    y_zp = args[7] if len(args) > 7 else None
    bt = quant.unpack_matmul_weights(b, a.shape[-1], node.attr("n"))
    wzp = np.asarray(w_zp)
    wzp = wzp.reshape(1, -1) if wzp.size > 1 else wzp
    acc = array_matmul(_minus(a, np.asarray(x_zp).reshape(())), _minus(bt, wzp), chunk, integer=True)
    return qlinear_epilogue(acc, bias, multiplier, y_zp, node.attr("act_min"), node.attr("act_max"), -1)
