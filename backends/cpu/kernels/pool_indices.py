"""MaxPool with its Indices output: the window maximum and the flat position in X it came from.

The ``pool`` kernel computes MaxPool's values only; when the Indices output
is used this generator (same kernel kind, tried after it) takes the node.
Each output element walks its window's taps in row-major order (taps in the
padding or the ceil_mode overhang read the lowest value), keeping the first
maximum (NaN wins, as NumPy's maximum and argmax) and its flat index
``(n * C + c) * prod(spatial) + position``, the position in row-major or,
with ``storage_order`` 1, column-major spatial order.  Output elements are
split over tasks; a fused elementwise prologue is computed on each read.
"""

from __future__ import annotations

import itertools
import math
from typing import Any, Optional

import llvmlite.ir as ir
import numpy as np

from ir.dtypes import DType
from ir.graph import Node
from ir.ops._window import resolve_pads

from ..codegen import I1, I64, KernelBuilder, const_int, for_range, task_range
from ..evaluator import Evaluator, delinearize, shape_of
from ..expr import compute_type, elementwise_support, is_float, store_convert
from . import Kernel, body_and_keys, generator, label_of, nodes_of
from .anchored import Anchored
from .vecmath import Var

_TYPES = {DType.F32, DType.F64, DType.F16, DType.I8, DType.U8}
MAX_TAPS = 1024
MIN_TASK_OUTPUTS = 1 << 12


def support(node: Node) -> Optional[str]:
    a = Anchored.of(node)
    anchor = a.anchor
    if anchor.domain != "" or anchor.op != "MaxPool" or len(anchor.outputs) < 2:
        # Not ours: the pool kernel's own reason (the same words, so reports show it once).
        from .pool import support as pool_support
        return pool_support(node) or f"no cpu kernel for {anchor.qualified_op}"
    if a.body is not None:  # only an elementwise prologue may be fused (its value is computed on each read)
        for n in a.members:
            if n is anchor:
                continue
            if n.schema.kind not in ("elementwise", "broadcast") or elementwise_support(n) is not None:
                return f"{n.qualified_op} fused with a MaxPool that has Indices"
            if any(v is not None and v.producer is anchor for v in n.inputs):
                return "elementwise ops after a MaxPool with Indices in one fused kernel"
        if any(o.producer is not anchor for o in a.outputs) or len(a.outputs) != 2:
            return "a fused MaxPool whose outputs are not its own"
    x = anchor.inputs[0]
    if not all(getattr(v.type, "is_static", False) for v in (x, *anchor.outputs)):
        return "the cpu target needs static shapes here"
    if x.type.dtype not in _TYPES:
        return f"MaxPool on {x.type.dtype.short} is not supported by the cpu target"
    if len(shape_of(x)) < 3:
        return "MaxPool needs an input with spatial axes"
    if math.prod(anchor.attr("kernel_shape")) > MAX_TAPS:
        return f"MaxPool with Indices over more than {MAX_TAPS} taps"
    return None


@generator("pool", supports=support, ops=("MaxPool",), priority=-1)
def emit(kb: KernelBuilder, node: Node, schedule: Any) -> Kernel:
    anchor = Anchored.of(node).anchor
    body, keys, _ = body_and_keys(node)
    x = anchor.inputs[0]
    if body is None:
        y, ind = node.outputs[0], node.outputs[1]
    else:  # the kernel's outputs in the body's order
        where_of = {id(o): t for o, t in zip(body.outputs, node.outputs)}
        y, ind = where_of[id(anchor.outputs[0])], where_of[id(anchor.outputs[1])]
    xs, ys = shape_of(x), shape_of(y)
    sizes, d = xs[2:], len(xs) - 2
    kernel = list(anchor.attr("kernel_shape"))
    strides = list(anchor.attr("strides") or [1] * d)
    dilations = list(anchor.attr("dilations") or [1] * d)
    pads = resolve_pads(sizes, kernel, strides, dilations, anchor.attr("pads"), anchor.attr("auto_pad") or "NOTSET")
    column_major = anchor.attr("storage_order") == 1
    dtype = x.type.dtype
    ct = compute_type(dtype)
    lowest = -math.inf if dtype.is_float else int(np.iinfo(dtype.np).min)
    tf = kb.task_function(f"k_{y.name}")
    b = tf.builder
    yp, ip = tf.value_pointer(y), tf.value_pointer(ind)
    ev = Evaluator(kb, tf, body, 1, leaf_keys=keys, members=nodes_of(node))
    total = math.prod(ys)
    n_tasks = max(1, min(total, total // MIN_TASK_OUTPUTS))
    best, where = Var(tf, ct, "best"), Var(tf, I64, "where")
    plane = math.prod(sizes)
    start, stop = task_range(b, tf.task, n_tasks, total)
    with for_range(b, start, stop, name="o") as flat:
        ev.forget()
        idx = delinearize(b, flat, ys)
        nc = b.add(b.mul(idx[0], const_int(xs[1])), idx[1])
        for t, tap in enumerate(itertools.product(*(range(k) for k in kernel))):
            coords = [b.add(b.mul(idx[2 + a], const_int(strides[a])), const_int(tap[a] * dilations[a] - pads[a]))
                      for a in range(d)]
            inside: ir.Value = ir.Constant(I1, 1)
            for a in range(d):
                inside = b.and_(inside, b.and_(b.icmp_signed(">=", coords[a], const_int(0)),
                                               b.icmp_signed("<", coords[a], const_int(sizes[a]))))
            pos = const_int(0)
            for a in (reversed(range(d)) if column_major else range(d)):
                pos = b.add(b.mul(pos, const_int(sizes[a])), coords[a])
            safe = [b.select(inside, c, const_int(0)) for c in coords]
            v = ev.value_at(x, [idx[0], idx[1], *safe])
            v = b.select(inside, v, ir.Constant(ct, lowest))
            here = b.add(b.mul(nc, const_int(plane)), pos)
            if t == 0:
                best.set(v)
                where.set(here)
                continue
            cur = best.get()
            if is_float(ct):
                better = b.or_(b.fcmp_ordered(">", v, cur),
                               b.and_(b.fcmp_unordered("uno", v, v), b.fcmp_ordered("ord", cur, cur)))
            else:
                better = (b.icmp_signed if dtype.is_signed else b.icmp_unsigned)(">", v, cur)
            best.set(b.select(better, v, cur))
            where.set(b.select(better, here, where.get()))
        b.store(store_convert(b, best.get(), dtype), b.gep(yp, [flat]))
        b.store(where.get(), b.gep(ip, [flat]))
    ev.forget()
    b.ret_void()
    return Kernel(tf.fn.name, n_tasks, tf.buffers, label_of(node))


__all__ = ["emit", "support"]
