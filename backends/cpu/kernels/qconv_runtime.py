"""ConvInteger and QLinearConv whose weights are run-time tensors, as index maps.

``fold-qdq`` turns these ops into ``nnc.QConv`` (the packed int8 kernel) when
the weights are constants; this covers the rest with the reference's integer
arithmetic (``ir.ops.quantization.conv_int``): each output element is the
int32 sum over its group's channels and the kernel taps of
``(x - x_zero_point) * (w - w_zero_point[m])``, padding contributing
nothing; QLinearConv adds the int32 bias and requantizes with
``x_scale * w_scale[m] / y_scale`` (float32, ``quant.requantize``).  The
channel sum is a loop (register accumulator), the taps are unrolled; the
elementwise kernel runs it, vectorized along the output's last axis.
"""

from __future__ import annotations

import itertools
import math
from typing import Optional

import llvmlite.ir as ir
import numpy as np

from ir.dtypes import DType
from ir.graph import Node
from ir.ops.quantization import _conv_geometry

from ..codegen import F32, F64, I32, const_int, llvm_type, loop_carry, match_lanes
from ..evaluator import Evaluator, index_map, shape_of

MAX_TAPS = 64
_Q8 = {DType.I8, DType.U8}


def _check(node: Node) -> Optional[str]:
    x, w = node.inputs[0], node.inputs[3 if node.op == "QLinearConv" else 1]
    if x.type.dtype not in _Q8 or w.type.dtype not in _Q8:
        return f"{node.op} on {x.type.dtype.short} x {w.type.dtype.short} is not supported by the cpu target"
    if not all(getattr(v.type, "is_static", False) for v in node.inputs if v is not None):
        return "the cpu target needs static shapes here"
    if math.prod(shape_of(w)[2:]) > MAX_TAPS:
        return f"{node.op} with more than {MAX_TAPS} kernel taps and run-time weights"
    if node.op == "QLinearConv" and any(node.inputs[i].type.dtype is not DType.F32 for i in (1, 4, 6)):
        return "QLinearConv scales must be float32"
    return None



def _widen(b: ir.IRBuilder, v: ir.Value, dtype: DType) -> ir.Value:
    ty = ir.VectorType(I32, v.type.count) if isinstance(v.type, ir.VectorType) else I32
    if isinstance(v.type, ir.VectorType) and v.type.element == I32 or v.type == I32:
        return v
    return b.sext(v, ty) if dtype.is_signed else b.zext(v, ty)


def _param(ev: Evaluator, v, at) -> Optional[ir.Value]:
    """A per-tensor or per-output-channel parameter at channel ``at`` (None when absent)."""
    if v is None:
        return None
    return ev._at(v, [at] if math.prod(shape_of(v)) > 1 else [const_int(0)] * len(shape_of(v)))


@index_map("ConvInteger", "QLinearConv", check=_check)
def _(ev: Evaluator, node: Node, idx: list, which: int) -> ir.Value:
    b, ix = ev.b, ev.ix
    q = node.op == "QLinearConv"
    x, w = node.inputs[0], node.inputs[3 if q else 1]
    x_zp = node.input(2)
    w_zp = node.input(5 if q else 3)
    xs, ws = shape_of(x), shape_of(w)
    sizes, kernel = xs[2:], ws[2:]
    d = len(kernel)
    group = node.attr("group") or 1
    strides, dil, begin, _ = _conv_geometry(sizes, kernel, dict(node.attrs))
    cpg, mpg = xs[1] // group, ws[0] // group
    n_i, m_i, o = idx[0], idx[1], list(idx[2:])
    vector = any(ix.is_vector(i) for i in idx)
    zero = ir.Constant(ir.VectorType(I32, ev.lanes), [0] * ev.lanes) if vector else ir.Constant(I32, 0)
    xzp = _widen(b, _param(ev, x_zp, const_int(0)), x_zp.type.dtype) if x_zp is not None else ir.Constant(I32, 0)
    wzp = _widen(b, _param(ev, w_zp, m_i), w_zp.type.dtype) if w_zp is not None else ir.Constant(I32, 0)
    g = ix.div(m_i, mpg)

    def body(ci: ir.Value, vals: list) -> list:
        acc = vals[0]
        c = ix.add(ix.mul(g, cpg), ci)
        for tap in itertools.product(*(range(k) for k in kernel)):
            at, ok = [], None
            for a in range(d):
                i_a = ix.add(ix.mul(o[a], strides[a]), tap[a] * dil[a] - begin[a])
                inside = ix.and_(ix.cmp(">=", i_a, 0), ix.cmp("<", i_a, sizes[a]))
                ok = inside if ok is None else ix.and_(ok, inside)
                at.append(ix.clamp(i_a, 0, sizes[a] - 1))
            xv = b.sub(*match_lanes(b, _widen(b, ev._at(x, [n_i, c, *at]), x.type.dtype), xzp))
            wv = b.sub(*match_lanes(b, _widen(b, ev._at(w, [m_i, ci, *(const_int(t) for t in tap)]), w.type.dtype), wzp))
            prod = b.mul(*match_lanes(b, xv, wv))
            prod, okv = match_lanes(b, prod, ok)
            prod = b.select(okv, prod, ir.Constant(prod.type, [0] * prod.type.count)
                            if isinstance(prod.type, ir.VectorType) else ir.Constant(I32, 0))
            acc = b.add(*match_lanes(b, acc, prod))
        return [acc]

    with ev.inner_scope():  # the channel loop
        acc = loop_carry(b, 0, cpg, 1, [zero], body, name="qc")[0]
    if not q:
        return acc
    if node.input(8) is not None:
        acc = b.add(*match_lanes(b, acc, _widen(b, ev._at(node.inputs[8], [m_i]), node.inputs[8].type.dtype)))
    f32 = lambda v: v if v.type == F32 else b.fptrunc(v, F32)  # noqa: E731
    mult = b.fdiv(b.fmul(f32(_param(ev, node.inputs[1], const_int(0))), f32(_param(ev, node.inputs[4], m_i))),
                  f32(_param(ev, node.inputs[6], const_int(0))))
    vec = isinstance(acc.type, ir.VectorType)
    fty = ir.VectorType(F32, acc.type.count) if vec else F32
    dty = ir.VectorType(F64, acc.type.count) if vec else F64
    v = b.fmul(*match_lanes(b, b.sitofp(acc, fty), mult))
    r = b.fpext(b.call(ev.kb.intrinsic("roundeven", v.type), [v]), dty)
    yzp_v = node.inputs[7]
    r = b.fadd(*match_lanes(b, r, b.sitofp(_widen(b, _param(ev, yzp_v, const_int(0)), yzp_v.type.dtype), F64)))
    out = node.outputs[0].type.dtype
    info = np.iinfo(out.np)
    lo = ir.Constant(r.type, [float(info.min)] * r.type.count) if vec else ir.Constant(F64, float(info.min))
    hi = ir.Constant(r.type, [float(info.max)] * r.type.count) if vec else ir.Constant(F64, float(info.max))
    r = b.select(b.fcmp_ordered(">", r, hi), hi, r)
    r = b.select(b.fcmp_unordered("<", r, lo), lo, r)
    ity = ir.VectorType(I32, r.type.count) if vec else I32
    r32 = b.fptosi(r, ity)
    oty = llvm_type(out)
    return b.trunc(r32, ir.VectorType(oty, r.type.count) if vec else oty)
