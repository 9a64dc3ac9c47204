"""Gemm and MatMul on float16 and bfloat16 operands (kind "gemm", after the float32/float64 kernels).

The same problem (``gemm_problem``: strides, batch broadcast, alpha/beta*C)
and epilogue (the fused elementwise ops, evaluated in float32) as the
float32 kernels; elements are widened to float32 on load, products summed in
float32 along K in order (what numpy does for float16 and ml_dtypes for
bfloat16), and the result rounded once to the output type on store.  One
task per range of output rows, scalar dot products: correct and simple,
meant for the half-precision graphs of the suite and small attention
blocks, not tuned.
"""

from __future__ import annotations

from typing import Any, Optional

from ir.anchor import anchor_of
from ir.dtypes import DType
from ir.graph import Node

from ..codegen import F32, KernelBuilder, const_int, for_range, loop_carry, task_range
from ..expr import load_convert, round_to_dtype
from . import Kernel, body_and_keys, generator, label_of
from .gemm_problem import GEMM_OPS, Epilogue, batch_offsets, make_problem, problem_support

NARROW_DTYPES = (DType.F16, DType.BF16)
MIN_TASK_MACS = 1 << 18
MAX_TASKS = 32


def support(node: Node) -> Optional[str]:
    why = problem_support(node, NARROW_DTYPES)
    if why is not None:
        return why
    anchor = anchor_of(node)
    types = {v.type.dtype for v in anchor.inputs if v is not None}
    if len(types) != 1:
        return f"{anchor.op} with mixed operand types {sorted(t.short for t in types)} is not supported"
    return None


class _RoundingEpilogue(Epilogue):
    """The anchor's value (alpha * acc + beta * C, in float32) rounded to its type before fused ops see it."""

    def _provide(self, idx, vector):
        return round_to_dtype(self.b, super()._provide(idx, vector), self.p.anchor.outputs[0].type.dtype)


@generator("gemm", supports=support, ops=GEMM_OPS, priority=-1)
def emit(kb: KernelBuilder, node: Node, schedule: Any) -> Kernel:
    p = make_problem(anchor_of(node))
    tf = kb.task_function(f"gemm_{node.outputs[0].name}")
    b = tf.builder
    rows = p.batch_count * p.m
    if rows * p.n == 0:
        b.ret_void()
        return Kernel(tf.fn.name, 1, tf.buffers, label_of(node))
    a_val, b_val = p.anchor.inputs[0], p.anchor.inputs[1]
    _, keys, _ = body_and_keys(node)  # a fused group's body inputs -> the kernel's inputs
    a_ptr = tf.value_pointer(keys.get(id(a_val), a_val))
    b_ptr = tf.value_pointer(keys.get(id(b_val), b_val))
    dtype = a_val.type.dtype
    ep = _RoundingEpilogue(kb, tf, node, p)
    n_tasks = max(1, min(rows, MAX_TASKS, p.macs // MIN_TASK_MACS))
    start, stop = task_range(b, tf.task, n_tasks, rows)
    zero = F32(0.0)
    with for_range(b, start, stop, name="row") as r:
        bt = b.sdiv(r, const_int(p.m))
        m = b.srem(r, const_int(p.m))
        batch_idx, a_off, b_off = batch_offsets(b, bt, p)
        a_row = b.add(a_off, b.mul(m, const_int(p.sam)))
        with for_range(b, 0, p.n, name="n") as n:
            b_col = b.add(b_off, b.mul(n, const_int(p.sbn)))

            def step(k, accs):
                av = load_convert(b, b.load(b.gep(a_ptr, [b.add(a_row, b.mul(k, const_int(p.sak)))])), dtype)
                bv = load_convert(b, b.load(b.gep(b_ptr, [b.add(b_col, b.mul(k, const_int(p.sbk)))])), dtype)
                return [b.fadd(accs[0], b.fmul(av, bv))]
            acc = loop_carry(b, 0, p.k, 1, [zero], step, name="k")[0]
            ep.begin()
            ep.store((bt, batch_idx), m, n, acc, 0)
    b.ret_void()
    return Kernel(tf.fn.name, n_tasks, tf.buffers, label_of(node))
