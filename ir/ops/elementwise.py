"""Elementwise math, comparison and logic ops, and Where/Clip.

Each op is one ``unary``/``binary``/``variadic`` line when it fits the mould,
or a ``define`` with its rule and reference side by side when it does not.
"""

from __future__ import annotations

import math

import numpy as np

from ..dtypes import DType
from ..registry import BROADCAST, ELEMENTWISE, Attr, InferContext, define
from ..types import TensorType
from ._common import (FLOAT_TYPES, INT_TYPES, NUMERIC_TYPES, binary, broadcast_type, check_dtype,
                      unary, variadic, widen)

SIGNED_TYPES = frozenset(t for t in NUMERIC_TYPES if t.is_signed)
BOOL = frozenset({DType.BOOL})

# ------------------------------------------------------------------ unary math
unary("Abs", np.abs, dtypes=NUMERIC_TYPES)
unary("Neg", np.negative, dtypes=SIGNED_TYPES)
unary("Sign", np.sign, dtypes=NUMERIC_TYPES)
unary("Reciprocal", np.reciprocal)
unary("Sqrt", np.sqrt)
unary("Exp", np.exp)
unary("Log", np.log)
unary("Sin", np.sin)
unary("Cos", np.cos)
unary("Tan", np.tan)
unary("Asin", np.arcsin)
unary("Acos", np.arccos)
unary("Atan", np.arctan)
unary("Sinh", np.sinh)
unary("Cosh", np.cosh)
unary("Asinh", np.arcsinh)
unary("Acosh", np.arccosh)
unary("Atanh", np.arctanh)
unary("Ceil", np.ceil)
unary("Floor", np.floor)
unary("Round", np.round, doc="Rounds half to even, like numpy.")
_erf = np.vectorize(math.erf, otypes=[np.float64])
unary("Erf", lambda x: _erf(x.astype(np.float64)) if x.size else x)

unary("Not", np.logical_not, dtypes=BOOL)
unary("BitwiseNot", np.invert, dtypes=INT_TYPES)

# --------------------------------------------------------------- binary arith
binary("Add", np.add)
binary("Sub", np.subtract)
binary("Mul", np.multiply)


def _divide(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    if a.dtype.kind in "iu":
        # ONNX integer division truncates toward zero, like C.
        with np.errstate(all="ignore"):
            q = np.abs(a.astype(np.int64)) // np.where(b == 0, 1, np.abs(b.astype(np.int64)))
            sign = np.where((a < 0) != (b < 0), -1, 1)
            return (sign * q).astype(a.dtype)
    return np.divide(widen(a), widen(b))


binary("Div", _divide)


def _mod(a: np.ndarray, b: np.ndarray, fmod: int = 0) -> np.ndarray:
    if fmod:
        return np.fmod(widen(a), widen(b))
    if a.dtype.kind == "f":
        return np.mod(a, b)
    safe = np.where(b == 0, 1, b)
    return np.where(b == 0, 0, np.mod(a, safe))


binary("Mod", _mod, attrs={"fmod": Attr.int(0)})

pow_ = define("Pow", inputs=["X", "Y"], outputs=["Z"], kind=BROADCAST)


@pow_.infer
def _(ctx: InferContext) -> list[TensorType]:
    check_dtype(ctx, 0, NUMERIC_TYPES, "base")
    check_dtype(ctx, 1, NUMERIC_TYPES, "exponent")
    return [broadcast_type(ctx, dtype=ctx.dtype(0), same_dtype=False)]


@pow_.reference
def _(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    if x.dtype.kind == "f" or x.dtype.kind == "V":
        return np.power(widen(x), widen(y).astype(widen(x).dtype)).astype(x.dtype)
    return np.power(x.astype(np.float64), y.astype(np.float64)).astype(x.dtype)


binary("BitShift", lambda a, b, direction: np.left_shift(a, b) if direction == "LEFT"
       else np.right_shift(a, b), dtypes=INT_TYPES,
       attrs={"direction": Attr.string(required=True)}, inputs=("X", "Y"))
binary("BitwiseAnd", np.bitwise_and, dtypes=INT_TYPES)
binary("BitwiseOr", np.bitwise_or, dtypes=INT_TYPES)
binary("BitwiseXor", np.bitwise_xor, dtypes=INT_TYPES)

# ---------------------------------------------------------- logic & compare
binary("And", np.logical_and, dtypes=BOOL)
binary("Or", np.logical_or, dtypes=BOOL)
binary("Xor", np.logical_xor, dtypes=BOOL)

_COMPARABLE = NUMERIC_TYPES | BOOL | {DType.STR}
binary("Equal", np.equal, dtypes=_COMPARABLE, result=DType.BOOL)
binary("Less", np.less, dtypes=_COMPARABLE, result=DType.BOOL)
binary("LessOrEqual", np.less_equal, dtypes=_COMPARABLE, result=DType.BOOL)
binary("Greater", np.greater, dtypes=_COMPARABLE, result=DType.BOOL)
binary("GreaterOrEqual", np.greater_equal, dtypes=_COMPARABLE, result=DType.BOOL)

# ------------------------------------------------------------------ variadic
variadic("Sum", lambda xs: _fold(np.add, xs))
variadic("Max", lambda xs: _fold(np.maximum, xs))
variadic("Min", lambda xs: _fold(np.minimum, xs))
variadic("Mean", lambda xs: _fold(np.add, xs) / len(xs), dtypes=FLOAT_TYPES)


def _fold(fn, xs):
    acc = widen(xs[0])
    for x in xs[1:]:
        acc = fn(acc, widen(x))
    return acc


# ------------------------------------------------------------ float queries
isnan = define("IsNaN", inputs=["X"], kind=ELEMENTWISE)


@isnan.infer
def _(ctx: InferContext) -> list[TensorType]:
    check_dtype(ctx, 0, FLOAT_TYPES)
    return [TensorType(DType.BOOL, ctx.shape(0))]


@isnan.reference
def _(x: np.ndarray) -> np.ndarray:
    return np.isnan(widen(x))


isinf = define("IsInf", inputs=["X"], kind=ELEMENTWISE,
               attrs={"detect_negative": Attr.int(1), "detect_positive": Attr.int(1)})


@isinf.infer
def _(ctx: InferContext) -> list[TensorType]:
    check_dtype(ctx, 0, FLOAT_TYPES)
    return [TensorType(DType.BOOL, ctx.shape(0))]


@isinf.reference
def _(x: np.ndarray, detect_negative: int, detect_positive: int) -> np.ndarray:
    x = widen(x)
    return (np.isposinf(x) & bool(detect_positive)) | (np.isneginf(x) & bool(detect_negative))


# ------------------------------------------------------------------- select
where = define("Where", inputs=["condition", "X", "Y"], outputs=["output"], kind=BROADCAST)


@where.infer
def _(ctx: InferContext) -> list[TensorType]:
    check_dtype(ctx, 0, BOOL, "condition")
    if ctx.dtype(1) != ctx.dtype(2):
        ctx.fail("X and Y must share one element type", found=f"{ctx.dtype(1)} and {ctx.dtype(2)}")
    return [broadcast_type(ctx, dtype=ctx.dtype(1), same_dtype=False)]


@where.reference
def _(cond: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return np.where(cond, x, y).astype(x.dtype, copy=False)


clip = define("Clip", inputs=["input", "min?", "max?"], outputs=["output"], kind=ELEMENTWISE,
              doc="Bounds come as inputs (opset >= 11); older attribute forms are upgraded on import.")


@clip.infer
def _(ctx: InferContext) -> list[TensorType]:
    check_dtype(ctx, 0, NUMERIC_TYPES)
    t = ctx.input_type(0)
    for i in (1, 2):
        if ctx.has_input(i) and ctx.input_type(i).rank not in (0, None, 1):
            ctx.fail(f"{'min' if i == 1 else 'max'} must be a scalar", found=str(ctx.input_type(i)))
        if ctx.has_input(i) and ctx.input_type(i).dtype != t.dtype:  # one type T for all three (ONNX)
            ctx.fail(f"{'min' if i == 1 else 'max'} must have the input's element type",
                     expected=t.dtype.short, found=ctx.input_type(i).dtype.short)
    return [TensorType(t.dtype, t.shape)]


@clip.reference
def _(x: np.ndarray, lo=None, hi=None) -> np.ndarray:
    y = widen(x)
    if lo is not None:
        y = np.maximum(y, widen(np.asarray(lo)).reshape(()))
    if hi is not None:
        y = np.minimum(y, widen(np.asarray(hi)).reshape(()))
    return y.astype(x.dtype, copy=False)
