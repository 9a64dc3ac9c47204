"""Random generators: RandomNormal/Uniform(+Like), Bernoulli, Multinomial.

All are impure (``pure=False``): constant folding and CSE must leave them
alone, since two calls give different values.  With a ``seed`` attribute a
node is reproducible run to run: each call starts NumPy's ``default_rng`` from
the seed (its float32 bit pattern, so every distinct float seed gives its own
stream).  The values are not onnxruntime's (it uses another generator); only
the distributions agree.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from ..dtypes import DType
from ..registry import OPAQUE, Attr, InferContext, define
from ..types import TensorType
from ._common import FLOAT_TYPES, NUMERIC_TYPES, check_dtype

RANDOM_FLOATS = frozenset({DType.F16, DType.F32, DType.F64, DType.BF16})


def _rng(seed: Optional[float]) -> np.random.Generator:
    """A seeded generator when ``seed`` is given, else a fresh one."""
    if seed is None:
        return np.random.default_rng()
    return np.random.default_rng(int(np.float32(seed).view(np.uint32)))


def _dtype_attr(ctx: InferContext, allowed: frozenset, fallback: Optional[DType] = None) -> DType:
    """The output type named by the ``dtype`` attribute (an ONNX type code), or ``fallback``."""
    code = ctx.attr("dtype")
    if code is None:
        if fallback is None or fallback not in allowed:
            ctx.fail("output type cannot be taken from the input; set the dtype attribute",
                     expected="a " + ("floating-point" if allowed <= FLOAT_TYPES else "numeric")
                     + " input or dtype", found=str(fallback))
        return fallback
    try:
        dt = DType.from_onnx(code)
    except Exception:
        ctx.fail("dtype is not an ONNX element type", found=str(code))
    if dt not in allowed:
        ctx.fail("unsupported output dtype", expected=" or ".join(sorted(t.short for t in allowed))
                 if len(allowed) < 6 else "a numeric type", found=dt.short)
    return dt


def _out_np(dtype: Optional[int], fallback: np.dtype) -> np.dtype:
    return fallback if dtype is None else DType.from_onnx(dtype).np


# ------------------------------------------------------- normal and uniform
def _define_pair(name: str, params: dict[str, Attr], draw) -> None:
    """``<name>`` (shape from an attribute) and ``<name>Like`` (shape of the input)."""
    base = define(name, inputs=[], outputs=["output"], kind=OPAQUE, pure=False,
                  attrs={"shape": Attr.ints(required=True), "dtype": Attr.int(1),
                         "seed": Attr.float(), **params})

    @base.infer
    def _(ctx: InferContext) -> list[TensorType]:
        shape = ctx.attr("shape")
        if shape is None or any(d < 0 for d in shape):
            ctx.fail("needs a shape attribute of non-negative dims", found=str(shape))
        return [TensorType(_dtype_attr(ctx, RANDOM_FLOATS), tuple(shape))]

    @base.reference
    def _(*, shape, dtype, seed, **kw) -> np.ndarray:
        return draw(_rng(seed), tuple(shape), **kw).astype(DType.from_onnx(dtype).np)

    like = define(name + "Like", inputs=["input"], outputs=["output"], kind=OPAQUE, pure=False,
                  attrs={"dtype": Attr.int(), "seed": Attr.float(), **params})

    @like.infer
    def _(ctx: InferContext) -> list[TensorType]:
        t = ctx.input_type(0)
        return [TensorType(_dtype_attr(ctx, RANDOM_FLOATS, t.dtype), t.shape)]

    @like.reference
    def _(x: np.ndarray, *, dtype, seed, **kw) -> np.ndarray:
        return draw(_rng(seed), x.shape, **kw).astype(_out_np(dtype, x.dtype))


_define_pair("RandomNormal", {"mean": Attr.float(0.0), "scale": Attr.float(1.0)},
             lambda rng, shape, mean, scale: rng.normal(mean, scale, shape))
_define_pair("RandomUniform", {"low": Attr.float(0.0), "high": Attr.float(1.0)},
             lambda rng, shape, low, high: rng.uniform(low, high, shape))

# ------------------------------------------------------------------ Bernoulli
bernoulli = define("Bernoulli", inputs=["input"], outputs=["output"], kind=OPAQUE, pure=False,
                   attrs={"dtype": Attr.int(), "seed": Attr.float()},
                   doc="1 with probability input[i], else 0.")


@bernoulli.infer
def _(ctx: InferContext) -> list[TensorType]:
    t = ctx.input_type(0)
    check_dtype(ctx, 0, RANDOM_FLOATS, "probabilities")
    return [TensorType(_dtype_attr(ctx, NUMERIC_TYPES | {DType.BOOL}, t.dtype), t.shape)]


@bernoulli.reference
def _(p: np.ndarray, *, dtype, seed) -> np.ndarray:
    draws = _rng(seed).random(p.shape) < p.astype(np.float64)
    return draws.astype(_out_np(dtype, p.dtype))


# ---------------------------------------------------------------- Multinomial
multinomial = define("Multinomial", inputs=["input"], outputs=["output"], kind=OPAQUE, pure=False,
                     attrs={"dtype": Attr.int(6), "sample_size": Attr.int(1), "seed": Attr.float()},
                     doc="sample_size class indices per row of unnormalized log-probabilities.")


@multinomial.infer
def _(ctx: InferContext) -> list[TensorType]:
    check_dtype(ctx, 0, RANDOM_FLOATS, "log-probabilities")
    if ctx.rank(0) not in (None, 2):
        ctx.fail("input must be [batch_size, class_size]", found=str(ctx.input_type(0)))
    n = ctx.attr("sample_size")
    if n is None or n < 1:
        ctx.fail("sample_size must be positive", found=str(n))
    dt = _dtype_attr(ctx, frozenset({DType.I32, DType.I64}))
    batch = ctx.shape(0)[0] if ctx.shape(0) is not None else None
    return [TensorType(dt, (batch, n))]


@multinomial.reference
def _(logits: np.ndarray, *, dtype, sample_size, seed) -> np.ndarray:
    x = logits.astype(np.float64)
    p = np.exp(x - x.max(axis=1, keepdims=True))
    cdf = np.cumsum(p, axis=1)
    cdf /= cdf[:, -1:]
    u = _rng(seed).random((x.shape[0], sample_size))
    # Inverse CDF: the index is the number of cumulative probabilities below u.
    idx = (u[:, :, None] >= cdf[:, None, :]).sum(axis=2)
    return np.minimum(idx, x.shape[1] - 1).astype(DType.from_onnx(dtype).np)
