"""Element conversions for kernels that compute in f32 whatever their tensors store.

f16 tensors are LLVM ``half``; bfloat16 is stored as ``i16`` (the high half of an f32's bits).
Loads widen exactly; stores round half to even (a NaN stays a quiet NaN).  Scalars and vectors
alike.
"""

from __future__ import annotations

import llvmlite.ir as ir

from ..codegen import F32, I32


def _like(x: ir.Value, elem: ir.Type) -> ir.Type:
    return ir.VectorType(elem, x.type.count) if isinstance(x.type, ir.VectorType) else elem


def _const(x: ir.Value, elem: ir.Type, value) -> ir.Constant:
    t = _like(x, elem)
    return ir.Constant(t, [value] * t.count) if isinstance(t, ir.VectorType) else ir.Constant(t, value)


def to_f32(b: ir.IRBuilder, x: ir.Value) -> ir.Value:
    """``x`` (a scalar or vector of the tensor's element type) as f32."""
    elem = x.type.element if isinstance(x.type, ir.VectorType) else x.type
    if elem == F32:
        return x
    if isinstance(elem, ir.IntType) and elem.width == 16:  # bfloat16 bits
        wide = b.shl(b.zext(x, _like(x, I32)), _const(x, I32, 16))
        return b.bitcast(wide, _like(x, F32))
    return b.fpext(x, _like(x, F32))


def from_f32(b: ir.IRBuilder, x: ir.Value, elem: ir.Type) -> ir.Value:
    """f32 ``x`` rounded to the element type (round half to even; a NaN stays a quiet NaN)."""
    if elem == F32:
        return x
    if isinstance(elem, ir.IntType) and elem.width == 16:  # bfloat16 bits
        bits = b.bitcast(x, _like(x, I32))
        lsb = b.and_(b.lshr(bits, _const(x, I32, 16)), _const(x, I32, 1))
        rounded = b.lshr(b.add(bits, b.add(_const(x, I32, 0x7FFF), lsb)), _const(x, I32, 16))
        quiet = b.or_(b.lshr(bits, _const(x, I32, 16)), _const(x, I32, 0x40))
        out = b.select(b.fcmp_unordered("uno", x, x), quiet, rounded)
        return b.trunc(out, _like(x, elem))
    return b.fptrunc(x, _like(x, elem))
