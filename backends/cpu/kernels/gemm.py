"""Gemm and MatMul kernels (kind "gemm"), with fused elementwise epilogues.

One generator, two kernel templates:

* ``gemm_blocked`` (the general case): a BLIS/GotoBLAS-style blocked GEMM.
  Per K block a task packs its rows of A, then B panel by panel (kc x nr),
  into stack buffers; an mr x nr register micro-kernel (nr = a few vectors,
  fma with broadcast A elements) sweeps the rows; tasks split M blocks and N
  panels, shaped to pack the least.  Small M with B contiguous along N
  reads both in place (no packing, B prefetched ahead).
* ``gemm_dot``: few rows of A against B stored N x K (Gemm transB=1, the
  fully connected layers of VGG, AlexNet, ResNet), or a single column:
  dot products along K.  Batch-1 layers stream each B row once, every task a
  contiguous slab of B.

``gemm_problem`` normalizes Gemm (transA, transB, alpha, beta, C) and MatMul
(batch broadcast, 1-D operands) into sizes and strides, and evaluates the
epilogue (alpha/beta*C, then the group's elementwise ops) on the
accumulators before the store.

The tile sizes come from the node's Schedule (``backends.cpu.scheduling._gemm_candidates``:
mr, nr, kc; the blocked kernel refuses a node the schedule pass did not schedule);
``gemm_blocked.refine`` adjusts them to the problem (mr re-scored to fill
the registers, M == 1 gets 8 accumulator vectors, K blocks are evened out).
float32 and float64 operands are supported (a vector holds half as many
doubles); other types are refused with the reason.

Stack use: a task of the blocked kernel allocates at most APACK_BYTES +
BPACK_BYTES + SCRATCH_BYTES (320 KB) on its thread's stack.
"""

from __future__ import annotations

from typing import Any, Optional

from ir.graph import Node
from ir.anchor import anchor_of


from ..codegen import KernelBuilder
from . import Kernel, generator, label_of, require_schedule
from .gemm_blocked import emit_blocked
from .gemm_dot import dot_applies, emit_dot
from .gemm_problem import GEMM_OPS, make_problem, problem_support


def support(node: Node) -> Optional[str]:
    return problem_support(node)


@generator("gemm", supports=support, ops=GEMM_OPS)
def emit(kb: KernelBuilder, node: Node, schedule: Any) -> Kernel:
    p = make_problem(anchor_of(node))
    if p.batch_count * p.m * p.n == 0:  # an empty result: nothing to compute
        tf = kb.task_function(f"gemm_{node.outputs[0].name}")
        tf.builder.ret_void()
        return Kernel(tf.fn.name, 1, tf.buffers, label_of(node))
    if p.k == 0 or dot_applies(p):  # (K == 0: the dot kernel's loop is empty, the epilogue stores beta*C)
        return emit_dot(kb, node, p)
    schedule = require_schedule(node, schedule, "gemm")
    return emit_blocked(kb, node, p, dict(schedule.params), tuned=schedule.source == "tuned")
