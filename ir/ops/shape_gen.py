"""Shape family, second half: slicing and padding, shape queries, generated tensors.

Slice, Pad and CenterCropPad select or extend regions; Shape and Size read
a tensor's shape; ConstantOfShape, Range, EyeLike and Trilu build tensors.
Helpers are shared with ``shape.py`` (which imports this module).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Optional

import numpy as np

from ..dtypes import DType
from ..registry import INJECTIVE, OPAQUE, Attr, InferContext, define
from ..types import Dim, TensorType
from ._common import check_dtype
from .shape import I64, INDEX_TYPES, const_ints, data_type, norm_axes, vector_length


# --------------------------------------------------------------------- Slice
slice_ = define("Slice", inputs=["data", "starts", "ends", "axes?", "steps?"], outputs=["output"],
                kind=INJECTIVE, static_inputs=["starts", "ends", "axes", "steps"])


def slice_bounds(dim: int, start: int, end: int, step: int) -> tuple[int, int, int]:
    """ONNX's clamping of one axis: (first index, end index, length); end may be -1."""
    if start < 0:
        start += dim
    if end < 0:
        end += dim
    if step > 0:
        start, end = min(max(start, 0), dim), min(max(end, 0), dim)
    else:
        start, end = min(max(start, 0), dim - 1), min(max(end, -1), dim - 1)
    length = max(0, -(-(end - start) // step))
    return start, end, length


def sliced_dim(d: Dim, start: int, end: int, step: int) -> Dim:
    if isinstance(d, int):
        return slice_bounds(d, start, end, step)[2]
    # A whole-axis slice keeps a symbolic dim: [0:INT_MAX:1].
    return d if start == 0 and step == 1 and end >= 2 ** 31 - 1 else None


@slice_.infer
def _(ctx: InferContext) -> list[TensorType]:
    shape = ctx.shape(0)
    for i, what in ((1, "starts"), (2, "ends"), (3, "axes"), (4, "steps")):
        if ctx.has_input(i):
            check_dtype(ctx, i, INDEX_TYPES, what)
            vector_length(ctx, i, what)
    if ctx.dtype(1) != ctx.dtype(2):
        ctx.fail("starts and ends must share one element type",
                 found=f"{ctx.dtype(1)} and {ctx.dtype(2)}")
    if shape is None:
        return data_type(ctx, None)
    rank = len(shape)
    starts, ends = const_ints(ctx, 1), const_ints(ctx, 2)
    n = len(starts) if starts is not None else vector_length(ctx, 1, "starts")
    axes = const_ints(ctx, 3) if ctx.has_input(3) else (None if n is None else list(range(n)))
    steps = const_ints(ctx, 4) if ctx.has_input(4) else (None if n is None else [1] * n)
    if axes is None:  # any axis may be sliced
        return data_type(ctx, (None,) * rank)
    axes = norm_axes(ctx, axes, rank)
    for what, vals in (("starts", starts), ("ends", ends), ("steps", steps)):
        if vals is not None and len(vals) != len(axes):
            ctx.fail(f"{what} must have one entry per sliced axis",
                     expected=f"{len(axes)} entries", found=str(vals))
    if steps is not None and 0 in steps:
        ctx.fail("steps must not be 0", found=str(steps))
    out = list(shape)
    for k, a in enumerate(axes):
        if starts is None or ends is None or steps is None:
            out[a] = None
        else:
            out[a] = sliced_dim(shape[a], starts[k], ends[k], steps[k])
    return data_type(ctx, out)


@slice_.reference
def _(data: np.ndarray, starts: np.ndarray, ends: np.ndarray, axes: Optional[np.ndarray] = None,
      steps: Optional[np.ndarray] = None) -> np.ndarray:
    starts, ends = np.asarray(starts).reshape(-1), np.asarray(ends).reshape(-1)
    axes = range(len(starts)) if axes is None else np.asarray(axes).reshape(-1)
    steps = [1] * len(starts) if steps is None else np.asarray(steps).reshape(-1)
    index = [slice(None)] * data.ndim
    for a, s, e, st in zip(axes, starts, ends, steps):
        a = int(a) + data.ndim if a < 0 else int(a)
        s, e, _ = slice_bounds(data.shape[a], int(s), int(e), int(st))
        index[a] = slice(s, None if e < 0 else e, int(st))  # end -1: run through index 0
    return data[tuple(index)]


# ----------------------------------------------------------------------- Pad
pad = define("Pad", inputs=["data", "pads", "constant_value?", "axes?"], outputs=["output"],
             kind=INJECTIVE, attrs={"mode": Attr.string("constant")},
             static_inputs=["pads", "constant_value", "axes"],
             doc="Negative pads crop; the crop happens before edge/reflect/wrap padding.")

PAD_MODES = ("constant", "reflect", "edge", "wrap")


def padded_dim(d: Dim, before: int, after: int) -> Dim:
    if before + after == 0:
        return d
    return d + before + after if isinstance(d, int) else None


@pad.infer
def _(ctx: InferContext) -> list[TensorType]:
    shape = ctx.shape(0)
    if ctx.attr("mode") not in PAD_MODES:
        ctx.fail("unknown mode", expected=" or ".join(PAD_MODES), found=repr(ctx.attr("mode")))
    check_dtype(ctx, 1, I64, "pads")
    vector_length(ctx, 1, "pads")
    if ctx.has_input(2):
        if ctx.dtype(2) != ctx.dtype(0):
            ctx.fail("constant_value must have the data's element type",
                     expected=ctx.dtype(0).short, found=ctx.dtype(2).short)
        if ctx.shape(2) is not None and len(ctx.shape(2)) > 1:
            ctx.fail("constant_value must be a scalar", found=str(ctx.input_type(2)))
    if ctx.has_input(3):
        check_dtype(ctx, 3, INDEX_TYPES, "axes")
    if shape is None:
        return data_type(ctx, None)
    rank = len(shape)
    axes = const_ints(ctx, 3) if ctx.has_input(3) else list(range(rank))
    pads = const_ints(ctx, 1)
    if axes is None:
        return data_type(ctx, (None,) * rank)
    axes = norm_axes(ctx, axes, rank)
    if pads is None:
        return data_type(ctx, [None if i in axes else d for i, d in enumerate(shape)])
    if len(pads) != 2 * len(axes):
        ctx.fail("pads must hold a begin and an end value per padded axis",
                 expected=f"{2 * len(axes)} values", found=str(pads))
    out = list(shape)
    for k, a in enumerate(axes):
        out[a] = padded_dim(shape[a], pads[k], pads[k + len(axes)])
        if isinstance(out[a], int) and out[a] < 0:
            ctx.fail(f"negative pads remove more than the {shape[a]} elements of axis {a}",
                     found=str(pads))
    return data_type(ctx, out)


@pad.reference
def _(data: np.ndarray, pads: np.ndarray, constant_value: Optional[np.ndarray] = None,
      axes: Optional[np.ndarray] = None, *, mode: str = "constant") -> np.ndarray:
    rank = data.ndim
    axes = list(range(rank)) if axes is None else [int(a) % rank if rank else 0 for a in
                                                    np.asarray(axes).reshape(-1)]
    pads = [int(p) for p in np.asarray(pads).reshape(-1)]
    before, after = [0] * rank, [0] * rank
    for k, a in enumerate(axes):
        before[a], after[a] = pads[k], pads[k + len(axes)]
    # Negative pads crop first (as onnxruntime does), then the rest is padded.
    data = data[tuple(slice(max(-b, 0), data.shape[i] - max(-e, 0))
                      for i, (b, e) in enumerate(zip(before, after)))]
    width = [(max(b, 0), max(e, 0)) for b, e in zip(before, after)]
    if mode == "constant":
        if constant_value is not None and np.asarray(constant_value).size:
            value = np.asarray(constant_value).reshape(-1)[0]
        else:
            value = "" if data.dtype == object else np.zeros((), data.dtype)
        out = np.empty([d + b + e for d, (b, e) in zip(data.shape, width)], data.dtype)
        out[...] = value
        out[tuple(slice(b, b + d) for d, (b, _) in zip(data.shape, width))] = data
        return out
    return np.pad(data, width, mode=mode)


# ------------------------------------------------------------- CenterCropPad
center_crop_pad = define("CenterCropPad", inputs=["input_data", "shape"], outputs=["output_data"],
                         kind=INJECTIVE, attrs={"axes": Attr.ints()}, static_inputs=["shape"],
                         doc="Crops or zero-pads each axis in ``axes`` to ``shape``, centred "
                             "(an odd difference puts the extra element at the end).")


@center_crop_pad.infer
def _(ctx: InferContext) -> list[TensorType]:
    shape = ctx.shape(0)
    check_dtype(ctx, 1, INDEX_TYPES, "shape")
    n = vector_length(ctx, 1, "shape")
    if shape is None:
        return data_type(ctx, None)
    axes = ctx.attr("axes")
    axes = norm_axes(ctx, axes if axes is not None else range(len(shape)), len(shape))
    if n is not None and n != len(axes):
        ctx.fail("shape must have one entry per axis", expected=f"{len(axes)} entries",
                 found=f"{n}")
    target = const_ints(ctx, 1)
    if target is not None and any(t < 0 for t in target):
        ctx.fail("shape values must be >= 0", found=str(target))
    out = list(shape)
    for k, a in enumerate(axes):
        out[a] = None if target is None else target[k]
    return data_type(ctx, out)


@center_crop_pad.reference
def _(x: np.ndarray, shape: np.ndarray, axes: Optional[Sequence[int]] = None) -> np.ndarray:
    rank = x.ndim
    axes = range(rank) if axes is None else [a + rank if a < 0 else a for a in axes]
    src = [slice(None)] * rank  # region of x that is kept
    dst = [slice(None)] * rank  # where it lands in the output
    out_shape = list(x.shape)
    for a, size in zip(axes, (int(s) for s in np.asarray(shape).reshape(-1))):
        dim = x.shape[a]
        out_shape[a] = size
        if size < dim:
            off = (dim - size) // 2
            src[a] = slice(off, off + size)
        elif size > dim:
            off = (size - dim) // 2
            dst[a] = slice(off, off + dim)
    out = np.zeros(out_shape, x.dtype)
    out[tuple(dst)] = x[tuple(src)]
    return out


# -------------------------------------------------------------- Shape & Size
shape_ = define("Shape", inputs=["data"], outputs=["shape"], kind=OPAQUE,
                attrs={"start": Attr.int(0), "end": Attr.int()})


@shape_.infer
def _(ctx: InferContext) -> list[TensorType]:
    rank = ctx.rank(0)
    if rank is None:
        return [TensorType(DType.I64, (None,))]
    return [TensorType(DType.I64, (len(range(rank)[ctx.attr("start"):ctx.attr("end")]),))]


@shape_.reference
def _(data: np.ndarray, start: int = 0, end: Optional[int] = None) -> np.ndarray:
    # Python slicing clamps exactly as ONNX asks (negative values count from the end).
    return np.array(data.shape[start:end], dtype=np.int64)


size = define("Size", inputs=["data"], outputs=["size"], kind=OPAQUE)


@size.infer
def _(ctx: InferContext) -> list[TensorType]:
    ctx.input_type(0)
    return [TensorType(DType.I64, ())]


@size.reference
def _(data: np.ndarray) -> np.ndarray:
    return np.array(data.size, dtype=np.int64)


# ----------------------------------------------------------- ConstantOfShape
constant_of_shape = define("ConstantOfShape", inputs=["input"], outputs=["output"], kind=OPAQUE,
                           attrs={"value": Attr.tensor()}, static_inputs=["input"],
                           doc="A tensor of the given shape filled with ``value`` "
                               "(one element; default float32 0).")


def fill_value(value: Optional[np.ndarray]) -> np.ndarray:
    return np.zeros((), np.float32) if value is None else np.asarray(value).reshape(-1)[:1]


@constant_of_shape.infer
def _(ctx: InferContext) -> list[TensorType]:
    check_dtype(ctx, 0, I64, "shape")
    value = ctx.attr("value")
    if value is not None and np.asarray(value).size != 1:
        ctx.fail("value must hold exactly one element", found=f"{np.asarray(value).size} elements")
    dtype = DType.from_numpy(fill_value(value).dtype)
    dims = const_ints(ctx, 0)
    if dims is None:
        n = vector_length(ctx, 0, "shape")
        return [TensorType(dtype, None if n is None else (None,) * n)]
    if ctx.shape(0) is not None and len(ctx.shape(0)) != 1:
        ctx.fail("shape must be a 1-D tensor", found=str(ctx.input_type(0)))
    if any(d < 0 for d in dims):
        ctx.fail("shape values must be >= 0", found=str(dims))
    return [TensorType(dtype, tuple(dims))]


@constant_of_shape.reference
def _(shape: np.ndarray, value: Optional[np.ndarray] = None) -> np.ndarray:
    v = fill_value(value)
    return np.full(tuple(int(d) for d in np.asarray(shape).reshape(-1)), v.reshape(()), v.dtype)


# --------------------------------------------------------------------- Range
RANGE_TYPES = frozenset({DType.F32, DType.F64, DType.I16, DType.I32, DType.I64,
                         DType.F16, DType.BF16})
range_ = define("Range", inputs=["start", "limit", "delta"], outputs=["output"], kind=OPAQUE,
                attrs={"stash_type": Attr.int(1)}, static_inputs=["start", "limit", "delta"],
                doc="max(ceil((limit - start) / delta), 0) values start + i * delta.")


def range_length(start: Any, limit: Any, delta: Any) -> int:
    if isinstance(start, (int, np.integer)):
        return max(0, -((int(start) - int(limit)) // int(delta)))  # exact integer ceil
    return max(0, math.ceil((float(limit) - float(start)) / float(delta)))


@range_.infer
def _(ctx: InferContext) -> list[TensorType]:
    dtype = check_dtype(ctx, 0, RANGE_TYPES, "start")
    for i, what in enumerate(("start", "limit", "delta")):
        if ctx.dtype(i) != dtype:
            ctx.fail("start, limit and delta must share one element type",
                     found=", ".join(ctx.dtype(k).short for k in range(3)))
        if ctx.shape(i) is not None and any(isinstance(d, int) and d != 1 for d in ctx.shape(i)):
            ctx.fail(f"{what} must be a scalar", found=str(ctx.input_type(i)))
    values = [ctx.const(i) for i in range(3)]
    if any(v is None for v in values):
        return [TensorType(dtype, (None,))]
    start, limit, delta = (np.asarray(v).reshape(-1)[0] for v in values)
    if delta == 0:
        ctx.fail("delta must not be 0")
    return [TensorType(dtype, (range_length(start.item(), limit.item(), delta.item()),))]


@range_.reference
def _(start: np.ndarray, limit: np.ndarray, delta: np.ndarray, stash_type: int = 1) -> np.ndarray:
    dtype = np.asarray(start).dtype
    s, lim, d = (np.asarray(v).reshape(-1)[0] for v in (start, limit, delta))
    if dtype.kind in "iu":
        return np.arange(int(s), int(lim), int(d), dtype=dtype)
    n = range_length(float(s), float(lim), float(d))
    # float16/bfloat16 compute in float32 (stash_type 1) or in their own type.
    work = np.float32 if stash_type == 1 and dtype.itemsize < 4 else dtype
    return (np.asarray(s, work) + np.arange(n).astype(work) * np.asarray(d, work)).astype(dtype)


# ------------------------------------------------------------------- EyeLike
EYE_TYPES = frozenset({DType.U8, DType.U16, DType.U32, DType.U64, DType.I8, DType.I16,
                       DType.I32, DType.I64, DType.BF16, DType.F16, DType.F32, DType.F64,
                       DType.BOOL})
eye_like = define("EyeLike", inputs=["input"], outputs=["output"], kind=OPAQUE,
                  attrs={"dtype": Attr.int(), "k": Attr.int(0)})


@eye_like.infer
def _(ctx: InferContext) -> list[TensorType]:
    check_dtype(ctx, 0, EYE_TYPES)
    code = ctx.attr("dtype")
    dtype = ctx.dtype(0) if code is None else DType.from_onnx(code)
    if dtype not in EYE_TYPES:
        ctx.fail("unsupported output dtype", expected="a numeric or bool type", found=dtype.short)
    shape = ctx.shape(0)
    if shape is not None and len(shape) != 2:
        ctx.fail("input must be 2-D", found=str(ctx.input_type(0)))
    return [TensorType(dtype, shape if shape is not None else (None, None))]


@eye_like.reference
def _(x: np.ndarray, dtype: Optional[int] = None, k: int = 0) -> np.ndarray:
    out = x.dtype if dtype is None else DType.from_onnx(dtype).np
    return np.eye(x.shape[0], x.shape[1], k, dtype=np.float32).astype(out)


# --------------------------------------------------------------------- Trilu
trilu = define("Trilu", inputs=["input", "k?"], outputs=["output"], kind=INJECTIVE,
               attrs={"upper": Attr.int(1)}, static_inputs=["k"],
               doc="Keeps the upper (j - i >= k) or lower (j - i <= k) triangle of the last "
                   "two dims; zeroes the rest.")


@trilu.infer
def _(ctx: InferContext) -> list[TensorType]:
    shape = ctx.shape(0)
    if shape is not None and len(shape) < 2:
        ctx.fail("input must have rank >= 2", found=str(ctx.input_type(0)))
    if ctx.has_input(1):
        check_dtype(ctx, 1, I64, "k")
        if ctx.shape(1) is not None and any(isinstance(d, int) and d != 1 for d in ctx.shape(1)):
            ctx.fail("k must be a scalar", found=str(ctx.input_type(1)))
    return data_type(ctx, shape)


@trilu.reference
def _(x: np.ndarray, k: Optional[np.ndarray] = None, upper: int = 1) -> np.ndarray:
    k = 0 if k is None else int(np.asarray(k).reshape(-1)[0])
    n, m = x.shape[-2:]
    # np.tri(n, m, k) marks j - i <= k; the upper triangle is the complement of k - 1.
    keep = ~np.tri(n, m, k - 1, dtype=bool) if upper else np.tri(n, m, k, dtype=bool)
    zero = np.array("" if x.dtype == object else 0).astype(x.dtype)
    return np.where(keep, x, zero)
