"""Compute any value of a fused body at an index: the heart of elementwise and epilogue code.

``Evaluator.value_at(v, idx)`` emits the IR computing body value ``v`` at
multi-index ``idx`` (a list of i64 values, one per dim of ``v``): leaves
(body inputs and constants) are loaded with NumPy broadcasting, elementwise
ops are computed with ``expr.emit_op``, and injective ops (Transpose,
Reshape, Slice, Concat, Pad, Gather, layout conversions...) map the index to
their input's index.

In *vector* mode the last index is the first of ``lanes`` consecutive
elements along the last axis, and every value becomes a vector.  Vector mode
is only legal when every leaf is contiguous or broadcast along that axis and
no injective op lies on the way (``vector_ok`` checks).

Values a kernel computes itself (a conv's accumulator) are handed in through
``provided``: a function of the index returning the compute-type value.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Optional

import llvmlite.ir as ir
import numpy as np

from ir.dtypes import DType
from ir.errors import BackendError
from ir.graph import Graph, Node, Value

from .codegen import I32, I64, KernelBuilder, TaskFunction, const_int, llvm_type, load_vector, splat, strides_of
from .expr import compute_type, constant, elementwise_support, emit_op, load_convert

Index = list[ir.Value]
Provider = Callable[[Index, bool], ir.Value]

INJECTIVE_OPS = {"Transpose", "Reshape", "Flatten", "Squeeze", "Unsqueeze", "Expand", "Slice", "Concat",
                 "Pad", "Tile", "Gather", "DepthToSpace", "SpaceToDepth", "ToBlocked", "FromBlocked",
                 "Identity", "Trilu", "OneHot", "EyeLike"}  # the last three compute from the index
INLINE_CONSTANT_LIMIT = 1  # scalar constants become immediates


def shape_of(v: Value) -> tuple[int, ...]:
    from .codegen import static_shape
    return static_shape(v)


def _const_ints(v: Optional[Value]) -> Optional[list[int]]:
    if v is None:
        return None
    if v.const is None:
        return None
    return [int(x) for x in np.asarray(v.const).reshape(-1)]


def injective_support(node: Node) -> Optional[str]:
    """None when the evaluator can map indices through ``node``, else why not."""
    op = node.op
    if node.domain == "nnc" and op in ("ToBlocked", "FromBlocked"):
        return None
    if node.domain != "" or op not in INJECTIVE_OPS:
        return f"{node.qualified_op} is not an op the cpu target generates"
    if op == "Slice" and any(_const_ints(node.input(i)) is None for i in (1, 2) if node.input(i) is not None):
        return "Slice with run-time starts/ends (specialize first)"
    if op == "Pad":
        if _const_ints(node.input(1)) is None:
            return "Pad with run-time pads (specialize first)"
        if node.input(2) is not None and node.input(2).const is None:
            return "Pad with a run-time constant value"
    if op == "Gather" and node.inputs[1].type.dtype not in (DType.I32, DType.I64):
        return "Gather indices must be int32 or int64"
    if op == "Trilu" and node.input(1) is not None and node.input(1).const is None:
        return "Trilu with a run-time k (specialize first)"
    if op == "OneHot" and node.input(1).const is None:
        return "OneHot needs a constant depth (specialize first)"
    for v in list(node.inputs[:1]) + list(node.outputs):
        t = v.type
        if not getattr(t, "is_static", False):
            return "the cpu target needs static shapes here"
    return None


class Evaluator:
    """Emits the computation of body values at indices (see the module docstring)."""

    def __init__(self, kb: KernelBuilder, tf: TaskFunction, body: Optional[Graph], lanes: int = 1,
                 provided: Optional[dict[int, Provider]] = None,
                 leaf_keys: Optional[dict[int, Value]] = None, members: Sequence[Node] = ()) -> None:
        self.leaf_keys = leaf_keys or {}  # body input -> the kernel's (top-level) input value
        # Nodes this kernel computes (a plain node's kernel: that node); other producers' values are leaves.
        self.members = {id(n) for n in members} if members else None
        self.kb = kb
        self.tf = tf
        self.b = tf.builder
        self.body = body
        self.lanes = lanes
        self.provided = provided or {}
        self._memo: dict[tuple, ir.Value] = {}

    # ------------------------------------------------------------- entry
    def value_at(self, v: Value, idx: Index, vector: bool = False) -> ir.Value:
        key = (id(v), tuple(id(i) for i in idx), vector)
        hit = self._memo.get(key)
        if hit is not None:
            return hit
        out = self._compute(v, idx, vector)
        self._memo[key] = out
        return out

    def forget(self) -> None:
        """Drop memoized values (call when leaving the basic block they were computed in)."""
        self._memo.clear()

    # ------------------------------------------------------------ leaves
    def _compute(self, v: Value, idx: Index, vector: bool) -> ir.Value:
        if id(v) in self.provided:
            return self.provided[id(v)](idx, vector)
        node = v.producer
        if node is None or (self.members is not None and id(node) not in self.members):
            return self.load(v, idx, vector)  # a leaf: a kernel input or a constant
        if node.op in INJECTIVE_OPS or node.domain == "nnc":
            if node.op == "Identity":
                return self.value_at(node.inputs[0], idx, vector)
            if vector:
                raise BackendError("internal: injective op in vector mode", subject=node.describe())
            return self._injective(node, idx)
        out_shape = shape_of(v)
        operands = []
        for k, inp in enumerate(node.inputs):
            if inp is None:
                operands.append(None)
            elif node.op == "BatchNormalization" and k > 0:
                # Per-channel parameters [C] follow the channel axis (1), not numpy broadcasting.
                operands.append(self.value_at(inp, [idx[1]], False))
            elif vector:
                operands.append(self._vector_operand(inp, idx, out_shape))
            else:
                operands.append(self.value_at(inp, broadcast_index(self.b, idx, out_shape, shape_of(inp))))
        return emit_op(self.kb, self.b, node, operands)

    def _vector_operand(self, inp: Value, idx: Index, out_shape: tuple[int, ...]) -> ir.Value:
        ishape = shape_of(inp)
        sub = broadcast_index(self.b, idx, out_shape, ishape)
        if ishape and ishape[-1] != 1 and len(out_shape) > 0:
            return self.value_at(inp, sub, True)
        # Broadcast along the vector axis: one scalar, splat by emit_op.
        return self.value_at(inp, sub, False)

    def load(self, v: Value, idx: Index, vector: bool) -> ir.Value:
        """Element(s) of a leaf tensor at ``idx`` (compute type)."""
        dtype = v.type.dtype
        shape = shape_of(v)
        if v.const is not None and v.const.size <= INLINE_CONSTANT_LIMIT:
            c = constant(ir.Constant(compute_type(dtype), 0), np.asarray(v.const).reshape(-1)[0].item())
            return splat(self.b, c, self.lanes) if vector else c
        base = self.tf.value_pointer(self.leaf_keys.get(id(v), v))
        off = linear_offset(self.b, idx, shape)
        if vector:
            raw = load_vector(self.b, base, off, self.lanes)
        else:
            raw = self.b.load(self.b.gep(base, [off]))
        return load_convert(self.b, raw, dtype)

    # -------------------------------------------------------- injective
    def _injective(self, node: Node, idx: Index) -> ir.Value:
        b = self.b
        op = node.op
        src = node.inputs[0]
        in_shape, out_shape = shape_of(src), shape_of(node.outputs[0])
        if op in ("Reshape", "Flatten", "Squeeze", "Unsqueeze"):
            flat = linear_offset(b, idx, out_shape)
            return self.value_at(src, delinearize(b, flat, in_shape))
        if op == "Transpose":
            perm = node.attr("perm") or list(reversed(range(len(in_shape))))
            src_idx: list = [None] * len(in_shape)
            for k, p in enumerate(perm):
                src_idx[p] = idx[k]
            return self.value_at(src, src_idx)
        if op == "Expand":
            return self.value_at(src, broadcast_index(b, idx, out_shape, in_shape))
        if op == "Tile":
            return self.value_at(src, [b.srem(i, const_int(d)) for i, d in zip(idx, in_shape)])
        if op == "Slice":
            return self.value_at(src, self._slice_index(node, idx, in_shape))
        if op == "Concat":
            return self._concat(node, idx)
        if op == "Pad":
            return self._pad(node, idx, in_shape)
        if op == "Gather":
            return self._gather(node, idx, in_shape)
        if op in ("DepthToSpace", "SpaceToDepth"):
            return self.value_at(src, self._depth_space(node, idx, in_shape, out_shape))
        if op == "ToBlocked":
            return self._to_blocked(node, idx, in_shape)
        if op == "Trilu":
            return self._trilu(node, idx)
        if op == "OneHot":
            return self._one_hot(node, idx)
        if op == "EyeLike":
            k = node.attr("k") or 0
            on = b.icmp_signed("==", b.sub(idx[1], idx[0]), const_int(k))
            dtype = node.outputs[0].type.dtype
            one = constant(ir.Constant(compute_type(dtype), 0), 1)
            return b.select(on, one, constant(one, 0))
        if op == "FromBlocked":
            blk = in_shape[-1]
            c = idx[1]
            src_idx = [idx[0], b.sdiv(c, const_int(blk)), *idx[2:], b.srem(c, const_int(blk))]
            return self.value_at(src, src_idx)
        raise BackendError("internal: unhandled injective op", subject=node.describe())

    def _trilu(self, node: Node, idx: Index) -> ir.Value:
        b = self.b
        k = _const_ints(node.input(1))[0] if node.input(1) is not None else 0
        diff = b.sub(idx[-1], idx[-2])  # column - row
        keep = b.icmp_signed(">=", diff, const_int(k)) if node.attr("upper") else \
            b.icmp_signed("<=", diff, const_int(k))
        val = self.value_at(node.inputs[0], idx)
        return b.select(keep, val, constant(val, 0))

    def _one_hot(self, node: Node, idx: Index) -> ir.Value:
        b = self.b
        rank = len(idx)
        axis = node.attr("axis")
        axis = axis + rank if axis < 0 else axis
        depth = int(np.asarray(node.input(1).const).reshape(-1)[0])
        where = list(idx[:axis]) + list(idx[axis + 1:])
        raw = self.value_at(node.inputs[0], where)
        if not isinstance(raw.type, ir.IntType):  # OneHot accepts float indices: truncated
            raw = b.fptosi(raw, I64)
        raw = b.sext(raw, I64) if raw.type.width < 64 else raw
        fixed = b.select(b.icmp_signed("<", raw, const_int(0)), b.add(raw, const_int(depth)), raw)
        hit = b.icmp_signed("==", fixed, idx[axis])
        off = self.value_at(node.inputs[2], [const_int(0)])
        on = self.value_at(node.inputs[2], [const_int(1)])
        return b.select(hit, on, off)

    def _slice_index(self, node: Node, idx: Index, in_shape: Sequence[int]) -> Index:
        rank = len(in_shape)
        starts = _const_ints(node.input(1))
        ends = _const_ints(node.input(2))
        axes = _const_ints(node.input(3)) or list(range(len(starts)))
        steps = _const_ints(node.input(4)) or [1] * len(starts)
        out = list(idx)
        for s, e, a, st in zip(starts, ends, axes, steps):
            a = a + rank if a < 0 else a
            dim = in_shape[a]
            s = s + dim if s < 0 else s
            s = max(0, min(dim if st > 0 else dim - 1, s))
            out[a] = self.b.add(const_int(s), self.b.mul(idx[a], const_int(st)))
        return out

    def _concat(self, node: Node, idx: Index) -> ir.Value:
        b = self.b
        axis = node.attr("axis")
        rank = len(idx)
        axis = axis + rank if axis < 0 else axis
        result = None
        offset = 0
        pieces = []
        for inp in node.inputs:
            n = shape_of(inp)[axis]
            if n:
                pieces.append((inp, offset, n))
            offset += n
        for inp, start, n in pieces:  # later pieces take over from their start on
            local = b.sub(idx[axis], const_int(start))
            clamped = b.select(b.icmp_signed("<", local, const_int(0)), const_int(0),
                               b.select(b.icmp_signed(">=", local, const_int(n)), const_int(n - 1), local))
            sub = list(idx)
            sub[axis] = clamped
            val = self.value_at(inp, sub)
            if result is None:
                result = val
            else:
                inside = b.icmp_signed(">=", idx[axis], const_int(start))
                result = b.select(inside, val, result)
        return result

    def _pad(self, node: Node, idx: Index, in_shape: Sequence[int]) -> ir.Value:
        b = self.b
        rank = len(in_shape)
        pads = _const_ints(node.input(1))
        axes = _const_ints(node.input(3)) if node.input(3) is not None else list(range(rank))
        axes = [a + rank if a < 0 else a for a in axes]
        begin = [0] * rank
        for k, a in enumerate(axes):
            begin[a] = pads[k]
        mode = node.attr("mode")
        src_idx, inside = [], None
        for a in range(rank):
            i = b.sub(idx[a], const_int(begin[a]))
            n = in_shape[a]
            if mode == "constant":
                ok = b.and_(b.icmp_signed(">=", i, const_int(0)), b.icmp_signed("<", i, const_int(n)))
                inside = ok if inside is None else b.and_(inside, ok)
                i = b.select(ok, i, const_int(0))
            elif mode == "edge":
                i = b.select(b.icmp_signed("<", i, const_int(0)), const_int(0),
                             b.select(b.icmp_signed(">=", i, const_int(n)), const_int(n - 1), i))
            elif mode == "reflect":
                period = 2 * (n - 1) if n > 1 else 1
                m = b.srem(b.add(b.srem(i, const_int(period)), const_int(period)), const_int(period))
                i = b.select(b.icmp_signed(">=", m, const_int(n)), b.sub(const_int(period), m), m) if n > 1 \
                    else const_int(0)
            else:  # wrap
                i = b.srem(b.add(b.srem(i, const_int(n)), const_int(n)), const_int(n))
            src_idx.append(i)
        val = self.value_at(node.inputs[0], src_idx)
        if mode != "constant" or inside is None:
            return val
        pad_value = 0
        if node.input(2) is not None:
            pad_value = np.asarray(node.input(2).const).reshape(-1)[0].item()
        return b.select(inside, val, constant(val, pad_value))

    def _gather(self, node: Node, idx: Index, in_shape: Sequence[int]) -> ir.Value:
        b = self.b
        axis = node.attr("axis")
        rank = len(in_shape)
        axis = axis + rank if axis < 0 else axis
        indices = node.inputs[1]
        ishape = shape_of(indices)
        q = len(ishape)
        where = idx[axis:axis + q]
        raw = self.value_at(indices, where)
        raw = self.b.sext(raw, I64) if raw.type != I64 else raw
        fixed = b.select(b.icmp_signed("<", raw, const_int(0)), b.add(raw, const_int(in_shape[axis])), raw)
        src_idx = list(idx[:axis]) + [fixed] + list(idx[axis + q:])
        return self.value_at(node.inputs[0], src_idx)

    def _depth_space(self, node: Node, idx: Index, in_shape, out_shape) -> Index:
        b = self.b
        bs = node.attr("blocksize")
        n, c, h, w = idx
        if node.op == "SpaceToDepth":
            oc = in_shape[1]
            if node.attr("mode") == "CRD":
                ci, blk = b.sdiv(c, const_int(bs * bs)), b.srem(c, const_int(bs * bs))
            else:  # DCR
                ci, blk = b.srem(c, const_int(oc)), b.sdiv(c, const_int(oc))
            return [n, ci, b.add(b.mul(h, const_int(bs)), b.sdiv(blk, const_int(bs))),
                    b.add(b.mul(w, const_int(bs)), b.srem(blk, const_int(bs)))]
        oc = out_shape[1]
        hb, wb = b.srem(h, const_int(bs)), b.srem(w, const_int(bs))
        if node.attr("mode") == "CRD":
            ci = b.add(b.mul(c, const_int(bs * bs)), b.add(b.mul(hb, const_int(bs)), wb))
        else:  # DCR
            ci = b.add(b.mul(b.add(b.mul(hb, const_int(bs)), wb), const_int(oc)), c)
        return [n, ci, b.sdiv(h, const_int(bs)), b.sdiv(w, const_int(bs))]

    def _to_blocked(self, node: Node, idx: Index, in_shape) -> ir.Value:
        b = self.b
        blk = shape_of(node.outputs[0])[-1]
        c = b.add(b.mul(idx[1], const_int(blk)), idx[-1])
        channels = in_shape[1]
        ok = b.icmp_signed("<", c, const_int(channels))
        safe = b.select(ok, c, const_int(0))
        val = self.value_at(node.inputs[0], [idx[0], safe, *idx[2:-1]])
        if channels % blk == 0:
            return val
        return b.select(ok, val, constant(val, 0))


# ------------------------------------------------------------ index math
def linear_offset(b: ir.IRBuilder, idx: Index, shape: Sequence[int]) -> ir.Value:
    """Row-major element offset of ``idx`` in ``shape`` (dims of size 1 are skipped)."""
    off = const_int(0)
    for i, st, d in zip(idx, strides_of(shape), shape):
        if d == 1:
            continue
        off = b.add(off, b.mul(i, const_int(st)) if st != 1 else i)
    return off


def delinearize(b: ir.IRBuilder, flat: ir.Value, shape: Sequence[int]) -> Index:
    out = []
    for st, d in zip(strides_of(shape), shape):
        out.append(const_int(0) if d == 1 else b.srem(b.sdiv(flat, const_int(st)), const_int(d)))
    return out


def broadcast_index(b: ir.IRBuilder, idx: Index, out_shape: Sequence[int], in_shape: Sequence[int]) -> Index:
    """The index of an operand of shape ``in_shape`` broadcast to ``out_shape`` (right-aligned)."""
    lead = len(out_shape) - len(in_shape)
    return [const_int(0) if d == 1 else idx[lead + k] for k, d in enumerate(in_shape)]


def vector_ok(body: Optional[Graph], outputs: Sequence[Value], provided: Sequence[Value] = (),
              members: Sequence[Node] = ()) -> bool:
    """Can the last axis of every output be computed ``lanes`` at a time?

    True when only elementwise/broadcast ops lie between the outputs and their
    leaves, and each leaf is either contiguous (full size) or of size 1 along
    the output's last axis.
    """
    given = {id(v) for v in provided}
    inside = {id(n) for n in members} if members else None
    seen: set[int] = set()
    stack = list(outputs)
    while stack:
        v = stack.pop()
        if id(v) in seen or id(v) in given:
            continue
        seen.add(id(v))
        node = v.producer
        if node is None or (inside is not None and id(node) not in inside):
            continue
        if node.op in INJECTIVE_OPS and node.op != "Identity" or node.domain == "nnc":
            return False
        out_shape = shape_of(v)
        for k, inp in enumerate(node.inputs):
            if inp is None:
                continue
            if node.op == "BatchNormalization" and k > 0:
                if len(out_shape) < 3:
                    return False  # the channel axis is the vector axis
                stack.append(inp)
                continue
            ishape = shape_of(inp)
            aligned_last = ishape[-1] if ishape and len(ishape) >= 1 else 1
            if out_shape and aligned_last not in (1, out_shape[-1]):
                return False
            if ishape and len(ishape) > len(out_shape):
                return False
            stack.append(inp)
    return True
