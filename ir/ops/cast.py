"""Cast, CastLike and BitCast: conversions between element types.

``cast_array`` is the single definition of ONNX's Cast semantics; other ops
(and passes folding casts) call it.  The rules, type by type:

* numbers -> numbers: C conversions, as NumPy does them (float -> int
  truncates toward zero; out-of-range integers wrap; int/uint -> narrower
  int wraps; anything -> bool is ``!= 0``, NaN included);
* -> float8 (E4M3FN, E4M3FNUZ, E5M2, E5M2FNUZ): round half to even; with
  ``saturate`` (the default) out-of-range values and infinities clamp to
  +-max, without it they become NaN (or Inf for E5M2) -- ONNX's tables;
* -> float8e8m0: power-of-two scales, rounded by ``round_mode``;
* -> int4/uint4/int2/uint2, float4/float6: ml_dtypes' conversion, which is
  ONNX's reference (float -> int4 truncates then wraps, like int8);
* numbers -> string: what onnxruntime writes: integers in decimal, bool as
  ``1``/``0``, floats as C's ``%.8g`` with ``NaN``, ``INF``, ``-INF``;
* string -> numbers: ``strtod``/``strtoll``-style parsing of a numeric
  prefix (``"1e-5"``, ``"+INF"``, ``"nan"`` case-insensitively); a string
  with no number in it is an error.
"""

from __future__ import annotations

import re
from typing import Any

import ml_dtypes
import numpy as np

from ..dtypes import DType
from ..errors import ExecutionError
from ..quant import FLOAT8_TYPES, to_float8
from ..registry import ELEMENTWISE, OPAQUE, Attr, InferContext, define
from ..types import TensorType

COMPLEX_TYPES = frozenset({DType.C64, DType.C128})
ROUND_MODES = ("up", "down", "nearest")

_NATIVE = frozenset(np.dtype(t) for t in (np.bool_, np.int8, np.int16, np.int32, np.int64,
                                          np.uint8, np.uint16, np.uint32, np.uint64,
                                          np.float16, np.float32, np.float64))


# ------------------------------------------------------------------ semantics
def cast_array(x: np.ndarray, to: DType, saturate: bool = True,
               round_mode: str = "up") -> np.ndarray:
    """``x`` converted to ``to`` with ONNX Cast semantics (see the module docstring)."""
    x = np.asarray(x)
    src = DType.from_numpy(x.dtype)
    if src == to:
        return x
    if to == DType.STR:
        return _to_string(x, src)
    if src == DType.STR:
        return _from_string(x, to, saturate, round_mode)
    if to in FLOAT8_TYPES:
        return to_float8(_as_real(x), to, saturate)
    if to == DType.F8E8M0:
        return to_e8m0(_as_real(x), saturate, round_mode)
    if to.np not in _NATIVE:  # bfloat16, int4/uint4/int2/uint2, float4, float6
        return (x if x.dtype in _NATIVE else x.astype(np.float32)).astype(to.np)
    if x.dtype not in _NATIVE:
        x = x.astype(np.float32)  # exact for every narrow type
    return x.astype(to.np)


def _as_real(x: np.ndarray) -> np.ndarray:
    """``x`` as float64 (float64 and 64-bit ints) or float32 (everything else)."""
    if x.dtype in (np.dtype(np.float64), np.dtype(np.int64), np.dtype(np.uint64)):
        return x.astype(np.float64)
    return x.astype(np.float32)


def to_e8m0(x: np.ndarray, saturate: bool = True, round_mode: str = "up") -> np.ndarray:
    """Round to float8e8m0 (``2**(e - 127)``, no sign, no zero; 0xFF is NaN).

    The exponent of ``float32(x)`` is kept and the mantissa rounded away by
    ``round_mode``: ``up`` (any fraction rounds up), ``down`` (truncate) or
    ``nearest`` (ties up).  With ``saturate`` the result never rounds past the
    largest value and +-Inf give the largest value; without it they give NaN.
    The sign is ignored (negative inputs are undefined in ONNX).
    """
    if round_mode not in ROUND_MODES:
        raise ExecutionError("unknown round_mode", expected=" or ".join(ROUND_MODES),
                             found=repr(round_mode))
    bits = np.asarray(x, dtype=np.float32).view(np.uint32)
    exp = ((bits >> 23) & 0xFF).astype(np.uint16)
    frac = bits & 0x7FFFFF
    special = exp == 0xFF
    if round_mode == "up":
        up = frac > 0
    elif round_mode == "down":
        up = np.zeros(bits.shape, bool)
    else:  # guard bit set and (anything below it, or a tie -> up)
        guard = (bits & 0x400000) > 0
        up = guard & (((bits & 0x3FFFFF) > 0) | (exp > 0))
    up &= ~special
    if saturate:
        up &= exp != 0xFE
    out = exp + up.astype(np.uint16)
    if saturate:
        is_inf = special & (frac == 0)
        out = np.where(is_inf, 0xFE, out)
    out = np.where(special & ~(saturate & (frac == 0)), 0xFF, out)
    return out.astype(np.uint8).view(ml_dtypes.float8_e8m0fnu)


def _to_string(x: np.ndarray, src: DType) -> np.ndarray:
    flat = x.ravel()
    if src == DType.BOOL:
        out = ["1" if v else "0" for v in flat.tolist()]
    elif src.is_int:
        out = [str(int(v)) for v in flat.astype(np.int64 if src.is_signed else np.uint64).tolist()]
    else:
        out = [_format_float(v) for v in flat.astype(np.float64).tolist()]
    return np.array(out, dtype=object).reshape(x.shape)


def _format_float(v: float) -> str:
    if v != v:
        return "NaN"
    if v in (float("inf"), float("-inf")):
        return "INF" if v > 0 else "-INF"
    return "%.8g" % v


# A numeric prefix as strtod reads it: decimal, hex, inf/infinity, nan.
_FLOAT_RE = re.compile(r"\s*([+-]?(?:inf(?:inity)?|nan|0x(?:[0-9a-f]+\.?[0-9a-f]*|\.[0-9a-f]+)"
                       r"(?:p[+-]?\d+)?|(?:\d+\.?\d*|\.\d+)(?:e[+-]?\d+)?))", re.IGNORECASE)
_INT_RE = re.compile(r"\s*([+-]?\d+)")


def _parse_float(s: str) -> float:
    m = _FLOAT_RE.match(s)
    if m is None:
        raise ExecutionError("string is not a number", subject="Cast", found=repr(s),
                             expected="a decimal/hex number, INF or NaN")
    text = m.group(1)
    if "x" in text.lower():
        return float.fromhex(text)
    return float(text)


def _parse_int(s: str) -> int:
    m = _INT_RE.match(s)
    if m is None:
        raise ExecutionError("string is not an integer", subject="Cast", found=repr(s),
                             expected="an optionally signed decimal integer")
    return int(m.group(1))


def _from_string(x: np.ndarray, to: DType, saturate: bool, round_mode: str) -> np.ndarray:
    texts = [v.decode("utf-8") if isinstance(v, bytes) else str(v) for v in x.ravel().tolist()]
    if to.is_float:
        vals = np.array([_parse_float(t) for t in texts], dtype=np.float64).reshape(x.shape)
        return cast_array(vals, to, saturate, round_mode)
    ints = [_parse_int(t) for t in texts]
    if to == DType.BOOL:
        return np.array([v != 0 for v in ints], dtype=np.bool_).reshape(x.shape)
    if any(not -2**63 <= v < 2**64 for v in ints):
        raise ExecutionError("integer string out of the 64-bit range", subject="Cast",
                             found=str(next(v for v in ints if not -2**63 <= v < 2**64)))
    # Wrap to 64 bits, then let the (wrapping) integer cast narrow it.
    wrapped = np.array([v % 2**64 for v in ints], dtype=np.uint64).reshape(x.shape)
    return wrapped.view(np.int64).astype(to.np) if to.is_signed else wrapped.astype(to.np)


# ------------------------------------------------------------------- schemas
def _target(ctx: InferContext, code: Any) -> DType:
    """The DType named by a ``to`` attribute, failing clearly."""
    if not isinstance(code, int):
        ctx.fail("attribute 'to' must be an ONNX element type code", found=repr(code))
    try:
        dt = DType.from_onnx(code)
    except Exception:
        ctx.fail("attribute 'to' is not a known element type", found=str(code),
                 expected="a TensorProto.DataType code (1 = float, 7 = int64, ...)")
    return dt


def _check_castable(ctx: InferContext, src: DType, dst: DType) -> None:
    for role, t in (("input", src), ("target", dst)):
        if t in COMPLEX_TYPES:
            ctx.fail(f"Cast does not support complex {role} types", found=t.short,
                     expected="a real, bool or string type")
    mode = ctx.attr("round_mode")
    if mode not in ROUND_MODES:
        ctx.fail("unknown round_mode", expected=" or ".join(ROUND_MODES), found=repr(mode))


cast = define("Cast", inputs=["input"], outputs=["output"], kind=ELEMENTWISE,
              attrs={"to": Attr.int(required=True), "saturate": Attr.int(1),
                     "round_mode": Attr.string("up")},
              doc="Converts every element to the type `to` (see cast_array).")


@cast.infer
def _(ctx: InferContext) -> list[TensorType]:
    dst = _target(ctx, ctx.attr("to"))
    _check_castable(ctx, ctx.dtype(0), dst)
    return [TensorType(dst, ctx.shape(0))]


@cast.reference
def _(x: np.ndarray, to: int, saturate: int = 1, round_mode: str = "up") -> np.ndarray:
    return cast_array(x, DType.from_onnx(to), bool(saturate), round_mode)


cast_like = define("CastLike", inputs=["input", "target_type"], outputs=["output"], kind=OPAQUE,
                   attrs={"saturate": Attr.int(1), "round_mode": Attr.string("up")},
                   doc="Cast to the element type of `target_type` (its values are not read). "
                       "The ONNX importer turns it into Cast.")


@cast_like.infer
def _(ctx: InferContext) -> list[TensorType]:
    dst = ctx.dtype(1)
    _check_castable(ctx, ctx.dtype(0), dst)
    return [TensorType(dst, ctx.shape(0))]


@cast_like.reference
def _(x: np.ndarray, target: np.ndarray, saturate: int = 1, round_mode: str = "up") -> np.ndarray:
    return cast_array(x, DType.from_numpy(target.dtype), bool(saturate), round_mode)


bitcast = define("BitCast", inputs=["input"], outputs=["output"], kind=ELEMENTWISE,
                 attrs={"to": Attr.int(required=True)},
                 doc="Reinterprets the bits of each element as type `to` (same bit width).")


@bitcast.infer
def _(ctx: InferContext) -> list[TensorType]:
    src = ctx.dtype(0)
    dst = _target(ctx, ctx.attr("to"))
    if DType.STR in (src, dst):
        ctx.fail("BitCast does not support strings", found=f"{src.short} -> {dst.short}")
    if src.bits != dst.bits:
        ctx.fail("BitCast needs types of the same bit width",
                 expected=f"a {src.bits}-bit target for {src.short}",
                 found=f"{dst.short} ({dst.bits} bits)")
    return [TensorType(dst, ctx.shape(0))]


@bitcast.reference
def _(x: np.ndarray, to: int) -> np.ndarray:
    dst = DType.from_onnx(to).np
    # Every type of a given width has the same container size (sub-byte types
    # keep their bits in the low bits of one byte), so a view is a bit cast.
    return np.ascontiguousarray(x).view(dst).reshape(x.shape)
