"""Convolutions: Conv, ConvTranspose, DeformConv and Col2Im.

References are im2col + one batched matmul over groups (``_window.im2col``),
so a whole ResNet-50 runs through them in seconds.  Half-precision inputs
are computed in float32 and rounded back, as onnxruntime does.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Optional

import numpy as np

from ..dtypes import DType
from ..registry import COMPLEX, OPAQUE, Attr, InferContext, define
from ..types import Dim, TensorType
from ._common import check_dtype, widen
from ._window import col2im, im2col, pad_spatial, resolve_pads, window_attrs, window_output_dims

CONV_TYPES = frozenset({DType.F16, DType.BF16, DType.F32, DType.F64})

_CONV_ATTRS = {
    "auto_pad": Attr.string("NOTSET"),
    "dilations": Attr.ints(),
    "group": Attr.int(1),
    "kernel_shape": Attr.ints(),
    "pads": Attr.ints(),
    "strides": Attr.ints(),
}


def compute_type(x: np.ndarray) -> np.dtype:
    """The dtype a reference computes in: float32 for half types, else the input's."""
    return np.dtype(np.float64) if x.dtype == np.float64 else np.dtype(np.float32)


# ------------------------------------------------------------- type helpers
def _conv_operands(ctx: InferContext, what_w: str = "W") -> tuple[TensorType, TensorType, int]:
    """Check X and W (same float type, same rank >= 3); return them and the spatial rank."""
    check_dtype(ctx, 0, CONV_TYPES, "X")
    x, w = ctx.input_type(0), ctx.input_type(1)
    if w.dtype != x.dtype:
        ctx.fail(f"X and {what_w} must share one element type", found=f"{x.dtype} and {w.dtype}")
    rank = x.rank if x.rank is not None else w.rank
    if rank is None:
        return x, w, -1
    if rank < 3:
        ctx.fail("X must have a batch, a channel and at least one spatial axis",
                 expected="rank >= 3", found=str(x))
    for t, name in ((x, "X"), (w, what_w)):
        if t.rank is not None and t.rank != rank:
            ctx.fail(f"X and {what_w} must have the same rank", found=f"{x} and {w}")
    return x, w, rank - 2


def _kernel(ctx: InferContext, w: TensorType, spatial: int) -> Optional[list[int]]:
    """Kernel dims: the kernel_shape attribute, checked against W, or W's dims."""
    attr = ctx.attr("kernel_shape")
    from_w = None if w.shape is None else list(w.shape[2:])
    if attr:
        if len(attr) != spatial:
            ctx.fail("kernel_shape does not match the spatial rank",
                     expected=f"{spatial} values", found=str(list(attr)))
        if from_w is not None and any(isinstance(a, int) and a != b for a, b in zip(from_w, attr)):
            ctx.fail("kernel_shape disagrees with the weight's spatial dims",
                     expected=str(from_w), found=str(list(attr)))
        return [int(k) for k in attr]
    if from_w is None or not all(isinstance(k, int) for k in from_w):
        return None
    return from_w  # type: ignore[return-value]


def _check_bias(ctx: InferContext, index: int, channels: Dim) -> None:
    if not ctx.has_input(index):
        return
    b = ctx.input_type(index)
    if b.dtype != ctx.dtype(0):
        ctx.fail("bias must have X's element type", found=f"{b.dtype} and {ctx.dtype(0)}")
    if b.rank is not None and b.rank != 1:
        ctx.fail("bias must be 1-D", found=str(b))
    if b.shape is not None and isinstance(b.shape[0], int) and isinstance(channels, int) \
            and b.shape[0] != channels:
        ctx.fail("bias length must equal the number of output channels",
                 expected=str(channels), found=str(b.shape[0]))


def _check_channels(ctx: InferContext, c_in: Dim, c_per_group: Dim, m: Dim, group: int) -> None:
    if group < 1:
        ctx.fail("group must be positive", found=str(group))
    if isinstance(c_in, int) and isinstance(c_per_group, int) and c_in != c_per_group * group:
        ctx.fail("input channels must equal W.shape[1] * group",
                 expected=f"{c_per_group} * {group} = {c_per_group * group}", found=str(c_in))
    if isinstance(m, int) and m % group:
        ctx.fail("output channels must be divisible by group", found=f"{m} channels, group {group}")


def _dim(t: TensorType, i: int) -> Dim:
    return None if t.shape is None else t.shape[i]


# ---------------------------------------------------------------------- Conv
conv = define("Conv", inputs=["X", "W", "B?"], attrs=_CONV_ATTRS, kind=COMPLEX,
              doc="N-D convolution with groups, dilations and padding.")


@conv.infer
def _(ctx: InferContext) -> list[TensorType]:
    x, w, spatial = _conv_operands(ctx)
    if spatial < 0:
        return [TensorType(x.dtype, None)]
    group = ctx.attr("group")
    m = _dim(w, 0)
    _check_channels(ctx, _dim(x, 1), _dim(w, 1), m, group)
    _check_bias(ctx, 2, m)
    kernel = _kernel(ctx, w, spatial)
    if kernel is None:
        return [TensorType(x.dtype, (_dim(x, 0), m) + (None,) * spatial)]
    strides, dilations, pads = window_attrs(ctx, spatial, kernel)
    sizes = [None] * spatial if x.shape is None else list(x.shape[2:])
    out = window_output_dims(sizes, kernel, strides, dilations, pads, ctx.attr("auto_pad"))
    if any(isinstance(o, int) and o < 1 for o in out):
        ctx.fail("the kernel does not fit in the padded input", found=f"output dims {out}",
                 hint="check pads, strides and dilations")
    return [TensorType(x.dtype, (_dim(x, 0), m, *out))]


def conv_nd(x: np.ndarray, w: np.ndarray, group: int, strides: Sequence[int],
            pads: Sequence[int], dilations: Sequence[int]) -> np.ndarray:
    """Grouped convolution in ``x``'s dtype: im2col, then one batched matmul.

    ``x`` is ``(N, C, *in)``, ``w`` ``(M, C / group, *kernel)``; returns ``(N, M, *out)``.
    """
    n, c = x.shape[:2]
    m, kernel = w.shape[0], w.shape[2:]
    cols = im2col(x, kernel, strides, pads, dilations)  # (N, C, *kernel, *out)
    out = cols.shape[2 + len(kernel):]
    k = (c // group) * math.prod(kernel)
    cols = cols.reshape(n, group, k, math.prod(out))
    wm = w.reshape(group, m // group, k)
    y = np.matmul(wm, cols)  # (G, M/G, K) @ (N, G, K, O) -> (N, G, M/G, O)
    return y.reshape((n, m) + tuple(out))


@conv.reference
def _(x, w, b=None, *, auto_pad, dilations, group, kernel_shape, pads, strides):
    d = x.ndim - 2
    kernel = w.shape[2:]
    strides = strides or (1,) * d
    dilations = dilations or (1,) * d
    pads = resolve_pads(x.shape[2:], kernel, strides, dilations, pads, auto_pad)
    ct = compute_type(x)
    y = conv_nd(x.astype(ct, copy=False), w.astype(ct, copy=False), group, strides, pads,
                dilations)
    if b is not None:
        y += b.astype(ct).reshape((1, -1) + (1,) * d)
    return y.astype(x.dtype, copy=False)


# ------------------------------------------------------------- ConvTranspose
conv_transpose = define(
    "ConvTranspose", inputs=["X", "W", "B?"], kind=COMPLEX,
    attrs=dict(_CONV_ATTRS, output_padding=Attr.ints(), output_shape=Attr.ints()),
    doc="Transposed (fractionally strided) convolution; W is (C, M / group, *kernel).")


def transpose_geometry(sizes: Sequence[Dim], kernel: Sequence[int], strides: Sequence[int],
                       dilations: Sequence[int], pads: Sequence[int], output_padding: Sequence[int],
                       output_shape: Optional[Sequence[int]], auto_pad: str
                       ) -> tuple[list[Dim], list[Optional[int]]]:
    """Output dims and ``[begin..., end...]`` pads of a ConvTranspose (onnxruntime's rules).

    With ``output_shape`` (or auto_pad SAME, where it is ``in * stride``) the
    pads are derived from ``max(0, natural - target)``: split evenly, an odd
    one going to the end for SAME_UPPER and to the beginning otherwise.  A
    target beyond the natural size is zero-filled at the end.
    """
    d = len(sizes)
    outs: list[Dim] = []
    begins: list[Optional[int]] = []
    ends: list[Optional[int]] = []
    for i, size in enumerate(sizes):
        eff = (kernel[i] - 1) * dilations[i] + 1
        natural = None if not isinstance(size, int) else \
            (size - 1) * strides[i] + output_padding[i] + eff
        target: Dim = None
        if output_shape:
            target = int(output_shape[len(output_shape) - d + i])
        elif auto_pad in ("SAME_UPPER", "SAME_LOWER"):
            target = size * strides[i] if isinstance(size, int) else \
                (size if strides[i] == 1 else None)
        else:
            begin, end = (0, 0) if auto_pad == "VALID" else (pads[i], pads[i + d])
            outs.append(None if natural is None else natural - begin - end)
            begins.append(begin)
            ends.append(end)
            continue
        outs.append(target)
        if natural is None or target is None:
            begins.append(None)
            ends.append(None)
            continue
        total = max(0, natural - target)
        small, big = total // 2, total - total // 2
        begin, end = (small, big) if auto_pad == "SAME_UPPER" else (big, small)
        begins.append(begin)
        ends.append(end)
    return outs, begins + ends


@conv_transpose.infer
def _(ctx: InferContext) -> list[TensorType]:
    x, w, spatial = _conv_operands(ctx)
    if spatial < 0:
        return [TensorType(x.dtype, None)]
    group = ctx.attr("group")
    c_in, m_per_group = _dim(w, 0), _dim(w, 1)
    if isinstance(_dim(x, 1), int) and isinstance(c_in, int) and _dim(x, 1) != c_in:
        ctx.fail("input channels must equal W.shape[0]", expected=str(c_in), found=str(_dim(x, 1)))
    if group < 1 or (isinstance(c_in, int) and c_in % group):
        ctx.fail("W.shape[0] must be divisible by group", found=f"{c_in} channels, group {group}")
    m = m_per_group * group if isinstance(m_per_group, int) else None
    _check_bias(ctx, 2, m)
    kernel = _kernel(ctx, w, spatial)
    if kernel is None:
        return [TensorType(x.dtype, (_dim(x, 0), m) + (None,) * spatial)]
    strides, dilations, pads = window_attrs(ctx, spatial, kernel)
    output_padding = list(ctx.attr("output_padding") or [0] * spatial)
    if len(output_padding) != spatial:
        ctx.fail("output_padding does not match the spatial rank", expected=f"{spatial} values",
                 found=str(output_padding))
    output_shape = ctx.attr("output_shape")
    if output_shape and len(output_shape) not in (spatial, spatial + 2):
        ctx.fail("output_shape does not match the spatial rank", expected=f"{spatial} values",
                 found=str(list(output_shape)))
    sizes = [None] * spatial if x.shape is None else list(x.shape[2:])
    out, _ = transpose_geometry(sizes, kernel, strides, dilations, pads, output_padding,
                                output_shape, ctx.attr("auto_pad"))
    if any(isinstance(o, int) and o < 1 for o in out):
        ctx.fail("output dims must be positive", found=str(out), hint="check pads")
    return [TensorType(x.dtype, (_dim(x, 0), m, *out))]


def _window_of(full: np.ndarray, begins: Sequence[int], sizes: Sequence[int]) -> np.ndarray:
    """``full[..., b:b+size]`` on the trailing axes, zero-filled where it runs past the end."""
    d = len(sizes)
    ends = [full.shape[-d + i] - begins[i] - sizes[i] for i in range(d)]
    # Negative "pads" crop; positive ones extend with zeros.
    return pad_spatial(full, [-b for b in begins] + [-e for e in ends], 0)


@conv_transpose.reference
def _(x, w, b=None, *, auto_pad, dilations, group, kernel_shape, output_padding, output_shape,
      pads, strides):
    d = x.ndim - 2
    n, c = x.shape[:2]
    kernel = w.shape[2:]
    strides = strides or (1,) * d
    dilations = dilations or (1,) * d
    output_padding = output_padding or (0,) * d
    pads = pads or (0,) * (2 * d)
    out, pads = transpose_geometry(x.shape[2:], kernel, strides, dilations, pads, output_padding,
                                   output_shape, auto_pad)
    ct = compute_type(x)
    mg, k = w.shape[1], math.prod(kernel)
    # Each input pixel scatters W^T x into a kernel-sized patch: cols = W^T @ x, then col2im.
    wt = w.astype(ct, copy=False).reshape(group, c // group, mg * k).transpose(0, 2, 1)
    xs = x.astype(ct, copy=False).reshape(n, group, c // group, -1)
    cols = np.matmul(wt, xs).reshape((n, group * mg) + tuple(kernel) + x.shape[2:])
    natural = [(x.shape[2 + i] - 1) * strides[i] + (kernel[i] - 1) * dilations[i] + 1
               for i in range(d)]
    full = col2im(cols, natural, strides, [0] * (2 * d), dilations)
    y = _window_of(full, pads[:d], out)
    if b is not None:
        y = y + b.astype(ct).reshape((1, -1) + (1,) * d)
    return np.ascontiguousarray(y).astype(x.dtype, copy=False)


# ---------------------------------------------------------------- DeformConv
deform_conv = define(
    "DeformConv", inputs=["X", "W", "offset", "B?", "mask?"], kind=COMPLEX,
    attrs={"dilations": Attr.ints(), "group": Attr.int(1), "kernel_shape": Attr.ints(),
           "offset_group": Attr.int(1), "pads": Attr.ints(), "strides": Attr.ints()},
    doc="Convolution whose sampling points are shifted by learned offsets (bilinear sampling).")


@deform_conv.infer
def _(ctx: InferContext) -> list[TensorType]:
    x, w, spatial = _conv_operands(ctx)
    for i, name in ((2, "offset"), (4, "mask")):
        if ctx.has_input(i) and ctx.dtype(i) != x.dtype:
            ctx.fail(f"{name} must have X's element type", found=f"{ctx.dtype(i)} and {x.dtype}")
    if spatial < 0:
        return [TensorType(x.dtype, None)]
    group, og = ctx.attr("group"), ctx.attr("offset_group")
    m = _dim(w, 0)
    _check_channels(ctx, _dim(x, 1), _dim(w, 1), m, group)
    if og < 1 or (isinstance(_dim(x, 1), int) and _dim(x, 1) % og):
        ctx.fail("input channels must be divisible by offset_group",
                 found=f"{_dim(x, 1)} channels, offset_group {og}")
    _check_bias(ctx, 3, m)
    kernel = _kernel(ctx, w, spatial)
    offset = ctx.input_type(2)
    if kernel is None:
        out: list[Dim] = [None] * spatial if offset.shape is None else list(offset.shape[2:])
        return [TensorType(x.dtype, (_dim(x, 0), m, *out))]
    if offset.shape is not None and isinstance(offset.shape[1], int) \
            and offset.shape[1] != og * spatial * math.prod(kernel):
        ctx.fail("offset must have offset_group * spatial rank * prod(kernel) channels",
                 expected=str(og * spatial * math.prod(kernel)), found=str(offset))
    strides, dilations, pads = window_attrs(ctx, spatial, kernel)
    sizes = [None] * spatial if x.shape is None else list(x.shape[2:])
    out = window_output_dims(sizes, kernel, strides, dilations, pads)
    mask = ctx.input_type(4) if ctx.has_input(4) else None
    for name, t in (("offset", offset), ("mask", mask)):
        if t is not None and t.shape is not None and any(
                isinstance(a, int) and isinstance(b, int) and a != b
                for a, b in zip(t.shape[2:], out)):
            ctx.fail(f"{name}'s spatial dims must be the output's", expected=str(out), found=str(t))
    return [TensorType(x.dtype, (_dim(x, 0), m, *out))]


def _deform_cols(x: np.ndarray, offset: np.ndarray, mask: Optional[np.ndarray],
                 kernel: Sequence[int], strides: Sequence[int], pads: Sequence[int],
                 dilations: Sequence[int], offset_group: int) -> np.ndarray:
    """The deformable im2col: ``(N, C, K, O)`` samples at the shifted kernel taps.

    Each tap is sampled with N-linear interpolation; corners outside the
    image contribute zero.  ``mask`` (modulation) scales each sample.
    """
    n, c = x.shape[:2]
    sizes, d = x.shape[2:], x.ndim - 2
    out = offset.shape[2:]
    k, o = math.prod(kernel), math.prod(out)
    off = offset.reshape(n, offset_group, k, d, o)
    # Undeformed tap positions: out_pos * stride - pad_begin + tap * dilation, per axis.
    taps = np.stack(np.meshgrid(*(np.arange(kk) for kk in kernel), indexing="ij"), -1).reshape(k, d)
    outs = np.stack(np.meshgrid(*(np.arange(oo) for oo in out), indexing="ij"), -1).reshape(o, d)
    base = (outs[None, :, :] * np.asarray(strides) - np.asarray(pads[:d])
            + taps[:, None, :] * np.asarray(dilations))  # (K, O, d)
    pos = base.transpose(0, 2, 1)[None, None] + off  # (N, og, K, d, O)
    lo = np.floor(pos).astype(np.int64)
    frac = pos - lo
    xg = x.reshape(n, offset_group, c // offset_group, math.prod(sizes))
    cols = np.zeros((n, offset_group, c // offset_group, k, o), dtype=x.dtype)
    for corner in np.ndindex(*(2,) * d):
        weight = np.ones(lo.shape[:3] + (o,), dtype=x.dtype)
        flat = np.zeros(lo.shape[:3] + (o,), dtype=np.int64)
        valid = np.ones(lo.shape[:3] + (o,), dtype=bool)
        for axis in range(d):
            idx = lo[:, :, :, axis] + corner[axis]
            f = frac[:, :, :, axis]
            weight = weight * (f if corner[axis] else 1 - f)
            valid &= (idx >= 0) & (idx < sizes[axis])
            flat = flat * sizes[axis] + np.clip(idx, 0, sizes[axis] - 1)
        weight = np.where(valid, weight, 0).astype(x.dtype)
        # Gather every channel of the offset group at the same positions.
        vals = np.take_along_axis(xg, flat.reshape(n, offset_group, 1, k * o), axis=3)
        cols += vals.reshape(cols.shape) * weight[:, :, None]
    if mask is not None:
        cols *= mask.reshape(n, offset_group, 1, k, o)
    return cols.reshape(n, c, k, o)


@deform_conv.reference
def _(x, w, offset, b=None, mask=None, *, dilations, group, kernel_shape, offset_group, pads,
      strides):
    d = x.ndim - 2
    n, c = x.shape[:2]
    m, kernel = w.shape[0], w.shape[2:]
    strides = strides or (1,) * d
    dilations = dilations or (1,) * d
    pads = pads or (0,) * (2 * d)
    ct = compute_type(x)
    cols = _deform_cols(x.astype(ct), offset.astype(ct), None if mask is None else mask.astype(ct),
                        kernel, strides, pads, dilations, offset_group)
    out = offset.shape[2:]
    kk = (c // group) * math.prod(kernel)
    y = np.matmul(w.astype(ct).reshape(group, m // group, kk), cols.reshape(n, group, kk, -1))
    y = y.reshape((n, m) + tuple(out))
    if b is not None:
        y += b.astype(ct).reshape((1, -1) + (1,) * d)
    return y.astype(x.dtype, copy=False)


# -------------------------------------------------------------------- Col2Im
col2im_op = define(
    "Col2Im", inputs=["input", "image_shape", "block_shape"], outputs=["output"], kind=OPAQUE,
    static_inputs=("image_shape", "block_shape"),
    attrs={"dilations": Attr.ints(), "pads": Attr.ints(), "strides": Attr.ints()},
    doc="Rearranges column blocks back into an image, summing overlaps (inverse of im2col).")


@col2im_op.infer
def _(ctx: InferContext) -> list[TensorType]:
    check_dtype(ctx, 0, frozenset(t for t in DType if t.is_numeric), "input")
    t = ctx.input_type(0)
    if t.rank is not None and t.rank != 3:
        ctx.fail("input must be 3-D (N, C * prod(block_shape), L)", found=str(t))
    for i, name in ((1, "image_shape"), (2, "block_shape")):
        if ctx.dtype(i) != DType.I64:
            ctx.fail(f"{name} must be int64", found=ctx.dtype(i).short)
    image, block = ctx.const(1), ctx.const(2)
    n = _dim(t, 0)
    if image is None:
        s = ctx.shape(1)
        rank = s[0] if s is not None and len(s) == 1 and isinstance(s[0], int) else None
        return [TensorType(t.dtype, None if rank is None else (n, None) + (None,) * rank)]
    image = [int(v) for v in image.reshape(-1)]
    spatial = len(image)
    channels: Dim = None
    if block is not None:
        block = [int(v) for v in block.reshape(-1)]
        if len(block) != spatial:
            ctx.fail("image_shape and block_shape must have the same length",
                     found=f"{image} and {block}")
        strides, dilations, pads = window_attrs(ctx, spatial, block)
        c = _dim(t, 1)
        if isinstance(c, int):
            if c % math.prod(block):
                ctx.fail("input dim 1 must be a multiple of prod(block_shape)",
                         expected=f"a multiple of {math.prod(block)}", found=str(c))
            channels = c // math.prod(block)
        n_blocks = math.prod(int(v) for v in window_output_dims(image, block, strides, dilations,
                                                                pads))  # type: ignore[arg-type]
        length = _dim(t, 2)
        if isinstance(length, int) and length != n_blocks:
            ctx.fail("input dim 2 must equal the number of blocks", expected=str(n_blocks),
                     found=str(length))
    return [TensorType(t.dtype, (n, channels, *image))]


@col2im_op.reference
def _(cols, image_shape, block_shape, *, dilations, pads, strides):
    image = [int(v) for v in image_shape]
    block = [int(v) for v in block_shape]
    d = len(image)
    strides = strides or (1,) * d
    dilations = dilations or (1,) * d
    pads = pads or (0,) * (2 * d)
    blocks = window_output_dims(image, block, strides, dilations, pads)
    n, ck, _ = cols.shape
    c = ck // math.prod(block)
    cols = cols.reshape((n, c) + tuple(block) + tuple(blocks))  # type: ignore[arg-type]
    image_out = col2im(widen(cols), image, strides, pads, dilations)
    return np.ascontiguousarray(image_out).astype(cols.dtype, copy=False)
