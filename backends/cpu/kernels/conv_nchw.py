"""Direct convolution in the plain NCHW layout (kind conv2d): the convs the layout pass kept.

These are grouped convolutions (ShuffleNet), output channel counts that are
not a multiple of the block (SqueezeNet's 1000-channel classifier, Inception's
24-channel convs), 1-D and 3-D convolutions: any ONNX ``Conv`` on f32 with
static shapes, any groups, pads, auto_pad, strides and dilations.

Vectorized along the output's last spatial axis (``V`` consecutive output
columns per vector), with a register tile of ``oc_unroll`` output channels x
``ow_vecs`` vectors::

    parallel for (n, oc tile, outer output row [, column chunk]):
      tap ranges of the outer spatial axes (padding)      # per row
      for each column block (static border blocks, interior tiles):
        acc[oc_unroll][ow_vecs] = bias
        for ic in the group's input channels:              # runtime loop
          for the outer taps in range:                     # runtime loops
            for kw:                                        # unrolled
              xv[q] = x[n, ic, row', cols(q, kw)]          # ow_vecs vector loads
              ws[u] = broadcast(w[oc_u, ic, taps, kw])     # oc_unroll broadcasts
              acc[u][q] += ws[u] * xv[q]
        epilogue(acc)

The input columns of a vector are contiguous for stride 1 (one load), every
other column for stride 2 (two loads and a shuffle), otherwise gathered
lane by lane.  Border blocks sit at static columns, so which lanes of a tap
fall in the padding is known at compile time: a masked load with a constant
mask, no runtime test.  An oc tile never straddles two groups (``oc_unroll``
divides the channels per group).  A pointwise conv (all kernel dims 1,
stride 1, no padding) reads its pixels as one flat row.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Optional

import llvmlite.ir as ir

from ir.dtypes import DType
from ir.graph import Node
from ir.ops._window import resolve_pads
from ir.anchor import anchor_of

from ..codegen import F32, I1, I32, KernelBuilder, const_int, const_vector, for_range, load_vector, \
    masked_load, splat, task_range, fma
from ..evaluator import delinearize, shape_of
from . import Kernel, body_and_keys, generator, label_of, nodes_of
from .conv import Accumulators, Epilogue, emit_chunk, emit_row, epilogue_support, interior_columns, \
    n_tasks_for, operand_pointer, plan_row, tap_range

CHUNK_PIXELS = 512   # columns per task unit of a flattened pointwise conv
ROW_GROUP_PIXELS = 256  # output pixels (whole rows) per task unit otherwise
MAX_OC_UNROLL = 8
MAX_OW_VECS = 4


def support(node: Node) -> Optional[str]:
    anchor = anchor_of(node)
    if anchor.domain != "" or anchor.op != "Conv":
        return f"{anchor.qualified_op} is not an ONNX Conv"
    x, w = anchor.inputs[0], anchor.input(1)
    for v in list(anchor.inputs) + list(node.outputs):
        if v is not None and not getattr(v.type, "is_static", False):
            return "the cpu target needs static shapes here"
    for v in (x, w, anchor.input(2), anchor.outputs[0]):
        if v is not None and v.type.dtype != DType.F32:
            return f"Conv on the cpu target is f32 only (found {v.type.dtype.short})"
    if x.type.rank is None or x.type.rank < 3:
        return "Conv needs at least one spatial axis"
    return epilogue_support(node)


class ConvNCHW:
    """Emits one plain-layout convolution kernel (see the module docstring)."""

    def __init__(self, kb: KernelBuilder, node: Node, schedule: Any) -> None:
        self.kb, self.node = kb, node
        anchor = anchor_of(node)
        xs, ws, ys = shape_of(anchor.inputs[0]), shape_of(anchor.inputs[1]), shape_of(anchor.outputs[0])
        self.nb, self.c, self.spatial = xs[0], xs[1], list(xs[2:])
        self.m, self.cg, self.kernel = ws[0], ws[1], list(ws[2:])
        self.out_spatial = list(ys[2:])
        r = len(self.spatial)
        self.strides = list(anchor.attr("strides") or [1] * r)
        self.dilations = list(anchor.attr("dilations") or [1] * r)
        pads = resolve_pads(self.spatial, self.kernel, self.strides, self.dilations, anchor.attr("pads"),
                            anchor.attr("auto_pad") or "NOTSET")
        self.pads = pads[:r]
        self.group = anchor.attr("group") or 1
        self.mg = self.m // self.group
        self.V = kb.lanes
        self.flat = all(k == 1 for k in self.kernel) and all(s == 1 for s in self.strides) and not any(pads)
        self.real_out = list(self.out_spatial)
        if self.flat:  # one row of all pixels
            p = math.prod(self.spatial)
            self.spatial, self.out_spatial, self.kernel = [p], [p], [1]
            self.strides, self.dilations, self.pads = [1], [1], [0]
        self.ow = self.out_spatial[-1]
        self.q_max = max(1, min(MAX_OW_VECS, -(-self.ow // self.V)))
        budget = kb.target.registers - self.q_max - 2
        self.U = max(d for d in range(1, min(MAX_OC_UNROLL, max(1, budget // self.q_max)) + 1)
                     if self.mg % d == 0)
        self.tf = tf = kb.task_function(f"conv_{node.outputs[0].name}")
        self.b = tf.builder
        self.x = operand_pointer(tf, node, anchor.inputs[0])
        self.w = operand_pointer(tf, node, anchor.inputs[1])
        self.bias = operand_pointer(tf, node, anchor.inputs[2]) if anchor.input(2) is not None else None
        self.epi = Epilogue(kb, tf, node, self.V)
        self.flat_vector = not self.flat or self._flat_epilogue_ok(node)
        self.vty = ir.VectorType(F32, self.V)
        self.acc = Accumulators(tf, self.vty, self.U * self.q_max)
        s, d, k, pl = self.strides[-1], self.dilations[-1], self.kernel[-1], self.pads[-1]
        extra = s - 1 if s == 2 else 0  # a stride-2 vector loads one column past its last lane
        lo, hi = interior_columns(self.ow, self.spatial[-1], k, s, d, pl, extra)
        self.plan = plan_row(self.ow, self.q_max * self.V, lo, hi)

    def _flat_epilogue_ok(self, node: Node) -> bool:
        """May the epilogue of a flattened conv read its operands V pixels at a time?

        Only when every operand is either full size or a single value over
        the spatial axes (a per-channel constant): then consecutive pixels of
        the flat row are consecutive in memory for each of them.
        """
        body, _, _ = body_and_keys(node)
        if body is None:
            return True
        inside = {id(n) for n in nodes_of(node)}
        anchor_out = anchor_of(node).outputs[0]
        rank = 2 + len(self.real_out)
        for n in body.nodes:
            if n is anchor_of(node):
                continue
            inputs = n.inputs[:1] if n.op == "BatchNormalization" else n.inputs  # (per-channel parameters)
            for v in inputs:
                if v is None or v is anchor_out or (v.producer is not None and id(v.producer) in inside):
                    continue
                shape = (1,) * (rank - len(shape_of(v))) + tuple(shape_of(v))
                sp = list(shape[2:])
                if sp != self.real_out and any(d != 1 for d in sp):
                    return False
        return True

    # ---------------------------------------------------------------- loops
    def emit(self) -> Kernel:
        b = self.b
        outer = self.out_spatial[:-1]
        rows = math.prod(outer)
        chunk_tiles = n_chunks = 1
        if self.flat:
            chunk_tiles = max(1, CHUNK_PIXELS // self.plan.tile)
            n_chunks = max(1, -(-self.plan.n_tiles // chunk_tiles))
        oc_tiles = self.m // self.U
        per_unit = max(1, min(rows, -(-ROW_GROUP_PIXELS // self.ow)))  # rows per unit: amortize its setup
        groups = -(-rows // per_unit)
        units = self.nb * oc_tiles * groups * n_chunks
        macs = self.nb * self.m * math.prod(self.out_spatial) * self.cg * math.prod(self.kernel)
        n_tasks = n_tasks_for(units, macs)
        start, stop = task_range(b, self.tf.task, n_tasks, units)
        with for_range(b, start, stop, name="unit") as unit:
            self.n, tile, group, chunk = delinearize(b, unit, (self.nb, oc_tiles, groups, n_chunks))
            self.m0 = b.mul(tile, const_int(self.U))
            self.ic0 = b.mul(b.sdiv(self.m0, const_int(self.mg)), const_int(self.cg))
            first = b.mul(group, const_int(per_unit))
            count = const_int(per_unit)
            if rows % per_unit:
                left = b.sub(const_int(rows), first)
                count = b.select(b.icmp_signed("<", left, count), left, count)
            with for_range(b, 0, count, name="row") as r:
                self.row = row = b.add(first, r)
                self.out_outer = delinearize(b, row, outer) if outer else []
                self.tap_ranges = [tap_range(b, o, self.spatial[a], self.out_spatial[a], self.kernel[a],
                                             self.strides[a], self.dilations[a], self.pads[a])
                                   for a, o in enumerate(self.out_outer)]
                if self.flat:
                    emit_chunk(b, self.plan, chunk, chunk_tiles, n_chunks, self.block)
                else:
                    emit_row(b, self.plan, self.block)
        b.ret_void()
        return Kernel(self.tf.fn.name, n_tasks, self.tf.buffers, label_of(self.node))

    def block(self, ow0: ir.Value, start: Optional[int], size: int) -> None:
        b, V, U = self.b, self.V, self.U
        nq = -(-size // V)
        slots = [self.acc.slots[u * self.q_max + q] for u in range(U) for q in range(nq)]
        for u in range(U):
            if self.bias is None:
                init = const_vector(F32, V, 0.0)
            else:
                init = splat(b, b.load(b.gep(self.bias, [b.add(self.m0, const_int(u))])), V)
            for q in range(nq):
                b.store(init, slots[u * nq + q])
        w_taps = math.prod(self.kernel)
        with for_range(b, 0, self.cg, name="ic") as ic:
            x_plane = b.add(b.mul(self.n, const_int(self.c)), b.add(self.ic0, ic))
            w_plane = [b.add(b.mul(b.add(self.m0, const_int(u)), const_int(self.cg)), ic) for u in range(U)]

            def inner(axis: int, x_lin: ir.Value, w_lin: ir.Value) -> None:
                """Nested loops over the outer axes' taps; the last axis's taps are unrolled."""
                if axis == len(self.out_outer):
                    accs = [b.load(s) for s in slots]
                    self._taps(accs, x_lin, w_lin, w_plane, ow0, start, size, nq, w_taps)
                    for s, val in zip(slots, accs):
                        b.store(val, s)
                    return
                lo, hi = self.tap_ranges[axis]
                with for_range(b, lo, hi, name=f"k{axis}") as t:
                    pos = b.add(b.sub(b.mul(self.out_outer[axis], const_int(self.strides[axis])),
                                      const_int(self.pads[axis])), b.mul(t, const_int(self.dilations[axis])))
                    inner(axis + 1, b.add(b.mul(x_lin, const_int(self.spatial[axis])), pos),
                          b.add(b.mul(w_lin, const_int(self.kernel[axis])), t))

            inner(0, x_plane, const_int(0))
        accs = [b.load(s) for s in slots]
        self._store(accs, ow0, size, nq)

    # ---------------------------------------------------------------- taps
    def _taps(self, accs: list, x_lin: ir.Value, w_lin: ir.Value, w_plane: list, ow0: ir.Value,
              start: Optional[int], size: int, nq: int, w_taps: int) -> None:
        """FMAs of one input channel and outer tap: every kw, every vector of the block."""
        b, V, U = self.b, self.V, self.U
        s, d, k, pl, width = self.strides[-1], self.dilations[-1], self.kernel[-1], self.pads[-1], self.spatial[-1]
        x_row = b.mul(x_lin, const_int(width))
        col0 = b.sub(b.mul(ow0, const_int(s)), const_int(pl))  # input column of lane 0, tap 0
        w_row = [b.mul(b.add(b.mul(wp, const_int(w_taps // k)), w_lin), const_int(k)) for wp in w_plane]
        for kw in range(k):
            xv = []
            for q in range(nq):
                lanes = [q * V + lane for lane in range(V)]
                if start is None:
                    valid = [True] * V
                else:
                    valid = [j < size and 0 <= (start + j) * s - pl + kw * d < width for j in lanes]
                base = b.add(x_row, b.add(col0, const_int(q * V * s + kw * d)))
                # A wide stride-2 load also reads the column after the last lane's: it must exist.
                wide = start is None or (start + q * V + V - 1) * s - pl + kw * d + 1 < width
                xv.append(self._load_columns(base, s, valid, wide))
            ws = [splat(b, b.load(b.gep(self.w, [b.add(w_row[u], const_int(kw))])), V) for u in range(U)]
            for u in range(U):
                for q in range(nq):
                    if xv[q] is not None:
                        accs[u * nq + q] = fma(self.kb, b, ws[u], xv[q], accs[u * nq + q])

    def _load_columns(self, base: ir.Value, stride: int, valid: list[bool], wide: bool) -> Optional[ir.Value]:
        """Input columns base + lane*stride for the valid lanes (others 0); None when none is valid.

        ``wide``: the 2*V columns from ``base`` may all be read (stride 2: two loads and a shuffle).
        """
        b, V = self.b, self.V
        if not any(valid):
            return None
        if stride == 1:
            if all(valid):
                return load_vector(b, self.x, base, V)
            mask = ir.Constant(ir.VectorType(I1, V), [int(v) for v in valid])
            return masked_load(self.kb, b, self.x, base, mask, V)
        if stride == 2 and wide and all(valid):
            lo = load_vector(b, self.x, base, V)
            hi = load_vector(b, self.x, b.add(base, const_int(V)), V)
            return b.shuffle_vector(lo, hi, ir.Constant(ir.VectorType(I32, V), list(range(0, 2 * V, 2))))
        vec = const_vector(F32, V, 0.0)
        for lane, ok in enumerate(valid):
            if ok:
                val = b.load(b.gep(self.x, [b.add(base, const_int(lane * stride))]))
                vec = b.insert_element(vec, val, const_int(lane, I32))
        return vec

    # ---------------------------------------------------------------- store
    def _store(self, accs: list, ow0: ir.Value, size: int, nq: int) -> None:
        b, V, U = self.b, self.V, self.U
        pixels = math.prod(self.out_spatial)
        for u in range(U):
            m = b.add(self.m0, const_int(u))
            plane = b.mul(b.add(b.mul(self.n, const_int(self.m)), m), const_int(pixels))
            for q in range(nq):
                col = b.add(ow0, const_int(q * V))
                count = min(V, size - q * V)
                offset = b.add(plane, b.add(b.mul(self.row, const_int(self.ow)), col))
                if self.flat:
                    index = None
                    if self.flat_vector and count == V:
                        index = [self.n, m, *delinearize(b, col, self.real_out)]
                    lane_index = self._flat_lane_index(m, col)
                    self.epi.store(accs[u * nq + q], offset, index, count, lane_index)
                else:
                    self.epi.store(accs[u * nq + q], offset, [self.n, m, *self.out_outer, col], count)

    def _flat_lane_index(self, m: ir.Value, col: ir.Value) -> Callable[[int], list]:
        def index(lane: int) -> list:
            return [self.n, m, *delinearize(self.b, self.b.add(col, const_int(lane)), self.real_out)]
        return index


@generator("conv2d", supports=support, ops=("Conv",))
def emit_conv(kb: KernelBuilder, node: Node, schedule: Any) -> Kernel:
    return ConvNCHW(kb, node, schedule).emit()
