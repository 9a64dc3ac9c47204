"""TE rules for reductions over axes: Reduce*, ArgMax/ArgMin, CumSum/CumProd."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Optional

from tvm import te, tirx

from ir.graph import Node

from .rules import const_array, rule, static_shape
from .te_common import MAX, MIN, acc_dtype as _acc, const as _f, float_only as _float_only, norm_axis as _axis

Expr = Any


# ---------------------------------------------------------------- reduce
_REDUCERS = ("ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1", "ReduceL2",
             "ReduceSumSquare", "ReduceLogSum", "ReduceLogSumExp")


def _reduce_axes(node: Node, rank: int) -> Optional[list[int]]:
    axes = node.attrs.get("axes")
    if node.input(1) is not None:
        axes = const_array(node.input(1))
        if axes is None:
            return None
        axes = [int(a) for a in axes.reshape(-1)]
    if axes is None or len(axes) == 0:
        if node.attr("noop_with_empty_axes") if "noop_with_empty_axes" in node.schema.attrs else False:
            return []
        return list(range(rank))
    return sorted(int(a) + rank if int(a) < 0 else int(a) for a in axes)


def _reduce_check(node: Node) -> Optional[str]:
    if node.input(1) is not None and node.input(1).const is None:
        return "axes computed at run time are not supported by the tvm target"
    if node.op in ("ReduceMax", "ReduceMin", "ReduceSum", "ReduceProd"):
        return None
    return _float_only(node)


@rule(*_REDUCERS, check=_reduce_check)
def _reduce(node: Node, xs: list) -> list:
    x = xs[0]
    shape = [int(d) for d in x.shape]
    axes = _reduce_axes(node, len(shape))
    out_shape = static_shape(node.outputs[0])
    dtype = str(x.dtype)
    acc = "uint8" if dtype == "bool" else _acc(dtype)  # TVM has no bool max/min; uint8 keeps their empty-set identities (0, 255)
    keep = bool(node.attr("keepdims"))
    if not axes:
        return [te.compute(out_shape, lambda *i: x(*i), name="reduce_copy")]
    rs = {a: te.reduce_axis((0, shape[a]), name=f"r{a}") for a in axes}
    count = 1
    for a in axes:
        count *= shape[a]

    def src(idx: Sequence[Expr]) -> list:
        out, k = [], 0
        for d in range(len(shape)):
            if d in rs:
                out.append(rs[d])
                if keep:
                    k += 1
            else:
                out.append(idx[k])
                k += 1
        return out

    op = node.op
    ax = list(rs.values())

    def body(*i: Expr) -> Expr:
        v = x(*src(i)).astype(acc)
        if op == "ReduceMax":
            return MAX(v, axis=ax)
        if op == "ReduceMin":
            return MIN(v, axis=ax)
        if op == "ReduceProd":
            prod = te.comm_reducer(lambda a, b: a * b, lambda t: tirx.const(1, t), name="prod")
            return prod(v, axis=ax)
        if op == "ReduceL1":
            return te.sum(tirx.abs(v), axis=ax)
        if op in ("ReduceL2", "ReduceSumSquare"):
            return te.sum(v * v, axis=ax)
        if op == "ReduceLogSumExp":
            return te.sum(tirx.exp(v), axis=ax)
        return te.sum(v, axis=ax)
    if count == 0:
        # An empty reduction: TIR runs a reduction's init inside its loop nest, so a zero-extent
        # axis would leave the output unwritten; write the reducer's identity instead.
        from .te_common import identity
        empty = {"ReduceMax": identity(acc, True), "ReduceMin": identity(acc, False),
                 "ReduceProd": tirx.const(1, acc)}.get(op, tirx.const(0, acc))
        r = te.compute(out_shape, lambda *i: empty, name=op.lower() + "_empty")
    else:
        r = te.compute(out_shape, body, name=op.lower())

    def post(*i: Expr) -> Expr:
        v = r(*i)
        if op == "ReduceMean":
            v = v / _f(float(count), acc)
        elif op == "ReduceL2":
            v = tirx.sqrt(v)
        elif op in ("ReduceLogSum", "ReduceLogSumExp"):
            v = tirx.log(v)
        return v.astype(dtype)
    if op in ("ReduceSum", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1", "ReduceSumSquare") and acc == dtype:
        return [r]
    return [te.compute(out_shape, post, name=op.lower() + "_out")]


@rule("ArgMax", "ArgMin", check=_float_only)
def _argmax(node: Node, xs: list) -> list:
    x = xs[0]
    shape = [int(d) for d in x.shape]
    axis = _axis(node, 0, len(shape))
    keep = bool(node.attr("keepdims"))
    last = bool(node.attr("select_last_index"))
    out_shape = static_shape(node.outputs[0])
    is_max = node.op == "ArgMax"

    def combine(a: tuple, b: tuple) -> tuple:
        better = (b[1] > a[1]) if is_max else (b[1] < a[1])
        tie = tirx.all(b[1] == a[1], (b[0] > a[0]) if last else (b[0] < a[0]))
        take = tirx.Or(better, tie)
        return tirx.Select(take, b[0], a[0]), tirx.Select(take, b[1], a[1])

    def ident(t0: str, t1: str) -> tuple:
        return tirx.const(-1, t0), (tirx.min_value(t1) if is_max else tirx.max_value(t1))
    reducer = te.comm_reducer(combine, ident, name="argreduce")
    k = te.reduce_axis((0, shape[axis]), name="k")

    def body(*i: Expr) -> Expr:
        idx = list(i[:axis]) + [k] + list(i[axis + (1 if keep else 0):])
        return reducer((k.var.astype("int64"), x(*idx)), axis=k)
    pair = te.compute(out_shape, body, name="argreduce")
    return [pair[0]]



def _cumsum_check(node: Node) -> Optional[str]:
    if node.input(1) is None or node.input(1).const is None:
        return "CumSum with an axis computed at run time"
    return None


@rule("CumSum", "CumProd", check=_cumsum_check, const_inputs=(1,))
def _cumsum(node: Node, xs: list) -> list:
    """Each output a sum over its prefix (quadratic in the axis length, fine for the axes met)."""
    x = xs[0]
    shape = [int(d) for d in x.shape]
    axis = int(const_array(node.input(1)).reshape(-1)[0])
    axis = axis + len(shape) if axis < 0 else axis
    n = shape[axis]
    exclusive, reverse = bool(node.attr("exclusive")), bool(node.attr("reverse"))
    k = te.reduce_axis((0, n), name="k")
    dtype = str(x.dtype)

    def body(*i: Expr) -> Expr:
        src = list(i)
        src[axis] = k
        pos = i[axis]
        inside = (k > pos if exclusive else k >= pos) if reverse else (k < pos if exclusive else k <= pos)
        if node.op == "CumProd":
            prod = te.comm_reducer(lambda a, b: a * b, lambda t: tirx.const(1, t), name="prod")
            return prod(tirx.if_then_else(inside, x(*src), tirx.const(1, dtype)), axis=k)
        return te.sum(tirx.if_then_else(inside, x(*src), tirx.const(0, dtype)), axis=k)
    return [te.compute(shape, body, name=node.op.lower())]
