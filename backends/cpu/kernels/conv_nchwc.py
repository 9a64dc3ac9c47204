"""Direct convolution on channel-blocked data: ``nnc.ConvNCHWc`` (kinds conv2d_nchwc, dwconv2d_nchwc).

Data (``ib``/``ob`` = input/output channel block, ``V`` = vector lanes)::

    x  [N, ICB, H, W, ib]          y [N, OCB, OH, OW, ob]
    w  [OCB, ICB, KH, KW, ib, ob]  (packed at compile time; depthwise: [CB, 1, KH, KW, 1, ob])
    b  [OCB * ob]                  (plain; already in blocked order)

Group 1 (TVM's / oneDNN's direct NCHWc convolution)::

    parallel for units (n, oc group, group of rows [or chunk of a flat row]):
      for each chunk of icc input channel blocks:          # runtime loop (1 chunk when small)
        for oh in the unit's rows:
          kh_lo, kh_hi = valid kernel rows of oh             # top/bottom padding
          for each column block (static border blocks, interior tiles):
            acc[ow_block][oc_unroll][ob/V] = bias, or the partial sums of the previous chunk
            for icb in the chunk:                            # runtime loop
              for kh in [kh_lo, kh_hi):                      # runtime loop
                for icl in ib (ic_unroll lanes unrolled), for kw (unrolled):
                  wv[u][v] = w[ocb_u, icb, kh, kw, icl, v*V:]  # oc_unroll*ob/V vector loads
                  for j in block: xs = broadcast(x[n, icb, ih, iw_j, icl])
                    acc[j][u][v] += xs * wv[u][v]            # FMA
            last chunk: epilogue(acc), one store per vector; else: partial sums -> stack tile

Each broadcast feeds ``oc_unroll * ob/V`` FMAs and each weight vector
``ow_block`` FMAs; ``ow_block``, ``oc_unroll`` and ``ic_unroll`` come from
the schedule (the analytical model of ``backends.cpu.scheduling``) so the tile
fills the register file.  Border blocks sit at static columns: a tap
reading left or right of the input row is not emitted at all, so no loop
tests a bound.

Cache blocking (``choose_blocking``): the weights of a chunk of input
channels stay in L1 while all the pixels of a unit (about 64: one row or a
few short ones) use them; partial sums wait in a tile on the stack between
chunks (the output may share its buffer with the residual input, so it
cannot hold them).  Units whose weights all fit in L2 run row group by row
group (the input is read once), the others oc group by oc group (the
weights are read once).

A 1x1 convolution with stride 1 and no padding reads its input pixel by
pixel: the H*W pixels are one long row (no row tails), split into column
chunks so the work still divides into enough tasks.

Depthwise: the same row structure, one vector of channels per pixel and tap
(``acc[j][v] += x[n, cb, ih, iw_j, v*V:] * w[cb, kh, kw, v*V:]``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Optional

import llvmlite.ir as ir

from ir.dtypes import DType
from ir.graph import Node
from ir.anchor import anchor_of


from ..codegen import F32, I32, KernelBuilder, const_int, const_vector, for_range, load_vector, splat, \
    task_range, fma
from ..evaluator import delinearize, shape_of
from . import Kernel, generator, label_of, require_schedule
from .conv import Accumulators, Epilogue, RowPlan, emit_chunk, emit_row, epilogue_support, \
    interior_columns, n_tasks_for, operand_pointer, plan_row, schedule_param, tap_range

CHUNK_PIXELS = 128  # columns per task unit of a 1x1 convolution's single long row
SCRATCH_LIMIT = 128 * 1024  # bytes of stack for a unit's partial sums


@dataclass
class Geometry:
    """Static sizes of one ConvNCHWc (after flattening a pointwise conv to one row)."""

    n: int
    icb: int
    h: int
    w: int
    ib: int
    ocb: int
    oh: int
    ow: int
    ob: int
    kh: int
    kw: int
    sh: int
    sw: int
    dh: int
    dw: int
    pt: int
    pl: int
    flat: bool = False   # a 1x1/stride 1/pad 0 conv seen as one row of OH*OW pixels
    real_ow: int = 0     # OW of the real output (to rebuild (oh, ow) from a flat pixel)


def geometry(anchor: Node, flatten: bool = True) -> Geometry:
    n, icb, h, w, ib = shape_of(anchor.inputs[0])
    _, ocb, oh, ow, ob = shape_of(anchor.outputs[0])
    kh, kw = anchor.attr("kernel_shape")
    sh, sw = anchor.attr("strides") or (1, 1)
    dh, dw = anchor.attr("dilations") or (1, 1)
    pads = list(anchor.attr("pads") or (0, 0, 0, 0))
    g = Geometry(n, icb, h, w, ib, ocb, oh, ow, ob, kh, kw, sh, sw, dh, dw, pads[0], pads[1], real_ow=ow)
    if flatten and kh == kw == 1 and sh == sw == 1 and not any(pads):
        g.flat = True
        g.h, g.w, g.oh, g.ow = 1, h * w, 1, oh * ow
    return g


def support(node: Node, depthwise: bool) -> Optional[str]:
    anchor = anchor_of(node)
    if anchor.domain != "nnc" or anchor.op != "ConvNCHWc":
        return f"{anchor.qualified_op} is not nnc.ConvNCHWc"
    for v in list(anchor.inputs) + list(node.outputs):
        if v is None:
            continue
        if not getattr(v.type, "is_static", False):
            return "the cpu target needs static shapes here"
    if any(v is not None and v.type.dtype != DType.F32 for v in list(anchor.inputs) + list(anchor.outputs)):
        return "nnc.ConvNCHWc on the cpu target is f32 only"
    group = anchor.attr("group") or 1
    if depthwise != (group != 1):
        return f"group {group} is not handled by this kernel"
    return epilogue_support(node)


def vector_width(kb: KernelBuilder, ob: int) -> int:
    """Lanes per vector: the target's, or fewer when the channel block is narrower."""
    return math.gcd(ob, kb.lanes)


# ------------------------------------------------------------------ group 1
def choose_tile(kb: KernelBuilder, node: Node, g: Geometry, schedule: Any, vpb: int) -> tuple[int, int]:
    """(ow_block, oc_unroll): the schedule's, made legal for this geometry."""
    schedule = require_schedule(node, schedule, "conv2d_nchwc")
    oc_unroll = max(1, schedule_param(schedule, "oc_unroll", 1))
    while g.ocb % oc_unroll:
        oc_unroll -= 1
    ow_block = max(1, schedule_param(schedule, "ow_block", 4))
    budget = kb.target.registers - oc_unroll * vpb - 1  # accumulators the register file holds
    ow_block = max(1, min(ow_block, budget // (oc_unroll * vpb), g.ow))
    if g.flat:
        # One long row has no tail to avoid: fill the register file instead.
        ow_block = max(ow_block, min(g.ow, budget // (oc_unroll * vpb)))
    return ow_block, oc_unroll


@dataclass
class Blocking:
    """Cache blocking of one group-1 conv (see ``choose_blocking``)."""

    icc: int        # input channel blocks per chunk (divides ICB)
    rows: int       # output rows per work unit (its pixels share each chunk of weights)
    rows_outer: bool  # units ordered (n, row group, oc group) instead of (n, oc group, row group)

    def chunks(self, g: Geometry) -> int:
        return g.icb // self.icc


def choose_blocking(kb: KernelBuilder, g: Geometry, U: int, tile: int) -> Blocking:
    """Keep a chunk of weights in L1 while a whole group of output pixels uses it.

    Without chunking a register tile streams all the weights of its output
    channels (``U * ICB * KH * KW * ib * ob`` floats: over 1 MB for ResNet's
    late layers) from L2 or beyond for a handful of pixels.  With chunks of
    ``icc`` input channel blocks whose weights fill about a third of L1, the
    tile's partial sums go to a scratch tile on the stack between chunks, and
    each chunk of weights is reused by every pixel of the unit (about 64
    pixels: one row, or several short ones).  Units read the input once per
    oc group; when all the weights fit in L2 the row groups go outermost so
    the input is read once and the weights stay in L2.
    """
    per_icb = U * g.kh * g.kw * g.ib * g.ob * 4
    limit = max(1, (kb.target.l1d_bytes // 3) // per_icb)
    icc = max(d for d in range(1, min(g.icb, limit) + 1) if g.icb % d == 0)
    rows = 1 if g.flat else max(1, min(g.oh, -(-64 // g.ow)))
    weights = g.ocb * g.icb * g.kh * g.kw * g.ib * g.ob * 4
    pixels = CHUNK_PIXELS + tile if g.flat else rows * g.ow  # (see ConvNCHWc.__init__)
    if pixels * U * g.ob * 4 > SCRATCH_LIMIT:  # very long rows: no partial-sum tile on the stack
        icc = g.icb
    return Blocking(icc, rows, rows_outer=weights <= kb.target.l2_bytes // 4)


class ConvNCHWc:
    """Emits one group-1 ConvNCHWc kernel (see the module docstring)."""

    def __init__(self, kb: KernelBuilder, node: Node, schedule: Any) -> None:
        self.kb, self.node = kb, node
        anchor = anchor_of(node)
        self.g = g = geometry(anchor)
        self.V = vector_width(kb, g.ob)
        self.vpb = g.ob // self.V
        self.ow_block, self.U = choose_tile(kb, node, g, schedule, self.vpb)
        self.ic_unroll = max(1, schedule_param(schedule, "ic_unroll", g.ib))
        self.blk = choose_blocking(kb, g, self.U, self.ow_block)
        self.tf = tf = kb.task_function(f"conv_{node.outputs[0].name}")
        self.b = tf.builder
        self.x = operand_pointer(tf, node, anchor.inputs[0])
        self.w = operand_pointer(tf, node, anchor.inputs[1])
        self.bias = operand_pointer(tf, node, anchor.inputs[2]) if anchor.input(2) is not None else None
        self.epi = Epilogue(kb, tf, node, self.V)
        self.vty = ir.VectorType(F32, self.V)
        self.acc = Accumulators(tf, self.vty, self.ow_block * self.U * self.vpb)
        lo, hi = interior_columns(g.ow, g.w, g.kw, g.sw, g.dw, g.pl)
        self.plan: RowPlan = plan_row(g.ow, self.ow_block, lo, hi)
        self.chunked = self.blk.chunks(g) > 1
        self.scratch = None
        if self.chunked:  # partial sums of the unit between input channel chunks
            # a flat unit: its tiles and, for the last one, the tail block
            cols = (self.flat_chunk_tiles() + 1) * self.plan.tile if g.flat else self.blk.rows * g.ow
            with self.b.goto_block(tf._entry):
                self.scratch = self.b.alloca(self.vty, size=const_int(cols * self.U * self.vpb, I32),
                                             name="partial")
                self.scratch.align = 64

    def emit(self) -> Kernel:
        g, b, blk = self.g, self.b, self.blk
        ocg = g.ocb // self.U
        chunk_tiles = n_chunks = 1
        if g.flat:
            chunk_tiles = self.flat_chunk_tiles()
            n_chunks = max(1, -(-self.plan.n_tiles // chunk_tiles))
        groups = -(-g.oh // blk.rows)
        units = g.n * ocg * groups * n_chunks
        macs = g.n * g.ocb * g.ob * g.oh * g.ow * g.icb * g.ib * g.kh * g.kw
        n_tasks = n_tasks_for(units, macs)
        start, stop = task_range(b, self.tf.task, n_tasks, units)
        with for_range(b, start, stop, name="unit") as unit:
            if blk.rows_outer:
                self.n, group, chunk, self.ocg = delinearize(b, unit, (g.n, groups, n_chunks, ocg))
            else:
                self.n, self.ocg, group, chunk = delinearize(b, unit, (g.n, ocg, groups, n_chunks))
            self.ocbs = [b.add(b.mul(self.ocg, const_int(self.U)), const_int(u)) for u in range(self.U)]
            if self.chunked:
                with for_range(b, 0, blk.chunks(g), name="chunk") as c:
                    self.first = b.icmp_signed("==", c, const_int(0))
                    self.last = b.icmp_signed("==", c, const_int(blk.chunks(g) - 1))
                    self.icb0 = b.mul(c, const_int(blk.icc))
                    self._rows(group, chunk, chunk_tiles, n_chunks)
            else:
                self.icb0 = const_int(0)
                self._rows(group, chunk, chunk_tiles, n_chunks)
        b.ret_void()
        return Kernel(self.tf.fn.name, n_tasks, self.tf.buffers, label_of(self.node))

    def flat_chunk_tiles(self) -> int:
        """Interior tiles per unit of a flat (pointwise) conv's single row."""
        return max(1, CHUNK_PIXELS // self.plan.tile)

    def _rows(self, group: ir.Value, chunk: ir.Value, chunk_tiles: int, n_chunks: int) -> None:
        """The rows of one unit (or its chunk of a flat row), for the current input chunk."""
        g, b, rows = self.g, self.b, self.blk.rows
        first_row = b.mul(group, const_int(rows))
        if g.flat:
            self.oh, self.row_in_unit = const_int(0), const_int(0)
            self.kh_lo, self.kh_hi = 0, 1
            self.col_base = b.mul(chunk, const_int(chunk_tiles * self.plan.tile))
            emit_chunk(b, self.plan, chunk, chunk_tiles, n_chunks, self.block)
            return
        stop = const_int(rows)
        if g.oh % rows:
            left = b.sub(const_int(g.oh), first_row)
            stop = b.select(b.icmp_signed("<", left, stop), left, stop)
        with for_range(b, 0, stop, name="row") as r:
            self.row_in_unit = r
            self.oh = b.add(first_row, r)
            self.col_base = const_int(0)
            self.kh_lo, self.kh_hi = tap_range(b, self.oh, g.h, g.oh, g.kh, g.sh, g.dh, g.pt)
            emit_row(b, self.plan, self.block)

    # ---------------------------------------------------------- one block
    def valid(self, start: Optional[int], j: int, kw: int) -> bool:
        """Does column ``start + j``'s tap ``kw`` read inside the row (always, in the interior)?"""
        if start is None:
            return True
        g = self.g
        iw = (start + j) * g.sw - g.pl + kw * g.dw
        return 0 <= iw < g.w

    def _scratch_index(self, ow0: ir.Value, j: int, u: int, v: int) -> ir.Value:
        """Element of the partial-sum tile for column ``ow0 + j``, oc block ``u``, vector ``v``."""
        b = self.b
        col = b.add(b.sub(ow0, self.col_base), const_int(j))
        pix = b.add(b.mul(self.row_in_unit, const_int(self.g.ow)), col)
        return b.add(b.mul(pix, const_int(self.U * self.vpb)), const_int(u * self.vpb + v))

    def block(self, ow0: ir.Value, start: Optional[int], size: int) -> None:
        g, b, V, U, vpb = self.g, self.b, self.V, self.U, self.vpb
        ocbs = self.ocbs
        init = []
        for j in range(size):
            for u in range(U):
                for v in range(vpb):
                    if self.bias is None:
                        val = const_vector(F32, V, 0.0)
                    else:
                        val = load_vector(b, self.bias, b.add(b.mul(ocbs[u], const_int(g.ob)), const_int(v * V)), V)
                    if self.chunked:
                        part = b.load(b.gep(self.scratch, [self._scratch_index(ow0, j, u, v)]), align=64)
                        val = b.select(self.first, val, part)
                    init.append(val)
        slots = self.acc.slots[:len(init)]
        for s, val in zip(slots, init):
            b.store(val, s)
        x_col = b.mul(b.sub(b.mul(ow0, const_int(g.sw)), const_int(g.pl)), const_int(g.ib))
        icb_stop = b.add(self.icb0, const_int(self.blk.icc)) if self.chunked else const_int(g.icb)
        with for_range(b, self.icb0, icb_stop, name="icb") as icb:
            x_plane = b.mul(b.add(b.mul(self.n, const_int(g.icb)), icb), const_int(g.h))
            w_ic = [b.add(b.mul(o, const_int(g.icb)), icb) for o in ocbs]
            with for_range(b, self.kh_lo, self.kh_hi, name="kh") as kh:
                ih = b.add(b.sub(b.mul(self.oh, const_int(g.sh)), const_int(g.pt)), b.mul(kh, const_int(g.dh)))
                x_row = b.add(b.mul(b.add(x_plane, ih), const_int(g.w * g.ib)), x_col)
                w_row = [b.mul(b.add(b.mul(wi, const_int(g.kh)), kh), const_int(g.kw * g.ib * g.ob))
                         for wi in w_ic]
                accs = [b.load(s) for s in slots]
                self._taps(accs, x_row, w_row, start, size)
                for s, val in zip(slots, accs):
                    b.store(val, s)
        accs = [b.load(s) for s in slots]
        if not self.chunked:
            self._store(accs, ow0, size)
            return
        with b.if_else(self.last) as (last, partial):
            with last:
                self._store(accs, ow0, size)
            with partial:
                for j in range(size):
                    for u in range(U):
                        for v in range(vpb):
                            ptr = b.gep(self.scratch, [self._scratch_index(ow0, j, u, v)])
                            b.store(accs[(j * U + u) * vpb + v], ptr, align=64)

    def _taps(self, accs: list, x_row: ir.Value, w_row: list, start: Optional[int], size: int) -> None:
        """The FMAs of one kernel row: every kw and input lane of one input channel block.

        The input lanes run in a loop of ``ib / ic_unroll`` steps, ``ic_unroll``
        lanes unrolled per step (the whole block when it does not divide).
        """
        g, b = self.g, self.b
        step = self.ic_unroll if g.ib % self.ic_unroll == 0 else g.ib
        if step == g.ib:
            self._lanes(accs, x_row, w_row, const_int(0), step, start, size)
            return
        slots = self.acc.slots[:len(accs)]
        for s, val in zip(slots, accs):
            b.store(val, s)
        with for_range(b, 0, g.ib, step, name="icl") as icl:
            inner = [b.load(s) for s in slots]
            self._lanes(inner, x_row, w_row, icl, step, start, size)
            for s, val in zip(slots, inner):
                b.store(val, s)
        accs[:] = [b.load(s) for s in slots]

    def _lanes(self, accs: list, x_row: ir.Value, w_row: list, icl0: ir.Value, lanes: int,
               start: Optional[int], size: int) -> None:
        g, b, V, U, vpb = self.g, self.b, self.V, self.U, self.vpb
        x_row = b.add(x_row, icl0)
        w_row = [b.add(w, b.mul(icl0, const_int(g.ob))) for w in w_row]
        for icl in range(lanes):
            for kw in range(g.kw):
                cols = [j for j in range(size) if self.valid(start, j, kw)]
                if not cols:
                    continue
                wv = [[load_vector(b, self.w, b.add(w_row[u], const_int((kw * g.ib + icl) * g.ob + v * V)), V)
                       for v in range(vpb)] for u in range(U)]
                for j in cols:
                    off = (j * g.sw + kw * g.dw) * g.ib + icl
                    xs = splat(b, b.load(b.gep(self.x, [b.add(x_row, const_int(off))])), V)
                    for u in range(U):
                        for v in range(vpb):
                            k = (j * U + u) * vpb + v
                            accs[k] = fma(self.kb, b, xs, wv[u][v], accs[k])

    def _store(self, accs: list, ow0: ir.Value, size: int) -> None:
        g, b, V, U, vpb = self.g, self.b, self.V, self.U, self.vpb
        for j in range(size):
            col = b.add(ow0, const_int(j))
            if g.flat:
                oh, ow = b.sdiv(col, const_int(g.real_ow)), b.srem(col, const_int(g.real_ow))
            else:
                oh, ow = self.oh, col
            for u in range(U):
                pix = b.add(b.mul(b.add(b.mul(self.n, const_int(g.ocb)), self.ocbs[u]), const_int(g.oh * g.ow)),
                            b.add(b.mul(self.oh, const_int(g.ow)), col))
                for v in range(vpb):
                    offset = b.add(b.mul(pix, const_int(g.ob)), const_int(v * V))
                    idx = [self.n, self.ocbs[u], oh, ow, const_int(v * V)]
                    self.epi.store(accs[(j * U + u) * vpb + v], offset, idx)


@generator("conv2d_nchwc", supports=lambda node: support(node, depthwise=False), ops=[("nnc", "ConvNCHWc")])
def emit_conv(kb: KernelBuilder, node: Node, schedule: Any) -> Kernel:
    return ConvNCHWc(kb, node, schedule).emit()


# ---------------------------------------------------------------- depthwise
class DepthwiseNCHWc:
    """Emits one depthwise ConvNCHWc kernel: channels in vector lanes, a tile of ow_block pixels."""

    def __init__(self, kb: KernelBuilder, node: Node, schedule: Any) -> None:
        self.kb, self.node = kb, node
        anchor = anchor_of(node)
        self.g = g = geometry(anchor, flatten=False)
        self.V = vector_width(kb, g.ob)
        self.vpb = g.ob // self.V
        budget = max(1, (kb.target.registers - (g.kw + 2) * self.vpb) // self.vpb)
        wanted = schedule_param(require_schedule(node, schedule, "dwconv2d_nchwc"), "ow_block", 8)
        self.ow_block = max(1, min(wanted, budget, g.ow))
        self.tf = tf = kb.task_function(f"dwconv_{node.outputs[0].name}")
        self.b = tf.builder
        self.x = operand_pointer(tf, node, anchor.inputs[0])
        self.w = operand_pointer(tf, node, anchor.inputs[1])
        self.bias = operand_pointer(tf, node, anchor.inputs[2]) if anchor.input(2) is not None else None
        self.epi = Epilogue(kb, tf, node, self.V)
        self.acc = Accumulators(tf, ir.VectorType(F32, self.V), self.ow_block * self.vpb)
        lo, hi = interior_columns(g.ow, g.w, g.kw, g.sw, g.dw, g.pl)
        self.plan = plan_row(g.ow, self.ow_block, lo, hi)

    def emit(self) -> Kernel:
        g, b = self.g, self.b
        units = g.n * g.ocb * g.oh
        macs = g.n * g.ocb * g.ob * g.oh * g.ow * g.kh * g.kw
        n_tasks = n_tasks_for(units, macs * 4)  # memory-bound: count its loads as work too
        start, stop = task_range(b, self.tf.task, n_tasks, units)
        with for_range(b, start, stop, name="unit") as unit:
            self.n, self.cb, self.oh = delinearize(b, unit, (g.n, g.ocb, g.oh))
            self.kh_lo, self.kh_hi = tap_range(b, self.oh, g.h, g.oh, g.kh, g.sh, g.dh, g.pt)
            emit_row(b, self.plan, self.block)
        b.ret_void()
        return Kernel(self.tf.fn.name, n_tasks, self.tf.buffers, label_of(self.node))

    def block(self, ow0: ir.Value, start: Optional[int], size: int) -> None:
        g, b, V, vpb = self.g, self.b, self.V, self.vpb
        init = []
        for _j in range(size):
            for v in range(vpb):
                if self.bias is None:
                    init.append(const_vector(F32, V, 0.0))
                else:
                    init.append(load_vector(b, self.bias, b.add(b.mul(self.cb, const_int(g.ob)),
                                                                const_int(v * V)), V))
        slots = self.acc.slots[:len(init)]
        for s, val in zip(slots, init):
            b.store(val, s)
        x_col = b.mul(b.sub(b.mul(ow0, const_int(g.sw)), const_int(g.pl)), const_int(g.ob))
        x_plane = b.mul(b.add(b.mul(self.n, const_int(g.ocb)), self.cb), const_int(g.h))
        with for_range(b, self.kh_lo, self.kh_hi, name="kh") as kh:
            ih = b.add(b.sub(b.mul(self.oh, const_int(g.sh)), const_int(g.pt)), b.mul(kh, const_int(g.dh)))
            x_row = b.add(b.mul(b.add(x_plane, ih), const_int(g.w * g.ob)), x_col)
            w_row = b.mul(b.add(b.mul(self.cb, const_int(g.kh)), kh), const_int(g.kw * g.ob))
            accs = [b.load(s) for s in slots]
            for kw in range(g.kw):
                for v in range(vpb):
                    wv = load_vector(b, self.w, b.add(w_row, const_int(kw * g.ob + v * V)), V)
                    for j in range(size):
                        if start is not None and not 0 <= (start + j) * g.sw - g.pl + kw * g.dw < g.w:
                            continue
                        off = (j * g.sw + kw * g.dw) * g.ob + v * V
                        xv = load_vector(b, self.x, b.add(x_row, const_int(off)), V)
                        k = j * vpb + v
                        accs[k] = fma(self.kb, b, xv, wv, accs[k])
            for s, val in zip(slots, accs):
                b.store(val, s)
        accs = [b.load(s) for s in slots]
        for j in range(size):
            col = b.add(ow0, const_int(j))
            pix = b.add(b.mul(b.add(b.mul(self.n, const_int(g.ocb)), self.cb), const_int(g.oh * g.ow)),
                        b.add(b.mul(self.oh, const_int(g.ow)), col))
            for v in range(vpb):
                offset = b.add(b.mul(pix, const_int(g.ob)), const_int(v * V))
                self.epi.store(accs[j * vpb + v], offset, [self.n, self.cb, self.oh, col, const_int(v * V)])


@generator("dwconv2d_nchwc", supports=lambda node: support(node, depthwise=True), ops=[("nnc", "ConvNCHWc")])
def emit_dwconv(kb: KernelBuilder, node: Node, schedule: Any) -> Kernel:
    return DepthwiseNCHWc(kb, node, schedule).emit()
