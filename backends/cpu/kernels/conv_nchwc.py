"""Direct convolution on channel-blocked data: ``nnc.ConvNCHWc`` (kinds conv2d_nchwc, dwconv2d_nchwc).

Data (``ib``/``ob`` = input/output channel block, ``V`` = vector lanes)::

    x  [N, ICB, H, W, ib]          y [N, OCB, OH, OW, ob]
    w  [OCB, ICB, KH, KW, ib, ob]  (packed at compile time; depthwise: [CB, 1, KH, KW, 1, ob])
    b  [OCB * ob]                  (plain; already in blocked order)

Group 1 (TVM's / oneDNN's direct NCHWc convolution)::

    parallel for (n, oc_group, oh[, column chunk]):      # units, split into tasks
      kh_lo, kh_hi = valid kernel rows of oh               # top/bottom padding
      for each column block (static border blocks, interior tiles):
        acc[ow_block][oc_unroll][ob/V] = bias             # registers
        for icb in ICB:                                    # runtime loop
          for kh in [kh_lo, kh_hi):                        # runtime loop
            for kw, for icl in ib:                         # unrolled
              wv[u][v] = w[ocb_u, icb, kh, kw, icl, v*V:]  # oc_unroll*ob/V vector loads
              for j in block: xs = broadcast(x[n, icb, ih, iw_j, icl])
                acc[j][u][v] += xs * wv[u][v]              # FMA
        epilogue(acc) -> one store per vector

Each broadcast feeds ``oc_unroll * ob/V`` FMAs and each weight vector
``ow_block`` FMAs; ``ow_block`` and ``oc_unroll`` come from the schedule
(the analytical model of ``passes.scheduling``) so the tile fills the
register file.  Border blocks sit at static columns: a tap reading left or
right of the input row is not emitted at all, so no loop tests a bound.

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
from passes.scheduling import anchor_of, model_schedule

from ..codegen import F32, KernelBuilder, const_int, const_vector, for_range, load_vector, splat, \
    task_range, fma
from ..evaluator import delinearize, shape_of
from . import Kernel, generator, label_of
from .conv import Accumulators, Epilogue, RowPlan, emit_chunk, emit_row, epilogue_support, \
    interior_columns, n_tasks_for, operand_pointer, plan_row, schedule_param, tap_range

CHUNK_PIXELS = 256  # columns per task unit of a 1x1 convolution's single long row


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
    if schedule is None:
        schedule = model_schedule(node, kb.target)
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


class ConvNCHWc:
    """Emits one group-1 ConvNCHWc kernel (see the module docstring)."""

    def __init__(self, kb: KernelBuilder, node: Node, schedule: Any) -> None:
        self.kb, self.node = kb, node
        anchor = anchor_of(node)
        self.g = g = geometry(anchor)
        self.V = vector_width(kb, g.ob)
        self.vpb = g.ob // self.V
        self.ow_block, self.U = choose_tile(kb, node, g, schedule, self.vpb)
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

    def emit(self) -> Kernel:
        g, b = self.g, self.b
        ocg = g.ocb // self.U
        chunk_tiles = n_chunks = 1
        if g.flat:
            chunk_tiles = max(1, CHUNK_PIXELS // self.plan.tile)
            n_chunks = max(1, -(-self.plan.n_tiles // chunk_tiles))
        units = g.n * ocg * g.oh * n_chunks
        macs = g.n * g.ocb * g.ob * g.oh * g.ow * g.icb * g.ib * g.kh * g.kw
        n_tasks = n_tasks_for(units, macs)
        start, stop = task_range(b, self.tf.task, n_tasks, units)
        with for_range(b, start, stop, name="unit") as unit:
            self.n, self.ocg, self.oh, chunk = delinearize(b, unit, (g.n, ocg, g.oh, n_chunks))
            self.kh_lo, self.kh_hi = tap_range(b, self.oh, g.h, g.oh, g.kh, g.sh, g.dh, g.pt)
            if g.flat:
                emit_chunk(b, self.plan, chunk, chunk_tiles, n_chunks, self.block)
            else:
                emit_row(b, self.plan, self.block)
        b.ret_void()
        return Kernel(self.tf.fn.name, n_tasks, self.tf.buffers, label_of(self.node))

    # ---------------------------------------------------------- one block
    def valid(self, start: Optional[int], j: int, kw: int) -> bool:
        """Does column ``start + j``'s tap ``kw`` read inside the row (always, in the interior)?"""
        if start is None:
            return True
        g = self.g
        iw = (start + j) * g.sw - g.pl + kw * g.dw
        return 0 <= iw < g.w

    def block(self, ow0: ir.Value, start: Optional[int], size: int) -> None:
        g, b, V, U, vpb = self.g, self.b, self.V, self.U, self.vpb
        ocbs = [b.add(b.mul(self.ocg, const_int(U)), const_int(u)) for u in range(U)]
        init = []
        for _j in range(size):
            for u in range(U):
                for v in range(vpb):
                    if self.bias is None:
                        init.append(const_vector(F32, V, 0.0))
                    else:
                        init.append(load_vector(b, self.bias, b.add(b.mul(ocbs[u], const_int(g.ob)),
                                                                    const_int(v * V)), V))
        slots = self.acc.slots[:len(init)]
        for s, val in zip(slots, init):
            b.store(val, s)
        x_col = b.mul(b.sub(b.mul(ow0, const_int(g.sw)), const_int(g.pl)), const_int(g.ib))
        with for_range(b, 0, g.icb, name="icb") as icb:
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
        self._store(accs, ocbs, ow0, size)

    def _taps(self, accs: list, x_row: ir.Value, w_row: list, start: Optional[int], size: int) -> None:
        """The FMAs of one kernel row: every kw and input lane of one input channel block."""
        g, b, V, U, vpb = self.g, self.b, self.V, self.U, self.vpb
        for icl in range(g.ib):
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

    def _store(self, accs: list, ocbs: list, ow0: ir.Value, size: int) -> None:
        g, b, V, U, vpb = self.g, self.b, self.V, self.U, self.vpb
        for j in range(size):
            col = b.add(ow0, const_int(j))
            if g.flat:
                oh, ow = b.sdiv(col, const_int(g.real_ow)), b.srem(col, const_int(g.real_ow))
            else:
                oh, ow = self.oh, col
            for u in range(U):
                pix = b.add(b.mul(b.add(b.mul(self.n, const_int(g.ocb)), ocbs[u]), const_int(g.oh * g.ow)),
                            b.add(b.mul(self.oh, const_int(g.ow)), col))
                for v in range(vpb):
                    offset = b.add(b.mul(pix, const_int(g.ob)), const_int(v * V))
                    idx = [self.n, ocbs[u], oh, ow, const_int(v * V)]
                    self.epi.store(accs[(j * U + u) * vpb + v], offset, idx)


@generator("conv2d_nchwc", supports=lambda node: support(node, depthwise=False))
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
        if schedule is None:
            schedule = model_schedule(node, kb.target)
        budget = max(1, (kb.target.registers - 2 * self.vpb) // self.vpb)
        self.ow_block = max(1, min(schedule_param(schedule, "ow_block", 8), budget, g.ow))
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


@generator("dwconv2d_nchwc", supports=lambda node: support(node, depthwise=True))
def emit_dwconv(kb: KernelBuilder, node: Node, schedule: Any) -> Kernel:
    return DepthwiseNCHWc(kb, node, schedule).emit()
