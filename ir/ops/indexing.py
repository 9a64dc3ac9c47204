"""Gather/scatter ops and other data-dependent indexing: OneHot, Compress, NonZero,
ReverseSequence, Unique.

Index tensors are data, so the references check them (negative indices count
from the end, as ONNX allows; anything outside the axis is an
``ExecutionError`` naming the op) and the type rules only use their shapes.

Kinds: the gathers (and OneHot, ReverseSequence) are INJECTIVE, as in TVM:
every output element reads one input element, the index being one more
input a fused kernel reads.  Scatters write through data-dependent indices
and Compress/NonZero/Unique have data-dependent shapes: OPAQUE.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from ..dtypes import DType
from ..errors import ExecutionError
from ..registry import INJECTIVE, OPAQUE, Attr, InferContext, define
from ..shapes import prod
from ..types import Dim, Shape, TensorType
from ._common import check_dtype, widen
from .reduction import INDEX_TYPES, norm_axis

NUMERIC_TYPES = frozenset(t for t in DType if t.is_numeric)


# ------------------------------------------------------------------- helpers
def _known_equal(a: Dim, b: Dim) -> bool:
    """False only when two dims are known ints that differ."""
    return not (isinstance(a, int) and isinstance(b, int) and a != b)


def _check_indices(op: str, idx: np.ndarray, size, what: str = "index") -> np.ndarray:
    """``idx`` as int64 with negatives counted from the end; raise if any is out of range.

    ``size`` is the axis length, or an array broadcasting against ``idx``
    (one length per index component, for GatherND/ScatterND).
    """
    idx = np.asarray(idx).astype(np.int64)
    size = np.asarray(size, dtype=np.int64)
    bad = (idx < -size) | (idx >= size)
    if np.any(bad):
        first = int(idx[bad].reshape(-1)[0])
        raise ExecutionError(f"{op}: {what} out of range", found=str(first),
                             expected=f"indices within [-size, size) of dims {size.reshape(-1).tolist()}")
    return np.where(idx < 0, idx + size, idx)


def _along_axis(idx: np.ndarray, axis: int) -> tuple:
    """Fancy index reading ``a[i0, .., idx[i], .., in]`` at every position ``i`` of ``idx``.

    Unlike ``np.take_along_axis``, ``idx`` may be smaller than the data in the
    other dimensions (GatherElements and ScatterElements allow it).
    """
    grid = list(np.ogrid[tuple(slice(0, s) for s in idx.shape)])
    grid[axis] = idx
    return tuple(grid)


_UFUNCS = {"add": np.add, "mul": np.multiply, "max": np.maximum, "min": np.minimum}


def _scatter(out: np.ndarray, where: tuple, updates: np.ndarray, reduction: str, op: str) -> np.ndarray:
    """Write ``updates`` into a copy of ``out`` at ``where``, combining by ``reduction``."""
    if reduction == "none":
        res = out.copy()
        res[where] = updates
        return res
    if reduction not in _UFUNCS:
        raise ExecutionError(f"{op}: unknown reduction", expected="none, add, mul, max or min",
                             found=repr(reduction))
    res = widen(out).copy()
    # ufunc.at applies repeated indices one after the other, as ONNX specifies.
    _UFUNCS[reduction].at(res, where, widen(updates))
    return res.astype(out.dtype)


def _reduction_attr(ctx: InferContext) -> None:
    if ctx.attr("reduction") not in ("none", *_UFUNCS):
        ctx.fail("unknown reduction", expected="none, add, mul, max or min",
                 found=repr(ctx.attr("reduction")))


# --------------------------------------------------------------------- Gather
gather = define("Gather", inputs=["data", "indices"], outputs=["output"], kind=INJECTIVE,
                attrs={"axis": Attr.int(0)}, doc="np.take along axis (negative indices allowed)")


@gather.infer
def _(ctx: InferContext) -> list[TensorType]:
    check_dtype(ctx, 1, INDEX_TYPES, "indices")
    data, idx = ctx.input_type(0), ctx.input_type(1)
    if data.shape is None:
        return [TensorType(data.dtype, None)]
    if not data.shape:
        ctx.fail("data must have rank >= 1", found=str(data))
    axis = norm_axis(ctx, ctx.attr("axis"), len(data.shape))
    if idx.shape is None:
        return [TensorType(data.dtype, None)]
    return [TensorType(data.dtype, data.shape[:axis] + idx.shape + data.shape[axis + 1:])]


@gather.reference
def _(data: np.ndarray, indices: np.ndarray, *, axis: int) -> np.ndarray:
    axis %= data.ndim
    return np.take(data, _check_indices("Gather", indices, data.shape[axis]), axis=axis)


# ------------------------------------------------------------- GatherElements
gather_elements = define("GatherElements", inputs=["data", "indices"], outputs=["output"],
                         kind=INJECTIVE, attrs={"axis": Attr.int(0)},
                         doc="output[i] = data[i with axis coordinate replaced by indices[i]]")


@gather_elements.infer
def _(ctx: InferContext) -> list[TensorType]:
    check_dtype(ctx, 1, INDEX_TYPES, "indices")
    data, idx = ctx.input_type(0), ctx.input_type(1)
    if data.rank is not None:
        if data.rank == 0:
            ctx.fail("data must have rank >= 1", found=str(data))
        norm_axis(ctx, ctx.attr("axis"), data.rank)
        if idx.rank is not None and idx.rank != data.rank:
            ctx.fail("indices must have the rank of data", expected=f"rank {data.rank}",
                     found=str(idx))
    return [TensorType(data.dtype, idx.shape if idx.shape is not None else
                       (None,) * data.rank if data.rank is not None else None)]


@gather_elements.reference
def _(data: np.ndarray, indices: np.ndarray, *, axis: int) -> np.ndarray:
    axis %= data.ndim
    idx = _check_indices("GatherElements", indices, data.shape[axis])
    return data[_along_axis(idx, axis)]


# ------------------------------------------------------------------- GatherND
gather_nd = define("GatherND", inputs=["data", "indices"], outputs=["output"], kind=INJECTIVE,
                   attrs={"batch_dims": Attr.int(0)},
                   doc="each row of indices' last axis addresses a slice of data")


@gather_nd.infer
def _(ctx: InferContext) -> list[TensorType]:
    check_dtype(ctx, 1, {DType.I64}, "indices")
    data, idx = ctx.input_type(0), ctx.input_type(1)
    b = ctx.attr("batch_dims")
    if data.shape is None or idx.shape is None:
        return [TensorType(data.dtype, None)]
    r, q = len(data.shape), len(idx.shape)
    if r < 1 or q < 1 or not 0 <= b < min(r, q):
        ctx.fail("batch_dims must be smaller than both ranks, which must be >= 1",
                 found=f"batch_dims={b}, data {data}, indices {idx}")
    for i in range(b):
        if not _known_equal(data.shape[i], idx.shape[i]):
            ctx.fail("batch dimensions of data and indices differ", found=f"{data} and {idx}")
    m = idx.shape[-1]
    if not isinstance(m, int):
        return [TensorType(data.dtype, None)]
    if b + m > r:
        ctx.fail("indices address more dimensions than data has",
                 expected=f"last dim of indices <= {r - b}", found=str(idx))
    return [TensorType(data.dtype, tuple(idx.shape[:-1]) + tuple(data.shape[b + m:]))]


@gather_nd.reference
def _(data: np.ndarray, indices: np.ndarray, *, batch_dims: int) -> np.ndarray:
    b, m = batch_dims, indices.shape[-1]
    n_batch = int(np.prod(data.shape[:b], dtype=np.int64))
    n_rows = int(np.prod(indices.shape[b:-1], dtype=np.int64))
    flat = data.reshape((n_batch,) + data.shape[b:])
    idx = _check_indices("GatherND", indices.reshape(n_batch, n_rows, m), data.shape[b:b + m])
    batch = np.arange(n_batch).reshape(n_batch, 1)
    out = flat[(batch,) + tuple(idx[..., j] for j in range(m))]
    return out.reshape(indices.shape[:-1] + data.shape[b + m:])


# ------------------------------------------------------------ ScatterElements
scatter_elements = define("ScatterElements", inputs=["data", "indices", "updates"],
                          outputs=["output"], kind=OPAQUE,
                          attrs={"axis": Attr.int(0), "reduction": Attr.string("none")},
                          doc="GatherElements' inverse: write updates at indices along axis")


@scatter_elements.infer
def _(ctx: InferContext) -> list[TensorType]:
    check_dtype(ctx, 1, INDEX_TYPES, "indices")
    _reduction_attr(ctx)
    data, idx, upd = ctx.input_type(0), ctx.input_type(1), ctx.input_type(2)
    if upd.dtype != data.dtype:
        ctx.fail("updates must have the element type of data", expected=str(data.dtype),
                 found=str(upd.dtype))
    if data.rank is not None:
        if data.rank == 0:
            ctx.fail("data must have rank >= 1", found=str(data))
        norm_axis(ctx, ctx.attr("axis"), data.rank)
    ranks = {t.rank for t in (data, idx, upd) if t.rank is not None}
    if len(ranks) > 1:
        ctx.fail("data, indices and updates must have one rank", found=f"{data}, {idx}, {upd}")
    if idx.shape is not None and upd.shape is not None and not all(
            _known_equal(a, c) for a, c in zip(idx.shape, upd.shape)):
        ctx.fail("indices and updates must have the same shape", found=f"{idx} and {upd}")
    return [TensorType(data.dtype, data.shape)]


@scatter_elements.reference
def _(data: np.ndarray, indices: np.ndarray, updates: np.ndarray, *, axis: int,
      reduction: str) -> np.ndarray:
    axis %= data.ndim
    idx = _check_indices("ScatterElements", indices, data.shape[axis])
    return _scatter(data, _along_axis(idx, axis), updates, reduction, "ScatterElements")


# ------------------------------------------------------------------ ScatterND
scatter_nd = define("ScatterND", inputs=["data", "indices", "updates"], outputs=["output"],
                    kind=OPAQUE, attrs={"reduction": Attr.string("none")},
                    doc="GatherND's inverse: write slices of updates at the rows of indices")


@scatter_nd.infer
def _(ctx: InferContext) -> list[TensorType]:
    check_dtype(ctx, 1, {DType.I64}, "indices")
    _reduction_attr(ctx)
    data, idx, upd = ctx.input_type(0), ctx.input_type(1), ctx.input_type(2)
    if upd.dtype != data.dtype:
        ctx.fail("updates must have the element type of data", expected=str(data.dtype),
                 found=str(upd.dtype))
    if data.shape is not None and idx.shape is not None and isinstance(idx.shape[-1] if idx.shape
                                                                       else None, int):
        m = idx.shape[-1]
        if m > len(data.shape):
            ctx.fail("indices address more dimensions than data has",
                     expected=f"last dim of indices <= {len(data.shape)}", found=str(idx))
        want = tuple(idx.shape[:-1]) + tuple(data.shape[m:])
        if upd.shape is not None and (len(upd.shape) != len(want) or not all(
                _known_equal(a, c) for a, c in zip(upd.shape, want))):
            ctx.fail("updates has the wrong shape", expected=str(TensorType(upd.dtype, want)),
                     found=str(upd))
    return [TensorType(data.dtype, data.shape)]


@scatter_nd.reference
def _(data: np.ndarray, indices: np.ndarray, updates: np.ndarray, *, reduction: str) -> np.ndarray:
    m = indices.shape[-1]
    rows = _check_indices("ScatterND", indices.reshape(-1, m), data.shape[:m])
    upd = updates.reshape((rows.shape[0],) + data.shape[m:])
    return _scatter(data, tuple(rows.T), upd, reduction, "ScatterND")


# -------------------------------------------------------------- TensorScatter
tensor_scatter = define("TensorScatter", inputs=["past_cache", "update", "write_indices?"],
                        outputs=["present_cache"], kind=OPAQUE,
                        attrs={"axis": Attr.int(-2), "mode": Attr.string("linear")},
                        doc="KV-cache update: write update into the cache at per-batch offsets")


@tensor_scatter.infer
def _(ctx: InferContext) -> list[TensorType]:
    past, upd = ctx.input_type(0), ctx.input_type(1)
    if ctx.attr("mode") not in ("linear", "circular"):
        ctx.fail("unknown mode", expected="linear or circular", found=repr(ctx.attr("mode")))
    if upd.dtype != past.dtype:
        ctx.fail("update must have the element type of past_cache", expected=str(past.dtype),
                 found=str(upd.dtype))
    if ctx.has_input(2):
        check_dtype(ctx, 2, {DType.I64}, "write_indices")
    if past.shape is not None and upd.shape is not None:
        if len(past.shape) != len(upd.shape) or len(past.shape) < 2:
            ctx.fail("past_cache and update must have one rank, at least 2", found=f"{past} and {upd}")
        axis = norm_axis(ctx, ctx.attr("axis"), len(past.shape))
        if axis == 0:
            ctx.fail("axis must not be the batch axis 0", found=str(ctx.attr("axis")))
        for i, (p, u) in enumerate(zip(past.shape, upd.shape)):
            if i != axis and not _known_equal(p, u):
                ctx.fail("update differs from past_cache outside the sequence axis",
                         found=f"{past} and {upd}")
    return [TensorType(past.dtype, past.shape)]


@tensor_scatter.reference
def _(past: np.ndarray, update: np.ndarray, write_indices: Optional[np.ndarray] = None, *,
      axis: int, mode: str) -> np.ndarray:
    axis %= past.ndim
    batch, seq, max_seq = past.shape[0], update.shape[axis], past.shape[axis]
    start = np.zeros(batch, np.int64) if write_indices is None else write_indices.astype(np.int64)
    ones = [1] * past.ndim
    pos = start.reshape([batch] + ones[1:]) + np.arange(seq).reshape(
        ones[:axis] + [seq] + ones[axis + 1:])
    if mode == "circular":
        pos = pos % max_seq
    elif pos.size and (pos.min() < 0 or pos.max() >= max_seq):
        raise ExecutionError("TensorScatter: write position past the cache",
                             expected=f"positions < {max_seq}", found=str(int(pos.max())))
    out = past.copy()
    out[_along_axis(np.broadcast_to(pos, update.shape), axis)] = update
    return out


# --------------------------------------------------------------------- OneHot
one_hot = define("OneHot", inputs=["indices", "depth", "values"], outputs=["output"],
                 kind=INJECTIVE, attrs={"axis": Attr.int(-1)}, static_inputs=["depth"],
                 doc="values[1] where the new axis equals the index, values[0] elsewhere")


@one_hot.infer
def _(ctx: InferContext) -> list[TensorType]:
    check_dtype(ctx, 0, NUMERIC_TYPES, "indices")
    check_dtype(ctx, 1, NUMERIC_TYPES, "depth")
    idx, vals = ctx.input_type(0), ctx.input_type(2)
    if vals.shape is not None and (len(vals.shape) != 1 or not _known_equal(vals.shape[0], 2)):
        ctx.fail("values must be a 1-D tensor [off_value, on_value]", found=str(vals))
    depth_t = ctx.input_type(1)
    if depth_t.is_static and depth_t.numel != 1:
        ctx.fail("depth must be a scalar", found=str(depth_t))
    depth: Dim = None
    c = ctx.const(1)
    if c is not None:
        depth = int(widen(np.asarray(c)).reshape(-1)[0])
        if depth < 1:
            ctx.fail("depth must be positive", found=str(depth))
    if idx.shape is None:
        return [TensorType(vals.dtype, None)]
    r = len(idx.shape)
    axis = norm_axis(ctx, ctx.attr("axis"), r + 1)
    return [TensorType(vals.dtype, idx.shape[:axis] + (depth,) + idx.shape[axis:])]


@one_hot.reference
def _(indices: np.ndarray, depth: np.ndarray, values: np.ndarray, *, axis: int) -> np.ndarray:
    n = int(widen(np.asarray(depth)).reshape(-1)[0])
    idx = widen(indices).astype(np.int64)
    idx = np.where(idx < 0, idx + n, idx)  # outside [-n, n) stays outside: all off_value
    hot = idx[..., None] == np.arange(n)
    hot = np.moveaxis(hot, -1, axis % (indices.ndim + 1))
    return np.where(hot, values[1], values[0]).astype(values.dtype)


# ------------------------------------------------------------------- Compress
compress = define("Compress", inputs=["input", "condition"], outputs=["output"], kind=OPAQUE,
                  attrs={"axis": Attr.int(None)}, static_inputs=["condition"],  # it decides the shape
                  doc="numpy.compress: keep the slices where condition is true")


@compress.infer
def _(ctx: InferContext) -> list[TensorType]:
    check_dtype(ctx, 1, {DType.BOOL}, "condition")
    x, cond = ctx.input_type(0), ctx.input_type(1)
    if cond.rank not in (None, 1):
        ctx.fail("condition must be 1-D", found=str(cond))
    axis = ctx.attr("axis")
    c = ctx.const(1)
    if axis is None:
        n = prod(x.shape) if x.shape is not None else None
        kept = None if c is None or n is None else int(np.count_nonzero(c[:n]))
        return [TensorType(x.dtype, (kept,))]
    if x.shape is None:
        return [TensorType(x.dtype, None)]
    if not x.shape:
        ctx.fail("input must have rank >= 1 when axis is given", found=str(x))
    axis = norm_axis(ctx, axis, len(x.shape))
    dim = x.shape[axis]
    kept = None if c is None or not isinstance(dim, int) else int(np.count_nonzero(c[:dim]))
    return [TensorType(x.dtype, x.shape[:axis] + (kept,) + x.shape[axis + 1:])]


@compress.reference
def _(x: np.ndarray, condition: np.ndarray, *, axis: Optional[int]) -> np.ndarray:
    if axis is None:
        x, axis = x.reshape(-1), 0
    axis %= x.ndim
    cond = np.asarray(condition, bool).reshape(-1)[:x.shape[axis]]
    return np.compress(cond, x, axis=axis)


# -------------------------------------------------------------------- NonZero
nonzero = define("NonZero", inputs=["X"], outputs=["Y"], kind=OPAQUE,
                 doc="indices of the non-zero elements, int64 of shape [rank, count]")


@nonzero.infer
def _(ctx: InferContext) -> list[TensorType]:
    x = ctx.input_type(0)
    if x.dtype is DType.STR:
        ctx.fail("needs a numeric or bool input", found=str(x))
    c = ctx.const(0)
    count = None if c is None else int(np.count_nonzero(widen(np.asarray(c))))
    return [TensorType(DType.I64, (None if x.rank is None else max(x.rank, 1), count))]


@nonzero.reference
def _(x: np.ndarray) -> np.ndarray:
    # A scalar counts as a one-element vector, as in onnxruntime: shape [1, count].
    return np.array(np.nonzero(np.atleast_1d(widen(x))), dtype=np.int64).reshape(max(x.ndim, 1), -1)


# ------------------------------------------------------------ ReverseSequence
reverse_sequence = define("ReverseSequence", inputs=["input", "sequence_lens"], outputs=["Y"],
                          kind=INJECTIVE, attrs={"batch_axis": Attr.int(1), "time_axis": Attr.int(0)},
                          doc="reverse the first sequence_lens[b] time steps of each batch entry")


@reverse_sequence.infer
def _(ctx: InferContext) -> list[TensorType]:
    check_dtype(ctx, 1, {DType.I64}, "sequence_lens")
    x, lens = ctx.input_type(0), ctx.input_type(1)
    b, t = ctx.attr("batch_axis"), ctx.attr("time_axis")
    if {b, t} != {0, 1}:
        ctx.fail("batch_axis and time_axis must be 0 and 1, in either order",
                 found=f"batch_axis={b}, time_axis={t}")
    if x.rank is not None and x.rank < 2:
        ctx.fail("input must have rank >= 2", found=str(x))
    if lens.rank not in (None, 1):
        ctx.fail("sequence_lens must be 1-D", found=str(lens))
    if x.shape is not None and lens.shape is not None and not _known_equal(x.shape[b], lens.shape[0]):
        ctx.fail("sequence_lens needs one length per batch entry",
                 expected=f"{x.shape[b]} lengths", found=str(lens))
    return [TensorType(x.dtype, x.shape)]


@reverse_sequence.reference
def _(x: np.ndarray, lens: np.ndarray, *, batch_axis: int, time_axis: int) -> np.ndarray:
    steps = x.shape[time_axis]
    lens = lens.astype(np.int64).reshape(-1, 1)
    if np.any((lens < 0) | (lens > steps)):
        raise ExecutionError("ReverseSequence: sequence length out of range",
                             expected=f"in [0, {steps}]", found=str(lens.reshape(-1).tolist()))
    t = np.arange(steps)
    src = np.where(t < lens, lens - 1 - t, t)  # [batch, time]: the step each output reads
    xb = np.moveaxis(x, (batch_axis, time_axis), (0, 1))
    src = src.reshape(src.shape + (1,) * (x.ndim - 2))
    out = np.take_along_axis(xb, np.broadcast_to(src, xb.shape), axis=1)
    return np.moveaxis(out, (0, 1), (batch_axis, time_axis))


# --------------------------------------------------------------------- Unique
unique = define("Unique", inputs=["X"], outputs=["Y", "indices?", "inverse_indices?", "counts?"],
                kind=OPAQUE, attrs={"axis": Attr.int(None), "sorted": Attr.int(1)},
                doc="numpy.unique, optionally in order of first occurrence")


@unique.infer
def _(ctx: InferContext) -> list[TensorType]:
    x = ctx.input_type(0)
    axis = ctx.attr("axis")
    if axis is None:
        y: Shape = (None,)
        n = prod(x.shape) if x.shape is not None else None
    elif x.shape is None:
        y, n = None, None
    else:
        if not x.shape:
            ctx.fail("input must have rank >= 1 when axis is given", found=str(x))
        axis = norm_axis(ctx, axis, len(x.shape))
        y = x.shape[:axis] + (None,) + x.shape[axis + 1:]
        n = x.shape[axis]
    i64 = DType.I64
    return [TensorType(x.dtype, y), TensorType(i64, (None,)), TensorType(i64, (n,)),
            TensorType(i64, (None,))]


@unique.reference
def _(x: np.ndarray, *, axis: Optional[int], sorted: int) -> tuple:
    if axis is None:
        x, axis = x.reshape(-1), 0
    axis %= x.ndim
    # Find the unique slices on a widened copy (bfloat16 & co sort as float32),
    # then take Y from x itself at the first occurrences: exact for every type.
    # (1-D input goes without axis: NumPy's axis mode rejects object/string arrays.)
    _, first, inverse, counts = np.unique(widen(x), return_index=True, return_inverse=True,
                                          return_counts=True, axis=axis if x.ndim > 1 else None)
    inverse = inverse.reshape(-1)
    if not sorted:
        order = np.argsort(first, kind="stable")
        rank = np.empty_like(order)
        rank[order] = np.arange(order.size)
        first, counts, inverse = first[order], counts[order], rank[inverse]
    i64 = np.int64
    return (np.take(x, first, axis=axis), first.astype(i64), inverse.astype(i64),
            counts.astype(i64))
