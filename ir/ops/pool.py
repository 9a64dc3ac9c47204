"""Pooling: Max/Average/Lp pooling, their global forms, MaxUnpool and MaxRoiPool.

Window pools pad the input once and fold a ufunc (maximum, add) over one
strided slice per kernel tap, so the Python loop is over the few kernel
taps, never over elements.  MaxPool's Indices come from the argmax of the
``sliding_window_view`` of the padded input.  Half-precision inputs are
reduced in float32 and rounded back.

Kinds: the window and global pools are REDUCTION; MaxUnpool (a scatter) and
MaxRoiPool (data-dependent regions) are OPAQUE.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import Any, Optional

import numpy as np

from ..dtypes import DType
from ..registry import OPAQUE, REDUCTION, Attr, InferContext, define
from ..types import Dim, TensorType
from ._common import check_dtype
from ._window import (kernel_from_attr, pad_spatial, resolve_pads, sliding_windows, window_attrs,
                      window_output_dims)

POOL_FLOATS = frozenset({DType.F16, DType.BF16, DType.F32, DType.F64})
MAXPOOL_TYPES = POOL_FLOATS | {DType.I8, DType.U8}

_WINDOW_ATTRS = {
    "auto_pad": Attr.string("NOTSET"),
    "ceil_mode": Attr.int(0),
    "dilations": Attr.ints(),
    "kernel_shape": Attr.ints(required=True),
    "pads": Attr.ints(),
    "strides": Attr.ints(),
}


def _work(x: np.ndarray) -> np.ndarray:
    """``x`` in the type a reduction runs in: float32 for narrow floats, else unchanged."""
    if x.dtype.kind == "V" or (x.dtype.kind == "f" and x.dtype.itemsize < 4):
        return x.astype(np.float32)
    return x


# ----------------------------------------------------------------- type rule
def _spatial_input(ctx: InferContext, allowed: frozenset) -> tuple[TensorType, int]:
    """Check X (allowed dtype, rank >= 3); return it and its spatial rank (-1 if unknown)."""
    check_dtype(ctx, 0, allowed, "X")
    x = ctx.input_type(0)
    if x.rank is not None and x.rank < 3:
        ctx.fail("X must have a batch, a channel and at least one spatial axis",
                 expected="rank >= 3", found=str(x))
    return x, (-1 if x.rank is None else x.rank - 2)


def _window_pool_type(ctx: InferContext, x: TensorType, spatial: int) -> TensorType:
    """Output type of a windowed pool: (N, C, *out)."""
    if spatial < 0:
        return TensorType(x.dtype, None)
    kernel = kernel_from_attr(ctx, spatial)
    strides, dilations, pads = window_attrs(ctx, spatial, kernel)
    if ctx.attr("auto_pad") == "NOTSET" and any(
            p >= (k - 1) * dl + 1 for p, k, dl in zip(pads, kernel * 2, dilations * 2)):
        ctx.fail("pads must be smaller than the (dilated) kernel", found=f"pads {pads}, "
                 f"kernel_shape {kernel}")
    shape = x.shape or ()
    out = window_output_dims(list(shape[2:]), kernel, strides, dilations, pads,
                             ctx.attr("auto_pad"), bool(ctx.attr("ceil_mode")))
    if any(isinstance(o, int) and o < 1 for o in out):
        ctx.fail("the kernel does not fit in the padded input", found=f"output dims {out}")
    return TensorType(x.dtype, (shape[0], shape[1], *out))


# ----------------------------------------------------------------- reference
class _Windows:
    """The windows of one pooling call: resolved pads, output dims and the strided view."""

    def __init__(self, x: np.ndarray, kernel_shape: Sequence[int], strides: Optional[Sequence[int]],
                 pads: Optional[Sequence[int]], dilations: Optional[Sequence[int]], auto_pad: str,
                 ceil_mode: int) -> None:
        d = len(kernel_shape)
        self.kernel = list(kernel_shape)
        self.strides = list(strides or [1] * d)
        self.dilations = list(dilations or [1] * d)
        sizes = self.sizes = x.shape[2:]
        self.pads = resolve_pads(sizes, self.kernel, self.strides, self.dilations, pads, auto_pad)
        out = window_output_dims(sizes, self.kernel, self.strides, self.dilations, self.pads,
                                 auto_pad, bool(ceil_mode))
        self.out = [int(o) for o in out]  # type: ignore[arg-type]
        # ceil_mode windows may overhang the padded input: pad a little more at the end.
        self.extra = [max(0, (o - 1) * s + (k - 1) * dl + 1 - (n + self.pads[i] + self.pads[i + d]))
                      for i, (o, s, k, dl, n) in enumerate(zip(self.out, self.strides, self.kernel,
                                                               self.dilations, sizes))]

    def view(self, x: np.ndarray, fill: Any) -> np.ndarray:
        """``(N, C, *out, *kernel)`` view of ``x`` padded with ``fill``."""
        padded = pad_spatial(x, self.pads, fill, extra_end=self.extra)
        w = sliding_windows(padded, self.kernel, self.strides, self.dilations)
        d = len(self.out)
        return w[(Ellipsis,) + tuple(slice(0, o) for o in self.out) + (slice(None),) * d]

    def reduce(self, x: np.ndarray, fill: Any, ufunc: np.ufunc,
               pads: Optional[Sequence[int]] = None) -> np.ndarray:
        """Fold ``ufunc`` over the kernel taps of ``x`` padded with ``fill``: ``(N, C, *out)``.

        One strided slice per tap: much faster than reducing the trailing
        axes of the 2d-dimensional window view.  ``pads`` overrides the
        window's own (for an already padded ``x``).
        """
        padded = pad_spatial(x, self.pads if pads is None else pads, fill, extra_end=self.extra)
        acc: Optional[np.ndarray] = None
        for tap in itertools.product(*(range(k) for k in self.kernel)):
            index = tuple(slice(t * dl, t * dl + (o - 1) * s + 1, s) for t, dl, o, s in
                          zip(tap, self.dilations, self.out, self.strides))
            part = padded[(Ellipsis,) + index]
            acc = part.copy() if acc is None else ufunc(acc, part, out=acc)
        return acc  # type: ignore[return-value]

    def counts(self, include_pad: bool) -> np.ndarray:
        """How many taps of each window fall in the input (or in input + pads).

        Taps in the ceil_mode overhang past the end padding never count.
        """
        ones = np.ones((1, 1) + tuple(self.sizes))
        padded = pad_spatial(ones, self.pads, 1.0 if include_pad else 0.0)
        return self.reduce(padded, 0.0, np.add, pads=[0] * len(self.pads))


def _lowest(dtype: np.dtype) -> Any:
    return -np.inf if dtype.kind == "f" else np.iinfo(dtype).min


# ------------------------------------------------------------------- MaxPool
maxpool = define("MaxPool", inputs=["X"], outputs=["Y", "Indices?"], kind=REDUCTION,
                 needs_num_outputs=True,
                 attrs=dict(_WINDOW_ATTRS, storage_order=Attr.int(0)),
                 doc="Max over sliding windows; Indices are flat positions in X.")


@maxpool.infer
def _(ctx: InferContext) -> list[TensorType]:
    x, spatial = _spatial_input(ctx, MAXPOOL_TYPES)
    y = _window_pool_type(ctx, x, spatial)
    if ctx.attr("storage_order") not in (0, 1):
        ctx.fail("storage_order must be 0 (row major) or 1 (column major)",
                 found=str(ctx.attr("storage_order")))
    return [y, TensorType(DType.I64, y.shape)][:max(1, ctx.num_outputs)]


@maxpool.reference
def _(x, *, auto_pad, ceil_mode, dilations, kernel_shape, pads, storage_order, strides,
      num_outputs=1):
    win = _Windows(x, kernel_shape, strides, pads, dilations, auto_pad, ceil_mode)
    xw = _work(x)
    y = win.reduce(xw, _lowest(xw.dtype), np.maximum).astype(x.dtype)
    if num_outputs < 2:
        return y
    return y, _argmax_indices(win.view(xw, _lowest(xw.dtype)), win, x.shape, storage_order)


def _argmax_indices(windows: np.ndarray, win: _Windows, shape: Sequence[int],
                    storage_order: int) -> np.ndarray:
    """Flat index into X of each window's first maximum (row or column major spatial order)."""
    d = len(win.kernel)
    n, c, sizes = shape[0], shape[1], list(shape[2:])
    lead = windows.shape[:2 + d]
    local = windows.reshape(lead + (-1,)).argmax(axis=-1)
    taps = np.unravel_index(local, win.kernel)
    flat = np.zeros(lead, dtype=np.int64)
    order = range(d) if storage_order == 0 else reversed(range(d))
    for i in order:
        pos = np.arange(win.out[i]) * win.strides[i] - win.pads[i]
        coord = pos.reshape((-1,) + (1,) * (d - 1 - i)) + taps[i] * win.dilations[i]
        flat = flat * sizes[i] + coord
    plane = np.arange(n * c, dtype=np.int64).reshape((n, c) + (1,) * d) * math.prod(sizes)
    return flat + plane


# --------------------------------------------------------------- AveragePool
avgpool = define("AveragePool", inputs=["X"], kind=REDUCTION,
                 attrs=dict(_WINDOW_ATTRS, count_include_pad=Attr.int(0)),
                 doc="Mean over sliding windows; pads count only with count_include_pad.")


@avgpool.infer
def _(ctx: InferContext) -> list[TensorType]:
    x, spatial = _spatial_input(ctx, POOL_FLOATS)
    return [_window_pool_type(ctx, x, spatial)]


@avgpool.reference
def _(x, *, auto_pad, ceil_mode, count_include_pad, dilations, kernel_shape, pads, strides):
    win = _Windows(x, kernel_shape, strides, pads, dilations, auto_pad, ceil_mode)
    xw = _work(x)
    total = win.reduce(xw, 0, np.add)
    counts = win.counts(bool(count_include_pad)).astype(xw.dtype)
    return (total / np.maximum(counts, 1)).astype(x.dtype)


# -------------------------------------------------------------------- LpPool
lppool = define("LpPool", inputs=["X"], kind=REDUCTION, attrs=dict(_WINDOW_ATTRS, p=Attr.int(2)),
                doc="(sum |x|^p)^(1/p) over sliding windows, pads counting as zeros.")


@lppool.infer
def _(ctx: InferContext) -> list[TensorType]:
    x, spatial = _spatial_input(ctx, POOL_FLOATS)
    if ctx.attr("p") < 1:
        ctx.fail("p must be a positive integer", found=str(ctx.attr("p")))
    return [_window_pool_type(ctx, x, spatial)]


@lppool.reference
def _(x, *, auto_pad, ceil_mode, dilations, kernel_shape, p, pads, strides):
    win = _Windows(x, kernel_shape, strides, pads, dilations, auto_pad, ceil_mode)
    powered = np.abs(_work(x)) ** p
    return (win.reduce(powered, 0, np.add) ** (1.0 / p)).astype(x.dtype)


# -------------------------------------------------------------- Global pools
def _global_type(allowed: frozenset):
    def rule(ctx: InferContext) -> list[TensorType]:
        x, spatial = _spatial_input(ctx, allowed)
        if spatial < 0:
            return [TensorType(x.dtype, None)]
        shape = x.shape or ()
        return [TensorType(x.dtype, (shape[0], shape[1]) + (1,) * spatial)]
    return rule


def _global(name: str, fn, doc: str, attrs: Optional[dict] = None) -> None:
    schema = define(name, inputs=["X"], kind=REDUCTION, attrs=attrs, doc=doc)
    schema.infer(_global_type(POOL_FLOATS))

    @schema.reference
    def _(x, **kw):
        axes = tuple(range(2, x.ndim))
        return np.asarray(fn(_work(x), axes, **kw)).astype(x.dtype)


_global("GlobalAveragePool", lambda x, axes: x.mean(axis=axes, keepdims=True),
        "Mean over all spatial axes.")
_global("GlobalMaxPool", lambda x, axes: x.max(axis=axes, keepdims=True),
        "Max over all spatial axes.")
_global("GlobalLpPool",
        lambda x, axes, p: (np.abs(x) ** p).sum(axis=axes, keepdims=True) ** (1.0 / p),
        "(sum |x|^p)^(1/p) over all spatial axes.", attrs={"p": Attr.int(2)})


# ----------------------------------------------------------------- MaxUnpool
maxunpool = define(
    "MaxUnpool", inputs=["X", "I", "output_shape?"], outputs=["output"], kind=OPAQUE,
    static_inputs=("output_shape",),
    attrs={"kernel_shape": Attr.ints(required=True), "pads": Attr.ints(), "strides": Attr.ints()},
    doc="Scatters X to the flat positions I (MaxPool's Indices) of a zero tensor.")


@maxunpool.infer
def _(ctx: InferContext) -> list[TensorType]:
    x, spatial = _spatial_input(ctx, POOL_FLOATS)
    if ctx.dtype(1) != DType.I64:
        ctx.fail("indices I must be int64", found=ctx.dtype(1).short)
    if ctx.has_input(2):
        if ctx.dtype(2) != DType.I64:
            ctx.fail("output_shape must be int64", found=ctx.dtype(2).short)
        shape = ctx.const(2)
        if shape is not None:
            return [TensorType(x.dtype, tuple(int(v) for v in shape.reshape(-1)))]
        return [TensorType(x.dtype, None if spatial < 0 else (None,) * (spatial + 2))]
    if spatial < 0:
        return [TensorType(x.dtype, None)]
    kernel = kernel_from_attr(ctx, spatial)
    strides, _, pads = window_attrs(ctx, spatial, kernel)
    out = [_unpool_dim(n, kernel[i], strides[i], pads[i], pads[i + spatial])
           for i, n in enumerate(x.shape[2:])]  # type: ignore[index]
    return [TensorType(x.dtype, (x.shape[0], x.shape[1], *out))]  # type: ignore[index]


def _unpool_dim(size: Dim, kernel: int, stride: int, begin: int, end: int) -> Dim:
    """The default MaxUnpool length: the input length MaxPool reduced."""
    return (size - 1) * stride + kernel - begin - end if isinstance(size, int) else None


@maxunpool.reference
def _(x, indices, output_shape=None, *, kernel_shape, pads, strides):
    d = x.ndim - 2
    strides = strides or [1] * d
    pads = pads or [0] * (2 * d)
    if output_shape is not None:
        shape = tuple(int(v) for v in output_shape)
    else:
        spatial = [_unpool_dim(x.shape[2 + i], kernel_shape[i], strides[i], pads[i], pads[i + d])
                   for i in range(d)]
        shape = x.shape[:2] + tuple(spatial)  # type: ignore[arg-type]
    out = np.zeros(math.prod(shape), dtype=x.dtype)
    out[indices.reshape(-1)] = x.reshape(-1)
    return out.reshape(shape)


# ---------------------------------------------------------------- MaxRoiPool
maxroipool = define(
    "MaxRoiPool", inputs=["X", "rois"], kind=OPAQUE,
    attrs={"pooled_shape": Attr.ints(required=True), "spatial_scale": Attr.float(1.0)},
    doc="Max over a pooled_shape grid of bins of each region (Fast R-CNN's RoI pooling).")


@maxroipool.infer
def _(ctx: InferContext) -> list[TensorType]:
    x, spatial = _spatial_input(ctx, POOL_FLOATS)
    if spatial not in (-1, 2):
        ctx.fail("X must be 4-D (N, C, H, W)", found=str(x))
    rois = ctx.input_type(1)
    if rois.dtype != x.dtype:
        ctx.fail("rois must have X's element type", found=f"{rois.dtype} and {x.dtype}")
    if rois.shape is not None and (len(rois.shape) != 2 or rois.shape[1] not in (5, None)):
        ctx.fail("rois must be (num_rois, 5): batch index, x1, y1, x2, y2", found=str(rois))
    pooled = ctx.attr("pooled_shape")
    if len(pooled) != 2 or min(pooled) < 1:
        ctx.fail("pooled_shape must be two positive ints", found=str(list(pooled)))
    n_rois = None if rois.shape is None else rois.shape[0]
    c = None if x.shape is None else x.shape[1]
    return [TensorType(x.dtype, (n_rois, c, int(pooled[0]), int(pooled[1])))]


def _c_round(v: np.ndarray) -> np.ndarray:
    """C's round(): halves away from zero (numpy rounds them to even)."""
    return np.sign(v) * np.floor(np.abs(v) + 0.5)


@maxroipool.reference
def _(x, rois, *, pooled_shape, spatial_scale):
    ph, pw = pooled_shape
    height, width = x.shape[2:]
    xw = _work(x)
    out = np.zeros((rois.shape[0], x.shape[1], ph, pw), dtype=xw.dtype)
    for r, roi in enumerate(rois.astype(np.float64)):
        batch = int(roi[0])
        x1, y1, x2, y2 = (int(v) for v in _c_round(np.float32(roi[1:]) * np.float32(spatial_scale)))
        rows = _bins(y1, max(y2 - y1 + 1, 1), ph, height)
        cols = _bins(x1, max(x2 - x1 + 1, 1), pw, width)
        for i, (h0, h1) in enumerate(rows):
            if h1 <= h0:
                continue
            band = xw[batch, :, h0:h1].max(axis=1)  # (C, W): max over the bin's rows
            for j, (w0, w1) in enumerate(cols):
                if w1 > w0:
                    out[r, :, i, j] = band[:, w0:w1].max(axis=1)
    return out.astype(x.dtype)


def _bins(start: int, length: int, n: int, limit: int) -> list[tuple[int, int]]:
    """[begin, end) of each of ``n`` bins splitting ``length`` cells from ``start``, clipped."""
    size = np.float32(length) / np.float32(n)
    return [(min(max(int(np.floor(np.float32(i) * size)) + start, 0), limit),
             min(max(int(np.ceil(np.float32(i + 1) * size)) + start, 0), limit)) for i in range(n)]
