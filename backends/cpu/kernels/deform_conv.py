"""DeformConv on the cpu target, as an index map: a convolution whose taps sample shifted positions.

For output ``y[n, m, *o]`` (group ``g`` of filter ``m``)::

    y = B[m] + sum_{c in g} sum_{k} W[m, c, k] * mask[n, og(c), k, o] * sample(x[n, c], p(k, o))
    p_a(k, o) = o_a * stride_a - pad_a + k_a * dilation_a + offset[n, og(c), k, a, o]

where ``sample`` is N-linear interpolation whose corners outside the image
count as zero (the reference's ``_deform_cols``).  The channel sum is a
loop (register accumulator, ``codegen.loop_carry``); taps and corners are
unrolled.  Computed in the input's compute type like the reference.  As an
index map it runs in the elementwise kernel, vectorized along the output's
last axis (offsets, masks and samples become gathers).
"""

from __future__ import annotations

import itertools
import math
from typing import Optional

import llvmlite.ir as ir

from ir.dtypes import DType
from ir.graph import Node

from ..codegen import I64, const_int, loop_carry, match_lanes, splat
from ..evaluator import Evaluator, index_map, shape_of
from ..expr import compute_type, constant

_FLOATS = {DType.F32, DType.F64, DType.F16}
MAX_TAPS = 64


def deform_support(node: Node) -> Optional[str]:
    if node.inputs[0].type.dtype not in _FLOATS:
        return f"DeformConv on {node.inputs[0].type.dtype.short} is not supported by the cpu target"
    if not all(getattr(v.type, "is_static", False) for v in node.inputs if v is not None):
        return "the cpu target needs static shapes here"
    k = math.prod(shape_of(node.inputs[1])[2:])
    if k > MAX_TAPS:
        return f"DeformConv with {k} kernel taps (at most {MAX_TAPS})"
    return None



@index_map("DeformConv", check=deform_support)
def _(ev: Evaluator, node: Node, idx: list, which: int) -> ir.Value:
    b, ix, kb = ev.b, ev.ix, ev.kb
    x, w, offset = node.inputs[:3]
    bias, mask = node.input(3), node.input(4)
    xs, ws = shape_of(x), shape_of(w)
    d = len(xs) - 2
    sizes, kernel = xs[2:], ws[2:]
    c_all, m_all = xs[1], ws[0]
    group, og_n = node.attr("group") or 1, node.attr("offset_group") or 1
    cpg, mpg, cpo = c_all // group, m_all // group, c_all // og_n
    strides = list(node.attr("strides") or [1] * d)
    dilations = list(node.attr("dilations") or [1] * d)
    pads = list(node.attr("pads") or [0] * (2 * d))
    taps = list(itertools.product(*(range(k) for k in kernel)))
    n_i, m_i, o = idx[0], idx[1], list(idx[2:])
    ct = compute_type(x.type.dtype)
    vector = any(ix.is_vector(i) for i in idx)
    zero = ir.Constant(ir.VectorType(ct, ev.lanes), [0.0] * ev.lanes) if vector else ir.Constant(ct, 0.0)
    g = ix.div(m_i, mpg)
    floor = kb.intrinsic("floor", zero.type)

    def body(ci: ir.Value, vals: list) -> list:
        acc = vals[0]
        c = ix.add(ix.mul(g, cpg), ci)
        og = ix.div(c, cpo)
        for k, tap in enumerate(taps):
            weight = ev._at(w, [m_i, ci, *(const_int(t) for t in tap)])
            sample, lo, frac = None, [], []
            for a in range(d):
                off = ev._at(offset, [n_i, ix.add(ix.mul(og, len(taps) * d), k * d + a), *o])
                base = ix.add(ix.sub(ix.mul(o[a], strides[a]), pads[a]), tap[a] * dilations[a])
                fty = ir.VectorType(ct, base.type.count) if isinstance(base.type, ir.VectorType) else ct
                pos = b.fadd(*match_lanes(b, b.sitofp(base, fty), off))
                pos = match_lanes(b, pos, zero)[0]
                fl = b.call(floor, [pos])
                lo.append(b.fptosi(fl, ir.VectorType(I64, ev.lanes) if vector else I64))
                frac.append(b.fsub(pos, fl))
            for corner in itertools.product((0, 1), repeat=d):
                wgt, ok, at = None, None, []
                for a in range(d):
                    i_a = ix.add(lo[a], corner[a])
                    f = frac[a] if corner[a] else b.fsub(constant(frac[a], 1.0), frac[a])
                    wgt = f if wgt is None else b.fmul(wgt, f)
                    inside = ix.and_(ix.cmp(">=", i_a, 0), ix.cmp("<", i_a, sizes[a]))
                    ok = inside if ok is None else ix.and_(ok, inside)
                    at.append(ix.clamp(i_a, 0, sizes[a] - 1))
                v = ev._at(x, [n_i, c, *at])
                v, wgt = match_lanes(b, v, wgt)
                ok = ok if not isinstance(v.type, ir.VectorType) or isinstance(ok.type, ir.VectorType) \
                    else splat(b, ok, v.type.count)
                term = b.select(ok, b.fmul(v, wgt), constant(v, 0.0))
                sample = term if sample is None else b.fadd(*match_lanes(b, sample, term))
            if mask is not None:
                mk = ev._at(mask, [n_i, ix.add(ix.mul(og, len(taps)), k), *o])
                sample = b.fmul(*match_lanes(b, sample, mk))
            prod = b.fmul(*match_lanes(b, sample, weight))
            acc = b.fadd(*match_lanes(b, acc, prod))
        return [acc]

    with ev.inner_scope():  # the channel loop
        total = loop_carry(b, 0, cpg, 1, [zero], body, name="dc")[0]
    if bias is not None:
        total = b.fadd(*match_lanes(b, total, ev._at(bias, [m_i])))
    return total
