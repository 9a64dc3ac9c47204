"""Element types of tensors: one enum that knows its ONNX code, NumPy dtype and short name.

The short names (``f32``, ``i64``, ``bool``...) are what the textual IR prints.
Exotic ONNX types (bfloat16, float8, int4...) map to ``ml_dtypes`` so the
reference interpreter can hold them in NumPy arrays.
"""

from __future__ import annotations

import enum

import ml_dtypes
import numpy as np

from .errors import CompilerError


class DType(enum.Enum):
    """A tensor element type.  ``value`` is the ONNX ``TensorProto`` code."""

    F32 = 1
    U8 = 2
    I8 = 3
    U16 = 4
    I16 = 5
    I32 = 6
    I64 = 7
    STR = 8
    BOOL = 9
    F16 = 10
    F64 = 11
    U32 = 12
    U64 = 13
    C64 = 14
    C128 = 15
    BF16 = 16
    F8E4M3FN = 17
    F8E4M3FNUZ = 18
    F8E5M2 = 19
    F8E5M2FNUZ = 20
    U4 = 21
    I4 = 22
    F4E2M1 = 23
    F8E8M0 = 24
    U2 = 25
    I2 = 26
    F6E2M3 = 27
    F6E3M2 = 28

    # ----------------------------------------------------------------- names
    @property
    def short(self) -> str:
        """The name used in the textual IR, e.g. ``f32``."""
        return _SHORT[self]

    @property
    def onnx(self) -> int:
        return self.value

    @property
    def np(self) -> np.dtype:
        """The NumPy dtype used to hold values of this type."""
        return _NUMPY[self]

    # ------------------------------------------------------------ properties
    @property
    def is_float(self) -> bool:
        return self in _FLOATS

    @property
    def is_int(self) -> bool:
        return self in _INTS

    @property
    def is_signed(self) -> bool:
        return self in _SIGNED or self.is_float

    @property
    def is_numeric(self) -> bool:
        return self.is_float or self.is_int

    @property
    def bits(self) -> int:
        return _BITS[self]

    @property
    def itemsize(self) -> int:
        """Bytes per element as stored in memory (sub-byte types take a byte)."""
        return max(1, _BITS[self] // 8) if self is not DType.STR else 8

    def __str__(self) -> str:
        return self.short

    def __repr__(self) -> str:
        return f"DType.{self.name}"

    # ---------------------------------------------------------- conversions
    @classmethod
    def from_short(cls, name: str) -> DType:
        try:
            return _FROM_SHORT[name]
        except KeyError:
            raise CompilerError(
                "unknown element type", subject=repr(name),
                hint=f"known types: {', '.join(sorted(_FROM_SHORT))}") from None

    @classmethod
    def from_onnx(cls, code: int) -> DType:
        try:
            return cls(code)
        except ValueError:
            raise CompilerError("unsupported ONNX element type", subject=f"code {code}") from None

    @classmethod
    def from_numpy(cls, dtype) -> DType:
        dt = np.dtype(dtype)
        try:
            return _FROM_NUMPY[dt]
        except KeyError:
            if dt.kind in ("U", "S", "O"):
                return DType.STR
            raise CompilerError("unsupported NumPy dtype", subject=str(dt)) from None


_SHORT = {
    DType.F32: "f32", DType.U8: "u8", DType.I8: "i8", DType.U16: "u16", DType.I16: "i16",
    DType.I32: "i32", DType.I64: "i64", DType.STR: "str", DType.BOOL: "bool",
    DType.F16: "f16", DType.F64: "f64", DType.U32: "u32", DType.U64: "u64",
    DType.C64: "c64", DType.C128: "c128", DType.BF16: "bf16",
    DType.F8E4M3FN: "f8e4m3fn", DType.F8E4M3FNUZ: "f8e4m3fnuz", DType.F8E5M2: "f8e5m2",
    DType.F8E5M2FNUZ: "f8e5m2fnuz", DType.U4: "u4", DType.I4: "i4",
    DType.F4E2M1: "f4e2m1", DType.F8E8M0: "f8e8m0", DType.U2: "u2", DType.I2: "i2",
    DType.F6E2M3: "f6e2m3", DType.F6E3M2: "f6e3m2",
}
_FROM_SHORT = {v: k for k, v in _SHORT.items()}

_NUMPY = {
    DType.F32: np.dtype(np.float32), DType.U8: np.dtype(np.uint8), DType.I8: np.dtype(np.int8),
    DType.U16: np.dtype(np.uint16), DType.I16: np.dtype(np.int16), DType.I32: np.dtype(np.int32),
    DType.I64: np.dtype(np.int64), DType.STR: np.dtype(object), DType.BOOL: np.dtype(np.bool_),
    DType.F16: np.dtype(np.float16), DType.F64: np.dtype(np.float64),
    DType.U32: np.dtype(np.uint32), DType.U64: np.dtype(np.uint64),
    DType.C64: np.dtype(np.complex64), DType.C128: np.dtype(np.complex128),
    DType.BF16: np.dtype(ml_dtypes.bfloat16),
    DType.F8E4M3FN: np.dtype(ml_dtypes.float8_e4m3fn),
    DType.F8E4M3FNUZ: np.dtype(ml_dtypes.float8_e4m3fnuz),
    DType.F8E5M2: np.dtype(ml_dtypes.float8_e5m2),
    DType.F8E5M2FNUZ: np.dtype(ml_dtypes.float8_e5m2fnuz),
    DType.U4: np.dtype(ml_dtypes.uint4), DType.I4: np.dtype(ml_dtypes.int4),
    DType.F4E2M1: np.dtype(ml_dtypes.float4_e2m1fn),
    DType.F8E8M0: np.dtype(ml_dtypes.float8_e8m0fnu),
    DType.U2: np.dtype(ml_dtypes.uint2), DType.I2: np.dtype(ml_dtypes.int2),
    DType.F6E2M3: np.dtype(ml_dtypes.float6_e2m3fn), DType.F6E3M2: np.dtype(ml_dtypes.float6_e3m2fn),
}
_FROM_NUMPY = {v: k for k, v in _NUMPY.items()}

_FLOATS = {DType.F32, DType.F16, DType.F64, DType.BF16, DType.F8E4M3FN, DType.F8E4M3FNUZ,
           DType.F8E5M2, DType.F8E5M2FNUZ, DType.F4E2M1, DType.F8E8M0,
           DType.F6E2M3, DType.F6E3M2}
_INTS = {DType.U8, DType.I8, DType.U16, DType.I16, DType.I32, DType.I64, DType.U32,
         DType.U64, DType.U4, DType.I4, DType.U2, DType.I2}
_SIGNED = {DType.I8, DType.I16, DType.I32, DType.I64, DType.I4, DType.I2}
_BITS = {
    DType.F32: 32, DType.U8: 8, DType.I8: 8, DType.U16: 16, DType.I16: 16, DType.I32: 32,
    DType.I64: 64, DType.STR: 64, DType.BOOL: 8, DType.F16: 16, DType.F64: 64,
    DType.U32: 32, DType.U64: 64, DType.C64: 64, DType.C128: 128, DType.BF16: 16,
    DType.F8E4M3FN: 8, DType.F8E4M3FNUZ: 8, DType.F8E5M2: 8, DType.F8E5M2FNUZ: 8,
    DType.U4: 4, DType.I4: 4, DType.F4E2M1: 4, DType.F8E8M0: 8, DType.U2: 2, DType.I2: 2,
    DType.F6E2M3: 6, DType.F6E3M2: 6,
}

# Convenient module-level aliases: ``from ir.dtypes import f32, i64``.
f32, f16, f64, bf16 = DType.F32, DType.F16, DType.F64, DType.BF16
i8, i16, i32, i64 = DType.I8, DType.I16, DType.I32, DType.I64
u8, u16, u32, u64 = DType.U8, DType.U16, DType.U32, DType.U64
boolean, string = DType.BOOL, DType.STR
