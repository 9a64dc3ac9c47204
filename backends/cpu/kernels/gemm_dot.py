"""Dot-product GEMM for few rows (or one column) with K contiguous in both operands.

When B is stored N x K (Gemm transB=1, the usual fully connected layer) and
A has few rows, every output is a dot product of two contiguous rows.  A
tile of ``rd`` rows of A and ``cd`` rows of B keeps rd*cd accumulator
vectors along K::

    for each tile (m, n) of the task:          # n fastest: B rows stream in order
        acc[r][c] = 0
        for k in 0..K step lanes:              # the last step masked
            acc[r][c] += A[m+r, k:k+lanes] * B[n+c, k:k+lanes]
        out[m+r, n+c] = epilogue(sum of acc[r][c]'s lanes)

Batch-1 fully connected layers (M == 1) are matrix-vector products bound by
reading B once: a task owns a contiguous range of B's rows (a contiguous
slab of memory), ``cd`` rows streamed side by side, and the vector A stays
in cache.  MatMul with a 1-D B (N == 1) is the same kernel with rd rows of A.
"""

from __future__ import annotations

import math

import llvmlite.ir as ir

from ir.graph import Node

from ..codegen import I1, I32, KernelBuilder, const_int, fma, for_range, load_vector, loop_carry, masked_load
from . import Kernel, body_and_keys, label_of
from .gemm_loops import choose_grid
from .gemm_problem import Epilogue, GemmProblem, batch_offsets

DOT_MAX_M = 4                 # more rows than this: the blocked kernel (packing B pays off)
MIN_TASK_MACS = 256 * 1024    # memory-bound: ~1 MB of B per task keeps every core streaming


def dot_applies(p: GemmProblem) -> bool:
    """Both operands contiguous along K, and few rows (or a single column)."""
    return p.sak == 1 and p.b_k_contiguous and (p.m <= DOT_MAX_M or p.n == 1)


def tile_shape(p: GemmProblem) -> tuple[int, int]:
    """(rd, cd): rows of A and of B per tile; rd*cd accumulators + rd + cd loads fit the registers."""
    if p.n == 1:
        return min(p.m, 8), 1
    if p.m == 1:
        return 1, min(p.n, 8)
    return min(p.m, 4), min(p.n, 4)


def hsum(b: ir.IRBuilder, v: ir.Value) -> ir.Value:
    """The sum of a vector's lanes (halving tree of shuffles)."""
    n = v.type.count
    while n > 1:
        h = n // 2
        lo = b.shuffle_vector(v, ir.Constant(v.type, ir.Undefined), ir.Constant(ir.VectorType(I32, h),
                                                                                 list(range(h))))
        hi = b.shuffle_vector(v, ir.Constant(v.type, ir.Undefined), ir.Constant(ir.VectorType(I32, h),
                                                                                 list(range(h, n))))
        v = b.fadd(lo, hi)
        n = h
    return b.extract_element(v, const_int(0, I32))


def emit_dot(kb: KernelBuilder, node: Node, p: GemmProblem) -> Kernel:
    tf = kb.task_function(f"gemm_{node.outputs[0].name}")
    b = tf.builder
    lanes = p.lanes(kb)
    vty = ir.VectorType(p.elem, lanes)
    _, keys, _ = body_and_keys(node)
    a_ptr = tf.value_pointer(keys.get(id(p.anchor.inputs[0]), p.anchor.inputs[0]))
    b_ptr = tf.value_pointer(keys.get(id(p.anchor.inputs[1]), p.anchor.inputs[1]))
    epi = Epilogue(kb, tf, node, p)
    rd, cd = tile_shape(p)
    m_units, n_units = math.ceil(p.m / rd), math.ceil(p.n / cd)
    grid = choose_grid(p.batch_count, p.m, p.n, p.k, rd, cd, min_task_macs=MIN_TASK_MACS, cores=kb.target.cores)
    bt, u0, u1, w0, w1 = grid.decode(b, tf.task)
    batch_idx, a_off, b_off = batch_offsets(b, bt, p)
    a_base, b_base = b.gep(a_ptr, [a_off]), b.gep(b_ptr, [b_off])
    k_full, k_tail = divmod(p.k, lanes)
    tail_mask = ir.Constant(ir.VectorType(I1, lanes), [j < k_tail for j in range(lanes)])
    zero = ir.Constant(vty, [0.0] * lanes)

    def tile(m: ir.Value, rows: int, n: ir.Value, cols: int) -> None:
        a_rows = [b.gep(a_base, [b.mul(b.add(m, const_int(r)), const_int(p.sam))]) for r in range(rows)]
        b_rows = [b.gep(b_base, [b.mul(b.add(n, const_int(c)), const_int(p.sbn))]) for c in range(cols)]

        def step(k: ir.Value, vals: list[ir.Value], mask=None) -> list[ir.Value]:
            def load(ptr):
                return masked_load(kb, b, ptr, k, mask, lanes) if mask is not None else load_vector(b, ptr, k,
                                                                                                    lanes)
            av = [load(a) for a in a_rows]
            bv = [load(x) for x in b_rows]
            return [fma(kb, b, av[r], bv[c], vals[r * cols + c]) for r in range(rows) for c in range(cols)]

        vals = loop_carry(b, 0, k_full * lanes, lanes, [zero] * (rows * cols), step, name="dk")
        if k_tail:
            vals = step(const_int(k_full * lanes), vals, tail_mask)
        epi.begin()
        for r in range(rows):
            for c in range(cols):
                epi.store((bt, batch_idx), b.add(m, const_int(r)), b.add(n, const_int(c)),
                          hsum(b, vals[r * cols + c]), 0)

    def row_tiles(m: ir.Value, rows: int) -> None:
        full, tail = divmod(p.n, cd)
        if full:
            stop = b.select(b.icmp_signed("<", w1, const_int(full)), w1, const_int(full))
            with for_range(b, w0, stop, name="ntile") as w:
                tile(m, rows, b.mul(w, const_int(cd)), cd)
        if tail:
            with b.if_then(b.icmp_signed("==", w1, const_int(n_units))):
                tile(m, rows, const_int(full * cd), tail)

    full_m, tail_m = divmod(p.m, rd)
    if full_m:
        stop = b.select(b.icmp_signed("<", u1, const_int(full_m)), u1, const_int(full_m))
        with for_range(b, u0, stop, name="mtile") as u:
            row_tiles(b.mul(u, const_int(rd)), rd)
    if tail_m:
        with b.if_then(b.icmp_signed("==", u1, const_int(m_units))):
            row_tiles(const_int(full_m * rd), tail_m)
    b.ret_void()
    return Kernel(tf.fn.name, grid.n_tasks, tf.buffers, label_of(node))
