"""Building blocks shared by op definitions: common type rules and op makers."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any, Optional

import numpy as np

from ..dtypes import DType
from ..registry import BROADCAST, ELEMENTWISE, Attr, InferContext, OpSchema, define
from ..shapes import broadcast_shapes
from ..types import TensorType

FLOAT_TYPES = frozenset(t for t in DType if t.is_float)
INT_TYPES = frozenset(t for t in DType if t.is_int)
NUMERIC_TYPES = FLOAT_TYPES | INT_TYPES


def check_dtype(ctx: InferContext, i: int, allowed: Iterable[DType], what: str = "") -> DType:
    """The dtype of input ``i``, failing clearly when it is not allowed."""
    dt = ctx.dtype(i)
    allowed = frozenset(allowed)
    if dt not in allowed:
        names = sorted(t.short for t in allowed)
        ctx.fail(f"input {i}{' (' + what + ')' if what else ''} has an unsupported element type",
                 expected=" or ".join(names) if len(names) < 6 else "a " + _family(allowed),
                 found=dt.short)
    return dt


def _family(allowed: frozenset) -> str:
    if allowed <= FLOAT_TYPES:
        return "floating-point type"
    if allowed <= INT_TYPES:
        return "integer type"
    return "numeric type"



def broadcast_type(ctx: InferContext, dtype: Optional[DType] = None,
                   same_dtype: bool = True) -> TensorType:
    """Result type of a broadcasting op over all present inputs."""
    types = [ctx.input_type(i) for i in range(ctx.num_inputs) if ctx.has_input(i)]
    if same_dtype:
        for i, t in enumerate(types[1:], 1):
            if t.dtype != types[0].dtype:
                ctx.fail("inputs must share one element type", found=", ".join(
                    x.dtype.short for x in types))
    try:
        shape = broadcast_shapes(*(t.shape for t in types))
    except Exception:
        ctx.fail("shapes do not broadcast", found=" and ".join(str(t) for t in types))
    return TensorType(dtype or types[0].dtype, shape)


def unary(name: str, fn: Callable[..., Any], *, dtypes: Iterable[DType] = FLOAT_TYPES,
          attrs: Optional[dict[str, Attr]] = None, doc: str = "", **kw: Any) -> OpSchema:
    """Define an elementwise op ``Y = fn(X, **attrs)`` keeping X's type.

    ``fn`` may compute in a wider type; the result is cast back to X's dtype.
    """
    allowed = frozenset(dtypes)
    schema = define(name, inputs=["X"], outputs=["Y"], attrs=attrs, kind=ELEMENTWISE, doc=doc, **kw)

    @schema.infer
    def _(ctx: InferContext) -> list[TensorType]:
        check_dtype(ctx, 0, allowed)
        t = ctx.input_type(0)
        return [TensorType(t.dtype, t.shape)]

    @schema.reference
    def _(x: np.ndarray, **attrs: Any) -> np.ndarray:
        return np.asarray(fn(widen(x), **attrs)).astype(x.dtype, copy=False)

    return schema


def binary(name: str, fn: Callable[[np.ndarray, np.ndarray], Any], *,
           dtypes: Iterable[DType] = NUMERIC_TYPES, result: Optional[DType] = None,
           attrs: Optional[dict[str, Attr]] = None, doc: str = "",
           inputs: Sequence[str] = ("A", "B"), **kw: Any) -> OpSchema:
    """Define a broadcasting binary op; the result has the inputs' dtype or ``result``."""
    allowed = frozenset(dtypes)
    schema = define(name, inputs=list(inputs), outputs=["C"], attrs=attrs, kind=BROADCAST,
                    doc=doc, **kw)

    @schema.infer
    def _(ctx: InferContext) -> list[TensorType]:
        check_dtype(ctx, 0, allowed)
        return [broadcast_type(ctx, dtype=result)]

    @schema.reference
    def _(a: np.ndarray, b: np.ndarray, **attrs: Any) -> np.ndarray:
        a2, b2 = widen(a), widen(b)
        out = np.asarray(fn(a2, b2, **attrs) if attrs else fn(a2, b2))
        return out.astype(result.np if result is not None else a.dtype, copy=False)

    return schema


def variadic(name: str, fn: Callable[[Sequence[np.ndarray]], Any], *,
             dtypes: Iterable[DType] = NUMERIC_TYPES, doc: str = "") -> OpSchema:
    """Define a broadcasting op over one or more inputs (Sum, Max, Mean...)."""
    allowed = frozenset(dtypes)
    schema = define(name, inputs=["data_0..."], outputs=["result"], kind=BROADCAST, doc=doc)

    @schema.infer
    def _(ctx: InferContext) -> list[TensorType]:
        if ctx.num_inputs < 1:
            ctx.fail("needs at least one input")
        check_dtype(ctx, 0, allowed)
        return [broadcast_type(ctx)]

    @schema.reference
    def _(*xs: np.ndarray) -> np.ndarray:
        return np.asarray(fn(xs)).astype(xs[0].dtype, copy=False)

    return schema


_NATIVE_FLOATS = (np.dtype(np.float16), np.dtype(np.float32), np.dtype(np.float64))


def widen(x: np.ndarray) -> np.ndarray:
    """``x`` itself, or in float32 when it is a narrow float NumPy cannot compute in.

    bfloat16 and the float8/float4 types are computed in float32 and rounded
    back by the caller, as onnxruntime does.
    """
    if x.dtype.kind == "V" or (x.dtype not in _NATIVE_FLOATS and DType.from_numpy(x.dtype).is_float):
        return x.astype(np.float32)
    return x
