"""CausalConvWithState (opset 27) as an index map: a depthwise causal 1-D convolution and its state.

With ``padded = concat(past_state or zeros, x)`` along time (k - 1 steps of
state), output 0 is ``sum_j padded[t + j] * W[c, 0, j] + B[c]``, rounded to
the element type, then SiLU when asked; output 1 (the present state) is the
last k - 1 steps of ``padded``.  Each is computed at its index (taps
unrolled), so the elementwise kernel runs both, vectorized along time.
"""

from __future__ import annotations

from typing import Optional

import llvmlite.ir as ir

from ir.dtypes import DType
from ir.graph import Node

from ..codegen import F16, const_int, match_lanes
from ..evaluator import Evaluator, _select, index_map, shape_of
from ..expr import constant

_FLOATS = {DType.F32, DType.F64, DType.F16}


def _support(node: Node) -> Optional[str]:
    if node.inputs[0].type.dtype not in _FLOATS:
        return f"CausalConvWithState on {node.inputs[0].type.dtype.short} is not supported by the cpu target"
    return None


def _padded(ev: Evaluator, node: Node, bi, ci, i) -> ir.Value:
    """padded[b, c, i]: the past state before step k - 1, the input after."""
    ix = ev.ix
    x, past = node.inputs[0], node.input(3)
    k = shape_of(node.inputs[1])[2]
    length = shape_of(x)[2]
    from_x = ev._at(x, [bi, ci, ix.clamp(ix.sub(i, k - 1), 0, length - 1)])
    if k == 1:
        return from_x
    in_state = ix.cmp("<", i, k - 1)
    if past is not None:
        old = ev._at(past, [bi, ci, ix.clamp(i, 0, k - 2)])
    else:
        old = constant(from_x, 0.0)
    return _select(ev.b, in_state, old, from_x, ev.lanes)



@index_map("CausalConvWithState", check=_support)
def _(ev: Evaluator, node: Node, idx: list, which: int) -> ir.Value:
    b, ix = ev.b, ev.ix
    w, bias = node.inputs[1], node.input(2)
    k = shape_of(w)[2]
    bi, ci, t = idx
    if which == 1:
        return _padded(ev, node, bi, ci, ix.add(t, shape_of(node.inputs[0])[2]))
    acc = None
    for j in range(k):
        term = b.fmul(*match_lanes(b, _padded(ev, node, bi, ci, ix.add(t, j)), ev._at(w, [ci, const_int(0), const_int(j)])))
        acc = term if acc is None else b.fadd(*match_lanes(b, acc, term))
    if bias is not None:
        acc = b.fadd(*match_lanes(b, acc, ev._at(bias, [ci])))
    if node.inputs[0].type.dtype is DType.F16:  # the convolution result is rounded to the element type first
        half = ir.VectorType(F16, acc.type.count) if isinstance(acc.type, ir.VectorType) else F16
        acc = b.fpext(b.fptrunc(acc, half), acc.type)
    if node.attr("activation") in ("silu", "swish"):
        e = b.call(ev.kb.intrinsic("exp", acc.type), [b.fsub(constant(acc, 0.0), acc)])
        acc = b.fdiv(acc, b.fadd(constant(acc, 1.0), e))
    return acc
