"""TE rules for elementwise and broadcasting ops: one ``te.compute`` over the output shape.

Inside a fused group these computes are inlined by the schedule into their
consumer (or into the conv/matmul's epilogue), so a chain of them costs no
memory traffic.  Half-precision operands compute in float32 and round back,
as the reference does.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any, Optional

import numpy as np

from tvm import te
from tvm import tirx

from ir.graph import Node

from .rules import NARROW_INTS, Scalar, const_array, rule, static_shape, tvm_dtype

Expr = Any  # tirx.PrimExpr


def at(x: Any, out_shape: Sequence[int], idx: Sequence[Expr]) -> Expr:
    """The value of operand ``x`` (a te.Tensor or Scalar) broadcast to ``out_shape`` at ``idx``."""
    if isinstance(x, Scalar):
        return tirx.const(x.value, x.dtype)
    shape = [int(d) for d in x.shape]
    lead = len(out_shape) - len(shape)
    return x(*[0 if d == 1 else idx[lead + j] for j, d in enumerate(shape)])


def dtype_of(x: Any) -> str:
    return x.dtype if isinstance(x, Scalar) else str(x.dtype)


def _work(dtype: str) -> str:
    """The dtype arithmetic runs in: float32 for float16."""
    return "float32" if dtype in ("float16", "bfloat16") else dtype


def etype(e: Expr) -> str:
    """An expression's dtype name (TVM 0.27 spells it ``ty``)."""
    if isinstance(e, te.tensor.TensorSlice):
        return str(e.tensor.dtype)
    return str(e.ty)


def _cast(e: Expr, dtype: str) -> Expr:
    return e if etype(e) == dtype else tirx.Cast(dtype, e)


def elementwise(node: Node, xs: Sequence[Any], fn: Callable[..., Expr], name: str = "") -> te.Tensor:
    """``out[i] = fn(x0[i], x1[i], ...)`` with numpy broadcasting; ``fn`` sees work-dtype values."""
    out = node.outputs[0]
    shape = static_shape(out)
    out_dtype = tvm_dtype(out.type)

    def body(*idx: Expr) -> Expr:
        vals = [_cast(at(x, shape, idx), _work(dtype_of(x))) for x in xs]
        return _cast(fn(*vals), out_dtype)
    return te.compute(shape, body, name=name or node.op.lower())


def _c(v: float, like: Expr) -> Expr:
    return tirx.const(v, etype(like))


def _is_float(e: Expr) -> bool:
    return etype(e).startswith("float")


def _exp(x: Expr) -> Expr:
    return tirx.exp(x)


def _sigmoid(x: Expr) -> Expr:
    one = _c(1.0, x)
    return one / (one + tirx.exp(-x))


def _softplus(x: Expr) -> Expr:
    # log(1 + exp(x)) without overflow: max(x, 0) + log1p(exp(-|x|))
    return tirx.max(x, _c(0.0, x)) + tirx.log1p(tirx.exp(-tirx.abs(x)))


def _erf(x: Expr) -> Expr:
    return tirx.erf(x)


_UNARY: dict[str, Callable[[Node], Callable[[Expr], Expr]]] = {
    "Abs": lambda n: tirx.abs,
    "Neg": lambda n: lambda x: -x,
    "Sign": lambda n: lambda x: tirx.Select(x > _c(0, x), _c(1, x), tirx.Select(x < _c(0, x), _c(-1, x), _c(0, x))),
    "Reciprocal": lambda n: lambda x: _c(1.0, x) / x,
    "Sqrt": lambda n: tirx.sqrt,
    "Exp": lambda n: _exp,
    "Log": lambda n: tirx.log,
    "Sin": lambda n: tirx.sin, "Cos": lambda n: tirx.cos, "Tan": lambda n: tirx.tan,
    "Asin": lambda n: tirx.asin, "Acos": lambda n: tirx.acos, "Atan": lambda n: tirx.atan,
    "Sinh": lambda n: tirx.sinh, "Cosh": lambda n: tirx.cosh, "Asinh": lambda n: tirx.asinh,
    "Acosh": lambda n: tirx.acosh, "Atanh": lambda n: tirx.atanh,
    "Ceil": lambda n: tirx.ceil, "Floor": lambda n: tirx.floor,
    "Round": lambda n: tirx.nearbyint,  # half to even under the default rounding mode
    "Erf": lambda n: _erf,
    "Not": lambda n: lambda x: tirx.Not(x),
    "Relu": lambda n: lambda x: tirx.max(x, _c(0, x)),
    "LeakyRelu": lambda n: lambda x: tirx.Select(x >= _c(0, x), x, x * _c(n.attr("alpha"), x)),
    "Sigmoid": lambda n: _sigmoid,
    "HardSigmoid": lambda n: lambda x: tirx.min(tirx.max(x * _c(n.attr("alpha"), x) + _c(n.attr("beta"), x),
                                                        _c(0, x)), _c(1, x)),
    "HardSwish": lambda n: lambda x: x * tirx.min(tirx.max(x / _c(6.0, x) + _c(0.5, x), _c(0, x)), _c(1, x)),
    "Tanh": lambda n: tirx.tanh,
    "Softplus": lambda n: _softplus,
    "Softsign": lambda n: lambda x: x / (_c(1.0, x) + tirx.abs(x)),
    "Elu": lambda n: lambda x: tirx.Select(x >= _c(0, x), x,
                                           _c(n.attr("alpha"), x) * (tirx.exp(tirx.min(x, _c(0, x))) - _c(1, x))),
    "Selu": lambda n: lambda x: _c(n.attr("gamma"), x) * tirx.Select(
        x > _c(0, x), x, _c(n.attr("alpha"), x) * (tirx.exp(tirx.min(x, _c(0, x))) - _c(1, x))),
    "Celu": lambda n: lambda x: tirx.max(x, _c(0, x)) + tirx.min(
        _c(0, x), _c(n.attr("alpha"), x) * (tirx.exp(x / _c(n.attr("alpha"), x)) - _c(1, x))),
    "ThresholdedRelu": lambda n: lambda x: tirx.Select(x > _c(n.attr("alpha"), x), x, _c(0, x)),
    "Mish": lambda n: lambda x: x * tirx.tanh(_softplus(x)),
    "Swish": lambda n: lambda x: x * _sigmoid(_c(n.attr("alpha"), x) * x),
    "Shrink": lambda n: lambda x: tirx.Select(
        x < _c(-n.attr("lambd"), x), x + _c(n.attr("bias"), x),
        tirx.Select(x > _c(n.attr("lambd"), x), x - _c(n.attr("bias"), x), _c(0, x))),
    "Gelu": lambda n: _gelu(n.attr("approximate")),
    "Identity": lambda n: lambda x: x,
    "IsNaN": lambda n: tirx.isnan,
    "BitwiseNot": lambda n: tirx.bitwise_not,
    "IsInf": lambda n: _isinf(n.attr("detect_positive"), n.attr("detect_negative")),
}


def _isinf(pos: int, neg: int) -> Callable[[Expr], Expr]:
    def f(x: Expr) -> Expr:
        inf = tirx.const(float("inf"), etype(x))
        if pos and neg:
            return tirx.Or(tirx.EQ(x, inf), tirx.EQ(x, -inf))
        if pos:
            return tirx.EQ(x, inf)
        if neg:
            return tirx.EQ(x, -inf)
        return tirx.const(False, "bool")
    return f

_FLOAT_ONLY = {"Sqrt", "Exp", "Log", "Sin", "Cos", "Tan", "Asin", "Acos", "Atan", "Sinh", "Cosh", "Asinh",
               "Acosh", "Atanh", "Ceil", "Floor", "Round", "Erf", "Sigmoid", "HardSigmoid", "HardSwish",
               "Tanh", "Softplus", "Softsign", "Elu", "Selu", "Celu", "Mish", "Swish", "Gelu", "Reciprocal",
               "LeakyRelu", "ThresholdedRelu", "Shrink", "IsNaN", "IsInf"}


def _gelu(approximate: str) -> Callable[[Expr], Expr]:
    if approximate == "tanh":
        k = math.sqrt(2.0 / math.pi)
        return lambda x: _c(0.5, x) * x * (_c(1, x) + tirx.tanh(_c(k, x) * (x + _c(0.044715, x) * x * x * x)))
    return lambda x: _c(0.5, x) * x * (_c(1, x) + tirx.erf(x * _c(1.0 / math.sqrt(2.0), x)))


def _float_input(node: Node) -> Optional[str]:
    v = node.inputs[0]
    if node.op in _FLOAT_ONLY and not v.type.dtype.is_float:
        return f"{node.op} of {v.type.dtype} is not generated by the tvm target"
    return None


def _unary(node: Node, xs: list) -> list:
    return [elementwise(node, xs[:1], _UNARY[node.op](node))]


for _op in _UNARY:
    rule(_op, check=_float_input)(_unary)


# ------------------------------------------------------------------- binary
def _div(a: Expr, b: Expr) -> Expr:
    if _is_float(a):
        return a / b
    return tirx.truncdiv(a, tirx.Select(b == _c(0, b), _c(1, b), b))  # ONNX truncates, like C


def _mod(fmod: int) -> Callable[[Expr, Expr], Expr]:
    """C's fmod (fmod=1, truncated) or the divisor's sign (fmod=0, as numpy.mod); x % 0 is 0 for ints."""
    def f(a: Expr, b: Expr) -> Expr:
        if _is_float(a):
            # C's fmod (TVM 0.27 has no llvm lowering of tirx.fmod); a finite x over an infinite
            # divisor is x itself, where the formula would give 0 * inf = nan.
            r = tirx.Select(tirx.And(tirx.isinf(b), tirx.isfinite(a)), a, a - tirx.trunc(a / b) * b)
            if fmod:
                return r
            zero = _c(0.0, r)
            fix = tirx.And(r != zero, tirx.Or(tirx.And(r < zero, b > zero), tirx.And(r > zero, b < zero)))
            return tirx.Select(fix, r + b, r)  # numpy.mod: the result takes the divisor's sign
        safe = tirx.Select(b == _c(0, b), _c(1, b), b)
        r = tirx.truncmod(a, safe) if fmod else tirx.floormod(a, safe)
        return tirx.Select(b == _c(0, b), _c(0, a), r)
    return f


def _shift(left: bool) -> Callable[[Expr, Expr], Expr]:
    """Shifts as NumPy defines them for any count: a count outside [0, bits) shifts every bit out."""
    def f(a: Expr, b: Expr) -> Expr:
        dtype = etype(a)
        bits = int("".join(ch for ch in dtype if ch.isdigit()) or 8)
        b = _cast(b, dtype)
        outside = tirx.Or(b < _c(0, b), b >= _c(bits, b))
        safe = tirx.Select(outside, _c(0, b), b)
        if left:
            return tirx.Select(outside, _c(0, a), a << safe)
        gone = tirx.Select(a < _c(0, a), _c(-1, a), _c(0, a)) if dtype.startswith("int") else _c(0, a)
        return tirx.Select(outside, gone, a >> safe)
    return f


def _pow(a: Expr, b: Expr) -> Expr:
    if _is_float(a):
        return tirx.power(a, _cast(b, etype(a)))
    return _cast(tirx.power(_cast(a, "float64"), _cast(b, "float64")), etype(a))


_BINARY: dict[str, Callable[[Node], Callable[[Expr, Expr], Expr]]] = {
    "Add": lambda n: lambda a, b: a + b,
    "Sub": lambda n: lambda a, b: a - b,
    "Mul": lambda n: lambda a, b: a * b,
    "Div": lambda n: _div,
    "Mod": lambda n: _mod(n.attr("fmod")),
    "Pow": lambda n: _pow,
    "Max": lambda n: tirx.max,
    "Min": lambda n: tirx.min,
    "And": lambda n: tirx.And,
    "Or": lambda n: tirx.Or,
    "Xor": lambda n: lambda a, b: tirx.Or(tirx.And(a, tirx.Not(b)), tirx.And(tirx.Not(a), b)),
    "Equal": lambda n: tirx.EQ,
    "Less": lambda n: tirx.LT,
    "LessOrEqual": lambda n: tirx.LE,
    "Greater": lambda n: tirx.GT,
    "GreaterOrEqual": lambda n: tirx.GE,
    "BitwiseAnd": lambda n: tirx.bitwise_and,
    "BitwiseOr": lambda n: tirx.bitwise_or,
    "BitwiseXor": lambda n: tirx.bitwise_xor,
    "PRelu": lambda n: lambda x, s: tirx.Select(x < _c(0, x), x * s, x),
    "BitShift": lambda n: _shift(n.attr("direction") == "LEFT"),
}


def _binary_check(node: Node) -> Optional[str]:
    if len([v for v in node.inputs if v is not None]) != 2:
        return f"{node.op} with {len(node.inputs)} inputs (decompose-variadic makes it binary)"
    return None


def _binary(node: Node, xs: list) -> list:
    return [elementwise(node, xs[:2], _BINARY[node.op](node))]


for _op in _BINARY:
    rule(_op, check=_binary_check)(_binary)


@rule("Where")
def _where(node: Node, xs: list) -> list:
    return [elementwise(node, xs, lambda c, a, b: tirx.Select(c, a, b))]


@rule("Clip", const_inputs=(1, 2))
def _clip(node: Node, xs: list) -> list:
    lo, hi = (const_array(node.input(i)) for i in (1, 2))
    if "min" in node.attrs or "max" in node.attrs:  # opset < 11 form
        lo = node.attrs.get("min", lo)
        hi = node.attrs.get("max", hi)

    def f(x: Expr) -> Expr:
        if lo is not None:
            x = tirx.max(x, _c(float(lo) if _is_float(x) else int(lo), x))
        if hi is not None:
            x = tirx.min(x, _c(float(hi) if _is_float(x) else int(hi), x))
        return x
    return [elementwise(node, xs[:1], f)]


@rule("Cast", "CastLike")
def _cast_rule(node: Node, xs: list) -> list:
    out = tvm_dtype(node.outputs[0].type)

    narrow = NARROW_INTS.get(node.outputs[0].type.dtype)

    def f(x: Expr) -> Expr:
        if out == "bool":
            return tirx.NE(x, _c(0, x))
        if narrow is not None:
            return _to_narrow_int(x, *narrow)
        return tirx.Cast(out, x)
    return [elementwise(node, xs[:1], f)]


def _to_narrow_int(x: Expr, storage: str, bits: int) -> Expr:
    """ONNX's Cast to int4/uint4/int2/uint2 (``ir.ops.cast``, after ml_dtypes): a float's
    truncation when it fits the range, else 0 (NaN too); integers wrap to the low bits."""
    signed = storage == "int8"
    lo, hi = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
    if _is_float(x):
        x32 = x.astype("float32") if etype(x) in ("float16", "bfloat16") else x
        fits = tirx.all(x32 > _c(lo - 1, x32), x32 < _c(hi + 1, x32))
        return tirx.Select(fits, tirx.trunc(tirx.Select(fits, x32, _c(0, x32))), _c(0, x32)).astype(storage)
    v = x.astype("int64") if etype(x) != "bool" else x.astype("int64")
    low = tirx.bitwise_and(v, tirx.const((1 << bits) - 1, "int64"))
    if signed:
        sign = tirx.const(1 << (bits - 1), "int64")
        low = tirx.bitwise_xor(low, sign) - sign
    return low.astype(storage)


@rule("BatchNormalization", check=lambda n: "training mode is not generated" if n.attr("training_mode")
      or len(n.outputs) > 1 else None)
def _batchnorm(node: Node, xs: list) -> list:
    """Inference batch norm (when fold-batchnorm could not fold it into a conv)."""
    x, scale, bias, mean, var = xs[:5]
    eps = float(node.attr("epsilon"))
    shape = static_shape(node.outputs[0])

    def per_channel(p: Any, c: Expr) -> Expr:
        return tirx.const(p.value, p.dtype) if isinstance(p, Scalar) else p[c]

    def body(*i: Expr) -> Expr:
        c = i[1]
        xv = _cast(x(*i), "float32")
        s = _cast(per_channel(scale, c), "float32") / tirx.sqrt(_cast(per_channel(var, c), "float32")
                                                               + tirx.const(eps, "float32"))
        y = (xv - _cast(per_channel(mean, c), "float32")) * s + _cast(per_channel(bias, c), "float32")
        return _cast(y, tvm_dtype(node.outputs[0].type))
    return [te.compute(shape, body, name="batchnorm")]


__all__ = ["at", "dtype_of", "elementwise", "etype"]


def _dropout_check(node: Node) -> Optional[str]:
    if node.input(2) is not None and (node.input(2).const is None or bool(np.asarray(node.input(2).const))):
        return "Dropout in training mode is not generated by the tvm target"
    return None


@rule("Dropout", check=_dropout_check)
def _dropout(node: Node, xs: list) -> list:
    """Inference Dropout is the identity; its mask (if asked for) is all true."""
    out = [elementwise(node, xs[:1], lambda x: x, "dropout")]
    if len(node.outputs) > 1 and node.outputs[1] is not None:
        out.append(te.compute(static_shape(node.outputs[1]), lambda *i: tirx.const(True, "bool"), name="mask"))
    return out
