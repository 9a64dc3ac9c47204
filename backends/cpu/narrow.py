"""Narrow element types on the cpu target: bfloat16, float8, float4, float8e8m0, int4/uint4/int2/uint2.

Each is stored as the reference interpreter holds it (``ml_dtypes``): bfloat16
in 16 bits, everything else in one byte, sub-byte types in its low bits (an
int4 -1 is the byte 0x0F).  Kernels compute on them in a wider *compute type*:
float32 for the floats (every narrow float value is exact in float32), i8 for
the integers (sign- or zero-extended).  So

* ``load(raw)`` widens stored elements to the compute type (bfloat16 by a
  shift; float8/float4/e8m0 through a 256- or 16-entry float32 table built
  from ``ml_dtypes``, so decoding is the reference's by construction);
* ``round_to(value)`` rounds a compute value to the type and back (what
  every op producing a narrow float does, so a fused chain sees the values
  the reference computes, one rounding per op);
* ``store(value)`` encodes a compute value into the stored bits;
* ``convert(value, src, dst)`` is ONNX's Cast into or out of these types,
  following ``ir.ops.cast.cast_array`` exactly: float8 targets round the
  source as float32 (float64 for 64-bit sources, via round-to-odd so the
  result is rounded once) and clamp to +-max when ``saturate``; bfloat16 and
  float4 targets are rounded once from the exact source value (as
  ``ml_dtypes`` does, integers included); float8e8m0 takes float32's exponent
  and rounds by ``round_mode``; int4/int2 targets take a float's truncation
  when it fits and 0 otherwise, and wrap integers to the low bits.

Encoding is integer arithmetic on the float32 bits (round half to even), so
it vectorizes and needs no CPU feature.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import llvmlite.ir as ir
import ml_dtypes
import numpy as np

from ir.dtypes import DType
from ir.errors import BackendError

from .codegen import F32, F64, I1, I8, I16, I32, I64, const_int

# ------------------------------------------------------------------ the types
NARROW_INTS: dict[DType, tuple[int, bool]] = {  # bits, signed
    DType.I4: (4, True), DType.U4: (4, False), DType.I2: (2, True), DType.U2: (2, False),
}


@dataclass(frozen=True)
class MiniFloat:
    """A float format narrower than float32 (sign, ``ebits`` exponent, ``mbits`` mantissa bits)."""

    ebits: int
    mbits: int
    bias: int
    kind: str        # "ieee": Inf and NaN (E5M2); "fn": NaN is all ones, no Inf (E4M3FN);
    #                  "fnuz": NaN is 0x80, no Inf, no -0; "sat": neither, saturates (E2M1)
    max_code: int    # the largest finite magnitude's code

    @property
    def width(self) -> int:
        return 1 + self.ebits + self.mbits


MINIFLOATS: dict[DType, MiniFloat] = {
    DType.F8E4M3FN: MiniFloat(4, 3, 7, "fn", 0x7E),
    DType.F8E4M3FNUZ: MiniFloat(4, 3, 8, "fnuz", 0x7F),
    DType.F8E5M2: MiniFloat(5, 2, 15, "ieee", 0x7B),
    DType.F8E5M2FNUZ: MiniFloat(5, 2, 16, "fnuz", 0x7F),
    DType.F4E2M1: MiniFloat(2, 1, 1, "sat", 0x7),
}
FLOAT8 = frozenset({DType.F8E4M3FN, DType.F8E4M3FNUZ, DType.F8E5M2, DType.F8E5M2FNUZ})
NARROW_FLOATS = frozenset(MINIFLOATS) | {DType.BF16, DType.F8E8M0}
NARROW = NARROW_FLOATS | frozenset(NARROW_INTS)

# Narrow floats that ops other than Cast may compute on (computed in float32, rounded per op).
ARITHMETIC = frozenset({DType.BF16})


def is_narrow(dtype: DType) -> bool:
    return dtype in NARROW


def storage_type(dtype: DType) -> ir.Type:
    """The LLVM type one stored element occupies."""
    return I16 if dtype is DType.BF16 else I8


def compute_type(dtype: DType) -> ir.Type:
    return F32 if dtype in NARROW_FLOATS else I8


# --------------------------------------------------------------- IR helpers
def _like(v: ir.Value, elem: ir.Type) -> ir.Type:
    return ir.VectorType(elem, v.type.count) if isinstance(v.type, ir.VectorType) else elem


def _c(like: ir.Value, value, elem: Optional[ir.Type] = None) -> ir.Constant:
    """A constant shaped like ``like`` (scalar or vector) of ``elem`` (default: like's element)."""
    e = elem or (like.type.element if isinstance(like.type, ir.VectorType) else like.type)
    value = float(value) if isinstance(e, (ir.FloatType, ir.DoubleType)) else int(value)
    if isinstance(like.type, ir.VectorType):
        return ir.Constant(ir.VectorType(e, like.type.count), [value] * like.type.count)
    return ir.Constant(e, value)


def _is_vector(v: ir.Value) -> bool:
    return isinstance(v.type, ir.VectorType)


# --------------------------------------------------------------------- load
def _table(module: ir.Module, dtype: DType) -> ir.GlobalVariable:
    """A constant float32 table: code -> value, from ml_dtypes (the reference's decoding)."""
    name = f"nnc_decode_{dtype.short}"
    gv = module.globals.get(name)
    if gv is not None:
        return gv
    n = 16 if dtype is DType.F4E2M1 else 256
    with np.errstate(invalid="ignore", over="ignore"):
        values = np.arange(n, dtype=np.uint8).view(dtype.np).astype(np.float32)
    bits = values.view(np.uint32).tolist()
    ty = ir.ArrayType(F32, n)
    gv = ir.GlobalVariable(module, ty, name)
    gv.linkage = "internal"
    gv.global_constant = True
    # Written as bit patterns so NaN payloads and the e8m0 subnormal survive exactly.
    gv.initializer = ir.Constant(ty, [ir.Constant(I32, b).bitcast(F32) for b in bits])
    gv.align = 64
    return gv


def load(b: ir.IRBuilder, raw: ir.Value, dtype: DType) -> ir.Value:
    """Stored element(s) of ``dtype`` -> compute type."""
    if dtype in NARROW_INTS:
        bits, signed = NARROW_INTS[dtype]
        if signed:
            sh = _c(raw, 8 - bits)
            return b.ashr(b.shl(raw, sh), sh)
        return b.and_(raw, _c(raw, (1 << bits) - 1))
    if dtype is DType.BF16:
        wide = b.shl(b.zext(raw, _like(raw, I32)), _c(raw, 16, I32))
        return b.bitcast(wide, _like(raw, F32))
    code = raw
    if dtype is DType.F4E2M1:
        code = b.and_(raw, _c(raw, 0xF))
    table = _table(b.module, dtype)
    idx = b.zext(code, _like(raw, I64))
    if not _is_vector(raw):
        return b.load(b.gep(table, [const_int(0), idx]))
    lanes = raw.type.count
    base = b.ptrtoint(b.gep(table, [const_int(0), const_int(0)]), I64)
    addr = b.add(b.mul(idx, _c(idx, 4)), _splat64(b, base, lanes))
    vty = ir.VectorType(F32, lanes)
    ptrs = b.inttoptr(addr, ir.VectorType(F32.as_pointer(), lanes))
    fn = _declare(b.module, f"llvm.masked.gather.v{lanes}f32.v{lanes}p0f32", vty,
                  [ptrs.type, I32, ir.VectorType(I1, lanes), vty])
    return b.call(fn, [ptrs, const_int(4, I32), ir.Constant(ir.VectorType(I1, lanes), [1] * lanes),
                       ir.Constant(vty, [0.0] * lanes)])


def _splat64(b: ir.IRBuilder, scalar: ir.Value, lanes: int) -> ir.Value:
    vty = ir.VectorType(I64, lanes)
    one = b.insert_element(ir.Constant(vty, ir.Undefined), scalar, const_int(0, I32))
    return b.shuffle_vector(one, ir.Constant(vty, ir.Undefined), ir.Constant(ir.VectorType(I32, lanes), [0] * lanes))


# ------------------------------------------------------------------- encode
def _encode_bf16(b: ir.IRBuilder, x: ir.Value) -> ir.Value:
    """float32 -> bfloat16 bits (i32), round half to even; NaN stays NaN (quieted)."""
    bits = b.bitcast(x, _like(x, I32))
    lsb = b.and_(b.lshr(bits, _c(bits, 16)), _c(bits, 1))
    rounded = b.lshr(b.add(bits, b.add(_c(bits, 0x7FFF), lsb)), _c(bits, 16))
    nan = b.or_(b.lshr(bits, _c(bits, 16)), _c(bits, 0x40))
    is_nan = b.icmp_unsigned(">", b.and_(bits, _c(bits, 0x7FFFFFFF)), _c(bits, 0x7F800000))
    return b.select(is_nan, nan, rounded)


def _encode_minifloat(b: ir.IRBuilder, x: ir.Value, fmt: MiniFloat) -> ir.Value:
    """float32 -> the format's code (i32), round half to even; overflow per the format's kind.

    Normal results round the rebiased float32 bits; results below the format's
    smallest normal add a power of two whose float32 spacing is the format's
    subnormal spacing, so the float addition rounds (half to even) for us.
    """
    bits = b.bitcast(x, _like(x, I32))
    sign = b.lshr(bits, _c(bits, 31))
    a = b.and_(bits, _c(bits, 0x7FFFFFFF))
    shift = 23 - fmt.mbits
    reb = b.sub(a, _c(a, (127 - fmt.bias) << 23))
    lsb = b.and_(b.lshr(reb, _c(reb, shift)), _c(reb, 1))
    norm = b.lshr(b.add(reb, b.add(_c(reb, (1 << (shift - 1)) - 1), lsb)), _c(reb, shift))
    magic = float(2.0 ** (1 - fmt.bias - fmt.mbits + 23))
    fa = b.bitcast(a, _like(x, F32))
    summed = b.bitcast(b.fadd(fa, _c(fa, magic)), _like(x, I32))
    sub = b.sub(summed, _c(summed, int(np.float32(magic).view(np.uint32))))
    min_normal_bits = (127 + 1 - fmt.bias) << 23
    code = b.select(b.icmp_unsigned("<", a, _c(a, min_normal_bits)), sub, norm)
    is_nan = b.icmp_unsigned(">", a, _c(a, 0x7F800000))
    over = b.icmp_unsigned(">", code, _c(code, fmt.max_code))  # Inf included
    top = fmt.width - 1
    signed = b.or_(code, b.shl(sign, _c(sign, top)))
    if fmt.kind == "fn":       # overflow and NaN -> NaN (all ones), keeping the sign
        nan = b.or_(_c(code, (1 << top) - 1), b.shl(sign, _c(sign, top)))
        return b.select(b.or_(over, is_nan), nan, signed)
    if fmt.kind == "fnuz":     # overflow and NaN -> 0x80; no negative zero
        nan = _c(code, 1 << top)
        out = b.select(b.icmp_unsigned("==", code, _c(code, 0)), code, signed)
        return b.select(b.or_(over, is_nan), nan, out)
    if fmt.kind == "ieee":     # overflow -> Inf, NaN -> quiet NaN, both signed
        inf = b.or_(_c(code, ((1 << fmt.ebits) - 1) << fmt.mbits), b.shl(sign, _c(sign, top)))
        nan = b.or_(_c(code, (((1 << fmt.ebits) - 1) << fmt.mbits) | (1 << (fmt.mbits - 1))),
                    b.shl(sign, _c(sign, top)))
        return b.select(is_nan, nan, b.select(over, inf, signed))
    # "sat": overflow -> +-max; NaN -> a zero of the opposite sign (what ml_dtypes writes)
    sat = b.or_(_c(code, fmt.max_code), b.shl(sign, _c(sign, top)))
    nan = b.shl(b.xor(sign, _c(sign, 1)), _c(sign, top))
    return b.select(is_nan, nan, b.select(over, sat, signed))


def _encode_e8m0(b: ir.IRBuilder, x: ir.Value, saturate: bool, round_mode: str) -> ir.Value:
    """float32 -> float8e8m0 code (i32): ``ir.ops.cast.to_e8m0`` step by step."""
    bits = b.bitcast(x, _like(x, I32))
    exp = b.and_(b.lshr(bits, _c(bits, 23)), _c(bits, 0xFF))
    frac = b.and_(bits, _c(bits, 0x7FFFFF))
    special = b.icmp_unsigned("==", exp, _c(exp, 0xFF))
    frac_zero = b.icmp_unsigned("==", frac, _c(frac, 0))
    false = _c(exp, 0, I1)
    if round_mode == "up":
        up = b.not_(frac_zero)
    elif round_mode == "down":
        up = false
    elif round_mode == "nearest":
        guard = b.icmp_unsigned("!=", b.and_(bits, _c(bits, 0x400000)), _c(bits, 0))
        rest = b.icmp_unsigned("!=", b.and_(bits, _c(bits, 0x3FFFFF)), _c(bits, 0))
        up = b.and_(guard, b.or_(rest, b.icmp_unsigned(">", exp, _c(exp, 0))))
    else:
        raise BackendError("unknown round_mode for a float8e8m0 Cast", found=repr(round_mode))
    up = b.and_(up, b.not_(special))
    if saturate:
        up = b.and_(up, b.icmp_unsigned("!=", exp, _c(exp, 0xFE)))
    out = b.add(exp, b.zext(up, _like(x, I32)))
    if saturate:
        out = b.select(b.and_(special, frac_zero), _c(out, 0xFE), out)
        return b.select(b.and_(special, b.not_(frac_zero)), _c(out, 0xFF), out)
    return b.select(special, _c(out, 0xFF), out)


def encode(b: ir.IRBuilder, x: ir.Value, dtype: DType, saturate: bool = True,
           round_mode: str = "up") -> ir.Value:
    """float32 value(s) -> codes of a narrow float (i32 lanes); rounding as documented above."""
    if dtype is DType.BF16:
        return _encode_bf16(b, x)
    if dtype is DType.F8E8M0:
        return _encode_e8m0(b, x, saturate, round_mode)
    return _encode_minifloat(b, x, MINIFLOATS[dtype])


def store(b: ir.IRBuilder, value: ir.Value, dtype: DType) -> ir.Value:
    """Compute value(s) -> stored element(s)."""
    if dtype in NARROW_INTS:
        return b.and_(value, _c(value, (1 << NARROW_INTS[dtype][0]) - 1))
    if dtype is DType.F8E8M0:  # values are e8m0 already (only Cast makes them): keep the exponent
        return b.trunc(_encode_e8m0(b, value, False, "down"), _like(value, I8))
    return b.trunc(encode(b, value, dtype), _like(value, storage_type(dtype)))


def round_to(b: ir.IRBuilder, value: ir.Value, dtype: DType) -> ir.Value:
    """A float32 compute value rounded to ``dtype`` (as if stored and loaded again)."""
    if dtype is DType.BF16:
        code = _encode_bf16(b, value)
        return b.bitcast(b.shl(code, _c(code, 16)), value.type)
    return load(b, b.trunc(encode(b, value, dtype), _like(value, I8)), dtype)


# --------------------------------------------------------------- rounding
def _round_to_odd_f32(b: ir.IRBuilder, x: ir.Value) -> ir.Value:
    """float64 -> float32 rounded to odd: truncate, and set the last bit when inexact.

    A later rounding to a format at least two bits narrower is then the
    correct rounding of ``x`` itself (no double-rounding error).
    """
    t = b.fptrunc(x, _like(x, F32))
    back = b.fpext(t, x.type)
    tb = b.bitcast(t, _like(x, I32))
    ax, aback = _fabs(b, x), _fabs(b, back)
    too_far = b.fcmp_ordered(">", aback, ax)                      # rounded away from zero
    tb = b.select(too_far, b.sub(tb, _c(tb, 1)), tb)            # magnitude one step down
    inexact = b.fcmp_ordered("!=", back, x)
    tb = b.select(inexact, b.or_(tb, _c(tb, 1)), tb)
    return b.bitcast(tb, t.type)


def _fabs(b: ir.IRBuilder, x: ir.Value) -> ir.Value:
    return b.select(b.fcmp_ordered("<", x, _c(x, 0.0)), b.fneg(x), x)


def _int_to_odd_f64(b: ir.IRBuilder, v: ir.Value, signed: bool) -> ir.Value:
    """A 64-bit integer -> float64 rounded to odd (exact below 2**53)."""
    if signed:
        neg = b.icmp_signed("<", v, _c(v, 0))
        mag = b.select(neg, b.sub(_c(v, 0), v), v)   # INT64_MIN stays 2**63 as unsigned
    else:
        neg, mag = None, v
    lz = b.call(_ctlz(b, mag.type), [mag, ir.Constant(I1, 0)])
    shift = b.select(b.icmp_unsigned("<", lz, _c(lz, 11)), b.sub(_c(lz, 11), lz), _c(lz, 0))
    kept = b.lshr(mag, shift)
    lost = b.and_(mag, b.sub(b.shl(_c(mag, 1), shift), _c(mag, 1)))
    kept = b.or_(kept, b.zext(b.icmp_unsigned("!=", lost, _c(lost, 0)), mag.type))
    scale = b.bitcast(b.shl(b.add(shift, _c(shift, 1023)), _c(shift, 52)), _like(v, F64))
    out = b.fmul(b.uitofp(kept, _like(v, F64)), scale)
    return b.select(neg, b.fneg(out), out) if neg is not None else out


def _ctlz(b: ir.IRBuilder, ty: ir.Type) -> ir.Function:
    suffix = f"v{ty.count}i64" if isinstance(ty, ir.VectorType) else "i64"
    return _declare(b.module, f"llvm.ctlz.{suffix}", ty, [ty, I1])


def _declare(module: ir.Module, name: str, ret: ir.Type, args: list) -> ir.Function:
    fn = module.globals.get(name)
    if fn is None:
        fn = ir.Function(module, ir.FunctionType(ret, list(args)), name)
    return fn


def _to_f32_real(b: ir.IRBuilder, v: ir.Value, src: DType) -> ir.Value:
    """``ir.ops.cast._as_real`` then float32: 64-bit sources via float64 (round-to-odd last)."""
    if src in (DType.F64, DType.I64, DType.U64):
        if src is not DType.F64:
            v = b.sitofp(v, _like(v, F64)) if src is DType.I64 else b.uitofp(v, _like(v, F64))
        return _round_to_odd_f32(b, v)
    return _to_f32_exact_or_rne(b, v, src)


def _to_f32_exact_or_rne(b: ir.IRBuilder, v: ir.Value, src: DType) -> ir.Value:
    if src is DType.F32:
        return v
    if src is DType.F16:
        return b.fpext(v, _like(v, F32))
    if src is DType.BOOL:
        return b.uitofp(v, _like(v, F32))
    return b.sitofp(v, _like(v, F32)) if src.is_signed else b.uitofp(v, _like(v, F32))


def _to_f32_odd(b: ir.IRBuilder, v: ir.Value, src: DType) -> ir.Value:
    """The exact source value as float32 rounded to odd (exact when float32 holds it)."""
    if src in (DType.F32, DType.F16, DType.BOOL, DType.I8, DType.U8, DType.I16, DType.U16):
        return _to_f32_exact_or_rne(b, v, src)
    if src is DType.F64:
        return _round_to_odd_f32(b, v)
    if src in (DType.I32, DType.U32):
        wide = b.sitofp(v, _like(v, F64)) if src is DType.I32 else b.uitofp(v, _like(v, F64))
        return _round_to_odd_f32(b, wide)
    if src in (DType.I64, DType.U64):
        return _round_to_odd_f32(b, _int_to_odd_f64(b, v, src is DType.I64))
    raise BackendError("Cast from this element type to a narrow float is not supported by the cpu target",
                       found=src.short)


def _clamp(b: ir.IRBuilder, x: ir.Value, limit: float) -> ir.Value:
    """Clip to [-limit, limit]; NaN passes through."""
    hi, lo = _c(x, limit), _c(x, -limit)
    x = b.select(b.fcmp_ordered(">", x, hi), hi, x)
    return b.select(b.fcmp_ordered("<", x, lo), lo, x)


def _float_max(dtype: DType) -> float:
    return float(ml_dtypes.finfo(dtype.np).max)


def convert(b: ir.IRBuilder, v: ir.Value, src: DType, dst: DType,
            saturate: bool = True, round_mode: str = "up") -> ir.Value:
    """ONNX Cast of compute value(s) ``v`` from ``src`` to ``dst``, one of them narrow."""
    from .expr import convert as wide_convert  # (expr imports this module: import at call time)
    if src in NARROW and dst in NARROW:
        # The reference widens a narrow source to float32 first (``cast_array``).
        if src in NARROW_INTS:
            v = b.sitofp(v, _like(v, F32)) if NARROW_INTS[src][1] else b.uitofp(v, _like(v, F32))
        src = DType.F32
    if src in NARROW_FLOATS:
        src = DType.F32          # held exactly as float32
    elif src in NARROW_INTS:
        src = DType.I8 if NARROW_INTS[src][1] else DType.U8
    if dst in NARROW_INTS:
        return _to_narrow_int(b, v, src, dst)
    if dst not in NARROW_FLOATS:
        return wide_convert(b, v, src, dst)
    if dst is DType.F8E8M0:
        x = v
        if src in (DType.F64, DType.I64, DType.U64):
            x = b.fptrunc(x if src is DType.F64 else
                          (b.sitofp(v, _like(v, F64)) if src is DType.I64 else b.uitofp(v, _like(v, F64))),
                          _like(v, F32))
        else:
            x = _to_f32_exact_or_rne(b, v, src)
        code = _encode_e8m0(b, x, saturate, round_mode)
        return load(b, b.trunc(code, _like(v, I8)), dst)
    if dst in FLOAT8:
        x = _to_f32_real(b, v, src)
        if saturate:
            x = _clamp(b, x, _float_max(dst))
    else:  # bfloat16, float4: one rounding of the exact source value
        x = _to_f32_odd(b, v, src)
    return round_to(b, x, dst)


def _to_narrow_int(b: ir.IRBuilder, v: ir.Value, src: DType, dst: DType) -> ir.Value:
    bits, signed = NARROW_INTS[dst]
    lo, hi = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
    i8 = _like(v, I8)
    if src.is_float:
        if src is DType.F16:
            v = b.fpext(v, _like(v, F32))
        # ml_dtypes: the truncation when it fits, else 0 (NaN too).
        fits = b.and_(b.fcmp_ordered(">", v, _c(v, lo - 1)), b.fcmp_ordered("<", v, _c(v, hi + 1)))
        safe = b.select(fits, v, _c(v, 0.0))
        t = b.fptosi(safe, i8)
        return b.select(fits, t, _c(t, 0))
    if src is DType.BOOL:
        return b.zext(v, i8)
    width = v.type.element.width if isinstance(v.type, ir.VectorType) else v.type.width
    x = v if width == 8 else b.trunc(v, i8)
    if signed:
        sh = _c(x, 8 - bits)
        return b.ashr(b.shl(x, sh), sh)
    return b.and_(x, _c(x, (1 << bits) - 1))
