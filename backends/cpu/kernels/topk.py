"""TopK: the k largest (or smallest) values along an axis and their indices.

Each row (one index of the other axes) is walked once in index order while
its top k are kept sorted in the output buffers themselves: an element
better than the current k-th is inserted where it belongs, shifting the
worse ones down (insertion into a sorted list of at most k).  An element
only moves past strictly worse ones, so equal values keep their index
order, as the reference's stable sort.  NaN counts as the largest value
(NumPy's sort order): first with ``largest``, last without.  Rows are split
over tasks.  A fused prologue (elementwise ops before the TopK) is computed
by the evaluator on each read.
"""

from __future__ import annotations

import math
from typing import Any, Optional

import llvmlite.ir as ir
import numpy as np

from ir.dtypes import DType
from ir.graph import Node

from ..codegen import I64, KernelBuilder, const_int, for_range, supported_dtype, task_range
from ..evaluator import Evaluator, delinearize, shape_of
from ..expr import compute_type, elementwise_support, is_float, store_convert
from . import Kernel, body_and_keys, generator, label_of, nodes_of
from .anchored import Anchored

MIN_TASK_ELEMENTS = 1 << 14


def support(node: Node) -> Optional[str]:
    a = Anchored.of(node)
    anchor = a.anchor
    if anchor.domain != "" or anchor.op != "TopK":
        return f"no cpu kernel for {anchor.qualified_op}"
    if a.body is not None:  # only a prologue may be fused: the TopK's outputs are the kernel's
        for n in a.members:
            if n is anchor:
                continue
            if n.schema.kind not in ("elementwise", "broadcast") or elementwise_support(n) is not None:
                return f"{n.qualified_op} fused with a TopK"
            if any(v is not None and v.producer is anchor for v in n.inputs):
                return "elementwise ops after a TopK in one fused kernel"
        if any(o.producer is not anchor for o in a.outputs):
            return "a fused TopK whose outputs are not the TopK's own"
    for v in list(anchor.inputs) + list(anchor.outputs):
        if v is None:
            continue
        if not getattr(v.type, "is_static", False):
            return "the cpu target needs static shapes here"
        if not supported_dtype(v.type.dtype) or v.type.dtype is DType.BOOL:
            return f"TopK on {v.type.dtype.short} is not supported by the cpu target"
    if anchor.inputs[1].const is None:
        return "TopK with a run-time K (specialize first)"
    return None


def _better(b: ir.IRBuilder, largest: bool, v: ir.Value, w: ir.Value, signed: bool) -> ir.Value:
    """Does ``v`` come strictly before ``w`` in the output order?"""
    if is_float(v.type):
        if largest:  # NaN first
            return b.or_(b.fcmp_ordered(">", v, w),
                         b.and_(b.fcmp_unordered("uno", v, v), b.fcmp_ordered("ord", w, w)))
        return b.or_(b.fcmp_ordered("<", v, w),  # NaN last
                     b.and_(b.fcmp_unordered("uno", w, w), b.fcmp_ordered("ord", v, v)))
    cmp = b.icmp_signed if signed else b.icmp_unsigned
    return cmp(">" if largest else "<", v, w)


@generator("topk", supports=support, ops=("TopK",))
def emit(kb: KernelBuilder, node: Node, schedule: Any) -> Kernel:
    a = Anchored.of(node)
    anchor = a.anchor
    x = anchor.inputs[0]
    xs = shape_of(x)
    axis = anchor.attr("axis") % len(xs)
    n, k = xs[axis], int(np.asarray(anchor.inputs[1].const).reshape(-1)[0])
    outer, inner = math.prod(xs[:axis]), math.prod(xs[axis + 1:])
    largest = bool(anchor.attr("largest"))
    dtype = x.type.dtype
    ct = compute_type(dtype)
    signed = dtype.is_signed
    tf = kb.task_function(f"k_{node.outputs[0].name}")
    b = tf.builder
    body, keys, _ = body_and_keys(node)
    ev = Evaluator(kb, tf, body, 1, leaf_keys=keys, members=nodes_of(node))
    # Where each anchor output is stored (None: not an output of the kernel).
    if body is None:
        targets = {id(o): o for o in node.outputs}
    else:
        targets = {id(o): t for o, t in zip(body.outputs, node.outputs)}
    vals_t, idx_t = targets.get(id(anchor.outputs[0])), targets.get(id(anchor.outputs[1]))
    rows = outer * inner
    n_tasks = max(1, min(rows, (rows * n) // MIN_TASK_ELEMENTS))
    fn = b.function
    vals_p = tf.value_pointer(vals_t) if vals_t is not None else None
    idx_p = tf.value_pointer(idx_t) if idx_t is not None else None
    with b.goto_block(tf._entry):  # the row's sorted top k (before the entry's branch)
        scratch_v = b.alloca(ct, size=const_int(max(k, 1)), name="topv")
        scratch_i = b.alloca(I64, size=const_int(max(k, 1)), name="topi")
    if k == 0 or rows == 0:
        b.ret_void()
        return Kernel(tf.fn.name, 1, tf.buffers, label_of(node))
    start, stop = task_range(b, tf.task, n_tasks, rows)
    with for_range(b, start, stop, name="row") as r:
        o = b.sdiv(r, const_int(inner))
        in_i = b.srem(r, const_int(inner))
        with for_range(b, 0, n, name="i") as i:
            ev.forget()
            idx = delinearize(b, b.add(b.mul(b.add(b.mul(o, const_int(n)), i), const_int(inner)), in_i), xs)
            v = ev.value_at(x, idx)
            filled = b.select(b.icmp_signed("<", i, const_int(k)), i, const_int(k))
            last = b.sub(filled, const_int(1))
            room = b.icmp_signed("<", filled, const_int(k))
            last_v = b.load(b.gep(scratch_v, [b.select(room, const_int(0), last)]))
            take = b.or_(room, _better(b, largest, v, last_v, signed))
            with b.if_then(take):
                # p starts at the free slot (or the k-th); shift worse entries down while v beats p-1.
                p0 = b.select(room, filled, const_int(k - 1))
                head = fn.append_basic_block("ins.head")
                step = fn.append_basic_block("ins.step")
                done = fn.append_basic_block("ins.done")
                pre = b.block
                b.branch(head)
                b.position_at_end(head)
                p = b.phi(I64, name="p")
                p.add_incoming(p0, pre)
                can = b.icmp_signed(">", p, const_int(0))
                prev = b.sub(p, const_int(1))
                prev_v = b.load(b.gep(scratch_v, [b.select(can, prev, const_int(0))]))
                move = b.and_(can, _better(b, largest, v, prev_v, signed))
                b.cbranch(move, step, done)
                b.position_at_end(step)
                b.store(prev_v, b.gep(scratch_v, [p]))
                b.store(b.load(b.gep(scratch_i, [prev])), b.gep(scratch_i, [p]))
                p.add_incoming(prev, step)
                b.branch(head)
                b.position_at_end(done)
                b.store(v, b.gep(scratch_v, [p]))
                b.store(i, b.gep(scratch_i, [p]))
        ev.forget()
        with for_range(b, 0, k, name="j") as j:
            off = b.add(b.mul(b.add(b.mul(o, const_int(k)), j), const_int(inner)), in_i)
            if vals_p is not None:
                b.store(store_convert(b, b.load(b.gep(scratch_v, [j])), vals_t.type.dtype), b.gep(vals_p, [off]))
            if idx_p is not None:
                b.store(b.load(b.gep(scratch_i, [j])), b.gep(idx_p, [off]))
    b.ret_void()
    return Kernel(tf.fn.name, n_tasks, tf.buffers, label_of(node))


__all__ = ["emit", "support"]
