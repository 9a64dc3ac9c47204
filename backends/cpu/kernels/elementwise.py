"""Elementwise, broadcast and injective kernels (plain ops and fused chains).

Every output element is computed by ``Evaluator.value_at``.  When only
elementwise/broadcast ops are involved and every leaf is contiguous or
broadcast along the last axis, the last axis runs ``lanes`` elements at a
time (a scalar loop finishes the tail); otherwise one flat scalar loop walks
the output and maps indices through the injective ops.  Work is split into
tasks over the outer (row) index.
"""

from __future__ import annotations

import math
from typing import Any, Optional

import llvmlite.ir as ir

from ir.graph import Node, Value

from ..codegen import KernelBuilder, const_int, for_range, store_vector, supported_dtype, task_range
from ..evaluator import Evaluator, delinearize, index_map_ops, injective_support, is_index_map, is_row_major_view, \
    shape_of
from ..expr import elementwise_emitter, elementwise_ops, elementwise_support, store_convert
from . import Kernel, body_and_keys, generator, label_of, nodes_of

MIN_TASK_ELEMENTS = 1 << 14  # smaller tasks cost more in scheduling than they gain


def support(node: Node) -> Optional[str]:
    for n in nodes_of(node):
        if n.op == "Fused":
            return "nested fused groups"
        if is_index_map(n):
            why = injective_support(n)
        elif elementwise_emitter(n.domain, n.op) is not None:
            why = elementwise_support(n)
        else:
            return f"no cpu kernel for {n.qualified_op}"
        if why is not None:
            return why
    for v in node.outputs:
        if not getattr(v.type, "is_static", False):
            return "the cpu target needs static shapes here"
        if not supported_dtype(v.type.dtype):
            return f"element type {v.type.dtype.short} is not supported by the cpu target"
        if not v.type.shape:
            continue
    return None


@generator("elementwise", "injective", "opaque", supports=support,
           ops=lambda: elementwise_ops() | index_map_ops())
def emit(kb: KernelBuilder, node: Node, schedule: Any) -> Kernel:
    body, keys, outputs = body_and_keys(node)
    tf = kb.task_function(f"k_{node.outputs[0].name}")
    b = tf.builder
    lanes = kb.lanes
    # One loop nest per output (a group rarely has more than one).
    shapes = [shape_of(o) for o in outputs]
    rows = max(1, math.prod(shapes[0][:-1])) if shapes[0] else 1
    total = max(1, math.prod(shapes[0]))
    n_tasks = max(1, min(rows, total // MIN_TASK_ELEMENTS))
    for out_body, out_node in zip(outputs, node.outputs):
        shape = shape_of(out_body)
        dst = tf.value_pointer(out_node)
        dtype = out_node.type.dtype
        flat = bool(shape) and math.prod(shape) >= lanes and _flat_ok(body, node, out_body, shape)
        # Short rows (7x7, 14x14 feature maps) still get vectors, narrower ones.
        row_lanes = lanes if shape and shape[-1] >= lanes else _short_row_lanes(shape)
        narrow = bool(row_lanes) and row_lanes < lanes and not flat
        ev = Evaluator(kb, tf, body, row_lanes if narrow else lanes, leaf_keys=keys, members=nodes_of(node))
        if row_lanes == lanes:
            _vector_loop(b, tf, ev, out_body, dst, dtype, shape, n_tasks, lanes)
        elif flat:
            _flat_loop(kb, b, tf, ev, out_body, dst, dtype, shape, n_tasks)
        elif narrow:
            _vector_loop(b, tf, ev, out_body, dst, dtype, shape, n_tasks, row_lanes)
        else:
            _scalar_loop(b, tf, ev, out_body, dst, dtype, shape, n_tasks)
    b.ret_void()
    return Kernel(tf.fn.name, n_tasks, tf.buffers, label_of(node))


def _short_row_lanes(shape) -> int:
    """Vector width for rows shorter than a register: 8 or 4 lanes, 0 for scalar code."""
    if not shape:
        return 0
    return 8 if shape[-1] >= 8 else 4 if shape[-1] >= 4 else 0


def _flat_ok(body, node: Node, out: Value, shape) -> bool:
    """Pure elementwise work whose leaves all have the output's shape (or one element), and plain
    reshapes (a Reshape reading a graph input as NCHW1c): walk it flat."""
    for n in nodes_of(node):
        if is_row_major_view(n):
            continue  # the same elements in the same order: a flat position passes through
        if n.schema.kind not in ("elementwise", "broadcast") or n.op == "BatchNormalization":
            return False
        for v in list(n.inputs) + list(n.outputs):
            if v is not None and shape_of(v) != tuple(shape) and math.prod(shape_of(v)) != 1:
                return False
    return True


def _flat_loop(kb, b, tf, ev: Evaluator, out: Value, dst, dtype, shape, n_tasks) -> None:
    """The output as one long row: every leaf shares its layout, so one flat position addresses all."""
    lanes = kb.lanes
    total = math.prod(shape)
    full = total // lanes
    start, stop = task_range(b, tf.task, n_tasks, full)
    ev.flat = True
    with for_range(b, start, stop, name="vec") as k:
        ev.forget()
        col = b.mul(k, const_int(lanes))
        value = ev.value_at(out, [col], vector=True)
        store_vector(b, store_convert(b, value, dtype), dst, col)
    ev.forget()
    if full * lanes < total:  # the tail, in the last task
        is_last = b.icmp_signed("==", tf.task, const_int(n_tasks - 1))
        with b.if_then(is_last):
            with for_range(b, full * lanes, total, name="tail") as col:
                ev.forget()
                value = ev.value_at(out, [col], vector=False)
                b.store(store_convert(b, value, dtype), b.gep(dst, [col]))
        ev.forget()
    ev.flat = False


def _rows_for_task(b: ir.IRBuilder, task: ir.Value, n_tasks: int, rows: int):
    return task_range(b, task, n_tasks, rows)


def _vector_loop(b, tf, ev: Evaluator, out: Value, dst, dtype, shape, n_tasks, lanes: int) -> None:
    """Row by row: ``lanes`` elements of the last axis at a time, then a scalar tail."""
    last = shape[-1]
    rows = max(1, math.prod(shape[:-1]))
    start, stop = _rows_for_task(b, tf.task, n_tasks, rows)
    full = last // lanes * lanes
    with for_range(b, start, stop, name="row") as row:
        prefix = delinearize(b, row, shape[:-1]) if len(shape) > 1 else []
        base = b.mul(row, const_int(last))
        with for_range(b, 0, full, lanes, name="col") as col:
            ev.forget()
            value = ev.value_at(out, [*prefix, col], vector=True)
            store_vector(b, store_convert(b, value, dtype), dst, b.add(base, col))
        if full < last:
            with for_range(b, full, last, name="tail") as col:
                ev.forget()
                value = ev.value_at(out, [*prefix, col], vector=False)
                b.store(store_convert(b, value, dtype), b.gep(dst, [b.add(base, col)]))
    ev.forget()


def _scalar_loop(b, tf, ev: Evaluator, out: Value, dst, dtype, shape, n_tasks) -> None:
    total = max(1, math.prod(shape)) if shape else 1
    start, stop = task_range(b, tf.task, n_tasks, total)
    with for_range(b, start, stop, name="flat") as flat:
        ev.forget()
        idx = delinearize(b, flat, shape) if shape else []
        value = ev.value_at(out, idx, vector=False)
        b.store(store_convert(b, value, dtype), b.gep(dst, [flat]))
    ev.forget()
