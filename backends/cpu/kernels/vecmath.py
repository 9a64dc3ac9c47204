"""Small IR helpers shared by the reduction, normalization and pooling kernels.

* accumulators: ``Var`` (an ``alloca`` in the entry block; LLVM's mem2reg
  turns it into registers), ``combine``/``identity`` of the folds these
  kernels use (add, mul, max, min) and ``horizontal`` (a vector folded to
  one lane by halving shuffles);
* ``vexp``: exp(x) as a polynomial on whole vectors (``llvm.exp`` on a vector
  becomes one libm call per lane on x86);
* ``like``: a scalar splat to match a vector operand.

Max and min propagate NaN like NumPy (a NaN on either side wins).
"""

from __future__ import annotations

import math
from typing import Any, Union

import llvmlite.ir as ir

from ..codegen import F32, I32, KernelBuilder, TaskFunction, const_int, splat, type_suffix
from ..expr import constant, elem_of, is_float

FOLDS = ("add", "mul", "max", "min")


class Var:
    """A mutable IR variable: one ``alloca`` in the entry block, loaded and stored where needed."""

    def __init__(self, tf: TaskFunction, ty: ir.Type, name: str = "acc") -> None:
        self.b = tf.builder
        with self.b.goto_block(tf._entry):
            self.ptr = self.b.alloca(ty, name=name)

    def get(self) -> ir.Value:
        return self.b.load(self.ptr)

    def set(self, value: ir.Value) -> None:
        self.b.store(value, self.ptr)


def lanes_of(v: ir.Value) -> int:
    return v.type.count if isinstance(v.type, ir.VectorType) else 1


def like(b: ir.IRBuilder, v: ir.Value, vector: Union[bool, int], lanes: int = 0) -> ir.Value:
    """``v`` splat to ``lanes`` lanes when ``vector`` and it is a scalar (``lanes`` 0: leave it)."""
    if vector and not isinstance(v.type, ir.VectorType):
        return splat(b, v, lanes)
    return v


def identity(kind: str, elem: ir.Type, signed: bool = True) -> Any:
    """The neutral element of a fold on ``elem`` values (a Python number)."""
    if kind == "add":
        return 0.0 if is_float(elem) else 0
    if kind == "mul":
        return 1.0 if is_float(elem) else 1
    if is_float(elem):
        return -math.inf if kind == "max" else math.inf
    bits = elem.width
    if kind == "max":
        return -(1 << (bits - 1)) if signed else 0
    return (1 << (bits - 1)) - 1 if signed else (1 << bits) - 1


def const_like(like_value_type: ir.Type, value: Any) -> ir.Constant:
    e = elem_of(like_value_type)
    v = float(value) if is_float(e) else int(value)
    if isinstance(like_value_type, ir.VectorType):
        return ir.Constant(like_value_type, [v] * like_value_type.count)
    return ir.Constant(e, v)


def combine(kb: KernelBuilder, b: ir.IRBuilder, kind: str, x: ir.Value, y: ir.Value,
            signed: bool = True) -> ir.Value:
    """x (kind) y for scalars or vectors of one type; max/min propagate NaN."""
    if is_float(x.type):
        if kind == "add":
            return b.fadd(x, y)
        if kind == "mul":
            return b.fmul(x, y)
        # y > x ? y : x is one vmaxps (x, the running value, wins when either is NaN); then
        # a NaN y replaces it: NaN propagates from either side in 3 instructions.
        pick = b.select(b.fcmp_ordered(">" if kind == "max" else "<", y, x), y, x)
        return b.select(b.fcmp_unordered("uno", y, y), y, pick)
    if kind == "add":
        return b.add(x, y)
    if kind == "mul":
        return b.mul(x, y)
    cmp = b.icmp_signed if signed else b.icmp_unsigned
    return b.select(cmp(">" if kind == "max" else "<", x, y), x, y)


def combine_all(kb: KernelBuilder, b: ir.IRBuilder, kind: str, values: list, signed: bool = True) -> ir.Value:
    """Fold ``values`` with a balanced tree (independent operations in flight).

    Float max/min skip the per-step NaN test: the tree uses plain compares
    (one vmaxps each) and NaN is checked once per pair of leaves, then
    forced into the result; same result as ``combine``, about half the work.
    """
    vals = list(values)
    nan_flag = None
    if kind in ("max", "min") and is_float(vals[0].type) and len(vals) > 1:
        for k in range(0, len(vals), 2):
            other = vals[k + 1] if k + 1 < len(vals) else vals[k]
            f = b.fcmp_unordered("uno", vals[k], other)
            nan_flag = f if nan_flag is None else b.or_(nan_flag, f)
        pred = ">" if kind == "max" else "<"
        step = lambda x, y: b.select(b.fcmp_ordered(pred, y, x), y, x)  # noqa: E731
    else:
        step = lambda x, y: combine(kb, b, kind, x, y, signed)  # noqa: E731
    while len(vals) > 1:
        vals = [step(vals[k], vals[k + 1]) if k + 1 < len(vals) else vals[k] for k in range(0, len(vals), 2)]
    if nan_flag is None:
        return vals[0]
    return b.select(nan_flag, const_like(vals[0].type, math.nan), vals[0])


def horizontal(kb: KernelBuilder, b: ir.IRBuilder, kind: str, v: ir.Value, signed: bool = True) -> ir.Value:
    """Fold the lanes of vector ``v`` into a scalar (log2(lanes) shuffle steps)."""
    n = lanes_of(v)
    if n == 1:
        return v
    while n > 1 and n % 2 == 0:
        half = n // 2
        undef = ir.Constant(v.type, ir.Undefined)
        lo = b.shuffle_vector(v, undef, ir.Constant(ir.VectorType(I32, half), list(range(half))))
        hi = b.shuffle_vector(v, undef, ir.Constant(ir.VectorType(I32, half), list(range(half, n))))
        v = combine(kb, b, kind, lo, hi, signed)
        n = half
    if n == 1:
        return b.extract_element(v, const_int(0, I32))
    acc = b.extract_element(v, const_int(0, I32))
    for k in range(1, n):
        acc = combine(kb, b, kind, acc, b.extract_element(v, const_int(k, I32)), signed)
    return acc


def to_float(b: ir.IRBuilder, count: ir.Value, ty: ir.Type) -> ir.Value:
    """An i64 count as ``ty`` (scalar or vector float type)."""
    f = b.sitofp(count, elem_of(ty))
    return splat(b, f, ty.count) if isinstance(ty, ir.VectorType) else f


# ------------------------------------------------------------------ exp
_LOG2E = 1.44269504088896341
_LN2_HI = 0.693359375
_LN2_LO = -2.12194440e-4
_EXP_POLY = (1.9875691500e-4, 1.3981999507e-3, 8.3334519073e-3, 4.1665795894e-2,
             1.6666665459e-1, 5.0000001201e-1)  # Cephes expf


def vexp(kb: KernelBuilder, b: ir.IRBuilder, x: ir.Value) -> ir.Value:
    """exp(x) for f32 scalars or vectors, within ~2 ulp (Cephes' expf), in straight-line IR.

    exp(x) = 2^n * exp(r), n = round(x / ln 2), |r| <= ln(2)/2, exp(r) by a
    polynomial; NaN stays NaN, large x gives inf, very negative x 0.
    Other float types use ``llvm.exp``.
    """
    if elem_of(x.type) != F32:
        return b.call(kb.intrinsic("exp", x.type), [x])
    c = lambda v: constant(x, v)  # noqa: E731
    fma = lambda u, v, w: b.call(kb.intrinsic("fma", x.type, 3), [u, v, w])  # noqa: E731
    # Clamp to where the result is finite and nonzero-ish (keeps fptosi in range); NaN passes.
    xc = b.select(b.fcmp_ordered(">", x, c(88.8)), c(88.8), x)
    xc = b.select(b.fcmp_ordered("<", xc, c(-105.0)), c(-105.0), xc)
    fx = b.call(kb.intrinsic("roundeven", x.type), [b.fmul(xc, c(_LOG2E))])
    r = fma(fx, c(-_LN2_HI), xc)  # Cody-Waite: x - n * ln2 in two exact-ish steps
    r = fma(fx, c(-_LN2_LO), r)
    p = c(_EXP_POLY[0])
    for coef in _EXP_POLY[1:]:
        p = fma(p, r, c(coef))
    y = b.fadd(fma(p, b.fmul(r, r), r), c(1.0))
    count = x.type.count if isinstance(x.type, ir.VectorType) else 1
    if kb.target.isa == "avx512" and count % 16 == 0:
        return _scalef(kb, b, y, fx)
    safe = b.select(b.fcmp_unordered("uno", fx, fx), c(0.0), fx)  # NaN lanes: n = 0, no poison
    ity = ir.VectorType(I32, count) if count > 1 else I32
    n = b.fptosi(safe, ity)
    if kb.target.isa == "avx512":  # vscalefss: y * 2^n with correct overflow and denormals
        fn = kb.declare(f"llvm.ldexp.{type_suffix(x.type)}.{type_suffix(ity)}", x.type, [x.type, ity])
        return b.call(fn, [y, n])
    # y * 2^n as y * 2^(n/2) * 2^(n - n/2): both factors are normal floats for n in [-152, 128],
    # so overflow gives inf and underflow rounds through the denormals.
    n1 = b.ashr(n, const_like(ity, 1))
    for part in (n1, b.sub(n, n1)):
        bits = b.shl(b.add(part, const_like(ity, 127)), const_like(ity, 23))
        y = b.fmul(y, b.bitcast(bits, x.type))
    return y


def _scalef(kb: KernelBuilder, b: ir.IRBuilder, y: ir.Value, n: ir.Value) -> ir.Value:
    """y * 2^n (n integral floats; NaN gives NaN) with vscalefps, 16 lanes at a time."""
    v16 = ir.VectorType(F32, 16)
    fn = kb.declare("llvm.x86.avx512.mask.scalef.ps.512", v16, [v16, v16, v16, ir.IntType(16), I32])
    count = y.type.count
    if count == 16:
        return b.call(fn, [y, n, ir.Constant(v16, ir.Undefined), ir.Constant(ir.IntType(16), -1),
                           const_int(4, I32)])
    undef = ir.Constant(y.type, ir.Undefined)
    parts = []
    for k in range(0, count, 16):
        pick = ir.Constant(ir.VectorType(I32, 16), list(range(k, k + 16)))
        parts.append(_scalef(kb, b, b.shuffle_vector(y, undef, pick), b.shuffle_vector(n, undef, pick)))
    while len(parts) > 1:
        m = parts[0].type.count
        join = ir.Constant(ir.VectorType(I32, 2 * m), list(range(2 * m)))
        parts = [b.shuffle_vector(parts[k], parts[k + 1], join) for k in range(0, len(parts), 2)]
    return parts[0]


# erf(x) = x P(x^2) / Q(x^2) on [-4, 4] (+-1 in f32 beyond): Eigen's/XLA's f32 rational fit,
# within 4.3e-7 absolute (7 ulp) of erf, in 13 FMAs and one division, all lanes at once.
_ERF_P = (-2.72614225801306e-10, 2.77068142495902e-08, -2.10102402082508e-06, -5.69250639462346e-05,
          -7.34990630326855e-04, -2.95459980854025e-03, -1.60960333262415e-02)
_ERF_Q = (-1.45660718464996e-05, -2.13374055278905e-04, -1.68282697438203e-03, -7.37332916720468e-03,
          -1.42647390514189e-02)
# tanh(x) = x P(x^2) / Q(x^2) on [-7.9053, 7.9053] (+-1 beyond), x itself below 4e-4 (Eigen's fit,
# within 3.2e-7 absolute, 6 ulp).
_TANH_P = (-2.76076847742355e-16, 2.00018790482477e-13, -8.60467152213735e-11, 5.12229709037114e-08,
           1.48572235717979e-05, 6.37261928875436e-04, 4.89352455891786e-03)
_TANH_Q = (1.19825839466702e-06, 1.18534705686654e-04, 2.26843463243900e-03, 4.89352518554385e-03)
_TANH_CLAMP = 7.90531110763549805


def _odd_rational(kb: KernelBuilder, b: ir.IRBuilder, x: ir.Value, clamp: float, num, den) -> ir.Value:
    """x P(x^2) / Q(x^2) with x clamped to [-clamp, clamp] (a NaN passes the clamps and stays NaN)."""
    c = lambda v: constant(x, v)  # noqa: E731
    fma = lambda u, v, w: b.call(kb.intrinsic("fma", x.type, 3), [u, v, w])  # noqa: E731
    xc = b.select(b.fcmp_ordered(">", x, c(clamp)), c(clamp), x)
    xc = b.select(b.fcmp_ordered("<", xc, c(-clamp)), c(-clamp), xc)
    x2 = b.fmul(xc, xc)
    p = c(num[0])
    for coef in num[1:]:
        p = fma(x2, p, c(coef))
    q = c(den[0])
    for coef in den[1:]:
        q = fma(x2, q, c(coef))
    return b.fdiv(b.fmul(xc, p), q)


def verf(kb: KernelBuilder, b: ir.IRBuilder, x: ir.Value) -> ir.Value:
    """erf(x) for f32 scalars or vectors in straight-line IR (libm's erff would run lane by lane)."""
    if elem_of(x.type) != F32:
        raise ValueError("verf is for f32")
    return _odd_rational(kb, b, x, 4.0, _ERF_P, _ERF_Q)


def vtanh(kb: KernelBuilder, b: ir.IRBuilder, x: ir.Value) -> ir.Value:
    """tanh(x) for f32 scalars or vectors in straight-line IR; tiny x (and -0.0) give x itself."""
    if elem_of(x.type) != F32:
        raise ValueError("vtanh is for f32")
    r = _odd_rational(kb, b, x, _TANH_CLAMP, _TANH_P, _TANH_Q)
    ax = b.call(kb.intrinsic("fabs", x.type), [x])
    one = b.call(kb.intrinsic("copysign", x.type, 2), [constant(x, 1.0), x])
    r = b.select(b.fcmp_ordered(">", ax, constant(x, 9.0)), one, r)  # f32 tanh is +-1 there
    return b.select(b.fcmp_ordered("<", ax, constant(x, 4e-4)), x, r)


def is_signed_dtype(dtype) -> bool:
    return bool(getattr(dtype, "is_signed", True))


__all__ = ["FOLDS", "Var", "combine", "combine_all", "const_like", "horizontal", "identity", "is_signed_dtype",
           "lanes_of", "like", "to_float", "verf", "vexp", "vtanh"]
