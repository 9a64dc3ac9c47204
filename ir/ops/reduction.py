"""Reductions (ReduceSum & co), ArgMax/ArgMin, TopK and the cumulative ops.

The canonical reductions take ``axes`` as an optional input (opset 18 form;
ReduceSum since 13) with ``keepdims`` and ``noop_with_empty_axes``
attributes; the older attribute forms are rewritten on import.  Each
reduction is ``post(reduce(pre(x)))``: ReduceL2 is ``sqrt(sum(x*x))``,
ReduceLogSumExp ``log(sum(exp(x)))``...  With ``noop_with_empty_axes`` and no
axes the reduction step is skipped but ``pre``/``post`` still apply, which is
what onnxruntime does (ReduceSumSquare then squares its input).

Results follow onnxruntime on the corner cases: an empty reduction gives the
identity of the reduction (0 for sums, 1 for products, -inf or the type's
minimum for max, 0 for mean), integer results of float-valued formulas
(mean, L2, log) are truncated toward zero.
"""

from __future__ import annotations

from typing import Any, Callable, Optional

import numpy as np

from ..dtypes import DType
from ..errors import ExecutionError
from ..registry import REDUCTION, Attr, InferContext, define
from ..types import Shape, TensorType
from ._common import check_dtype, widen

# Types whose arithmetic NumPy (or ml_dtypes via float32) handles.
FLOATS = frozenset({DType.F16, DType.F32, DType.F64, DType.BF16})
INTS = frozenset({DType.I8, DType.I16, DType.I32, DType.I64,
                  DType.U8, DType.U16, DType.U32, DType.U64})
NUMERIC = FLOATS | INTS
INDEX_TYPES = frozenset({DType.I32, DType.I64})


# --------------------------------------------------------------- axis helpers
def norm_axis(ctx: InferContext, axis: int, rank: int, what: str = "axis") -> int:
    """``axis`` mapped into ``[0, rank)``, failing with the node named."""
    if not -rank <= axis < rank:
        ctx.fail(f"{what} is out of range for a rank-{rank} input",
                 expected=f"a value in [{-rank}, {rank - 1}]", found=str(axis))
    return axis % rank if rank else 0


def runtime_axes(axes: np.ndarray, rank: int, op: str) -> tuple[int, ...]:
    """Normalized axes read from a runtime tensor (the type rule could not check them)."""
    out = []
    for a in np.asarray(axes).reshape(-1).tolist():
        if not -rank <= a < rank:
            raise ExecutionError(f"{op}: axis out of range", expected=f"in [{-rank}, {rank - 1}]",
                                 found=str(a))
        out.append(a % rank)
    if len(set(out)) != len(out):
        raise ExecutionError(f"{op}: axes repeat", found=str(np.asarray(axes).tolist()))
    return tuple(out)


def scalar_input(ctx: InferContext, i: int, what: str) -> Optional[int]:
    """The value of a constant one-element integer input (axis, K...), else None."""
    check_dtype(ctx, i, INDEX_TYPES, what)
    t = ctx.input_type(i)
    if t.shape is not None and (len(t.shape) > 1 or (t.is_static and t.numel != 1)):
        ctx.fail(f"{what} must be a scalar or a one-element 1-D tensor", found=str(t))
    c = ctx.const(i)
    return None if c is None else int(np.asarray(c).reshape(-1)[0])


# ----------------------------------------------------------------- reductions
def _reduced_shape(ctx: InferContext) -> Shape:
    """Output shape of a reduction, as precise as the axes input allows."""
    shape = ctx.shape(0)
    keep = bool(ctx.attr("keepdims"))
    noop = bool(ctx.attr("noop_with_empty_axes"))
    axes: Optional[list[int]] = []
    if ctx.has_input(1):
        check_dtype(ctx, 1, INDEX_TYPES, "axes")
        at = ctx.input_type(1)
        if at.rank not in (None, 1):
            ctx.fail("axes must be a 1-D tensor", found=str(at))
        c = ctx.const(1)
        axes = None if c is None else [int(a) for a in np.asarray(c).reshape(-1)]
    if axes is None:  # runtime axes: the rank is all we may know
        if shape is None:
            return None
        n = None if ctx.input_type(1).shape is None else ctx.input_type(1).shape[0]
        if n == 0:  # empty axes: reduce all, or nothing with noop_with_empty_axes
            return tuple(shape) if noop else ((1,) * len(shape) if keep else ())
        if isinstance(n, int) and n > len(shape):
            ctx.fail("more axes than the input has dimensions", found=f"{n} axes for {ctx.input_type(0)}")
        if keep:
            return (None,) * len(shape)
        return None if not isinstance(n, int) else (None,) * (len(shape) - n)
    if not axes:
        if noop:
            return shape
        if shape is None:
            return None if keep else ()
        axes = list(range(len(shape)))
    if shape is None:
        return None
    norm = [norm_axis(ctx, a, len(shape), "reduction axis") for a in axes]
    if len(set(norm)) != len(norm):
        ctx.fail("reduction axes repeat", found=str(axes))
    if keep:
        return tuple(1 if i in norm else d for i, d in enumerate(shape))
    return tuple(d for i, d in enumerate(shape) if i not in norm)


def _trunc_div(num: np.ndarray, den: int) -> np.ndarray:
    """Integer division rounding toward zero (C semantics, as onnxruntime)."""
    if den == 0:
        return np.zeros_like(num)
    q = np.abs(num) // den
    return np.where(num < 0, -q, q)


def _sum(x: np.ndarray, axes: tuple, keep: bool) -> np.ndarray:
    # dtype=x.dtype: integers accumulate in their own type (NumPy would widen int32).
    return np.sum(x, axis=axes, keepdims=keep, dtype=x.dtype)


def _logsumexp(x: np.ndarray, axes: tuple, keep: bool, int_terms: bool = False) -> np.ndarray:
    """log(sum(exp(x))) shifted by the max so large inputs do not overflow.

    ``int_terms`` truncates each ``exp(x - max)`` to an integer, as
    onnxruntime's integer kernel accumulates them in the input type.
    """
    m = np.max(x, axis=axes, keepdims=True, initial=-np.inf)
    m = np.where(np.isfinite(m), m, 0)
    terms = np.exp(x - m)
    if int_terms:
        terms = np.trunc(terms)
    s = np.log(np.sum(terms, axis=axes, keepdims=True)) + m
    return s if keep else np.squeeze(s, axis=axes)


def _extreme(fn: Callable, x: np.ndarray, axes: tuple, keep: bool, largest: bool) -> np.ndarray:
    """Max/min with the identity of the type for empty reductions."""
    if x.dtype == np.bool_:
        init: Any = not largest
    elif x.dtype.kind == "f":
        init = -np.inf if largest else np.inf
    else:
        info = np.iinfo(x.dtype)
        init = info.min if largest else info.max
    return fn(x, axis=axes, keepdims=keep, initial=init)


def _mean(x: np.ndarray, axes: tuple, keep: bool) -> np.ndarray:
    count = int(np.prod([x.shape[a] for a in axes]))
    if x.dtype.kind in "iu":
        acc = np.int64 if x.dtype.kind == "i" else np.uint64
        return _trunc_div(np.sum(x, axis=axes, keepdims=keep, dtype=acc), count)
    total = np.sum(x, axis=axes, keepdims=keep)
    return total / count if count else total  # an empty mean is 0, as in onnxruntime


# name -> (pre, reduce, post, float_only_formula).  ``float_only_formula``
# reductions are computed in float64 for integer inputs, then truncated.
_REDUCTIONS: dict[str, tuple[Optional[Callable], Callable, Optional[Callable], bool]] = {
    "ReduceSum": (None, _sum, None, False),
    "ReduceSumSquare": (np.square, _sum, None, False),
    "ReduceL1": (np.abs, _sum, None, False),
    "ReduceL2": (np.square, _sum, np.sqrt, True),
    "ReduceLogSum": (None, _sum, np.log, True),
    "ReduceLogSumExp": (None, _logsumexp, None, True),
    "ReduceMean": (None, _mean, None, False),
    "ReduceProd": (None, lambda x, a, k: np.prod(x, axis=a, keepdims=k, dtype=x.dtype), None, False),
    "ReduceMax": (None, lambda x, a, k: _extreme(np.max, x, a, k, True), None, False),
    "ReduceMin": (None, lambda x, a, k: _extreme(np.min, x, a, k, False), None, False),
}


def _define_reduction(name: str) -> None:
    pre, reduce, post, float_formula = _REDUCTIONS[name]
    allowed = NUMERIC | ({DType.BOOL} if name in ("ReduceMax", "ReduceMin") else set())
    schema = define(name, inputs=["data", "axes?"], outputs=["reduced"], kind=REDUCTION,
                    attrs={"keepdims": Attr.int(1), "noop_with_empty_axes": Attr.int(0)},
                    static_inputs=["axes"],
                    doc="axes as an input (opset 18 form); empty axes reduce everything "
                        "unless noop_with_empty_axes")

    @schema.infer
    def _(ctx: InferContext) -> list[TensorType]:
        dt = check_dtype(ctx, 0, allowed, "data")
        return [TensorType(dt, _reduced_shape(ctx))]

    @schema.reference
    def _(x: np.ndarray, axes: Optional[np.ndarray] = None, *, keepdims: int,
          noop_with_empty_axes: int) -> np.ndarray:
        if axes is None or np.asarray(axes).size == 0:
            ax: tuple = () if noop_with_empty_axes else tuple(range(x.ndim))
        else:
            ax = runtime_axes(axes, x.ndim, name)
        if x.dtype.kind in "iu" and float_formula:
            work = x.astype(np.float64)
        elif x.dtype.kind in "iub":
            work = x
        else:
            work = widen(x) if x.dtype != np.float16 else x.astype(np.float32)
        if pre is not None:
            work = pre(work)
        if reduce is _logsumexp and x.dtype.kind in "iu":
            y = _logsumexp(work, ax, bool(keepdims), int_terms=True)
        else:
            y = reduce(work, ax, bool(keepdims))
        if post is not None:
            y = post(y)
        return np.asarray(y).astype(x.dtype)


for _name in _REDUCTIONS:
    _define_reduction(_name)


# -------------------------------------------------------------- ArgMax/ArgMin
def _define_arg(name: str, largest: bool) -> None:
    schema = define(name, inputs=["data"], outputs=["reduced"], kind=REDUCTION,
                    attrs={"axis": Attr.int(0), "keepdims": Attr.int(1),
                           "select_last_index": Attr.int(0)},
                    doc="index (int64) of the first, or last, extreme value along axis")

    @schema.infer
    def _(ctx: InferContext) -> list[TensorType]:
        check_dtype(ctx, 0, NUMERIC, "data")
        shape = ctx.shape(0)
        if shape is None:
            return [TensorType(DType.I64, None)]
        if len(shape) == 0:
            ctx.fail("needs an input of rank >= 1", found=str(ctx.input_type(0)))
        axis = norm_axis(ctx, ctx.attr("axis"), len(shape))
        if ctx.attr("keepdims"):
            out = tuple(1 if i == axis else d for i, d in enumerate(shape))
        else:
            out = tuple(d for i, d in enumerate(shape) if i != axis)
        return [TensorType(DType.I64, out)]

    @schema.reference
    def _(x: np.ndarray, *, axis: int, keepdims: int, select_last_index: int) -> np.ndarray:
        axis %= x.ndim
        if x.shape[axis] == 0:
            raise ExecutionError(f"{name} over an empty axis", found=f"shape {list(x.shape)}")
        fn = np.argmax if largest else np.argmin
        w = widen(x)
        if select_last_index:
            idx = x.shape[axis] - 1 - fn(np.flip(w, axis), axis=axis)
        else:
            idx = fn(w, axis=axis)
        idx = idx.astype(np.int64)
        return np.expand_dims(idx, axis) if keepdims else idx


_define_arg("ArgMax", True)
_define_arg("ArgMin", False)


# ----------------------------------------------------------------------- TopK
topk = define("TopK", inputs=["X", "K"], outputs=["Values", "Indices"], kind=REDUCTION,
              attrs={"axis": Attr.int(-1), "largest": Attr.int(1), "sorted": Attr.int(1)},
              static_inputs=["K"],
              doc="k largest (or smallest) along axis; ties go to the lower index")


@topk.infer
def _(ctx: InferContext) -> list[TensorType]:
    dt = check_dtype(ctx, 0, NUMERIC, "X")
    k = scalar_input(ctx, 1, "K")
    shape = ctx.shape(0)
    if k is not None and k < 0:
        ctx.fail("K must not be negative", found=str(k))
    if shape is None:
        return [TensorType(dt, None), TensorType(DType.I64, None)]
    if not shape:
        ctx.fail("needs an input of rank >= 1", found=str(ctx.input_type(0)))
    axis = norm_axis(ctx, ctx.attr("axis"), len(shape))
    if k is not None and isinstance(shape[axis], int) and k > shape[axis]:
        ctx.fail("K is larger than the axis", expected=f"K <= {shape[axis]}", found=str(k))
    out = tuple(k if i == axis else d for i, d in enumerate(shape))
    return [TensorType(dt, out), TensorType(DType.I64, out)]


def topk_indices(x: np.ndarray, k: int, axis: int, largest: bool) -> np.ndarray:
    """Indices of the k extreme values along ``axis``, equal values in index order."""
    if largest:
        # A stable ascending sort of the flipped array, read backwards, sorts
        # descending while keeping equal values in ascending original order.
        n = x.shape[axis]
        order = np.flip(np.argsort(np.flip(x, axis), axis=axis, kind="stable"), axis)
        order = n - 1 - order
    else:
        order = np.argsort(x, axis=axis, kind="stable")
    return np.take(order, np.arange(k), axis=axis)


@topk.reference
def _(x: np.ndarray, k: np.ndarray, *, axis: int, largest: int, sorted: int) -> tuple:
    axis %= x.ndim
    kk = int(np.asarray(k).reshape(-1)[0])
    if not 0 <= kk <= x.shape[axis]:
        raise ExecutionError("TopK: K out of range", expected=f"in [0, {x.shape[axis]}]",
                             found=str(kk))
    idx = topk_indices(widen(x), kk, axis, bool(largest)).astype(np.int64)
    return np.take_along_axis(x, idx, axis), idx


# ---------------------------------------------------------- CumSum / CumProd
def _define_cumulative(name: str, ufunc: np.ufunc, identity: int) -> None:
    schema = define(name, inputs=["x", "axis"], outputs=["y"], kind=REDUCTION,
                    attrs={"exclusive": Attr.int(0), "reverse": Attr.int(0)},
                    static_inputs=["axis"],
                    doc=f"running {ufunc.__name__} along axis; exclusive starts from {identity}")

    @schema.infer
    def _(ctx: InferContext) -> list[TensorType]:
        dt = check_dtype(ctx, 0, NUMERIC, "x")
        axis = scalar_input(ctx, 1, "axis")
        t = ctx.input_type(0)
        if axis is not None and t.rank is not None:
            norm_axis(ctx, axis, max(t.rank, 1))
        return [TensorType(dt, t.shape)]

    @schema.reference
    def _(x: np.ndarray, axis: np.ndarray, *, exclusive: int, reverse: int) -> np.ndarray:
        ax = runtime_axes(np.asarray(axis).reshape(-1)[:1], max(x.ndim, 1), name)[0]
        if x.ndim == 0:
            return x.copy()
        w = widen(x) if x.dtype.kind not in "iu" else x
        if reverse:
            w = np.flip(w, ax)
        y = ufunc.accumulate(w, axis=ax, dtype=w.dtype)
        if exclusive and y.shape[ax]:
            # Shift by one along the axis, the identity coming in first.
            first = np.full_like(np.take(y, [0], axis=ax), identity)
            y = np.concatenate([first, np.delete(y, -1, axis=ax)], axis=ax)
        if reverse:
            y = np.flip(y, ax)
        return y.astype(x.dtype)


_define_cumulative("CumSum", np.add, 0)
_define_cumulative("CumProd", np.multiply, 1)
