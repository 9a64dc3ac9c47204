"""Image geometry: Resize, GridSample, AffineGrid and RoiAlign.

Resize is separable: each resized axis is mapped on its own.  Nearest mode
gathers one input index per output position (any dtype); linear and cubic
(with antialias, exclude_outside) build a small dense ``(out, in)`` weight
matrix per axis and apply it with one matmul.  Output sizes and source
coordinates use float32 arithmetic like onnxruntime (rounding at exact
halves depends on it); weights and sums are float64.

Kind: Resize is OPAQUE.  Only its nearest mode is a pure gather (INJECTIVE);
linear/cubic outputs blend a neighbourhood (a variable-width one with
antialias), and since the mode is an attribute a per-op kind must cover the
worst case.  GridSample and RoiAlign sample data-dependent positions, so
they are OPAQUE too.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Optional

import numpy as np

from ..dtypes import DType
from ..registry import OPAQUE, Attr, InferContext, define
from ..shapes import normalize_axes
from ..types import Dim, TensorType
from ._common import check_dtype

MODES = ("nearest", "linear", "cubic")
COORD_MODES = ("half_pixel", "half_pixel_symmetric", "pytorch_half_pixel", "align_corners",
               "asymmetric", "tf_crop_and_resize",
               "tf_half_pixel_for_nn")  # legacy (Resize-11 only): (x + 0.5) / scale
# "simple" is legacy (Resize-10, Upsample): floor when upsampling an axis, ceil when downsampling.
NEAREST_MODES = ("round_prefer_floor", "round_prefer_ceil", "floor", "ceil", "simple")
POLICIES = ("stretch", "not_larger", "not_smaller")
RESIZE_TYPES = frozenset(t for t in DType if t.is_numeric) | {DType.BOOL}
COORD_TYPES = frozenset({DType.F16, DType.F32, DType.F64, DType.BF16})

resize = define(
    "Resize", inputs=["X", "roi?", "scales?", "sizes?"], kind=OPAQUE,
    static_inputs=("roi", "scales", "sizes"),
    attrs={"antialias": Attr.int(0), "axes": Attr.ints(),
           "coordinate_transformation_mode": Attr.string("half_pixel"),
           "cubic_coeff_a": Attr.float(-0.75), "exclude_outside": Attr.int(0),
           "extrapolation_value": Attr.float(0.0),
           "keep_aspect_ratio_policy": Attr.string("stretch"),
           "mode": Attr.string("nearest"), "nearest_mode": Attr.string("round_prefer_floor")},
    doc="Resizes X by scales or to sizes with nearest, (anti-aliased) linear or cubic sampling. "
        "Also accepts two legacy values older opsets need: coordinate_transformation_mode "
        "'tf_half_pixel_for_nn' (Resize-11) and nearest_mode 'simple' (Resize-10, Upsample).")


# ----------------------------------------------------------------- planning
def _present(a: Optional[np.ndarray]) -> bool:
    """Resize-11 passes empty tensors for unused roi/scales: treat those as absent."""
    return a is not None and a.size > 0


def resize_plan(in_shape: Sequence[Dim], axes: Sequence[int], scales: Optional[np.ndarray],
                sizes: Optional[np.ndarray], policy: str
                ) -> tuple[list[Dim], list[Optional[float]]]:
    """Output dims and the per-axis scale used to map coordinates (None if unknown).

    float32 arithmetic, as onnxruntime: ``floor(7 * 0.7f)`` and friends must agree.
    """
    f32 = np.float32
    out: list[Dim] = list(in_shape)
    factors: list[Optional[float]] = [1.0] * len(in_shape)
    if scales is not None:
        for a, s in zip(axes, scales.astype(f32).reshape(-1)):
            n = in_shape[a]
            factors[a] = float(s)
            out[a] = int(np.floor(f32(n) * s)) if isinstance(n, int) else (n if s == 1 else None)
        return out, factors
    wanted = [int(s) for s in sizes.reshape(-1)]  # type: ignore[union-attr]
    if policy == "stretch":
        for a, s in zip(axes, wanted):
            n = in_shape[a]
            out[a] = s
            factors[a] = float(f32(s) / f32(n)) if isinstance(n, int) and n else None
        return out, factors
    if not all(isinstance(in_shape[a], int) for a in axes):
        for a in axes:
            out[a], factors[a] = None, None
        return out, factors
    ratios = [f32(s) / f32(in_shape[a]) for a, s in zip(axes, wanted)]  # type: ignore[arg-type]
    scale = min(ratios) if policy == "not_larger" else max(ratios)
    for a in axes:
        out[a] = int(np.floor(scale * f32(in_shape[a]) + f32(0.5)))  # type: ignore[arg-type]
        factors[a] = float(scale)
    return out, factors


@resize.infer
def _(ctx: InferContext) -> list[TensorType]:
    x = ctx.input_type(0)
    check_dtype(ctx, 0, RESIZE_TYPES, "X")
    for name, allowed in (("mode", MODES), ("coordinate_transformation_mode", COORD_MODES),
                          ("nearest_mode", NEAREST_MODES), ("keep_aspect_ratio_policy", POLICIES)):
        if ctx.attr(name) not in allowed:
            ctx.fail(f"unknown {name}", expected=" or ".join(allowed), found=repr(ctx.attr(name)))
    if ctx.attr("mode") != "nearest" and (x.dtype == DType.BOOL):
        ctx.fail("linear and cubic modes need a numeric X", found=x.dtype.short)
    if ctx.has_input(1) and ctx.dtype(1) not in COORD_TYPES:
        ctx.fail("roi must be a float tensor", found=ctx.dtype(1).short)
    if ctx.has_input(2) and ctx.dtype(2) != DType.F32:
        ctx.fail("scales must be float32", found=ctx.dtype(2).short)
    if ctx.has_input(3) and ctx.dtype(3) != DType.I64:
        ctx.fail("sizes must be int64", found=ctx.dtype(3).short)
    scales = ctx.const(2) if ctx.has_input(2) else None
    sizes = ctx.const(3) if ctx.has_input(3) else None
    has_scales = ctx.has_input(2) and not _known_empty(ctx, 2)
    has_sizes = ctx.has_input(3) and not _known_empty(ctx, 3)
    if has_scales == has_sizes:
        ctx.fail("exactly one of scales and sizes must be given",
                 found="both" if has_scales else "neither")
    if ctx.attr("coordinate_transformation_mode") == "tf_crop_and_resize" and not ctx.has_input(1):
        ctx.fail("tf_crop_and_resize needs the roi input")
    if x.rank is None:
        return [TensorType(x.dtype, None)]
    axes = _checked_axes(ctx, x.rank)
    given = scales if has_scales else sizes
    if given is None:
        out: list[Dim] = list(x.shape)  # type: ignore[arg-type]
        for a in axes:
            out[a] = None
        return [TensorType(x.dtype, tuple(out))]
    if given.size != len(axes):
        ctx.fail(f"{'scales' if has_scales else 'sizes'} needs one value per resized axis",
                 expected=str(len(axes)), found=str(given.size))
    if has_scales and np.any(given <= 0):
        ctx.fail("scales must be positive", found=str(given.tolist()))
    if not has_scales and np.any(given < 0):
        ctx.fail("sizes must not be negative", found=str(given.tolist()))
    out, _ = resize_plan(x.shape, axes, given if has_scales else None,  # type: ignore[arg-type]
                         None if has_scales else given, ctx.attr("keep_aspect_ratio_policy"))
    return [TensorType(x.dtype, tuple(out))]


def _known_empty(ctx: InferContext, i: int) -> bool:
    """Input ``i`` is an empty tensor (Resize-11's placeholder for an unused input)."""
    value = ctx.const(i)
    if value is not None:
        return value.size == 0
    shape = ctx.shape(i)
    return shape is not None and 0 in shape


def _checked_axes(ctx: InferContext, rank: int) -> list[int]:
    axes = ctx.attr("axes")
    if not axes:
        return list(range(rank))
    try:
        norm = normalize_axes(axes, rank)
    except Exception as exc:  # noqa: BLE001 - re-raised with the node as subject
        ctx.fail(f"axes out of range: {exc}", found=str(list(axes)))
    if len(set(norm)) != len(norm):
        ctx.fail("axes must not repeat", found=str(list(axes)))
    return norm


# ----------------------------------------------------------- coordinates
def source_coords(mode: str, out_len: int, in_len: int, scale: float,
                  roi: Optional[tuple[float, float]]) -> tuple[np.ndarray, Optional[np.ndarray]]:
    """Input coordinate of every output position along one axis, and the tf_crop_and_resize
    "outside" mask (None for other modes).

    Computed in float32 like onnxruntime: nearest rounding at exact halves
    depends on it (e.g. (3 + 0.5) / 0.7f - 0.5 is 4.5 in float32).
    align_corners uses the integer output length (onnxruntime, PyTorch).
    """
    f32 = np.float32
    y = np.arange(out_len, dtype=f32)
    s, n_in, n_out = f32(scale), f32(in_len), f32(out_len)
    if mode == "half_pixel":
        return (y + f32(0.5)) / s - f32(0.5), None
    if mode == "half_pixel_symmetric":
        offset = n_in / f32(2) * (f32(1) - n_out / (s * n_in))
        return offset + (y + f32(0.5)) / s - f32(0.5), None
    if mode == "pytorch_half_pixel":
        return ((y + f32(0.5)) / s - f32(0.5)) if out_len > 1 else np.zeros(out_len, f32), None
    if mode == "align_corners":
        return (y * (n_in - 1) / (n_out - 1)) if out_len > 1 else np.zeros(out_len, f32), None
    if mode == "asymmetric":
        return y / s, None
    if mode == "tf_half_pixel_for_nn":
        return (y + f32(0.5)) / s, None
    start, end = f32(roi[0]), f32(roi[1])  # type: ignore[index]
    if out_len > 1:
        x = start * (n_in - 1) + y * (end - start) * (n_in - 1) / (n_out - 1)
    else:
        x = np.full(out_len, f32(0.5) * (start + end) * (n_in - 1), dtype=f32)
    return x, (x < 0) | (x > n_in - 1)


def _nearest_index(x: np.ndarray, mode: str, scale: float, in_len: int) -> np.ndarray:
    if mode == "simple":
        mode = "ceil" if scale < 1 else "floor"
    if mode == "round_prefer_floor":
        idx = np.ceil(x - 0.5)
    elif mode == "round_prefer_ceil":
        idx = np.floor(x + 0.5)
    elif mode == "floor":
        idx = np.floor(x)
    else:
        idx = np.ceil(x)
    return np.clip(idx, 0, in_len - 1).astype(np.intp)


def _cubic(t: np.ndarray, a: float) -> np.ndarray:
    """Keys' cubic convolution kernel."""
    t = np.abs(t)
    near = ((a + 2) * t - (a + 3)) * t * t + 1
    far = ((a * t - 5 * a) * t + 8 * a) * t - 4 * a
    return np.where(t <= 1, near, np.where(t < 2, far, 0.0))


def interpolation_matrix(x: np.ndarray, in_len: int, scale: float, mode: str, cubic_a: float,
                         antialias: bool, exclude_outside: bool) -> np.ndarray:
    """Dense ``(out, in)`` weights of linear / cubic sampling at coordinates ``x``.

    Taps sit at ``base + i`` for ``i`` in ``[start, 2 - start)``, where ``base``
    is the integer left of ``x`` (``x - 1`` when ``x`` is an integer, as in
    ONNX's reference).  Antialiasing stretches the kernel by ``1 / scale``
    when downscaling.  Taps outside the input repeat the edge, or are dropped
    and the rest renormalized with ``exclude_outside``.
    """
    support = 1 if mode == "linear" else 2
    stretch = min(scale, 1.0) if antialias else 1.0
    start = int(math.floor(-support / stretch)) + 1 if antialias else 1 - support
    base = np.floor(x)
    ratio = np.where(x == base, 1.0, x - base)
    base = np.where(x == base, x - 1, base).astype(np.int64)
    offsets = np.arange(start, 2 - start)
    t = (offsets[None, :] - ratio[:, None]) * stretch
    w = np.maximum(0.0, 1 - np.abs(t)) if mode == "linear" else _cubic(t, cubic_a)
    taps = base[:, None] + offsets[None, :]
    if exclude_outside:
        w = np.where((taps < 0) | (taps >= in_len), 0.0, w)
    if antialias or exclude_outside:
        total = w.sum(axis=1, keepdims=True)
        w = w / np.where(total == 0, 1.0, total)
    matrix = np.zeros((len(x), in_len))
    rows = np.broadcast_to(np.arange(len(x))[:, None], taps.shape)
    np.add.at(matrix, (rows, np.clip(taps, 0, in_len - 1)), w)
    return matrix


@resize.reference
def _(x, roi=None, scales=None, sizes=None, *, antialias, axes,
      coordinate_transformation_mode, cubic_coeff_a, exclude_outside, extrapolation_value,
      keep_aspect_ratio_policy, mode, nearest_mode):
    rank = x.ndim
    axes = normalize_axes(axes, rank) if axes else list(range(rank))
    use_scales = _present(scales)
    out, factors = resize_plan(x.shape, axes, scales if use_scales else None,
                               None if use_scales else sizes, keep_aspect_ratio_policy)
    roi_pairs = None
    if _present(roi):
        r = roi.astype(np.float64).reshape(-1)
        k = len(r) // 2
        roi_pairs = dict(zip(axes if k == len(axes) else range(rank), zip(r[:k], r[k:])))
    cmode = coordinate_transformation_mode
    outside = np.zeros((1,) * rank, dtype=bool)
    y = x if mode == "nearest" else x.astype(np.float64)
    for a in axes:
        n_in, n_out = x.shape[a], int(out[a])  # type: ignore[arg-type]
        if n_out == 0 or n_in == 0:
            y = np.zeros(y.shape[:a] + (n_out,) + y.shape[a + 1:], dtype=y.dtype)
            continue
        scale = float(factors[a])  # type: ignore[arg-type]
        pair = None if roi_pairs is None else roi_pairs.get(a, (0.0, 1.0))
        if n_out == n_in and scale == 1.0 and (cmode != "tf_crop_and_resize" or pair == (0.0, 1.0)):
            continue  # identity along this axis
        coords, mask = source_coords(cmode, n_out, n_in, scale, pair)
        if mode == "nearest":
            y = np.take(y, _nearest_index(coords, nearest_mode, scale, n_in), axis=a)
        else:
            m = interpolation_matrix(coords, n_in, scale, mode, cubic_coeff_a, bool(antialias),
                                     bool(exclude_outside))
            y = np.moveaxis(np.moveaxis(y, a, -1) @ m.T, -1, a)
        if mask is not None:
            outside = outside | mask.reshape((1,) * a + (-1,) + (1,) * (rank - a - 1))
    if outside.any():
        y = np.where(outside, extrapolation_value, y)
    return _cast_back(y, x.dtype, rounding=bool(antialias))


def _cast_back(y: np.ndarray, dtype: np.dtype, rounding: bool = False) -> np.ndarray:
    """Cast to ``dtype``, saturating integers.

    Integers truncate toward zero like onnxruntime's linear/cubic kernels
    (``static_cast``); ``rounding`` rounds half to even instead (ONNX's
    reference, used for antialias, where onnxruntime's fixed-point uint8
    path rounds too).
    """
    if y.dtype == dtype:
        return y
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        # Truncate at float32 precision, as onnxruntime computes: 172.99999999 is 173.
        y = np.round(y) if rounding else np.trunc(y.astype(np.float32)).astype(np.float64)
        return np.clip(y, info.min, info.max).astype(dtype)
    return y.astype(dtype)


# ---------------------------------------------------------------- GridSample
SAMPLE_TYPES = frozenset({DType.F16, DType.BF16, DType.F32, DType.F64})

grid_sample = define(
    "GridSample", inputs=["X", "grid"], kind=OPAQUE,
    attrs={"align_corners": Attr.int(0), "mode": Attr.string("linear"),
           "padding_mode": Attr.string("zeros")},
    doc="Samples X at the normalized [-1, 1] positions of grid (last axis ordered x, y, z).")


@grid_sample.infer
def _(ctx: InferContext) -> list[TensorType]:
    x, grid = ctx.input_type(0), ctx.input_type(1)
    check_dtype(ctx, 0, RESIZE_TYPES - {DType.BOOL}, "X")
    check_dtype(ctx, 1, SAMPLE_TYPES, "grid")
    if ctx.attr("mode") not in MODES:
        ctx.fail("unknown mode", expected=" or ".join(MODES), found=repr(ctx.attr("mode")))
    if ctx.attr("padding_mode") not in ("zeros", "border", "reflection"):
        ctx.fail("unknown padding_mode", expected="zeros or border or reflection",
                 found=repr(ctx.attr("padding_mode")))
    if x.rank is not None and x.rank < 3:
        ctx.fail("X must be (N, C, *spatial)", found=str(x))
    if grid.shape is None:
        return [TensorType(x.dtype, None if x.rank is None else (None,) * x.rank)]
    if x.rank is not None and grid.rank != x.rank:
        ctx.fail("grid must have X's rank: (N, *out_spatial, spatial rank)",
                 found=f"{x} and {grid}")
    last = grid.shape[-1]
    if isinstance(last, int) and last != len(grid.shape) - 2:
        ctx.fail("grid's last dim must equal the spatial rank", expected=str(len(grid.shape) - 2),
                 found=str(last))
    n = grid.shape[0] if x.shape is None or not isinstance(x.shape[0], int) else x.shape[0]
    c = None if x.shape is None else x.shape[1]
    return [TensorType(x.dtype, (n, c, *grid.shape[1:-1]))]


def _reflect(x: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Fold coordinates into [lo, hi] by reflecting at the borders."""
    span = hi - lo
    if span <= 0:
        return np.full_like(x, lo)
    below, above = x < lo, x > hi
    dist = np.where(below, lo - x, np.where(above, x - hi, 0.0))
    flips = np.floor(dist / span)
    rest = dist - flips * span
    even = flips % 2 == 0
    out = np.where(below, np.where(even, lo + rest, hi - rest), x)
    return np.where(above, np.where(even, hi - rest, lo + rest), out)


def _grid_taps(coord: np.ndarray, size: int, mode: str, padding: str,
               align: bool) -> list[tuple[np.ndarray, np.ndarray]]:
    """(index, weight) of each tap along one axis; weight is 0 for taps in zero padding."""
    lo, hi = (0.0, size - 1.0) if align else (-0.5, size - 0.5)
    if mode == "nearest":
        coord = np.rint(coord)
    # Cubic pads each tap instead of the coordinate (PyTorch, onnxruntime).
    if padding == "border" and mode != "cubic":
        coord = np.clip(coord, 0, size - 1)
    elif padding == "reflection":
        coord = _reflect(coord, lo, hi)
    if mode == "nearest":
        taps = [(np.trunc(coord), np.ones_like(coord))]
    else:
        base = np.floor(coord)
        f = coord - base
        if mode == "linear":
            taps = [(base, 1 - f), (base + 1, f)]
        else:
            taps = [(base + k, _cubic(f - k, -0.75)) for k in (-1, 0, 1, 2)]
    out = []
    for idx, w in taps:
        if padding == "zeros":
            w = np.where((idx >= 0) & (idx < size), w, 0.0)
            idx = np.clip(idx, 0, size - 1)
        elif padding == "border":
            idx = np.clip(idx, 0, size - 1)
        else:
            idx = np.clip(np.trunc(_reflect(idx, lo, hi)), 0, size - 1)
        out.append((idx.astype(np.int64), w))
    return out


@grid_sample.reference
def _(x, grid, *, align_corners, mode, padding_mode):
    n, c, sizes = x.shape[0], x.shape[1], x.shape[2:]
    d = len(sizes)
    out_shape = grid.shape[1:-1]
    g = grid.astype(np.float64).reshape(n, -1, d)[..., ::-1]  # axis order (z, y, x)
    per_axis = []
    for i, size in enumerate(sizes):
        norm = g[..., i]
        coord = (norm + 1) / 2 * (size - 1) if align_corners else ((norm + 1) * size - 1) / 2
        per_axis.append(_grid_taps(coord, size, mode, padding_mode, bool(align_corners)))
    data = x.astype(np.float64).reshape(n, c, -1)
    y = np.zeros((n, c, g.shape[1]))
    strides = [math.prod(sizes[i + 1:]) for i in range(d)]
    for combo in np.ndindex(*(len(t) for t in per_axis)):
        flat = sum(per_axis[i][k][0] * strides[i] for i, k in enumerate(combo))
        weight = np.prod([per_axis[i][k][1] for i, k in enumerate(combo)], axis=0)
        y += np.take_along_axis(data, flat[:, None, :], axis=2) * weight[:, None, :]
    return _cast_back(y.reshape((n, c) + tuple(out_shape)), x.dtype)


# ---------------------------------------------------------------- AffineGrid
affine_grid = define(
    "AffineGrid", inputs=["theta", "size"], outputs=["grid"], kind=OPAQUE,
    static_inputs=("size",), attrs={"align_corners": Attr.int(0)},
    doc="The sampling grid of an affine transform, for GridSample (2-D and 3-D).")


@affine_grid.infer
def _(ctx: InferContext) -> list[TensorType]:
    check_dtype(ctx, 0, SAMPLE_TYPES, "theta")
    if ctx.dtype(1) != DType.I64:
        ctx.fail("size must be int64", found=ctx.dtype(1).short)
    theta = ctx.input_type(0)
    if theta.shape is not None:
        tail = tuple(theta.shape[1:])
        if len(theta.shape) != 3 or (all(isinstance(v, int) for v in tail)
                                     and tail not in ((2, 3), (3, 4))):
            ctx.fail("theta must be (N, 2, 3) for 2-D or (N, 3, 4) for 3-D", found=str(theta))
    size = ctx.const(1)
    if size is None:
        s = ctx.shape(1)
        dims = s[0] if s is not None and len(s) == 1 and isinstance(s[0], int) else None
        if dims is None and theta.shape is not None and isinstance(theta.shape[1], int):
            dims = theta.shape[1] + 2
        if dims is None:
            return [TensorType(theta.dtype, None)]
        n = None if theta.shape is None else theta.shape[0]
        return [TensorType(theta.dtype, (n,) + (None,) * (dims - 2) + (dims - 2,))]
    size = [int(v) for v in size.reshape(-1)]
    if len(size) not in (4, 5):
        ctx.fail("size must be (N, C, H, W) or (N, C, D, H, W)", found=str(size))
    spatial = len(size) - 2
    if theta.shape is not None and isinstance(theta.shape[1], int) and theta.shape[1] != spatial:
        ctx.fail("theta and size disagree on the spatial rank", found=f"{theta} and size {size}")
    return [TensorType(theta.dtype, (size[0], *size[2:], len(size) - 2))]


def _base_coords(length: int, align: bool) -> np.ndarray:
    """Normalized coordinates of the pixel centers (or corners) along one axis."""
    if align:
        # A single corner-aligned sample sits at +1 in onnxruntime (Eigen's LinSpaced).
        return np.linspace(-1.0, 1.0, length) if length > 1 else np.ones(length)
    return (np.arange(length) * 2 + 1) / length - 1


@affine_grid.reference
def _(theta, size, *, align_corners):
    n, *spatial = [int(v) for v in size[:1]] + [int(v) for v in size[2:]]
    d = len(spatial)
    axes = [_base_coords(s, bool(align_corners)) for s in spatial]
    mesh = np.meshgrid(*axes, indexing="ij")  # (z), y, x
    # Homogeneous coordinates ordered x, y, (z), 1 like theta's columns.
    homo = np.stack(list(mesh[::-1]) + [np.ones(spatial)], axis=-1).reshape(-1, d + 1)
    grid = np.einsum("pk,njk->npj", homo, theta.astype(np.float64))
    return grid.reshape((n, *spatial, d)).astype(theta.dtype)


# ------------------------------------------------------------------ RoiAlign
roi_align = define(
    "RoiAlign", inputs=["X", "rois", "batch_indices"], kind=OPAQUE,
    attrs={"coordinate_transformation_mode": Attr.string("half_pixel"), "mode": Attr.string("avg"),
           "output_height": Attr.int(1), "output_width": Attr.int(1),
           "sampling_ratio": Attr.int(0), "spatial_scale": Attr.float(1.0)},
    doc="Bilinearly sampled average (or max) of each region over an output grid (Mask R-CNN).")


@roi_align.infer
def _(ctx: InferContext) -> list[TensorType]:
    check_dtype(ctx, 0, SAMPLE_TYPES, "X")
    x, rois = ctx.input_type(0), ctx.input_type(1)
    if rois.dtype != x.dtype:
        ctx.fail("rois must have X's element type", found=f"{rois.dtype} and {x.dtype}")
    if ctx.dtype(2) != DType.I64:
        ctx.fail("batch_indices must be int64", found=ctx.dtype(2).short)
    if x.rank is not None and x.rank != 4:
        ctx.fail("X must be 4-D (N, C, H, W)", found=str(x))
    if rois.shape is not None and (len(rois.shape) != 2 or rois.shape[1] not in (4, None)):
        ctx.fail("rois must be (num_rois, 4): x1, y1, x2, y2", found=str(rois))
    if ctx.attr("mode") not in ("avg", "max"):
        ctx.fail("unknown mode", expected="avg or max", found=repr(ctx.attr("mode")))
    if ctx.attr("coordinate_transformation_mode") not in ("half_pixel", "output_half_pixel"):
        ctx.fail("unknown coordinate_transformation_mode",
                 expected="half_pixel or output_half_pixel",
                 found=repr(ctx.attr("coordinate_transformation_mode")))
    n_rois = None if rois.shape is None else rois.shape[0]
    c = None if x.shape is None else x.shape[1]
    return [TensorType(x.dtype, (n_rois, c, ctx.attr("output_height"), ctx.attr("output_width")))]


def _roi_axis(start: float, length: float, bins: int, grid: int, size: int
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Bilinear sampling along one axis of a region: (low, high, w_low, w_high, valid)
    for the ``bins * grid`` sample points (ordered bin-major)."""
    step = length / bins
    pos = (start + np.arange(bins)[:, None] * step
           + (np.arange(grid)[None, :] + 0.5) * step / grid).reshape(-1)
    valid = (pos >= -1.0) & (pos <= size)
    pos = np.maximum(pos, 0.0)
    low = np.floor(pos).astype(np.int64)
    edge = low >= size - 1
    low = np.where(edge, size - 1, low)
    high = np.where(edge, size - 1, low + 1)
    pos = np.where(edge, low, pos)
    frac = pos - low
    return low, high, 1 - frac, frac, valid


@roi_align.reference
def _(x, rois, batch_indices, *, coordinate_transformation_mode, mode, output_height,
      output_width, sampling_ratio, spatial_scale):
    c, height, width = x.shape[1:]
    oh, ow = output_height, output_width
    shift = 0.5 if coordinate_transformation_mode == "half_pixel" else 0.0
    out = np.zeros((rois.shape[0], c, oh, ow))
    data = x.astype(np.float64)
    for r, (roi, b) in enumerate(zip(rois.astype(np.float64), batch_indices)):
        x1, y1, x2, y2 = roi * spatial_scale - shift
        rw, rh = x2 - x1, y2 - y1
        if not shift:  # output_half_pixel: regions are at least one pixel
            rw, rh = max(rw, 1.0), max(rh, 1.0)
        gh = sampling_ratio if sampling_ratio > 0 else int(math.ceil(rh / oh))
        gw = sampling_ratio if sampling_ratio > 0 else int(math.ceil(rw / ow))
        ylo, yhi, wylo, wyhi, vy = _roi_axis(y1, rh, oh, gh, height)
        xlo, xhi, wxlo, wxhi, vx = _roi_axis(x1, rw, ow, gw, width)
        valid = vy[:, None] & vx[None, :]
        img = data[int(b)]
        corners = [(ylo, xlo, wylo, wxlo), (ylo, xhi, wylo, wxhi),
                   (yhi, xlo, wyhi, wxlo), (yhi, xhi, wyhi, wxhi)]
        terms = [img[:, yi[:, None], xi[None, :]] * np.where(valid, wy[:, None] * wx[None, :], 0.0)
                 for yi, xi, wy, wx in corners]  # each (C, oh*gh, ow*gw)
        if mode == "avg":
            samples = sum(terms).reshape(c, oh, gh, ow, gw)
            out[r] = samples.sum(axis=(2, 4)) / max(gh * gw, 1)
        elif gh * gw > 0:
            samples = np.maximum.reduce(terms).reshape(c, oh, gh, ow, gw)
            out[r] = samples.max(axis=(2, 4))
    return out.astype(x.dtype)
