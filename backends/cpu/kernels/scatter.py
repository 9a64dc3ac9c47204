"""Scatter kernels: ScatterElements, ScatterND and MaxUnpool; TensorScatter as an index map.

ScatterElements and ScatterND copy ``data`` to the output, then walk the
updates in order and combine each into the output element (ScatterND: the
slice) its index names, with the ``reduction`` (none, add, mul, max, min).
Later updates of one element see the earlier ones, as in the reference, so
the updates run in one task, in order; the copy is a plain loop LLVM
vectorizes.  Indices may be negative (counted from the end); out-of-range
ones are clamped so a bad index cannot write outside the output (the
reference raises).  MaxUnpool zero-fills its output and writes each input
element at the flat position its index names.

TensorScatter writes each batch entry's update at its own offset along the
sequence axis, and no two update elements land on one output element, so it
is a gather seen from the output: an index map (``evaluator.index_map``)
that reads the update where the output position lies in the written window
(modulo the cache length in ``circular`` mode) and the past cache elsewhere.
"""

from __future__ import annotations

import math
from typing import Any, Optional

import llvmlite.ir as ir

from ir.dtypes import DType
from ir.graph import Node

from ..codegen import KernelBuilder, const_int, for_range, strides_of, supported_dtype
from ..evaluator import Evaluator, _select, _to_i64, delinearize, index_map, shape_of
from ..expr import is_float, load_convert, store_convert
from . import Kernel, generator, label_of

SCATTER_OPS = frozenset({"ScatterElements", "ScatterND", "MaxUnpool"})
REDUCTIONS = ("none", "add", "mul", "max", "min")


def support(node: Node) -> Optional[str]:
    if node.domain != "" or node.op not in SCATTER_OPS:
        return f"no cpu kernel for {node.qualified_op}"
    for v in list(node.inputs) + list(node.outputs):
        if not getattr(v.type, "is_static", False):
            return "the cpu target needs static shapes here"
        if not supported_dtype(v.type.dtype):
            return f"element type {v.type.dtype.short} is not supported by the cpu target"
    if node.op == "MaxUnpool":
        return None
    if node.inputs[1].type.dtype not in (DType.I32, DType.I64):
        return f"{node.op} indices must be int32 or int64"
    reduction = node.attr("reduction") or "none"
    if reduction not in REDUCTIONS:
        return f"{node.op} reduction {reduction!r} is not supported by the cpu target"
    if reduction != "none" and node.inputs[0].type.dtype is DType.BOOL:
        return f"{node.op} with reduction {reduction!r} on bool is not supported by the cpu target"
    return None


def _combine(b: ir.IRBuilder, reduction: str, old: ir.Value, new: ir.Value, dtype: DType) -> ir.Value:
    if reduction == "none":
        return new
    flt = is_float(old.type)
    if reduction == "add":
        return b.fadd(old, new) if flt else b.add(old, new)
    if reduction == "mul":
        return b.fmul(old, new) if flt else b.mul(old, new)
    if flt:  # NaN wins, as NumPy's maximum/minimum
        pick_new = b.fcmp_unordered(">" if reduction == "max" else "<", new, old)
        return b.select(b.fcmp_unordered("uno", old, old), old, b.select(pick_new, new, old))
    cmp = b.icmp_signed if dtype.is_signed else b.icmp_unsigned
    return b.select(cmp(">" if reduction == "max" else "<", new, old), new, old)


@generator("scatter", supports=support, ops=SCATTER_OPS)
def emit(kb: KernelBuilder, node: Node, schedule: Any) -> Kernel:
    tf = kb.task_function(f"k_{node.outputs[0].name}")
    b = tf.builder
    if node.op == "MaxUnpool":
        return _max_unpool(kb, tf, node)
    data, indices, updates = node.inputs
    out = node.outputs[0]
    dtype = data.type.dtype
    ds = shape_of(data)
    total = math.prod(ds)
    src, dst = tf.value_pointer(data), tf.value_pointer(out)
    idx_p, upd_p = tf.value_pointer(indices), tf.value_pointer(updates)
    with for_range(b, 0, total, name="copy") as i:
        b.store(b.load(b.gep(src, [i])), b.gep(dst, [i]))
    reduction = node.attr("reduction") or "none"

    def update(offset: ir.Value, upd_pos: ir.Value) -> None:
        ptr = b.gep(dst, [offset])
        new = load_convert(b, b.load(b.gep(upd_p, [upd_pos])), dtype)
        old = load_convert(b, b.load(ptr), dtype)
        b.store(store_convert(b, _combine(b, reduction, old, new, dtype), dtype), ptr)

    def fixed(raw: ir.Value, dim: int) -> ir.Value:
        v = _to_i64(b, raw)
        v = b.select(b.icmp_signed("<", v, const_int(0)), b.add(v, const_int(dim)), v)
        v = b.select(b.icmp_signed("<", v, const_int(0)), const_int(0), v)
        return b.select(b.icmp_signed(">", v, const_int(dim - 1)), const_int(max(dim - 1, 0)), v)

    strides = strides_of(ds)
    if node.op == "ScatterElements":
        us = shape_of(updates)
        axis = node.attr("axis") % len(ds)
        with for_range(b, 0, math.prod(us), name="u") as u:
            pos = delinearize(b, u, us)
            pos[axis] = fixed(b.load(b.gep(idx_p, [u])), ds[axis])
            off = const_int(0)
            for p, st in zip(pos, strides):
                off = b.add(off, b.mul(p, const_int(st)))
            update(off, u)
    else:
        qs = shape_of(indices)
        k = qs[-1]
        rows = math.prod(qs[:-1])
        inner = math.prod(ds[k:])
        with for_range(b, 0, rows, name="r") as r:
            base = const_int(0)
            for j in range(k):
                raw = b.load(b.gep(idx_p, [b.add(b.mul(r, const_int(k)), const_int(j))]))
                base = b.add(base, b.mul(fixed(raw, ds[j]), const_int(strides[j])))
            with for_range(b, 0, inner, name="s") as s:
                update(b.add(base, s), b.add(b.mul(r, const_int(inner)), s))
    b.ret_void()
    return Kernel(tf.fn.name, 1, tf.buffers, label_of(node))


def _max_unpool(kb: KernelBuilder, tf, node: Node) -> Kernel:
    """A zero output, then x[i] written at the flat output position indices[i] (clamped into the output)."""
    b = tf.builder
    x, indices = node.inputs[0], node.inputs[1]
    out = node.outputs[0]
    total = math.prod(shape_of(out))
    dst, src, idx = tf.value_pointer(out), tf.value_pointer(x), tf.value_pointer(indices)
    zero = ir.Constant(dst.type.pointee, 0.0 if is_float(dst.type.pointee) else 0)
    with for_range(b, 0, total, name="zero") as i:
        b.store(zero, b.gep(dst, [i]))
    if total:
        with for_range(b, 0, math.prod(shape_of(x)), name="u") as u:
            at = _to_i64(b, b.load(b.gep(idx, [u])))
            at = b.select(b.icmp_signed("<", at, const_int(0)), const_int(0), at)
            at = b.select(b.icmp_signed(">", at, const_int(total - 1)), const_int(total - 1), at)
            b.store(b.load(b.gep(src, [u])), b.gep(dst, [at]))
    b.ret_void()
    return Kernel(tf.fn.name, 1, tf.buffers, label_of(node))


# -------------------------------------------------------------- TensorScatter
@index_map("TensorScatter")
def _(ev: Evaluator, node: Node, idx: list, which: int) -> ir.Value:
    ix = ev.ix
    past, upd = node.inputs[0], node.inputs[1]
    ps = shape_of(past)
    axis = node.attr("axis") % len(ps)
    seq, max_seq = shape_of(upd)[axis], ps[axis]
    start = const_int(0) if node.input(2) is None else _to_i64(ev.b, ev._at(node.inputs[2], [idx[0]]))
    s = ix.sub(idx[axis], start)
    if node.attr("mode") == "circular":
        s = ix.floor_mod(s, max_seq)
    inside = ix.and_(ix.cmp(">=", s, 0), ix.cmp("<", s, seq))
    at_upd = list(idx)
    at_upd[axis] = ix.clamp(s, 0, max(seq - 1, 0))
    return _select(ev.b, inside, ev._at(upd, at_upd), ev._at(past, idx), ev.lanes)


__all__ = ["SCATTER_OPS", "emit", "support"]
