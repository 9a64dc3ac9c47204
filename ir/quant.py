"""Quantization arithmetic: the one definition every part of the compiler uses.

The op references (``ir/ops/quantization.py``), the CPU kernels and the
systolic-array simulator all call these functions, so a quantized model gives
bit-identical results wherever it runs.  Conventions (ONNX's):

* affine quantization: ``real = scale * (q - zero_point)``;
* ``quantize``: ``q = saturate(round_half_even(x / scale) + zero_point)``;
* a quantized matmul/conv accumulates ``(a - a_zp) * (b - b_zp)`` exactly in
  int32 and *requantizes* the accumulator to the output type with the
  multiplier ``a_scale * b_scale / y_scale``, either in float32 (what
  onnxruntime's kernels do: ``requantize``) or with an int32 fixed-point
  multiplier and a shift (what integer hardware does: ``requantize_fixed``).

Quantization parameters are per tensor (a scalar or a one-element 1-D array),
per axis (a 1-D array along ``axis``) or blocked (same rank as the data, one
value per ``block_size`` elements along ``axis``); ``expand_param`` turns any
of them into an array that broadcasts against the data.

Every function is vectorized NumPy and returns exactly the dtype it documents.

Where this follows onnxruntime exactly: ``quantize`` (division by the scale in
float32, round half to even, saturate), ``output_multiplier`` (float32,
``in_scale * w_scale / out_scale`` in that order) and ``requantize`` (float32
product, round half to even, add the zero point, saturate: MLAS's
``MlasRequantizeOutput``); ``requantize_clamped`` adds a fused Relu/Clip as
saturation bounds, which is ``quantize(clip(x))`` because quantization is
monotonic.  The compiler's integer ops (``nnc.QConv``/``nnc.QMatMul``), their
cpu kernels and the systolic simulator all use these, so integer outputs are
bit-identical across targets.  Where it does not: ``requantize_fixed`` (the
integer-only form for hardware without a float unit) can differ from the float
path by one unit where the float32 product rounds differently.
"""

from __future__ import annotations

from typing import Optional, Union

import ml_dtypes
import numpy as np

from .dtypes import DType
from .errors import ExecutionError

DTypeLike = Union[DType, np.dtype, type]

# Saturation ranges of the integer types a tensor can be quantized to.
INT_RANGES: dict[DType, tuple[int, int]] = {
    DType.U8: (0, 255), DType.I8: (-128, 127),
    DType.U16: (0, 65535), DType.I16: (-32768, 32767),
    DType.U4: (0, 15), DType.I4: (-8, 7),
    DType.U2: (0, 3), DType.I2: (-2, 1),
    DType.I32: (-2**31, 2**31 - 1), DType.U32: (0, 2**32 - 1),
}

# Float types whose out-of-range values become NaN/Inf unless saturated.
FLOAT8_TYPES = frozenset({DType.F8E4M3FN, DType.F8E4M3FNUZ, DType.F8E5M2, DType.F8E5M2FNUZ})
# Narrow floats with no Inf/NaN encoding: ml_dtypes' cast already saturates.
SATURATING_FLOATS = frozenset({DType.F4E2M1, DType.F6E2M3, DType.F6E3M2})

# Types QuantizeLinear may produce and DequantizeLinear may read.
QUANT_TYPES = frozenset(INT_RANGES) - {DType.I32, DType.U32} | FLOAT8_TYPES | SATURATING_FLOATS


def as_dtype(dtype: DTypeLike) -> DType:
    """A ``DType`` from a DType, NumPy dtype or scalar type."""
    return dtype if isinstance(dtype, DType) else DType.from_numpy(dtype)


def qrange(dtype: DTypeLike) -> tuple[int, int]:
    """``(lowest, highest)`` integer a quantized type can hold."""
    return INT_RANGES[as_dtype(dtype)]


# Types NumPy cannot compute in (bfloat16, float8, int4...), held as ml_dtypes arrays.
_ML_DTYPES = frozenset(t.np for t in DType if t.np.type.__module__.startswith("ml_dtypes"))


def _widen(a: np.ndarray) -> np.ndarray:
    """An ml_dtypes array as float32 (exact); NumPy-native arrays as they are."""
    a = np.asarray(a)
    return a.astype(np.float32) if a.dtype in _ML_DTYPES else a


# ----------------------------------------------------------------- parameters
def is_per_tensor(param: np.ndarray) -> bool:
    """A scalar or a one-element 1-D array: one scale (or zero point) for the whole tensor."""
    return param.ndim == 0 or (param.ndim == 1 and param.size == 1)


def expand_param(param: np.ndarray, shape: tuple[int, ...], axis: int = 1,
                 block_size: int = 0) -> np.ndarray:
    """``param`` reshaped/repeated so that it broadcasts against data of ``shape``.

    * per tensor: a 0-d array;
    * per axis: the 1-D array laid along ``axis`` (``(1, C, 1, 1)`` for axis 1 of NCHW);
    * blocked (``block_size > 0``, same rank as the data): each value repeated
      ``block_size`` times along ``axis`` and cut to the data's length.
    """
    param = np.asarray(param)
    if is_per_tensor(param):
        return param.reshape(())
    rank = len(shape)
    axis = axis + rank if axis < 0 else axis
    if not 0 <= axis < rank:
        raise ExecutionError("quantization axis out of range", expected=f"in [{-rank}, {rank})",
                             found=str(axis))
    if param.ndim == 1 and block_size <= 0:
        if param.shape[0] != shape[axis]:
            raise ExecutionError("per-axis quantization parameter has the wrong length",
                                 expected=f"{shape[axis]} (dim {axis} of the data)",
                                 found=str(param.shape[0]))
        view = [1] * rank
        view[axis] = param.shape[0]
        return param.reshape(view)
    if param.ndim != rank or block_size <= 0:
        raise ExecutionError("quantization parameter has an unsupported shape",
                             expected="a scalar, a 1-D array along the axis, or a blocked "
                                      "array of the data's rank with block_size > 0",
                             found=f"shape {list(param.shape)} for data {list(shape)}, "
                                   f"block_size={block_size}")
    blocks = -(-shape[axis] // block_size)
    if param.shape[axis] != blocks:
        raise ExecutionError("blocked quantization parameter has the wrong number of blocks",
                             expected=f"{blocks} along axis {axis}", found=str(param.shape[axis]))
    return np.take(np.repeat(param, block_size, axis=axis), np.arange(shape[axis]), axis=axis)


# --------------------------------------------------------------- float types
def float_max(dtype: DTypeLike) -> float:
    """Largest finite value of a float type."""
    return float(ml_dtypes.finfo(as_dtype(dtype).np).max)


def to_float8(x: np.ndarray, dtype: DTypeLike, saturate: bool = True) -> np.ndarray:
    """Round ``x`` (any real array) to a float8 type, half to even.

    With ``saturate`` out-of-range values and infinities become +-max (ONNX's
    default); without it they become Inf (E5M2) or NaN (the other types).
    """
    dt = as_dtype(dtype)
    x = np.asarray(x)
    if x.dtype != np.float64:
        x = x.astype(np.float32)
    if saturate:
        m = float_max(dt)
        x = np.clip(x, -m, m)  # NaN stays NaN
    return x.astype(dt.np)


def round_half_even(x: np.ndarray) -> np.ndarray:
    """Round to the nearest integer, ties to even (ONNX's rounding for quantization)."""
    return np.rint(x)


def saturate_int(r: np.ndarray, zero_point: Optional[np.ndarray], dtype: DTypeLike) -> np.ndarray:
    """``clip(r + zero_point)`` to ``dtype``'s range, as ``dtype``; ``r`` is already rounded.

    The sum is formed in float64, exact for every integer type we target, so
    no int32 overflow can wrap a huge value around before the clip.  NaN
    saturates to the lowest value, as in onnxruntime and ONNX's reference.
    """
    dt = as_dtype(dtype)
    lo, hi = INT_RANGES[dt]
    r = np.asarray(r).astype(np.float64)
    if zero_point is not None:
        r = r + np.asarray(zero_point).astype(np.float64)
    r = np.where(np.isnan(r), lo, r)
    return np.clip(r, lo, hi).astype(np.int64).astype(dt.np)


# ---------------------------------------------------------- quantize/dequant
def quantize(x: np.ndarray, scale: np.ndarray, zero_point: Optional[np.ndarray] = None,
             dtype: DTypeLike = DType.U8, *, axis: int = 1, block_size: int = 0,
             saturate: bool = True, precision: Optional[DTypeLike] = None) -> np.ndarray:
    """Real -> quantized: ``saturate(round_half_even(x / scale) + zero_point)``.

    ``scale``/``zero_point`` are per tensor, per axis or blocked (see
    ``expand_param``).  The division is done in ``precision`` (default: the
    scale's type; bfloat16 is divided in float32 and rounded to bfloat16).
    Integer results saturate to the type's range; float8 results follow
    ``to_float8`` (``saturate``); float4/float6 always saturate.
    """
    dt = as_dtype(dtype)
    x = np.asarray(x)
    scale = expand_param(np.asarray(scale), x.shape, axis, block_size)
    zp = None if zero_point is None else expand_param(np.asarray(zero_point), x.shape, axis,
                                                      block_size)
    prec = as_dtype(precision) if precision is not None else DType.from_numpy(scale.dtype)
    if prec == DType.I32:  # an integer scale divides in float32
        prec = DType.F32
    v = _divide(x, scale, prec)
    if dt in INT_RANGES:
        return saturate_int(round_half_even(v), zp, dt)
    if zp is not None:
        v = v + _widen(zp).astype(v.dtype)
    if dt in FLOAT8_TYPES:
        return to_float8(v, dt, saturate)
    if dt in SATURATING_FLOATS:
        return v.astype(np.float32).astype(dt.np)
    raise ExecutionError("cannot quantize to this type", found=dt.short,
                         expected="an 8/16/4/2-bit integer or float8/float4/float6 type")


def _divide(x: np.ndarray, scale: np.ndarray, prec: DType) -> np.ndarray:
    """``x / scale`` computed in ``prec`` (float16/32/64 natively, bfloat16 emulated)."""
    if prec in (DType.F16, DType.F32, DType.F64):
        return x.astype(prec.np) / scale.astype(prec.np)
    # bfloat16 (or a float8 scale): divide in float32, round the quotient to the type.
    q = _widen(x).astype(np.float32) / _widen(scale).astype(np.float32)
    if prec == DType.BF16:
        q = q.astype(ml_dtypes.bfloat16).astype(np.float32)
    return q


def dequantize(q: np.ndarray, scale: np.ndarray, zero_point: Optional[np.ndarray] = None,
               dtype: DTypeLike = DType.F32, *, axis: int = 1, block_size: int = 0) -> np.ndarray:
    """Quantized -> real: ``(q - zero_point) * scale`` as ``dtype``.

    The subtraction is exact (int64 for integer inputs); the product is
    formed in float32 (ONNX's reference) and rounded once to ``dtype``.
    """
    q = np.asarray(q)
    dt = as_dtype(dtype)
    if q.dtype.kind in "iub" or DType.from_numpy(q.dtype).is_int:
        d = q.astype(np.int64)
        if zero_point is not None:
            d = d - expand_param(np.asarray(zero_point), q.shape, axis, block_size).astype(np.int64)
        d = d.astype(np.float32)
    else:
        d = _widen(q).astype(np.float32)
        if zero_point is not None:
            d = d - _widen(expand_param(np.asarray(zero_point), q.shape, axis,
                                        block_size)).astype(np.float32)
    s = _widen(expand_param(np.asarray(scale), q.shape, axis, block_size)).astype(np.float32)
    return (d * s).astype(dt.np)


def dynamic_qparams(x: np.ndarray, dtype: DTypeLike = DType.U8) -> tuple[np.float32, int]:
    """``(scale, zero_point)`` that map ``[min(x, 0), max(x, 0)]`` onto ``dtype``'s range.

    DynamicQuantizeLinear's formula, in float32: ``scale = (max - min) /
    (qmax - qmin)``, ``zero_point = round_half_even(clip(qmin - min / scale, qmin,
    qmax))``.  An all-zero ``x`` (empty range, where the spec divides by zero)
    gets scale 1.0 and zero point qmin, as onnxruntime does.
    """
    lo, hi = qrange(dtype)
    x = np.asarray(x, dtype=np.float32)
    mx = np.float32(max(0.0, float(np.max(x)))) if x.size else np.float32(0)
    mn = np.float32(min(0.0, float(np.min(x)))) if x.size else np.float32(0)
    if mx == mn:
        return np.float32(1.0), lo
    scale = np.float32(np.float32(mx - mn) / np.float32(hi - lo))
    initial = np.float32(lo) - mn / scale
    zp = int(np.rint(np.clip(initial, lo, hi)))
    return scale, zp


# -------------------------------------------------------- integer products
_EXACT_F64 = 2.0 ** 53


def accumulation_dtype(amax: float, bmax: float, k: int) -> np.dtype:
    """float64 when a K-term dot product of values bounded by ``amax``/``bmax`` is exact in it.

    Every partial sum is an integer below ``k * amax * bmax``; below 2**53
    float64 holds it exactly and BLAS is much faster than NumPy's int64
    matmul.  Otherwise int64.
    """
    return np.dtype(np.float64) if k * amax * bmax < _EXACT_F64 else np.dtype(np.int64)


def int_matmul(a: np.ndarray, b: np.ndarray, *, dtype: Optional[np.dtype] = None) -> np.ndarray:
    """Exact integer ``a @ b`` (NumPy matmul broadcasting), as int32.

    Operands are small integers (zero points already subtracted).  The
    product is computed in ``dtype`` (default: ``accumulation_dtype`` of the
    operands' largest magnitudes, float64 for 8/16-bit data); the exact sum is
    then wrapped to int32 like a 32-bit hardware accumulator.  Callers that
    already hold float64 operands known to be exact pass ``dtype`` to skip
    the scan.
    """
    a = np.asarray(a)
    b = np.asarray(b)
    if dtype is None:
        k = a.shape[-1] if a.ndim else 1
        dtype = accumulation_dtype(float(np.max(np.abs(a), initial=0)),
                                   float(np.max(np.abs(b), initial=0)), k)
    acc = np.matmul(a.astype(dtype, copy=False), b.astype(dtype, copy=False))
    return acc.astype(np.int64, copy=False).astype(np.int32)


# -------------------------------------------------------------- requantize
def output_multiplier(in_scale: np.ndarray, w_scale: np.ndarray,
                      out_scale: np.ndarray) -> np.ndarray:
    """``in_scale * w_scale / out_scale`` in float32, in onnxruntime's operation order."""
    f = np.float32
    return (np.asarray(in_scale, f) * np.asarray(w_scale, f) / np.asarray(out_scale, f)).astype(f)


def requantize(acc: np.ndarray, multiplier: np.ndarray, zero_point: Union[int, np.ndarray],
               dtype: DTypeLike) -> np.ndarray:
    """int32 accumulator -> quantized ``dtype``, with a float32 multiplier.

    ``saturate(round_half_even(float32(acc) * multiplier) + zero_point)``:
    exactly onnxruntime's MLAS requantization.  ``multiplier`` (and
    ``zero_point``) broadcast against ``acc``: a scalar, or per channel laid
    along the channel axis.
    """
    dt = as_dtype(dtype)
    v = np.asarray(acc).astype(np.float32) * np.asarray(multiplier, np.float32)
    return saturate_int(round_half_even(v), np.asarray(zero_point), dt)


def quantize_multiplier(multiplier: Union[float, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Float multiplier(s) -> ``(int32 mantissa, shift)`` with ``m == mantissa * 2**(shift - 31)``.

    The mantissa is in ``[2**30, 2**31)`` (a Q0.31 number in [0.5, 1)) and the
    shift is the binary exponent (positive = left shift): TFLite/gemmlowp's
    convention, which integer hardware implements as one 32x32->64 multiply
    and one rounding right shift.  A zero multiplier gives ``(0, 0)``.
    Rounding the mantissa to 31 bits keeps the relative error below 2**-31.
    """
    m = np.asarray(multiplier, dtype=np.float64)
    if np.any(m < 0) or not np.all(np.isfinite(m)):
        raise ExecutionError("requantization multiplier must be finite and non-negative",
                             found=str(m.min() if m.size else m))
    frac, exp = np.frexp(m)  # m = frac * 2**exp, frac in [0.5, 1)
    q = np.rint(frac * 2.0**31).astype(np.int64)
    carry = q == 2**31  # frac rounded up to 1.0
    q = np.where(carry, q // 2, q)
    exp = np.where(carry, exp + 1, exp)
    exp = np.where(m == 0, 0, exp)
    return q.astype(np.int32), exp.astype(np.int32)


def rounding_shift_right(x: np.ndarray, shift: Union[int, np.ndarray],
                         rounding: str = "half_even") -> np.ndarray:
    """``x / 2**shift`` rounded to an integer (int64 in, int64 out; ``shift >= 0``).

    ``rounding``: ``"half_even"`` (same ties as the float path), ``"half_up"``
    (add half then arithmetic shift: ties toward +inf, the cheapest in
    hardware) or ``"half_away"`` (ties away from zero: gemmlowp's
    RoundingDivideByPOT).
    """
    x = np.asarray(x, dtype=np.int64)
    s = np.minimum(np.asarray(shift, dtype=np.int64), 62)
    if np.any(s < 0):
        raise ExecutionError("rounding_shift_right needs a non-negative shift", found=str(s.min()))
    one = np.int64(1)
    floor = x >> s
    rem = x - (floor << s)  # in [0, 2**s)
    half = np.where(s > 0, one << np.maximum(s - 1, 0), 0)
    if rounding == "half_up":
        up = (s > 0) & (rem >= half)
    elif rounding == "half_even":
        up = (s > 0) & ((rem > half) | ((rem == half) & ((floor & 1) == 1)))
    elif rounding == "half_away":
        up = (s > 0) & ((rem > half) | ((rem == half) & (x >= 0)))
    else:
        raise ValueError(f"unknown rounding {rounding!r}")
    return floor + up.astype(np.int64)


def requantize_fixed(acc: np.ndarray, mantissa: np.ndarray, shift: np.ndarray,
                     zero_point: Union[int, np.ndarray], dtype: DTypeLike,
                     rounding: str = "half_even") -> np.ndarray:
    """int32 accumulator -> quantized ``dtype`` with integer arithmetic only.

    ``y = saturate(rounding_shift_right(acc * mantissa, 31 - shift) + zero_point)``
    where ``(mantissa, shift) = quantize_multiplier(m)``: the 64-bit product
    never overflows (both factors are below 2**31).  With ``"half_even"`` it
    equals ``requantize`` except where float32 rounding of the product
    differs (rare, and at most one unit); ``"gemmlowp"`` reproduces TFLite's
    SaturatingRoundingDoublingHighMul followed by RoundingDivideByPOT.
    """
    dt = as_dtype(dtype)
    lo, hi = INT_RANGES[dt]
    a = np.asarray(acc).astype(np.int64)
    m = np.asarray(mantissa).astype(np.int64)
    sh = np.asarray(shift).astype(np.int64)
    if rounding == "gemmlowp":
        y = _gemmlowp_requantize(a, m, sh)
    else:
        right = 31 - sh
        left = np.maximum(-right, 0)  # multipliers >= 2**31 (never in practice)
        y = rounding_shift_right((a << left) * m, np.maximum(right, 0), rounding)
    y = y + np.asarray(zero_point).astype(np.int64)
    return np.clip(y, lo, hi).astype(dt.np)


def _gemmlowp_requantize(a: np.ndarray, m: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """TFLite's MultiplyByQuantizedMultiplier on int64 arrays (int32 semantics)."""
    left = np.maximum(shift, 0)
    right = np.maximum(-shift, 0)
    x = np.clip(a << left, -2**31, 2**31 - 1)
    # SaturatingRoundingDoublingHighMul: round(x * m / 2**31), ties away from zero.
    ab = x * m
    nudge = np.where(ab >= 0, 1 << 30, 1 - (1 << 30))
    num = ab + nudge
    high = np.where(num >= 0, num >> 31, -((-num) >> 31))  # C division truncates toward 0
    high = np.where((x == -2**31) & (m == -2**31), 2**31 - 1, high)
    return rounding_shift_right(high, right, "half_away")


# ------------------------------------------------- fused activation bounds
def activation_bounds(dtype: DTypeLike, zero_point: int, scale: float,
                      lo: Optional[float] = None, hi: Optional[float] = None) -> tuple[int, int]:
    """Integer saturation bounds that implement ``Clip(lo, hi)``/``Relu`` after requantization.

    A real bound ``b`` becomes ``quantize(b)`` (the same rounding as every
    other value), intersected with ``dtype``'s range: clamping the quantized
    value to it is exactly ``quantize(clip(x, lo, hi))`` because quantization
    is monotonic.  ``None`` means unbounded on that side.
    """
    tlo, thi = qrange(dtype)
    f = np.float32
    qlo = tlo if lo is None else int(saturate_int(round_half_even(f(lo) / f(scale)), zero_point, dtype))
    qhi = thi if hi is None else int(saturate_int(round_half_even(f(hi) / f(scale)), zero_point, dtype))
    return max(tlo, qlo), min(thi, qhi)


def requantize_clamped(acc: np.ndarray, multiplier: np.ndarray, zero_point: Union[int, np.ndarray],
                       dtype: DTypeLike, lo: int, hi: int) -> np.ndarray:
    """``requantize`` followed by a clamp to ``[lo, hi]`` (a fused Relu/Clip as saturation bounds).

    This is the one epilogue of the compiler's integer conv/matmul
    (``nnc.QConv``/``nnc.QMatMul``): the reference computes it here and the cpu
    kernels emit the same steps in vector registers (float32 product, clamp to
    ``[lo - zp, hi - zp]``, round half to even, add the zero point), which is
    the same value because the bounds are integers.
    """
    y = requantize(acc, multiplier, zero_point, dtype)
    return np.clip(y, lo, hi).astype(y.dtype)


# ------------------------------------------------ packed integer weights
# The compiler's integer ops hold their weights packed once, at build time, in
# the layout the VNNI dot-product instruction (vpdpbusd: 4 u8 x 4 s8 -> int32
# per lane) reads, so a kernel never repacks them:
#   * matmul: B [K, N] -> [ceil(N/16), ceil(K/4), 16, 4]: one 64-byte vector per
#     (column block, group of 4 k), the 4 k of one column adjacent;
#   * conv: W [M, C/g, kh, kw] -> [M, Kp]: each output channel's taps in
#     (c, kh, kw) order, K = C/g*kh*kw padded with zeros to Kp, a multiple of 4.
PACK_N, PACK_K = 16, 4


def _round_up(x: int, m: int) -> int:
    return -(-x // m) * m


def pack_matmul_weights(b: np.ndarray) -> np.ndarray:
    """int8 ``B[K, N]`` -> ``[ceil(N/16), ceil(K/4), 16, 4]`` (zero padded)."""
    k, n = b.shape
    kp, np_ = _round_up(k, PACK_K), _round_up(n, PACK_N)
    pad = np.zeros((kp, np_), b.dtype)
    pad[:k, :n] = b
    return np.ascontiguousarray(pad.reshape(kp // PACK_K, PACK_K, np_ // PACK_N, PACK_N)
                                .transpose(2, 0, 3, 1))


def unpack_matmul_weights(p: np.ndarray, k: int, n: int) -> np.ndarray:
    """Inverse of ``pack_matmul_weights``: ``B[K, N]``."""
    nb, kb = p.shape[:2]
    return p.transpose(1, 3, 0, 2).reshape(kb * PACK_K, nb * PACK_N)[:k, :n]


def pack_conv_weights(w: np.ndarray) -> np.ndarray:
    """int8 ``W[M, C/g, kh, kw]`` -> ``[M, Kp]`` (taps in (c, kh, kw) order, zero padded)."""
    m = w.shape[0]
    flat = w.reshape(m, -1)
    out = np.zeros((m, _round_up(flat.shape[1], PACK_K)), w.dtype)
    out[:, :flat.shape[1]] = flat
    return out


def unpack_conv_weights(p: np.ndarray, tap_shape: tuple[int, ...]) -> np.ndarray:
    """Inverse of ``pack_conv_weights``: ``W[M, *tap_shape]``."""
    k = int(np.prod(tap_shape))
    return p[:, :k].reshape((p.shape[0],) + tuple(tap_shape))


def to_signed_weights(w: np.ndarray, zero_point: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """uint8 weights (and zero points) as int8 ones: ``(w - 128, zp - 128)``; int8 as they are.

    ``w - zp`` is unchanged, so the products are; the VNNI instruction wants
    its second operand signed.  Zero points come back as int32.
    """
    zp = np.asarray(zero_point).astype(np.int32)
    if w.dtype == np.uint8:
        return (w.astype(np.int16) - 128).astype(np.int8), zp - 128
    return w.astype(np.int8), zp
