"""Normalizations and the softmax family.

BatchNormalization, InstanceNormalization, LayerNormalization,
GroupNormalization, RMSNormalization, LRN, LpNormalization,
MeanVarianceNormalization, Softmax, LogSoftmax, Hardmax.

Statistics are computed in float32 (float64 for float64 inputs) whatever the
input type, like onnxruntime and the ``stash_type`` attribute of the newer
ops; the result is rounded to the input type at the end.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Optional

import numpy as np

from ..dtypes import DType
from ..registry import ELEMENTWISE, REDUCTION, Attr, InferContext, OpSchema, define
from ..shapes import broadcast_shapes
from ..types import Dim, TensorType
from ._common import FLOAT_TYPES, check_dtype

_FLOATS = frozenset({DType.F16, DType.F32, DType.F64, DType.BF16})
_STASH_TYPES = {1: DType.F32, 10: DType.F16, 11: DType.F64, 16: DType.BF16}


def stage_type(x: np.ndarray) -> np.dtype:
    """The type statistics are computed in: float64 for float64 input, else float32."""
    return np.dtype(np.float64) if x.dtype == np.float64 else np.dtype(np.float32)


def norm_axis(ctx: InferContext, axis: int, rank: int, what: str = "axis") -> int:
    """``axis`` mapped into [0, rank), or a clear type error."""
    if not -rank <= axis < rank:
        ctx.fail(f"{what} out of range", expected=f"in [{-rank}, {rank}) for rank {rank}",
                 found=str(axis))
    return axis + rank if axis < 0 else axis


def _known_clash(a: Dim, b: Dim) -> bool:
    return isinstance(a, int) and isinstance(b, int) and a != b


def _check_channel_params(ctx: InferContext, indices: Sequence[int], channels: Dim,
                          names: Sequence[str]) -> None:
    """Each per-channel parameter must be a vector of length C."""
    for i, name in zip(indices, names):
        if not ctx.has_input(i):
            continue
        check_dtype(ctx, i, _FLOATS, name)
        s = ctx.shape(i)
        if s is not None and (len(s) != 1 or _known_clash(s[0], channels)):
            ctx.fail(f"{name} must be a vector with one value per channel",
                     expected=f"shape [{channels if channels is not None else 'C'}]",
                     found=str(ctx.input_type(i)))


def _channels_first(ctx: InferContext, min_rank: int = 2) -> tuple[DType, Dim]:
    """X's dtype and channel count for (N, C, D1, ...) inputs."""
    dt = check_dtype(ctx, 0, _FLOATS, "X")
    s = ctx.shape(0)
    if s is None:
        return dt, None
    if len(s) < min_rank:
        ctx.fail("input must have a batch and a channel axis", expected=f"rank >= {min_rank} "
                 "(N, C, D1, ...)", found=str(ctx.input_type(0)))
    return dt, s[1]


def _per_channel(v: np.ndarray, rank: int) -> np.ndarray:
    """A (C,) vector shaped to broadcast along axis 1 of a rank-``rank`` tensor."""
    return v.reshape((1, -1) + (1,) * (rank - 2))


# ------------------------------------------------------- BatchNormalization
batch_norm = define(
    "BatchNormalization", inputs=["X", "scale", "B", "input_mean", "input_var"],
    outputs=["Y", "running_mean?", "running_var?"], kind=ELEMENTWISE,
    attrs={"epsilon": Attr.float(1e-5), "momentum": Attr.float(0.9), "training_mode": Attr.int(0)},
    doc="Per-channel affine normalization along axis 1.  With training_mode=1 the batch "
        "statistics are used and the running statistics are returned as outputs 1 and 2.")


@batch_norm.infer
def _(ctx: InferContext) -> list[TensorType]:
    dt, c = _channels_first(ctx)
    _check_channel_params(ctx, [1, 2, 3, 4], c, ["scale", "B", "input_mean", "input_var"])
    if ctx.dtype(1) != ctx.dtype(2) or ctx.dtype(3) != ctx.dtype(4):
        ctx.fail("scale and B, and input_mean and input_var, must share element types",
                 found=", ".join(ctx.dtype(i).short for i in range(1, 5)))
    out = [TensorType(dt, ctx.shape(0))]
    if ctx.num_outputs > 1:
        if not ctx.attr("training_mode"):
            ctx.fail("running_mean and running_var outputs need training_mode=1",
                     found=f"{ctx.num_outputs} outputs with training_mode=0")
        out += [TensorType(ctx.dtype(3), (c,))] * (ctx.num_outputs - 1)
    return out


@batch_norm.reference
def _(x: np.ndarray, scale: np.ndarray, b: np.ndarray, mean: np.ndarray, var: np.ndarray, *,
      epsilon: float, momentum: float, training_mode: int) -> Any:
    ct = stage_type(x)
    xs = x.astype(ct, copy=False)
    batch_mean, batch_var = mean.astype(ct), var.astype(ct)
    if training_mode:
        axes = (0,) + tuple(range(2, x.ndim))
        batch_mean = xs.mean(axis=axes)
        batch_var = xs.var(axis=axes)
    # Folded into one multiply-add per element, as onnxruntime does.
    a = scale.astype(ct) / np.sqrt(batch_var + ct.type(epsilon))
    shift = b.astype(ct) - batch_mean * a
    y = (xs * _per_channel(a, x.ndim) + _per_channel(shift, x.ndim)).astype(x.dtype, copy=False)
    if not training_mode:
        return y
    running_mean = mean.astype(ct) * momentum + batch_mean * (1 - momentum)
    running_var = var.astype(ct) * momentum + batch_var * (1 - momentum)
    return y, running_mean.astype(mean.dtype), running_var.astype(var.dtype)


# ---------------------------------------------------- InstanceNormalization
instance_norm = define("InstanceNormalization", inputs=["input", "scale", "B"], outputs=["output"],
                       kind=REDUCTION, attrs={"epsilon": Attr.float(1e-5)},
                       doc="Normalizes each (n, c) slice over its spatial dims.")


@instance_norm.infer
def _(ctx: InferContext) -> list[TensorType]:
    dt, c = _channels_first(ctx, min_rank=3)
    _check_channel_params(ctx, [1, 2], c, ["scale", "B"])
    return [TensorType(dt, ctx.shape(0))]


@instance_norm.reference
def _(x: np.ndarray, scale: np.ndarray, b: np.ndarray, *, epsilon: float) -> np.ndarray:
    ct = stage_type(x)
    xs = x.astype(ct, copy=False)
    axes = tuple(range(2, x.ndim))
    mean = xs.mean(axis=axes, keepdims=True)
    centered = xs - mean
    var = np.mean(centered * centered, axis=axes, keepdims=True)
    y = centered / np.sqrt(var + ct.type(epsilon))
    y = y * _per_channel(scale.astype(ct), x.ndim) + _per_channel(b.astype(ct), x.ndim)
    return y.astype(x.dtype, copy=False)


# ------------------------------------------------------- LayerNormalization
layer_norm = define(
    "LayerNormalization", inputs=["X", "Scale", "B?"], outputs=["Y", "Mean?", "InvStdDev?"],
    kind=REDUCTION, attrs={"axis": Attr.int(-1), "epsilon": Attr.float(1e-5),
                           "stash_type": Attr.int(1)},
    doc="Normalizes over the dims from `axis` on; Mean and InvStdDev are in stash_type.")


def _stash_dtype(ctx: InferContext) -> DType:
    st = ctx.attr("stash_type")
    if st not in (1, 16):  # the ONNX schema allows float and bfloat16
        ctx.fail("unsupported stash_type", expected="1 (float) or 16 (bfloat16)", found=str(st))
    return _STASH_TYPES[st]


def _check_scale(ctx: InferContext, i: int, name: str, same_type: bool = True) -> None:
    """Scale/bias inputs broadcast unidirectionally to X."""
    if not ctx.has_input(i):
        return
    check_dtype(ctx, i, _FLOATS, name)
    if same_type and ctx.dtype(i) != ctx.dtype(0):
        ctx.fail(f"{name} must have X's element type", expected=ctx.dtype(0).short,
                 found=ctx.dtype(i).short)
    xs, ss = ctx.shape(0), ctx.shape(i)
    if xs is None or ss is None:
        return
    try:
        ok = len(ss) <= len(xs) and broadcast_shapes(xs, ss) is not None and \
            not any(_known_clash(a, b) and b != 1 for a, b in zip(xs[::-1], ss[::-1]))
    except Exception:
        ok = False
    if not ok:
        ctx.fail(f"{name} must broadcast to X", expected=f"a shape broadcastable to {ctx.input_type(0)}",
                 found=str(ctx.input_type(i)))


@layer_norm.infer
def _(ctx: InferContext) -> list[TensorType]:
    dt = check_dtype(ctx, 0, _FLOATS, "X")
    _check_scale(ctx, 1, "Scale")
    _check_scale(ctx, 2, "B")
    stash = _stash_dtype(ctx)
    s = ctx.shape(0)
    out = [TensorType(dt, s)]
    if ctx.num_outputs > 1:
        stat_shape = None
        if s is not None:
            axis = norm_axis(ctx, ctx.attr("axis"), len(s))
            stat_shape = tuple(s[:axis]) + (1,) * (len(s) - axis)
        out += [TensorType(stash, stat_shape)] * (ctx.num_outputs - 1)
    elif s is not None:
        norm_axis(ctx, ctx.attr("axis"), len(s))
    return out


@layer_norm.reference
def _(x: np.ndarray, scale: np.ndarray, b: Optional[np.ndarray] = None, *, axis: int, epsilon: float,
      stash_type: int) -> Any:
    ct = stage_type(x)
    xs = x.astype(ct, copy=False)
    axes = tuple(range(axis % x.ndim, x.ndim)) if x.ndim else ()
    mean = xs.mean(axis=axes, keepdims=True)
    centered = xs - mean
    inv_std = 1 / np.sqrt(np.mean(centered * centered, axis=axes, keepdims=True) + ct.type(epsilon))
    # Stage two (the affine part) runs in X's type, as the ONNX function does.
    normalized = (centered * inv_std).astype(x.dtype)
    y = _affine(normalized, scale, b)
    stash = _STASH_TYPES[stash_type].np
    return y, mean.astype(stash), inv_std.astype(stash)


def _affine(normalized: np.ndarray, scale: np.ndarray, b: Optional[np.ndarray]) -> np.ndarray:
    """``normalized * scale + b`` rounded as in the tensors' own type."""
    dt = scale.dtype
    if dt.kind == "V" or dt not in (np.float16, np.float32, np.float64):  # bfloat16
        y = (normalized.astype(np.float32) * scale.astype(np.float32)).astype(dt)
        if b is not None:
            y = (y.astype(np.float32) + b.astype(np.float32)).astype(dt)
        return y
    y = normalized.astype(dt, copy=False) * scale
    return y + b if b is not None else y


# ------------------------------------------------------- GroupNormalization
group_norm = define(
    "GroupNormalization", inputs=["X", "scale", "bias"], outputs=["Y"], kind=REDUCTION,
    attrs={"num_groups": Attr.int(required=True), "epsilon": Attr.float(1e-5),
           "stash_type": Attr.int(1)},
    doc="Normalizes groups of channels per instance; scale and bias are per channel (opset 21).")


@group_norm.infer
def _(ctx: InferContext) -> list[TensorType]:
    dt, c = _channels_first(ctx)
    g = ctx.attr("num_groups")
    if not isinstance(g, int) or g < 1 or (isinstance(c, int) and c % g):
        ctx.fail("num_groups must divide the channel count", expected=f"a divisor of C={c}",
                 found=str(g))
    _check_channel_params(ctx, [1, 2], c, ["scale", "bias"])
    for i in (1, 2):
        if ctx.dtype(i) != dt:
            ctx.fail("scale and bias must have X's element type", expected=dt.short,
                     found=ctx.dtype(i).short)
    return [TensorType(dt, ctx.shape(0))]


@group_norm.reference
def _(x: np.ndarray, scale: np.ndarray, bias: np.ndarray, *, num_groups: int, epsilon: float,
      stash_type: int) -> np.ndarray:
    ct = stage_type(x)
    n, c = x.shape[:2]
    grouped = x.astype(ct, copy=False).reshape(n, num_groups, -1)
    mean = grouped.mean(axis=2, keepdims=True)
    centered = grouped - mean
    var = np.mean(centered * centered, axis=2, keepdims=True)
    normalized = (centered / np.sqrt(var + ct.type(epsilon))).reshape(x.shape).astype(x.dtype)
    return _affine(normalized, _per_channel(scale, x.ndim), _per_channel(bias, x.ndim))


# --------------------------------------------------------- RMSNormalization
rms_norm = define(
    "RMSNormalization", inputs=["X", "scale"], outputs=["Y"], kind=REDUCTION,
    attrs={"axis": Attr.int(-1), "epsilon": Attr.float(1e-5), "stash_type": Attr.int(1)},
    doc="X / sqrt(mean(X^2 over the dims from `axis` on) + epsilon) * scale.")


@rms_norm.infer
def _(ctx: InferContext) -> list[TensorType]:
    check_dtype(ctx, 0, _FLOATS, "X")
    _check_scale(ctx, 1, "scale", same_type=False)
    _stash_dtype(ctx)
    s = ctx.shape(0)
    if s is not None:
        norm_axis(ctx, ctx.attr("axis"), len(s))
    return [TensorType(ctx.dtype(1), s)]


@rms_norm.reference
def _(x: np.ndarray, scale: np.ndarray, *, axis: int, epsilon: float, stash_type: int) -> np.ndarray:
    ct = stage_type(x)
    xs = x.astype(ct, copy=False)
    axes = tuple(range(axis % x.ndim, x.ndim)) if x.ndim else ()
    rms = np.sqrt(np.mean(xs * xs, axis=axes, keepdims=True) + ct.type(epsilon))
    normalized = (xs / rms).astype(x.dtype)
    return _affine(normalized, scale, None)


# ---------------------------------------------------------------------- LRN
lrn = define("LRN", inputs=["X"], outputs=["Y"], kind=REDUCTION,
             attrs={"size": Attr.int(required=True), "alpha": Attr.float(1e-4),
                    "beta": Attr.float(0.75), "bias": Attr.float(1.0)},
             doc="Local response normalization across a window of `size` channels.")


@lrn.infer
def _(ctx: InferContext) -> list[TensorType]:
    dt, _c = _channels_first(ctx)
    size = ctx.attr("size")
    if not isinstance(size, int) or size < 1:
        ctx.fail("size must be a positive integer", found=str(size))
    return [TensorType(dt, ctx.shape(0))]


@lrn.reference
def _(x: np.ndarray, *, size: int, alpha: float, beta: float, bias: float) -> np.ndarray:
    ct = stage_type(x)
    sq = np.square(x.astype(ct, copy=False))
    before, after = (size - 1) // 2, size // 2  # floor and ceil of (size - 1) / 2
    pad = [(0, 0)] * x.ndim
    pad[1] = (before, after)
    padded = np.pad(sq, pad)
    c = x.shape[1]
    # Sum of `size` shifted channel slices: cheap for the small windows LRN uses.
    square_sum = padded[:, 0:c].copy()
    for k in range(1, size):
        square_sum += padded[:, k:k + c]
    y = x.astype(ct, copy=False) / np.power(ct.type(bias) + ct.type(alpha / size) * square_sum,
                                            ct.type(beta))
    return y.astype(x.dtype, copy=False)


# ---------------------------------------------------------- LpNormalization
lp_norm = define("LpNormalization", inputs=["input"], outputs=["output"], kind=REDUCTION,
                 attrs={"axis": Attr.int(-1), "p": Attr.int(2)},
                 doc="x / ||x||_p along `axis` (p is 1 or 2); a zero norm gives 0.")


@lp_norm.infer
def _(ctx: InferContext) -> list[TensorType]:
    dt = check_dtype(ctx, 0, _FLOATS)
    if ctx.attr("p") not in (1, 2):
        ctx.fail("p must be 1 or 2", found=str(ctx.attr("p")))
    if ctx.rank(0) is not None:
        norm_axis(ctx, ctx.attr("axis"), ctx.rank(0))
    return [TensorType(dt, ctx.shape(0))]


@lp_norm.reference
def _(x: np.ndarray, *, axis: int, p: int) -> np.ndarray:
    xs = x.astype(stage_type(x), copy=False)
    if p == 1:
        norm = np.sum(np.abs(xs), axis=axis, keepdims=True)
    else:
        norm = np.sqrt(np.sum(xs * xs, axis=axis, keepdims=True))
    y = np.where(norm == 0, 0, xs / np.where(norm == 0, 1, norm))
    return y.astype(x.dtype, copy=False)


# ------------------------------------------------ MeanVarianceNormalization
mvn = define("MeanVarianceNormalization", inputs=["X"], outputs=["Y"], kind=REDUCTION,
             attrs={"axes": Attr.ints((0, 2, 3))},
             doc="(X - mean) / (std + 1e-9) over `axes`, with var = E[X^2] - E[X]^2.")


@mvn.infer
def _(ctx: InferContext) -> list[TensorType]:
    dt = check_dtype(ctx, 0, _FLOATS)
    r = ctx.rank(0)
    if r is not None:
        axes = [norm_axis(ctx, a, r, "axes entry") for a in ctx.attr("axes")]
        if len(set(axes)) != len(axes):
            ctx.fail("axes must not repeat", found=str(list(ctx.attr("axes"))))
    return [TensorType(dt, ctx.shape(0))]


@mvn.reference
def _(x: np.ndarray, *, axes: Sequence[int]) -> np.ndarray:
    xs = x.astype(stage_type(x), copy=False)
    ax = tuple(a % x.ndim for a in axes)
    mean = xs.mean(axis=ax, keepdims=True)
    var = np.mean(xs * xs, axis=ax, keepdims=True) - mean * mean
    y = (xs - mean) / (np.sqrt(var) + xs.dtype.type(1e-9))
    return y.astype(x.dtype, copy=False)


# ------------------------------------------------------------ softmax family
def _softmax_like(name: str, doc: str) -> OpSchema:
    schema = define(name, inputs=["input"], outputs=["output"], kind=REDUCTION,
                    attrs={"axis": Attr.int(-1)}, doc=doc)

    @schema.infer
    def _(ctx: InferContext) -> list[TensorType]:
        dt = check_dtype(ctx, 0, _FLOATS & FLOAT_TYPES)
        if ctx.rank(0) is not None:
            if ctx.rank(0) == 0:
                ctx.fail("input must have rank >= 1", found=str(ctx.input_type(0)))
            norm_axis(ctx, ctx.attr("axis"), ctx.rank(0))
        return [TensorType(dt, ctx.shape(0))]

    return schema


softmax = _softmax_like("Softmax", "exp(x) / sum(exp(x)) along one axis (opset 13 semantics).")
log_softmax = _softmax_like("LogSoftmax", "x - log(sum(exp(x))) along one axis (opset 13 semantics).")
hardmax = _softmax_like("Hardmax", "1 at the first maximum along one axis, 0 elsewhere.")


@softmax.reference
def _(x: np.ndarray, *, axis: int) -> np.ndarray:
    xs = x.astype(stage_type(x), copy=False)
    e = np.exp(xs - np.max(xs, axis=axis, keepdims=True))
    return (e / np.sum(e, axis=axis, keepdims=True)).astype(x.dtype, copy=False)


@log_softmax.reference
def _(x: np.ndarray, *, axis: int) -> np.ndarray:
    xs = x.astype(stage_type(x), copy=False)
    shifted = xs - np.max(xs, axis=axis, keepdims=True)
    y = shifted - np.log(np.sum(np.exp(shifted), axis=axis, keepdims=True))
    return y.astype(x.dtype, copy=False)


@hardmax.reference
def _(x: np.ndarray, *, axis: int) -> np.ndarray:
    y = np.zeros_like(x)
    if x.size:
        first = np.expand_dims(np.argmax(x.astype(stage_type(x), copy=False), axis=axis), axis)
        np.put_along_axis(y, first, 1, axis=axis)
    return y
