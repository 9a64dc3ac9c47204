"""Convolution kernels of the cpu target: what the three kinds share.

Three kernel kinds, each in its own module (found like every module of this
package, see ``kernels/__init__.py``):

* ``conv2d_nchwc`` and ``dwconv2d_nchwc`` (``conv_nchwc.py``): direct
  convolution on channel-blocked data (``nnc.ConvNCHWc``), TVM/oneDNN style:
  a register tile of output pixels x output-channel vectors, FMAs of one
  broadcast input value with weight vectors;
* ``conv2d`` (``conv_nchw.py``): the plain ONNX ``Conv`` the layout pass left
  in NCHW (grouped convs, channel counts that are not a multiple of the block,
  1-D and 3-D convs), vectorized along the output's last spatial axis.

Shared here:

* ``RowPlan`` / ``plan_row``: an output row split into *border* blocks at
  static column positions (a tap that would read outside the row is known
  at compile time and simply not emitted), a run of *interior* tiles where
  every tap is in bounds (a runtime loop, no checks at all), and the right
  border/tail.  The hot loop never tests a bound.
* ``tap_range``: the valid kernel rows for one output row (the top and
  bottom padding), computed once per row; the kernel-row loop runs over them.
* ``Accumulators``: a register tile that lives across runtime loops.  The
  values go through allocas that LLVM's mem2reg promotes to phis, so they
  stay in registers; between two loop boundaries the tile is plain SSA
  values and every FMA is straight-line IR.
* ``Epilogue``: stores one accumulator vector, first computing the fused
  epilogue (bias/residual Add, per-channel Mul/Add, Relu, Clip...) on it in
  registers with ``Evaluator(provided=...)``.  Lanes run along the output's
  last axis in both layouts (the channel block for NCHWc, the width for
  NCHW), so a partial vector is "the first ``count`` lanes".
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Optional, Union

import llvmlite.ir as ir

from ir.graph import Node, Value
from ir.registry import BROADCAST, ELEMENTWISE
from ir.anchor import anchor_of

from ..codegen import I32, KernelBuilder, TaskFunction, const_int, for_range, lane_mask, masked_store, \
    store_vector
from ..evaluator import Evaluator, injective_support, is_index_map, shape_of, vector_ok
from ..expr import elementwise_support, emit_op, store_convert
from . import body_and_keys, nodes_of

IntOrValue = Union[int, ir.Value]
MIN_TASK_MACS = 1 << 18  # a task smaller than this costs more to schedule than it gains


def n_tasks_for(units: int, macs: int) -> int:
    """Parallel tasks for ``units`` equal work units of ``macs`` multiply-adds in total."""
    return max(1, min(units, macs // MIN_TASK_MACS))


# ------------------------------------------------------------- row planning
@dataclass(frozen=True)
class Block:
    """Output columns [start, start + size) computed by one register tile at a static position."""

    start: int
    size: int


@dataclass
class RowPlan:
    """How one output row of ``width`` columns is covered by register tiles of ``tile`` columns.

    ``left`` and ``right`` are border blocks at static positions (taps outside
    the input row are dropped at compile time); ``n_tiles`` interior tiles
    start at column ``interior_start`` and never read outside the row.
    """

    width: int
    tile: int
    left: list[Block] = field(default_factory=list)
    interior_start: int = 0
    n_tiles: int = 0
    right: list[Block] = field(default_factory=list)


def interior_columns(out_w: int, in_w: int, k: int, stride: int, dilation: int, pad: int,
                     extra: int = 0) -> tuple[int, int]:
    """[lo, hi): output columns whose every tap reads inside the input row.

    Column ``o`` reads input columns ``o*stride - pad + t*dilation`` for
    ``t < k`` (plus ``extra`` columns past the last one, for wide loads).
    """
    lo = min(out_w, -(-pad // stride))
    last = in_w - 1 - extra - (k - 1) * dilation + pad  # largest o*stride allowed
    hi = 0 if last < 0 else min(out_w, last // stride + 1)
    return lo, max(lo, hi)


def plan_row(out_w: int, tile: int, lo: int, hi: int) -> RowPlan:
    """Split ``out_w`` columns into left border, interior tiles and right border/tail blocks."""
    tile = max(1, min(tile, out_w))
    plan = RowPlan(out_w, tile)
    left_end = min(out_w, -(-lo // tile) * tile)
    if hi - left_end < tile:  # no full interior tile: everything is checked at compile time
        plan.right = [Block(s, min(tile, out_w - s)) for s in range(0, out_w, tile)]
        plan.interior_start = 0
        return plan
    plan.left = [Block(s, tile) for s in range(0, left_end, tile)]
    plan.interior_start = left_end
    plan.n_tiles = (hi - left_end) // tile
    rest = left_end + plan.n_tiles * tile
    plan.right = [Block(s, min(tile, out_w - s)) for s in range(rest, out_w, tile)]
    return plan


BlockFn = Callable[[ir.Value, Optional[int], int], None]  # (first column, static first column, size)


def emit_row(b: ir.IRBuilder, plan: RowPlan, block: BlockFn) -> None:
    """Emit the blocks of one row: static left blocks, the interior loop, static right blocks."""
    for blk in plan.left:
        block(const_int(blk.start), blk.start, blk.size)
    if plan.n_tiles == 1:
        block(const_int(plan.interior_start), None, plan.tile)
    elif plan.n_tiles > 1:
        stop = plan.interior_start + plan.n_tiles * plan.tile
        with for_range(b, plan.interior_start, stop, plan.tile, name="tile") as col:
            block(col, None, plan.tile)
    for blk in plan.right:
        block(const_int(blk.start), blk.start, blk.size)


def emit_chunk(b: ir.IRBuilder, plan: RowPlan, chunk: ir.Value, tiles_per_chunk: int, n_chunks: int,
               block: BlockFn) -> None:
    """One chunk of a border-free row: interior tiles [chunk*T, min((chunk+1)*T, n_tiles)), and
    the right tail when ``chunk`` is the last one (long rows split across tasks)."""
    assert not plan.left and plan.interior_start == 0
    if plan.n_tiles:
        first = b.mul(chunk, const_int(tiles_per_chunk))
        last = b.add(first, const_int(tiles_per_chunk))
        last = b.select(b.icmp_signed("<", last, const_int(plan.n_tiles)), last, const_int(plan.n_tiles))
        with for_range(b, first, last, name="tile") as t:
            block(b.mul(t, const_int(plan.tile)), None, plan.tile)
    if plan.right:
        is_last = b.icmp_signed("==", chunk, const_int(n_chunks - 1))
        with b.if_then(is_last):
            for blk in plan.right:
                block(const_int(blk.start), blk.start, blk.size)


def tap_range(b: ir.IRBuilder, out_index: ir.Value, in_size: int, out_size: int, k: int, stride: int,
              dilation: int, pad: int) -> tuple[IntOrValue, IntOrValue]:
    """[lo, hi) of the taps ``t`` of output position ``out_index`` that read inside the input:
    ``0 <= out_index*stride - pad + t*dilation < in_size``.  Constants when no position pads."""
    if pad <= 0 and (out_size - 1) * stride - pad + (k - 1) * dilation <= in_size - 1:
        return 0, k
    base = b.sub(b.mul(out_index, const_int(stride)), const_int(pad))  # input position of tap 0
    zero = const_int(0)
    neg = b.icmp_signed("<", base, zero)
    lo = b.select(neg, b.sdiv(b.add(b.sub(zero, base), const_int(dilation - 1)), const_int(dilation)), zero)
    room = b.sub(const_int(in_size - 1), base)  # >= 0 when tap 0 is not past the end
    hi = b.add(b.sdiv(room, const_int(dilation)), const_int(1))
    hi = b.select(b.icmp_signed("<", room, zero), zero, hi)
    hi = b.select(b.icmp_signed("<", hi, const_int(k)), hi, const_int(k))
    return lo, hi


# ------------------------------------------------------------ accumulators
class Accumulators:
    """A register tile kept across runtime loops (allocas that mem2reg promotes to phis)."""

    def __init__(self, tf: TaskFunction, ty: ir.Type, count: int) -> None:
        self.b = tf.builder
        with self.b.goto_block(tf._entry):  # allocas in the entry block are promoted by mem2reg
            self.slots = [self.b.alloca(ty, name="acc") for _ in range(count)]

    def load(self) -> list[ir.Value]:
        return [self.b.load(s) for s in self.slots]

    def store(self, values: Sequence[ir.Value]) -> None:
        for s, v in zip(self.slots, values):
            self.b.store(v, s)


# ---------------------------------------------------------------- epilogue
def epilogue_support(node: Node) -> Optional[str]:
    """None when the fused epilogue of a convolution group can be computed on its accumulators.

    The path from the convolution to the group's output must be elementwise
    or broadcast ops that keep the convolution's shape (so the output index is
    the accumulator's index); other operands may come through any op the
    evaluator handles (a residual read through ToBlocked, a scaled input...).
    """
    body, _, outputs = body_and_keys(node)
    if body is None:
        return None
    if len(outputs) != 1:
        return f"a fused convolution group with {len(outputs)} outputs"
    anchor = anchor_of(node)
    for n in body.nodes:
        if n is anchor:
            continue
        if n.domain == "nnc" and n.op == "Fused":
            return "nested fused groups"
        injective = is_index_map(n)
        why = injective_support(n) if injective else elementwise_support(n)
        if why is not None:
            return why
    conv_shape = shape_of(anchor.outputs[0])
    on_path = {id(anchor.outputs[0])}
    for n in body.nodes:
        if n is anchor or not any(v is not None and id(v) in on_path for v in n.inputs):
            continue
        if n.schema.kind not in (ELEMENTWISE, BROADCAST) or shape_of(n.outputs[0]) != conv_shape:
            return f"{n.op} after the convolution changes its index space (shape " \
                   f"{list(shape_of(n.outputs[0]))} instead of {list(conv_shape)})"
        on_path.update(id(o) for o in n.outputs)
    if id(outputs[0]) not in on_path:
        return "the fused group's output does not come from the convolution"
    return None


class Epilogue:
    """Stores accumulator vectors to the kernel's output, through the fused epilogue if any.

    ``store(acc, offset, index)``: ``acc`` holds the convolution's result at
    element ``offset`` of the output buffer, lanes running along memory;
    ``index`` is the output index of the first lane, and the lanes follow
    along the last axis.  Only the first ``count`` lanes are stored.  When the
    lanes do not follow one axis (a flattened pointwise conv's pixels),
    ``index`` is None and ``lane_index(lane)`` gives each lane's index.
    """

    def __init__(self, kb: KernelBuilder, tf: TaskFunction, node: Node, lanes: int) -> None:
        self.kb, self.tf, self.b, self.lanes = kb, tf, tf.builder, lanes
        body, keys, outputs = body_and_keys(node)
        self.body = body
        self.out_node = node.outputs[0]
        self.out_body = outputs[0]
        self.dtype = self.out_node.type.dtype
        self.dst = tf.value_pointer(self.out_node)
        self._current: Optional[ir.Value] = None
        self.ev: Optional[Evaluator] = None
        self.vector = True
        if body is not None:
            anchor_out = anchor_of(node).outputs[0]
            members = nodes_of(node)
            provided = {id(anchor_out): self._provide}
            for n in body.nodes:  # (the evaluator would broadcast BN's [C] parameters along the last axis)
                if n.op == "BatchNormalization" and n.domain == "":
                    provided[id(n.outputs[0])] = self._batchnorm(n)
            self.ev = Evaluator(kb, tf, body, lanes, provided=provided, leaf_keys=keys, members=members)
            norms = [n for n in body.nodes if id(n.outputs[0]) in provided and n.op == "BatchNormalization"]
            given = [anchor_out] + [n.outputs[0] for n in norms]
            self.vector = vector_ok(body, [self.out_body] + [n.inputs[0] for n in norms], provided=given,
                                    members=members)

    def _provide(self, idx: list[ir.Value], vector: bool) -> ir.Value:
        return self._current  # the caller sets it to the vector or the lane being computed

    def _batchnorm(self, node: Node) -> Callable[[list[ir.Value], bool], ir.Value]:
        """Inference BatchNormalization with its parameters read along the channel axis.

        Plain ``[N, C, ...]``: one scalar per channel (splat across the lanes
        of a vector along the last axis).  Blocked ``[N, C/b, ..., b]``:
        channel ``c_outer * b + lane``, a vector of parameters in vector mode.
        """
        blocked = node.inputs[0].type.layout is not None and shape_of(node.inputs[0])[-1] > 1

        def value(idx: list[ir.Value], vector: bool) -> ir.Value:
            b = self.b
            if blocked:
                block = shape_of(node.inputs[0])[-1]
                where, vec = [b.add(b.mul(idx[1], const_int(block)), idx[-1])], vector
            else:
                where, vec = [idx[1]], False
            x = self.ev.value_at(node.inputs[0], idx, vector)
            params = [self.ev.value_at(p, where, vec) for p in node.inputs[1:5]]
            return emit_op(self.kb, b, node, [x] + params)
        return value

    def store(self, acc: ir.Value, offset: ir.Value, index: Optional[list[ir.Value]],
              count: Optional[int] = None,
              lane_index: Optional[Callable[[int], list[ir.Value]]] = None) -> None:
        b = self.b
        count = self.lanes if count is None else count
        if self.ev is None:
            if count == self.lanes:
                store_vector(b, acc, self.dst, offset)
            else:
                masked_store(self.kb, b, acc, self.dst, offset, lane_mask(b, const_int(count), self.lanes))
            return
        if self.vector and count == self.lanes and index is not None:
            self._current = acc
            value = self.ev.value_at(self.out_body, index, vector=True)
            store_vector(b, store_convert(b, value, self.dtype), self.dst, offset)
            self.ev.forget()
            return
        # Lane by lane: the epilogue reads operands the vector path cannot (or a partial vector).
        for lane in range(count):
            self._current = b.extract_element(acc, const_int(lane, I32))
            at = lane_index(lane) if index is None else list(index[:-1]) + [b.add(index[-1], const_int(lane))]
            value = self.ev.value_at(self.out_body, at, vector=False)
            b.store(store_convert(b, value, self.dtype), b.gep(self.dst, [b.add(offset, const_int(lane))]))
            self.ev.forget()


def operand_pointer(tf: TaskFunction, node: Node, v: Value) -> ir.Value:
    """Typed pointer to an input of the anchor op (a kernel input or a constant of the body)."""
    _, keys, _ = body_and_keys(node)
    return tf.value_pointer(keys.get(id(v), v))


def schedule_param(schedule: Any, name: str, default: int) -> int:
    if schedule is None:
        return default
    try:
        return int(schedule.get(name, default))
    except Exception:  # noqa: BLE001 - a schedule of another kind: use the default
        return default
