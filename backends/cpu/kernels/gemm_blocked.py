"""Blocked GEMM with an MR x NR register micro-kernel (BLIS/GotoBLAS style).

One task owns a batch index, rows [u0, u1) in units of ``mr`` and columns
[p0, p1) in panels of ``nr`` = ``nv`` vectors.  Its loop nest::

    for each K block (kc):                     # first / middle / last, sizes static
        pack A[task rows, K block] -> apack    # one contiguous mr-row strip per unit
        for each panel of nr columns:          # the last one may be narrower
            pack B[K block, panel] -> bpack    # [k][nr], zero-padded to whole vectors
            for each unit of mr rows:          # the last one may have fewer rows
                acc[mr][nv] = 0, or the partial sums so far
                for k in K block:              # unrolled by UNROLL
                    b_v = bpack[k, v-th vector]                       for v < nv
                    acc[r][v] = fma(broadcast(apack[k, r]), b_v, acc[r][v])
                partial sums = acc, or on the last K block: epilogue(acc) -> output

The B panel (kc x nr) stays in L1 while every row strip of the task passes
over it; the packed A block (task rows x kc) stays in L2 for all panels.
Packing makes both contiguous, so power-of-two leading dimensions do not
alias in the cache, and zero padding keeps the micro-kernel free of masks.

Partial sums across K blocks go to the output itself, except when the
output may share memory with an input the epilogue reads (a fused residual
Add planned in place) or is not float32: then to a per-task scratch block.
The packing buffers and the scratch block are ``alloca``s in the task's entry
block; their sizes (``*_BYTES``) bound a task's rows and columns.

Small M with B contiguous along N reads A and B in place (``direct``: one K
block, a masked load for the last partial vector): packing would cost as
much as the product.  B contiguous along K (Gemm transB=1) is transposed
while packing, lanes x lanes blocks at a time in registers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import llvmlite.ir as ir

from ir.graph import Node

from ..codegen import I1, I32, I8P, VOID, KernelBuilder, TaskFunction, const_int, fma, for_range, load_vector, loop_carry, \
    masked_load, masked_store, splat, store_vector
from . import Kernel, body_and_keys, label_of
from .gemm_loops import MIN_TASK_MACS, TaskGrid, choose_grid
from .gemm_problem import Epilogue, GemmProblem, batch_offsets

UNROLL = 4
APACK_BYTES = 128 * 1024     # packed A block of one task (rows x kc)
BPACK_BYTES = 64 * 1024      # packed B panel (kc x nr): bounds kc
SCRATCH_BYTES = 128 * 1024   # partial-sum block when the output cannot hold them
PREFETCH_ROWS = 8           # direct path: rows of B fetched ahead of use
DIRECT_MAX_M = 8             # at most this many rows (and B contiguous along N): no packing
DIRECT_MIN_TASK_MACS = 256 * 1024  # the direct path streams B from memory: ~1 MB per task


@dataclass
class BlockedPlan:
    mr: int
    nv: int              # vectors per panel (nr = nv * lanes)
    kc: int              # K block
    direct: bool         # read A and B in place (no packing, one K block)
    acc_in_output: bool  # partial sums of K blocks go to the output (else to scratch)
    grid: TaskGrid


def make_plan(p: GemmProblem, params: dict[str, int], f32_lanes: int, registers: int,
              acc_in_output: bool, tuned: bool = False, cores: int = 1) -> BlockedPlan:
    """Register tile, K block and task grid from the schedule (``refine``) and the buffer budgets."""
    lanes = f32_lanes * 4 // p.itemsize
    mr, nv, kc = refine(p, params, f32_lanes, lanes, registers, tuned)
    nr = nv * lanes
    direct = p.sbn == 1 and not p.b_k_contiguous and p.m <= DIRECT_MAX_M
    if direct:
        kc = p.k
    m_units = math.ceil(p.m / mr)
    max_m = 0 if direct else max(1, APACK_BYTES // (p.itemsize * kc * mr))
    max_n = 0
    if kc < p.k and not acc_in_output:
        rows = min(max_m, m_units) * mr
        max_n = max(1, SCRATCH_BYTES // (p.itemsize * rows * nr))
    grid = choose_grid(p.batch_count, p.m, p.n, p.k, mr, nr, max_m, max_n,
                       DIRECT_MIN_TASK_MACS if direct else MIN_TASK_MACS, cores=cores)
    return BlockedPlan(mr, nv, kc, direct, acc_in_output, grid)


def refine(p: GemmProblem, params: dict[str, int], f32_lanes: int, lanes: int, registers: int,
           tuned: bool = False) -> tuple[int, int, int]:
    """(mr, nv, kc) from the schedule's mr/nr/kc, fitted to the registers and to small problems.

    A tuned schedule's mr is kept.  The shared model scores every mr whose
    FMA-per-load intensity reaches 2.0 the same and picks the smallest; on
    AVX-512 (broadcast and B loads compete with the FMAs' operands) measured
    1024^3 runs favour filling the registers, so mr is re-scored here with
    saturation at 2.4 (6 x 4 vectors) against the M tail's idle rows.
    M == 1 gets 8 accumulator vectors (independent FMAs in flight).
    K blocks are evened out to multiples of UNROLL.  (The schedule counts nr
    in float32 lanes; ``lanes`` is the element count of a vector.)
    """
    nv = max(1, params.get("nr", 4 * f32_lanes) // f32_lanes)
    nv = min(nv, math.ceil(p.n / lanes))
    if p.m == 1:
        nv = min(8, math.ceil(p.n / lanes))
    max_mr = max(1, (registers - nv - 1) // nv)
    if tuned and "mr" in params:
        mr = min(params["mr"], max_mr)
    else:
        def score(mr: int) -> float:
            intensity = mr * nv / (mr + nv)
            waste = math.ceil(p.m / mr) * mr / p.m
            return min(1.0, intensity / 2.4) / waste
        mr = max(range(1, max_mr + 1), key=lambda r: (score(r), -r))
    mr = max(1, min(mr, p.m))
    kc = max(UNROLL, min(params.get("kc", 128), BPACK_BYTES // (p.itemsize * nv * lanes)))
    if kc >= p.k:
        return mr, nv, p.k
    blocks = math.ceil(p.k / kc)
    return mr, nv, math.ceil(math.ceil(p.k / blocks) / UNROLL) * UNROLL


@dataclass
class KBlock:
    k0: ir.Value
    kcur: int       # static size of this K block
    init: str       # "zero" | "acc": start from zero or from the partial sums
    finish: str     # "acc" | "epilogue": keep partial sums or store the result


class BlockedGemm:
    """Emits one blocked-GEMM task function (see the module docstring)."""

    def __init__(self, kb: KernelBuilder, node: Node, p: GemmProblem, plan: BlockedPlan) -> None:
        self.kb, self.node, self.p, self.plan = kb, node, p, plan
        self.lanes = p.lanes(kb)
        self.nr = plan.nv * self.lanes
        self.tf: TaskFunction = kb.task_function(f"gemm_{node.outputs[0].name}")
        self.b = self.tf.builder
        _, keys, _ = body_and_keys(node)
        self.a_ptr = self.tf.value_pointer(keys.get(id(p.anchor.inputs[0]), p.anchor.inputs[0]))
        self.b_ptr = self.tf.value_pointer(keys.get(id(p.anchor.inputs[1]), p.anchor.inputs[1]))
        self.out_ptr = self.tf.value_pointer(node.outputs[0])
        self.epilogue = Epilogue(kb, self.tf, node, p)
        self.vty = ir.VectorType(p.elem, self.lanes)

    # ---------------------------------------------------------------- task
    def emit(self) -> Kernel:
        b, p, plan, nr = self.b, self.p, self.plan, self.nr
        grid = plan.grid
        rows = grid.max_m_units * plan.mr
        self.apack = None if plan.direct else self._alloca(rows * plan.kc)
        self.bpack = None if plan.direct else self._alloca(plan.kc * nr)
        self.scratch_cols = grid.max_n_units * nr
        self.scratch = self._alloca(rows * self.scratch_cols) \
            if plan.kc < p.k and not plan.acc_in_output else None
        bt, self.u0, self.u1, self.p0, self.p1 = grid.decode(b, self.tf.task)
        batch_idx, a_off, b_off = batch_offsets(b, bt, p)
        self.batch = (bt, batch_idx)
        self.a_base = b.gep(self.a_ptr, [a_off])
        self.b_base = b.gep(self.b_ptr, [b_off])
        self.m0 = b.mul(self.u0, const_int(plan.mr))
        for blk in self._kblocks():
            self._kblock(blk)
        b.ret_void()
        return Kernel(self.tf.fn.name, grid.n_tasks, self.tf.buffers, label_of(self.node))

    def _alloca(self, count: int) -> ir.Value:
        """A 64-byte aligned stack buffer of ``count`` elements, allocated once per task call."""
        elem = self.p.elem
        with self.b.goto_block(self.tf._entry):
            buf = self.b.alloca(ir.ArrayType(elem, count), name="buf")
            buf.align = 64
            return self.b.bitcast(buf, elem.as_pointer())

    def _kblocks(self):
        """The K blocks as static variants: first, a loop of middle ones, last."""
        k, kc = self.p.k, self.plan.kc
        blocks = math.ceil(k / kc)
        if blocks == 1:
            yield KBlock(const_int(0), k, "zero", "epilogue")
            return
        yield KBlock(const_int(0), kc, "zero", "acc")
        if blocks > 2:
            with for_range(self.b, 1, blocks - 1, name="kblk") as kbi:
                yield KBlock(self.b.mul(kbi, const_int(kc)), kc, "acc", "acc")
        last = (blocks - 1) * kc
        yield KBlock(const_int(last), k - last, "acc", "epilogue")

    def _kblock(self, blk: KBlock) -> None:
        b, p, nr = self.b, self.p, self.nr
        if not self.plan.direct:
            self._pack_a(blk)
        full_panels, last_w = divmod(p.n, nr)
        if full_panels:
            stop = b.select(b.icmp_signed("<", self.p1, const_int(full_panels)), self.p1, const_int(full_panels))
            with for_range(b, self.p0, stop, name="panel") as panel:
                self._panel(blk, panel, nr)
        if last_w:
            with b.if_then(b.icmp_signed("==", self.p1, const_int(self.plan.grid.n_units))):
                self._panel(blk, const_int(full_panels), last_w)

    # -------------------------------------------------------------- panels
    def _panel(self, blk: KBlock, panel: ir.Value, width: int) -> None:
        """Every row unit of the task against one panel of ``width`` columns."""
        b, p, plan = self.b, self.p, self.plan
        n0 = b.mul(panel, const_int(self.nr))
        nv = math.ceil(width / self.lanes)
        if plan.direct:
            src = b.gep(self.b_base, [b.add(b.mul(blk.k0, const_int(p.sbk)), n0)])
            bsrc = (src, p.sbk, width % self.lanes)
        else:
            self._pack_b(n0, width, nv, blk)
            bsrc = (self.bpack, nv * self.lanes, 0)
        full_units, tail_rows = divmod(p.m, plan.mr)
        if full_units:
            stop = b.select(b.icmp_signed("<", self.u1, const_int(full_units)), self.u1, const_int(full_units))
            with for_range(b, self.u0, stop, name="unit") as u:
                self._tile(blk, u, plan.mr, n0, width, nv, bsrc)
        if tail_rows:
            with b.if_then(b.icmp_signed("==", self.u1, const_int(plan.grid.m_units))):
                self._tile(blk, const_int(full_units), tail_rows, n0, width, nv, bsrc)

    # --------------------------------------------------------------- tiles
    def _tile(self, blk: KBlock, u: ir.Value, rows: int, n0: ir.Value, width: int, nv: int, bsrc) -> None:
        b, p, lanes, plan = self.b, self.p, self.lanes, self.plan
        m = b.mul(u, const_int(plan.mr))
        if plan.direct:
            a_src = b.gep(self.a_base, [b.add(b.mul(m, const_int(p.sam)), b.mul(blk.k0, const_int(p.sak)))])
            astride = (p.sam, p.sak)
        else:
            a_src = b.gep(self.apack, [b.mul(b.sub(u, self.u0), const_int(plan.mr * blk.kcur))])
            astride = (blk.kcur, 1) if p.sak == 1 else (1, plan.mr)
        if blk.init == "zero":
            acc = [[ir.Constant(self.vty, [0.0] * lanes)] * nv for _ in range(rows)]
        else:
            acc = [[self._partial(m, r, n0, v, width) for v in range(nv)] for r in range(rows)]
        acc = self._micro(a_src, astride, bsrc, nv, blk.kcur, acc)
        if blk.finish == "acc":
            for r in range(rows):
                for v in range(nv):
                    self._partial(m, r, n0, v, width, acc[r][v])
            return
        self.epilogue.begin()
        for r in range(rows):
            row = b.add(m, const_int(r))
            for v in range(nv):
                count = min(lanes, width - v * lanes)
                self.epilogue.store(self.batch, row, b.add(n0, const_int(v * lanes)), acc[r][v], count)

    def _partial(self, m: ir.Value, r: int, n0: ir.Value, v: int, width: int,
                 value: Optional[ir.Value] = None) -> Optional[ir.Value]:
        """Load (``value`` None) or store the partial sums of vector v of row m + r."""
        b, lanes = self.b, self.lanes
        col = b.add(n0, const_int(v * lanes))
        if self.scratch is not None:
            local_n = b.sub(col, b.mul(self.p0, const_int(self.nr)))
            local_m = b.sub(b.add(m, const_int(r)), self.m0)
            off = b.add(b.mul(local_m, const_int(self.scratch_cols)), local_n)
            if value is None:
                return load_vector(b, self.scratch, off, lanes, align=64)
            store_vector(b, value, self.scratch, off, align=64)
            return None
        bt = self.batch[0]
        row = b.add(b.mul(bt, const_int(self.p.m)), b.add(m, const_int(r)))
        off = b.add(b.mul(row, const_int(self.p.n)), col)
        count = min(lanes, width - v * lanes)
        if count == lanes:
            if value is None:
                return load_vector(b, self.out_ptr, off, lanes)
            store_vector(b, value, self.out_ptr, off)
            return None
        mask = ir.Constant(ir.VectorType(I1, lanes), [j < count for j in range(lanes)])
        if value is None:
            return masked_load(self.kb, b, self.out_ptr, off, mask, lanes)
        masked_store(self.kb, b, value, self.out_ptr, off, mask)
        return None

    def _micro(self, a_src: ir.Value, astride: tuple[int, int], bsrc, nv: int, kcur: int,
               acc: list[list[ir.Value]]) -> list[list[ir.Value]]:
        """acc[r][v] += A[r, k] * B[k, v-th vector] for k < kcur: the register micro-kernel."""
        b, lanes = self.b, self.lanes
        rows = len(acc)
        b_src, b_stride, mask = bsrc
        a_rs, a_ks = astride
        mask_v = ir.Constant(ir.VectorType(I1, lanes), [j < mask for j in range(lanes)]) if mask else None
        align = 4 if self.plan.direct else 64

        def step(k: ir.Value, acc: list[list[ir.Value]]) -> list[list[ir.Value]]:
            base = b.mul(k, const_int(b_stride))
            bv = []
            for v in range(nv):
                off = b.add(base, const_int(v * lanes))
                if self.plan.direct and PREFETCH_ROWS:  # B streams from memory once: fetch rows ahead
                    prefetch(self.kb, b, b_src, b.add(off, const_int(PREFETCH_ROWS * b_stride)))
                if mask_v is not None and v == nv - 1:
                    bv.append(masked_load(self.kb, b, b_src, off, mask_v, lanes))
                else:
                    bv.append(load_vector(b, b_src, off, lanes, align=align))
            ka = b.mul(k, const_int(a_ks))
            out = []
            for r in range(rows):
                a = splat(b, b.load(b.gep(a_src, [b.add(ka, const_int(r * a_rs))])), lanes)
                out.append([fma(self.kb, b, a, bv[v], acc[r][v]) for v in range(nv)])
            return out

        def flat(acc):
            return [x for row in acc for x in row]

        def nest(vals):
            return [vals[r * nv:(r + 1) * nv] for r in range(rows)]

        def unrolled(k, vals):
            acc = nest(vals)
            for i in range(UNROLL):
                acc = step(b.add(k, const_int(i)), acc)
            return flat(acc)

        main = kcur // UNROLL * UNROLL
        vals = loop_carry(b, 0, main, UNROLL, flat(acc), unrolled, name="k")
        vals = loop_carry(b, main, kcur, 1, vals, lambda k, v: flat(step(k, nest(v))), name="krem")
        return nest(vals)

    # ------------------------------------------------------------- packing
    def _pack_a(self, blk: KBlock) -> None:
        """Copy the task's rows of A for this K block into apack, one mr-row strip per unit.

        A with contiguous rows (MatMul, Gemm transA=0) is copied row by row
        ([unit][r][k]: vector copies); A stored K x M (transA=1) per k
        ([unit][k][r]: one masked vector of mr consecutive elements per k).
        Either way the strip is contiguous, so no two rows alias in the cache.
        """
        b, p, mr, lanes = self.b, self.p, self.plan.mr, self.lanes
        full_units, tail_rows = divmod(p.m, mr)
        size = mr * blk.kcur

        def unit(u: ir.Value, rows: int) -> None:
            m = b.mul(u, const_int(mr))
            dst = b.gep(self.apack, [b.mul(b.sub(u, self.u0), const_int(size))])
            src = b.gep(self.a_base, [b.add(b.mul(m, const_int(p.sam)), b.mul(blk.k0, const_int(p.sak)))])
            if p.sak == 1:
                for r in range(rows):
                    _copy(self.kb, b, b.gep(src, [const_int(r * p.sam)]), b.gep(dst, [const_int(r * blk.kcur)]),
                          blk.kcur, lanes)
                return
            mask = ir.Constant(ir.VectorType(I1, lanes), [j < rows for j in range(lanes)])
            with for_range(b, 0, blk.kcur, name="pa") as k:
                val = masked_load(self.kb, b, src, b.mul(k, const_int(p.sak)), mask, lanes)
                masked_store(self.kb, b, val, dst, b.mul(k, const_int(mr)), mask)

        if full_units:
            stop = b.select(b.icmp_signed("<", self.u1, const_int(full_units)), self.u1, const_int(full_units))
            with for_range(b, self.u0, stop, name="pau") as u:
                unit(u, mr)
        if tail_rows:
            with b.if_then(b.icmp_signed("==", self.u1, const_int(self.plan.grid.m_units))):
                unit(const_int(full_units), tail_rows)

    def _pack_b(self, n0: ir.Value, width: int, nv: int, blk: KBlock) -> None:
        """bpack[k][j] = B[k0 + k, n0 + j] for k < kcur, j < nv*lanes (zero past ``width``)."""
        if self.p.sbn == 1:
            self._pack_b_rows(n0, width, nv, blk)
        else:
            self._pack_b_transposed(n0, width, nv, blk)

    def _pack_b_rows(self, n0, width, nv, blk: KBlock) -> None:
        """B rows are contiguous along N: copy nv vectors per k (the last one masked)."""
        b, lanes, p = self.b, self.lanes, self.p
        tail = width % lanes
        mask_v = ir.Constant(ir.VectorType(I1, lanes), [j < tail for j in range(lanes)]) if tail else None
        start = b.add(b.mul(blk.k0, const_int(p.sbk)), n0)
        with for_range(b, 0, blk.kcur, name="pb") as k:
            src = b.add(start, b.mul(k, const_int(p.sbk)))
            dst = b.mul(k, const_int(nv * lanes))
            for v in range(nv):
                off = b.add(src, const_int(v * lanes))
                if mask_v is not None and v == nv - 1:
                    val = masked_load(self.kb, b, self.b_base, off, mask_v, lanes)
                else:
                    val = load_vector(b, self.b_base, off, lanes)
                store_vector(b, val, self.bpack, b.add(dst, const_int(v * lanes)), align=64)

    def _pack_b_transposed(self, n0, width, nv, blk: KBlock) -> None:
        """B rows are contiguous along K (transB): transpose lanes x lanes blocks in registers."""
        b, lanes, p = self.b, self.lanes, self.p
        wp = nv * lanes
        zero = ir.Constant(self.vty, [0.0] * lanes)
        k_full, k_tail = divmod(blk.kcur, lanes)

        def block(kk: ir.Value, jb: int, krows: int) -> None:
            mask_v = ir.Constant(ir.VectorType(I1, lanes), [t < krows for t in range(lanes)])
            rows = []
            for t in range(lanes):  # B rows n0 + j (panel columns), lanes consecutive k each
                j = jb * lanes + t
                if j >= width:
                    rows.append(zero)
                    continue
                off = b.add(b.mul(b.add(n0, const_int(j)), const_int(p.sbn)), b.add(blk.k0, kk))
                rows.append(load_vector(b, self.b_base, off, lanes) if krows == lanes
                            else masked_load(self.kb, b, self.b_base, off, mask_v, lanes))
            cols = transpose(b, rows)
            for t in range(krows):
                dst = b.add(b.mul(b.add(kk, const_int(t)), const_int(wp)), const_int(jb * lanes))
                store_vector(b, cols[t], self.bpack, dst, align=64)

        for jb in range(nv):
            if k_full:
                with for_range(b, 0, k_full * lanes, lanes, name="tk") as kk:
                    block(kk, jb, lanes)
            if k_tail:
                block(const_int(k_full * lanes), jb, k_tail)


def prefetch(kb: KernelBuilder, b: ir.IRBuilder, base: ir.Value, index: ir.Value) -> None:
    """Hint the cache to fetch ``base[index]`` (a prefetch never faults, even past the end)."""
    fn = kb.declare("llvm.prefetch.p0i8", VOID, [I8P, I32, I32, I32])
    ptr = b.bitcast(b.gep(base, [index]), I8P)
    b.call(fn, [ptr, const_int(0, I32), const_int(3, I32), const_int(1, I32)])


def _copy(kb: KernelBuilder, b: ir.IRBuilder, src: ir.Value, dst: ir.Value, count: int, lanes: int) -> None:
    """dst[0:count] = src[0:count] (vectors, the tail masked)."""
    full, tail = divmod(count, lanes)
    if full:
        with for_range(b, 0, full * lanes, lanes, name="cp") as i:
            store_vector(b, load_vector(b, src, i, lanes), dst, i)
    if tail:
        mask = ir.Constant(ir.VectorType(I1, lanes), [j < tail for j in range(lanes)])
        at = const_int(full * lanes)
        masked_store(kb, b, masked_load(kb, b, src, at, mask, lanes), dst, at, mask)


def transpose(b: ir.IRBuilder, rows: list[ir.Value]) -> list[ir.Value]:
    """Transpose a lanes x lanes matrix held as ``lanes`` row vectors (log2(lanes) shuffle stages).

    The stage for bit h exchanges that bit between the row and the column
    index: within each pair of rows (i, i + h), the upper-right h-blocks of
    row i trade places with the lower-left h-blocks of row i + h.
    """
    n = len(rows)
    i32 = ir.IntType(32)
    h = n // 2
    while h >= 1:
        lo = ir.Constant(ir.VectorType(i32, n), [c if c & h == 0 else n + c - h for c in range(n)])
        hi = ir.Constant(ir.VectorType(i32, n), [c + h if c & h == 0 else n + c for c in range(n)])
        out = list(rows)
        for i in range(n):
            if not i & h:
                out[i] = b.shuffle_vector(rows[i], rows[i + h], lo)
                out[i + h] = b.shuffle_vector(rows[i], rows[i + h], hi)
        rows = out
        h //= 2
    return rows


def accumulate_in_output(node: Node, p: GemmProblem) -> bool:
    """May partial sums live in the output?  Not when its type differs from A's, or when it may share
    memory with another input of the kernel (a residual Add planned in place reads it last)."""
    out = node.outputs[0]
    if len(node.outputs) != 1 or out.type.dtype is not p.dtype:
        return False
    _, keys, _ = body_and_keys(node)
    operands = {id(keys.get(id(v), v)) for v in p.anchor.inputs[:2]}
    numel = math.prod(out.type.shape)
    for v in node.inputs:
        if v is None or v.const is not None or id(v) in operands:
            continue
        if math.prod(v.type.shape) == numel and v.type.dtype.itemsize == p.itemsize:
            return False
    return True


def emit_blocked(kb: KernelBuilder, node: Node, p: GemmProblem, params: dict[str, int],
                 tuned: bool = False) -> Kernel:
    plan = make_plan(p, params, kb.lanes, kb.target.registers, accumulate_in_output(node, p), tuned,
                     cores=kb.target.cores)
    return BlockedGemm(kb, node, p, plan).emit()
