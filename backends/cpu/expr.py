"""Elementwise ops as LLVM IR on scalars or vectors.

``emit_op(kb, b, node, operands)`` computes one elementwise/broadcast op of a
fused body on already-loaded operands (all scalars or all vectors of one
width), in the op's *compute type*: f32 for f16 data, the dtype otherwise.
Kernels call it for epilogues and elementwise chains, so every kernel
supports the same set of elementwise ops: those with an emitter, registered
by op name (and domain) with ``@elementwise_op("Relu", ints=True)``.  Which
ops are elementwise is the registry's business (``OpSchema.kind``); this
table says which of them the cpu target can compute.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Callable, Optional

import llvmlite.ir as ir

from ir.dtypes import DType
from ir.errors import BackendError
from ir.graph import Node
from ir.registry import normalize_domain

from . import narrow
from .codegen import F16, F32, I1, I8, I32, KernelBuilder, const_int, llvm_type, splat

# --------------------------------------------------------------- type helpers


def compute_type(dtype: DType) -> ir.Type:
    """The type arithmetic happens in: f16 widens to f32, bool is i1."""
    if dtype is DType.F16:
        return F32
    if dtype is DType.BOOL:
        return I1
    if narrow.is_narrow(dtype):
        return narrow.compute_type(dtype)
    return llvm_type(dtype)


def lanes_of(v: ir.Value) -> int:
    return v.type.count if isinstance(v.type, ir.VectorType) else 1


def elem_of(t: ir.Type) -> ir.Type:
    return t.element if isinstance(t, ir.VectorType) else t


def with_elem(t: ir.Type, elem: ir.Type) -> ir.Type:
    return ir.VectorType(elem, t.count) if isinstance(t, ir.VectorType) else elem


def is_float(t: ir.Type) -> bool:
    return isinstance(elem_of(t), (ir.FloatType, ir.DoubleType, ir.HalfType))


def constant(like: ir.Value, value: Any, elem: Optional[ir.Type] = None) -> ir.Value:
    """A constant of ``like``'s shape (scalar or vector) holding ``value``."""
    e = elem or elem_of(like.type)
    if isinstance(e, ir.IntType):
        value = int(value) if e.width > 1 else bool(value)
    else:
        value = float(value)
    if isinstance(like.type, ir.VectorType):
        return ir.Constant(ir.VectorType(e, like.type.count), [value] * like.type.count)
    return ir.Constant(e, value)


def load_convert(b: ir.IRBuilder, raw: ir.Value, dtype: DType) -> ir.Value:
    """Stored element(s) -> compute type (f16 -> f32, bool byte -> i1)."""
    if dtype is DType.F16:
        return b.fpext(raw, with_elem(raw.type, F32))
    if dtype is DType.BOOL:
        return b.icmp_unsigned("!=", raw, constant(raw, 0))
    if narrow.is_narrow(dtype):
        return narrow.load(b, raw, dtype)
    return raw


def store_convert(b: ir.IRBuilder, value: ir.Value, dtype: DType) -> ir.Value:
    """Compute type -> stored element(s)."""
    if dtype is DType.F16:
        return b.fptrunc(value, with_elem(value.type, F16))
    if dtype is DType.BOOL:
        return b.zext(value, with_elem(value.type, I8))
    if narrow.is_narrow(dtype):
        return narrow.store(b, value, dtype)
    return value


def convert(b: ir.IRBuilder, v: ir.Value, src: DType, dst: DType, saturate: bool = True,
            round_mode: str = "up") -> ir.Value:
    """Cast between compute types of two dtypes (ONNX Cast semantics for the types we support)."""
    if src is not dst and (narrow.is_narrow(src) or narrow.is_narrow(dst)):
        return narrow.convert(b, v, src, dst, saturate, round_mode)
    to = compute_type(dst)
    st, dt = elem_of(v.type), to
    target = with_elem(v.type, dt)
    if st == dt and src.is_signed == dst.is_signed:
        return v
    if dst is DType.BOOL:
        return b.fcmp_unordered("!=", v, constant(v, 0.0)) if is_float(v.type) else \
            b.icmp_unsigned("!=", v, constant(v, 0))
    if src is DType.BOOL:
        return b.uitofp(v, target) if isinstance(dt, (ir.FloatType, ir.DoubleType)) else b.zext(v, target)
    if is_float(v.type) and isinstance(dt, (ir.FloatType, ir.DoubleType)):
        return b.fpext(v, target) if _bits(st) < _bits(dt) else b.fptrunc(v, target)
    if is_float(v.type):
        return b.fptosi(v, target) if dst.is_signed else b.fptoui(v, target)
    if isinstance(dt, (ir.FloatType, ir.DoubleType)):
        return b.sitofp(v, target) if src.is_signed else b.uitofp(v, target)
    if st.width < dt.width:
        return b.sext(v, target) if src.is_signed else b.zext(v, target)
    if st.width > dt.width:
        return b.trunc(v, target)
    return v


def _bits(t: ir.Type) -> int:
    return {"float": 32, "double": 64, "half": 16}.get(str(t), getattr(t, "width", 0))


# ------------------------------------------------------------ math helpers
_LIBM = {  # op -> (f32 name, f64 name)
    "Tanh": ("tanhf", "tanh"), "Erf": ("erff", "erf"), "Tan": ("tanf", "tan"),
    "Asin": ("asinf", "asin"), "Acos": ("acosf", "acos"), "Atan": ("atanf", "atan"),
    "Sinh": ("sinhf", "sinh"), "Cosh": ("coshf", "cosh"), "Asinh": ("asinhf", "asinh"),
    "Acosh": ("acoshf", "acosh"), "Atanh": ("atanhf", "atanh"), "expm1": ("expm1f", "expm1"),
    "log1p": ("log1pf", "log1p"),
}
_INTRINSIC = {"Exp": "exp", "Log": "log", "Sqrt": "sqrt", "Sin": "sin", "Cos": "cos",
              "Floor": "floor", "Ceil": "ceil", "Round": "roundeven", "Abs": "fabs"}


def libm(kb: KernelBuilder, b: ir.IRBuilder, name: str, x: ir.Value) -> ir.Value:
    """A libm function applied lane by lane (erf and tanh on f32: a vectorized rational fit)."""
    e = elem_of(x.type)
    if name in ("Erf", "Tanh") and isinstance(e, ir.FloatType):
        from .kernels.vecmath import verf, vtanh
        return (verf if name == "Erf" else vtanh)(kb, b, x)
    fname = _LIBM[name][0 if isinstance(e, ir.FloatType) else 1] if name in _LIBM else name
    fn = kb.declare(fname, e, [e])
    if not isinstance(x.type, ir.VectorType):
        return b.call(fn, [x])
    out = ir.Constant(x.type, ir.Undefined)
    for lane in range(x.type.count):
        r = b.call(fn, [b.extract_element(x, const_int(lane, I32))])
        out = b.insert_element(out, r, const_int(lane, I32))
    return out


def intrinsic(kb: KernelBuilder, b: ir.IRBuilder, name: str, *args: ir.Value) -> ir.Value:
    return b.call(kb.intrinsic(name, args[0].type, len(args)), list(args))


def fmax(b: ir.IRBuilder, x: ir.Value, y: ir.Value) -> ir.Value:
    """max(x, y); a NaN ``x`` propagates (use with constant ``y``, or see ``_max2``)."""
    return b.select(b.fcmp_unordered(">", x, y), x, y)


def fmin(b: ir.IRBuilder, x: ir.Value, y: ir.Value) -> ir.Value:
    """min(x, y); a NaN ``x`` propagates."""
    return b.select(b.fcmp_unordered("<", x, y), x, y)


def _nan_of(b: ir.IRBuilder, y: ir.Value, result: ir.Value) -> ir.Value:
    """``result``, or ``y`` where ``y`` is NaN (numpy's maximum/minimum propagate either NaN)."""
    if isinstance(y, ir.Constant):
        return result
    return b.select(b.fcmp_unordered("uno", y, y), y, result)


def exp(kb: KernelBuilder, b: ir.IRBuilder, x: ir.Value) -> ir.Value:
    """e**x: vectorized polynomial for f32 vectors (libm's expf would run lane by lane)."""
    if isinstance(x.type, ir.VectorType) and isinstance(x.type.element, ir.FloatType):
        from .kernels.vecmath import vexp
        return vexp(kb, b, x)
    return intrinsic(kb, b, "exp", x)


def sigmoid(kb: KernelBuilder, b: ir.IRBuilder, x: ir.Value) -> ir.Value:
    one = constant(x, 1.0)
    return b.fdiv(one, b.fadd(one, exp(kb, b, b.fsub(constant(x, 0.0), x))))


def softplus(kb: KernelBuilder, b: ir.IRBuilder, x: ir.Value) -> ir.Value:
    # log(1 + exp(x)) = max(x, 0) + log1p(exp(-|x|)), stable for large |x|.
    ax = intrinsic(kb, b, "fabs", x)
    e = exp(kb, b, b.fsub(constant(x, 0.0), ax))
    return b.fadd(fmax(b, x, constant(x, 0.0)), libm(kb, b, "log1p", e))


# ----------------------------------------------------------------- the ops
Emitter = Callable[[KernelBuilder, ir.IRBuilder, Node, list], ir.Value]


@dataclass(frozen=True)
class ElementwiseEmitter:
    """How the cpu target computes one elementwise op from loaded operands."""

    fn: Emitter
    ints: bool = False        # handles integer and bool data too (else float data only)
    positional: bool = False  # gets None for omitted optional inputs (else those are dropped)


# (domain, op) -> emitter: the ops every cpu kernel can compute in an elementwise chain or epilogue.
_EMITTERS: dict[tuple[str, str], ElementwiseEmitter] = {}


def register_elementwise(name: str, fn: Emitter, *, domain: str = "", ints: bool = False,
                         positional: bool = False) -> Emitter:
    """Register ``fn(kb, b, node, operands) -> value`` as the cpu emitter of op ``domain.name``."""
    key = (normalize_domain(domain), name)
    if key in _EMITTERS:
        raise ValueError(f"a cpu elementwise emitter for {name!r} (domain {domain!r}) is registered twice")
    _EMITTERS[key] = ElementwiseEmitter(fn, ints, positional)
    return fn


def elementwise_op(*names: str, domain: str = "", ints: bool = False, positional: bool = False):
    """Decorator: ``@elementwise_op("Relu", ints=True)`` registers the emitter of those ops."""
    def register(fn: Emitter) -> Emitter:
        for n in names:
            register_elementwise(n, fn, domain=domain, ints=ints, positional=positional)
        return fn
    return register


def unregister_elementwise(name: str, domain: str = "") -> None:
    """Remove an op's emitter (for emitters registered at run time, e.g. by tests)."""
    _EMITTERS.pop((normalize_domain(domain), name), None)


def elementwise_emitter(domain: str, op: str) -> Optional[ElementwiseEmitter]:
    _discover_kernels()
    return _EMITTERS.get((normalize_domain(domain), op))


def _discover_kernels() -> None:
    """Kernel modules may register emitters too (``kernels/bitcast.py``): import them first."""
    from .kernels import _DISCOVERY
    _DISCOVERY.ensure()


def elementwise_ops() -> frozenset[tuple[str, str]]:
    """The (domain, op) pairs with an elementwise emitter."""
    _discover_kernels()
    return frozenset(_EMITTERS)


def _arith(fop: str, iop: str, uop: Optional[str] = None):
    def emit(kb, b, node, xs):
        a, c = xs
        if is_float(a.type):
            return getattr(b, fop)(a, c)
        signed = node.inputs[0].type.dtype.is_signed
        return getattr(b, iop if signed or uop is None else uop)(a, c)
    return emit


_add = _arith("fadd", "add")
register_elementwise("Add", _add, ints=True)
register_elementwise("Sub", _arith("fsub", "sub"), ints=True)
register_elementwise("Mul", _arith("fmul", "mul"), ints=True)


@elementwise_op("Div", ints=True)
def _(kb, b, node, xs):
    a, c = xs
    if is_float(a.type):
        return b.fdiv(a, c)
    zero = constant(c, 0)
    safe = b.select(b.icmp_signed("==", c, zero), constant(c, 1), c)
    q = b.sdiv(a, safe) if node.inputs[0].type.dtype.is_signed else b.udiv(a, safe)
    return b.select(b.icmp_signed("==", c, zero), zero, q)


@elementwise_op("Mod", ints=True)
def _(kb, b, node, xs):
    a, c = xs
    fmod_mode = node.attr("fmod")
    if is_float(a.type):
        r = b.frem(a, c)
        if fmod_mode:
            return r
        # numpy mod: the result takes the divisor's sign.
        fix = b.and_(b.fcmp_ordered("!=", r, constant(r, 0.0)),
                     b.xor(b.fcmp_ordered("<", r, constant(r, 0.0)), b.fcmp_ordered("<", c, constant(c, 0.0))))
        return b.select(fix, b.fadd(r, c), r)
    signed = node.inputs[0].type.dtype.is_signed
    zero = constant(c, 0)
    safe = b.select(b.icmp_signed("==", c, zero), constant(c, 1), c)
    r = b.srem(a, safe) if signed else b.urem(a, safe)
    if not fmod_mode and signed:
        fix = b.and_(b.icmp_signed("!=", r, zero), b.xor(b.icmp_signed("<", r, zero), b.icmp_signed("<", c, zero)))
        r = b.select(fix, b.add(r, c), r)
    return b.select(b.icmp_signed("==", c, zero), zero, r)


def _fold(fn):
    def emit(kb, b, node, xs):
        acc = xs[0]
        for x in xs[1:]:
            acc = fn(kb, b, node, [acc, x])
        return acc
    return emit


def _max2(kb, b, node, xs):
    a, c = xs
    if is_float(a.type):
        return _nan_of(b, c, fmax(b, a, c))
    cmp = b.icmp_signed if node.inputs[0].type.dtype.is_signed else b.icmp_unsigned
    return b.select(cmp(">", a, c), a, c)


def _min2(kb, b, node, xs):
    a, c = xs
    if is_float(a.type):
        return _nan_of(b, c, fmin(b, a, c))
    cmp = b.icmp_signed if node.inputs[0].type.dtype.is_signed else b.icmp_unsigned
    return b.select(cmp("<", a, c), a, c)


register_elementwise("Max", _fold(_max2), ints=True)
register_elementwise("Min", _fold(_min2), ints=True)
register_elementwise("Sum", _fold(_add), ints=True)


@elementwise_op("Mean")
def _(kb, b, node, xs):
    total = _fold(_add)(kb, b, node, xs)
    return b.fdiv(total, constant(total, float(len(xs))))


@elementwise_op("Neg", ints=True)
def _(kb, b, node, xs):
    return b.fneg(xs[0]) if is_float(xs[0].type) else b.sub(constant(xs[0], 0), xs[0])


@elementwise_op("Abs", ints=True)
def _(kb, b, node, xs):
    x = xs[0]
    if is_float(x.type):
        return intrinsic(kb, b, "fabs", x)
    if not node.inputs[0].type.dtype.is_signed:
        return x
    return b.select(b.icmp_signed("<", x, constant(x, 0)), b.sub(constant(x, 0), x), x)


@elementwise_op("Relu", ints=True)
def _(kb, b, node, xs):
    x = xs[0]
    zero = constant(x, 0.0 if is_float(x.type) else 0)
    # x > 0 ? x : 0 (vmaxps); NaN maps to NaN like numpy's maximum.
    return b.select(b.fcmp_unordered(">", x, zero), x, zero) if is_float(x.type) else \
        b.select(b.icmp_signed(">", x, zero), x, zero)


@elementwise_op("LeakyRelu")
def _(kb, b, node, xs):
    x = xs[0]
    return b.select(b.fcmp_ordered(">=", x, constant(x, 0.0)), x, b.fmul(x, constant(x, node.attr("alpha"))))


@elementwise_op("PRelu")
def _(kb, b, node, xs):
    x, slope = xs
    return b.select(b.fcmp_ordered("<", x, constant(x, 0.0)), b.fmul(x, slope), x)


@elementwise_op("Sigmoid")
def _(kb, b, node, xs):
    return sigmoid(kb, b, xs[0])


@elementwise_op("HardSigmoid")
def _(kb, b, node, xs):
    x = xs[0]
    y = b.fadd(b.fmul(x, constant(x, node.attr("alpha"))), constant(x, node.attr("beta")))
    return fmin(b, fmax(b, y, constant(x, 0.0)), constant(x, 1.0))


@elementwise_op("HardSwish")
def _(kb, b, node, xs):
    x = xs[0]
    y = b.fadd(b.fmul(x, constant(x, 1.0 / 6.0)), constant(x, 0.5))
    return b.fmul(x, fmin(b, fmax(b, y, constant(x, 0.0)), constant(x, 1.0)))


@elementwise_op("Softplus")
def _(kb, b, node, xs):
    return softplus(kb, b, xs[0])


@elementwise_op("Softsign")
def _(kb, b, node, xs):
    x = xs[0]
    return b.fdiv(x, b.fadd(constant(x, 1.0), intrinsic(kb, b, "fabs", x)))


@elementwise_op("Elu")
def _(kb, b, node, xs):
    x = xs[0]
    neg = b.fmul(constant(x, node.attr("alpha")), libm(kb, b, "expm1", fmin(b, x, constant(x, 0.0))))
    return b.select(b.fcmp_ordered(">=", x, constant(x, 0.0)), x, neg)


@elementwise_op("Selu")
def _(kb, b, node, xs):
    x = xs[0]
    neg = b.fmul(constant(x, node.attr("alpha")), libm(kb, b, "expm1", fmin(b, x, constant(x, 0.0))))
    return b.fmul(constant(x, node.attr("gamma")), b.select(b.fcmp_ordered(">", x, constant(x, 0.0)), x, neg))


@elementwise_op("Celu")
def _(kb, b, node, xs):
    x = xs[0]
    alpha = node.attr("alpha")
    neg = b.fmul(constant(x, alpha), libm(kb, b, "expm1", b.fdiv(x, constant(x, alpha))))
    return b.fadd(fmax(b, x, constant(x, 0.0)), fmin(b, neg, constant(x, 0.0)))


@elementwise_op("ThresholdedRelu")
def _(kb, b, node, xs):
    x = xs[0]
    return b.select(b.fcmp_ordered(">", x, constant(x, node.attr("alpha"))), x, constant(x, 0.0))


@elementwise_op("Mish")
def _(kb, b, node, xs):
    return b.fmul(xs[0], libm(kb, b, "Tanh", softplus(kb, b, xs[0])))


@elementwise_op("Swish")
def _(kb, b, node, xs):
    x = xs[0]
    return b.fmul(x, sigmoid(kb, b, b.fmul(x, constant(x, node.attr("alpha")))))


@elementwise_op("Gelu")
def _(kb, b, node, xs):
    x = xs[0]
    half = constant(x, 0.5)
    if node.attr("approximate") == "tanh":
        inner = b.fmul(constant(x, math.sqrt(2 / math.pi)),
                       b.fadd(x, b.fmul(constant(x, 0.044715), b.fmul(x, b.fmul(x, x)))))
        return b.fmul(b.fmul(half, x), b.fadd(constant(x, 1.0), libm(kb, b, "Tanh", inner)))
    erf = libm(kb, b, "Erf", b.fmul(x, constant(x, 1 / math.sqrt(2))))
    return b.fmul(b.fmul(half, x), b.fadd(constant(x, 1.0), erf))


@elementwise_op("Exp")
def _(kb, b, node, xs):
    return exp(kb, b, xs[0])


@elementwise_op("Reciprocal")
def _(kb, b, node, xs):
    return b.fdiv(constant(xs[0], 1.0), xs[0])


for _name, _intr in _INTRINSIC.items():
    if _name not in ("Abs", "Exp"):
        register_elementwise(_name, (lambda intr: lambda kb, b, node, xs: intrinsic(kb, b, intr, xs[0]))(_intr))
for _name in ("Tanh", "Erf", "Tan", "Asin", "Acos", "Atan", "Sinh", "Cosh", "Asinh", "Acosh", "Atanh"):
    register_elementwise(_name, (lambda n: lambda kb, b, node, xs: libm(kb, b, n, xs[0]))(_name))


@elementwise_op("Sign", ints=True)
def _(kb, b, node, xs):
    x = xs[0]
    if is_float(x.type):
        pos = b.uitofp(b.fcmp_ordered(">", x, constant(x, 0.0)), x.type)
        neg = b.uitofp(b.fcmp_ordered("<", x, constant(x, 0.0)), x.type)
        return b.fsub(pos, neg)
    pos = b.zext(b.icmp_signed(">", x, constant(x, 0)), x.type)
    neg = b.zext(b.icmp_signed("<", x, constant(x, 0)), x.type) if node.inputs[0].type.dtype.is_signed \
        else constant(x, 0)
    return b.sub(pos, neg)


@elementwise_op("Pow", ints=True, positional=True)
def _(kb, b, node, xs):
    x, y = xs
    if not is_float(x.type):  # integer bases: in float64, truncated back, as the reference
        src, dst = node.inputs[0].type.dtype, node.inputs[1].type.dtype
        xf = convert(b, x, src, DType.F64)
        yf = convert(b, y, dst, DType.F64)
        if isinstance(xf.type, ir.VectorType) != isinstance(yf.type, ir.VectorType):
            xf, yf = (v if isinstance(v.type, ir.VectorType) else splat(b, v, max(lanes_of(xf), lanes_of(yf)))
                      for v in (xf, yf))
        return convert(b, intrinsic(kb, b, "pow", xf, yf), DType.F64, src)
    if elem_of(y.type) != elem_of(x.type):
        y = convert(b, y, node.inputs[1].type.dtype, node.inputs[0].type.dtype)
    return intrinsic(kb, b, "pow", x, y)


@elementwise_op("Clip", ints=True, positional=True)
def _(kb, b, node, xs):
    x = xs[0]
    lo = xs[1] if len(xs) > 1 and xs[1] is not None else None
    hi = xs[2] if len(xs) > 2 and xs[2] is not None else None
    maxf, minf = (_max2, _min2)
    if lo is not None:
        x = maxf(kb, b, node, [x, lo])
    if hi is not None:
        x = minf(kb, b, node, [x, hi])
    return x


@elementwise_op("Where", ints=True, positional=True)
def _(kb, b, node, xs):
    return b.select(xs[0], xs[1], xs[2])


def _compare(pred: str):
    def emit(kb, b, node, xs):
        a, c = xs
        if is_float(a.type):
            return b.fcmp_ordered(pred, a, c) if pred != "!=" else b.fcmp_unordered(pred, a, c)
        signed = node.inputs[0].type.dtype.is_signed
        return b.icmp_signed(pred, a, c) if signed else b.icmp_unsigned(pred, a, c)
    return emit


for _name, _pred in (("Equal", "=="), ("Less", "<"), ("LessOrEqual", "<="), ("Greater", ">"),
                     ("GreaterOrEqual", ">=")):
    register_elementwise(_name, _compare(_pred), ints=True)
elementwise_op("And", "BitwiseAnd", ints=True)(lambda kb, b, node, xs: b.and_(xs[0], xs[1]))
elementwise_op("Or", "BitwiseOr", ints=True)(lambda kb, b, node, xs: b.or_(xs[0], xs[1]))
elementwise_op("Xor", "BitwiseXor", ints=True)(lambda kb, b, node, xs: b.xor(xs[0], xs[1]))
elementwise_op("Not", "BitwiseNot", ints=True)(lambda kb, b, node, xs: b.not_(xs[0]))
register_elementwise("Identity", lambda kb, b, node, xs: xs[0], ints=True)
register_elementwise("Dropout", lambda kb, b, node, xs: xs[0], ints=True, positional=True)


@elementwise_op("IsNaN")
def _(kb, b, node, xs):
    return b.fcmp_unordered("uno", xs[0], xs[0])


@elementwise_op("IsInf")
def _(kb, b, node, xs):
    x = xs[0]
    inf = constant(x, float("inf"))
    pos = b.fcmp_ordered("==", x, inf)
    neg = b.fcmp_ordered("==", x, b.fneg(inf))
    r = constant(pos, 0, I1)
    if node.attr("detect_positive"):
        r = b.or_(r, pos)
    if node.attr("detect_negative"):
        r = b.or_(r, neg)
    return r


@elementwise_op("BitShift", ints=True, positional=True)
def _(kb, b, node, xs):
    """Shifts as numpy computes them: amounts out of [0, width) give 0 (or the sign fill)."""
    x, s = xs
    width = elem_of(x.type).width
    oob = b.icmp_unsigned(">=", s, constant(s, width))
    safe = b.select(oob, constant(s, 0), s)
    if node.attr("direction") == "LEFT":
        return b.select(oob, constant(x, 0), b.shl(x, safe))
    if node.inputs[0].type.dtype.is_signed:
        return b.select(oob, b.ashr(x, constant(x, width - 1)), b.ashr(x, safe))
    return b.select(oob, constant(x, 0), b.lshr(x, safe))


@elementwise_op("Shrink", ints=True)
def _(kb, b, node, xs):
    x = xs[0]
    lam, bias = node.attr("lambd"), node.attr("bias")
    fx = is_float(x.type)
    lt = b.fcmp_ordered("<", x, constant(x, -lam)) if fx else b.icmp_signed("<", x, constant(x, -lam))
    gt = b.fcmp_ordered(">", x, constant(x, lam)) if fx else b.icmp_signed(">", x, constant(x, lam))
    add = b.fadd if fx else b.add
    sub = b.fsub if fx else b.sub
    return b.select(lt, add(x, constant(x, bias)), b.select(gt, sub(x, constant(x, bias)), constant(x, 0)))


@elementwise_op("Cast", ints=True, positional=True)
def _(kb, b, node, xs):
    return convert(b, xs[0], node.inputs[0].type.dtype, node.outputs[0].type.dtype,
                   bool(node.attr("saturate")), node.attr("round_mode"))


@elementwise_op("BatchNormalization")
def _(kb, b, node, xs):
    x, scale, bias, mean, var = xs
    eps = constant(x, node.attr("epsilon"))
    inv = b.fdiv(scale, intrinsic(kb, b, "sqrt", b.fadd(var, eps)))
    return b.fadd(b.fmul(b.fsub(x, mean), inv), bias)


def elementwise_support(node: Node) -> Optional[str]:
    """None when ``emit_op`` can compute ``node``, else why not."""
    emitter = elementwise_emitter(node.domain, node.op)
    if emitter is None:
        return f"{node.qualified_op} is not an elementwise op the cpu target generates"
    for v in list(node.inputs) + list(node.outputs):
        if v is None:
            continue
        dtype = v.type.dtype
        if narrow.is_narrow(dtype):
            if dtype not in narrow.ARITHMETIC and node.op not in _MOVES_NARROW:
                return f"{node.op} on {dtype.short} is not supported by the cpu target (only Cast and " \
                       f"data movement are)"
        elif dtype not in (DType.F32, DType.F64, DType.F16, DType.BOOL, DType.I8, DType.U8, DType.I16,
                           DType.U16, DType.I32, DType.U32, DType.I64, DType.U64):
            return f"element type {dtype.short} is not supported by the cpu target"
    if node.op == "BatchNormalization" and (len(node.outputs) != 1 or node.attr("training_mode")):
        return "training-mode BatchNormalization is not supported by the cpu target"
    if node.op == "Dropout" and node.input(2) is not None:
        return "Dropout with a training_mode input is not supported by the cpu target"
    data = node.inputs[0].type.dtype if node.inputs and node.inputs[0] is not None else DType.F32
    if not data.is_float and not emitter.ints:
        return f"{node.op} on {data.short} is not supported by the cpu target"
    return None


def emit_op(kb: KernelBuilder, b: ir.IRBuilder, node: Node, operands: Sequence[Optional[ir.Value]]) -> ir.Value:
    """``node``'s result from its operands (compute types; None for omitted optional inputs)."""
    reason = elementwise_support(node)
    if reason is not None:
        raise BackendError(reason, subject=node.describe())
    xs = list(operands)
    # Operands of mixed scalar/vector shape: splat the scalars.
    lanes = max(lanes_of(x) for x in xs if x is not None)
    if lanes > 1:
        xs = [x if x is None or lanes_of(x) == lanes else splat(b, x, lanes) for x in xs]
    emitter = _EMITTERS[(normalize_domain(node.domain), node.op)]
    if not emitter.positional:
        xs = [x for x in xs if x is not None]
    out = emitter.fn(kb, b, node, xs)
    if node.op != "Cast" and is_float(out.type):
        out = round_to_dtype(b, out, node.outputs[0].type.dtype)
    return out


def round_to_dtype(b: ir.IRBuilder, value: ir.Value, dtype: DType) -> ir.Value:
    """A float32 compute value rounded to a half-precision ``dtype`` (f16, bf16) and widened back.

    Every op of a fused chain rounds its result so, as the reference computes
    one op at a time: the chain's output is the reference's, not a more precise one.
    """
    if dtype is DType.F16 and elem_of(value.type) == F32:
        return b.fpext(b.fptrunc(value, with_elem(value.type, F16)), value.type)
    if dtype in narrow.ARITHMETIC:
        return narrow.round_to(b, value, dtype)
    return value


# Ops that compute nothing on their data: the only ones (with Cast) allowed on float8/int4 types.
_MOVES_NARROW = frozenset({"Cast", "Identity", "Dropout"})
