"""Compute any value of a fused body at an index: the heart of elementwise and epilogue code.

``Evaluator.value_at(v, idx)`` emits the IR computing body value ``v`` at
multi-index ``idx`` (a list of i64 values, one per dim of ``v``): leaves
(body inputs and constants) are loaded with NumPy broadcasting, elementwise
ops are computed with ``expr.emit_op``, and injective ops (Transpose,
Reshape, Slice, Concat, Pad, Gather, layout conversions...) map the index to
their input's index.  The index maps form a table keyed by (domain, op),
filled with ``@index_map("Transpose")`` at the end of this module; it says
which injective ops the cpu target computes (their kind is the registry's).

In *vector* mode the last index is the first of ``lanes`` consecutive
elements along the last axis, and every value becomes a vector: indices are
then carried as lane vectors through the injective maps (``indexmath``), and
each leaf is read with one vector load (a contiguous run), one load and a
broadcast (the same element for every lane), or a gather (anything else).

Values a kernel computes itself (a conv's accumulator) are handed in through
``provided``: a function of the index returning the compute-type value.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Optional

import llvmlite.ir as ir
import numpy as np

from ir.dtypes import DType
from ir.errors import BackendError
from ir.graph import Graph, Node, Value
from ir.memory import is_view_op
from ir.registry import normalize_domain

from .codegen import I1, I32, I64, KernelBuilder, TaskFunction, const_int, load_vector, splat, strides_of, \
    type_suffix
from .expr import compute_type, constant, emit_op, load_convert
from .indexmath import IndexMath

Index = list[ir.Value]
Provider = Callable[[Index, bool], ir.Value]

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
    m = index_map_of(node)
    if m is None:
        return f"{node.qualified_op} is not an op the cpu target generates"
    if m.check is not None:
        why = m.check(node)
        if why is not None:
            return why
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
        self.ix = IndexMath(self.b, max(1, lanes))
        self._memo: dict[tuple, ir.Value] = {}
        # Flat mode: every value is addressed by one flat position (pure elementwise groups whose
        # tensors all share one shape, or hold a single element).  Set by the kernel.
        self.flat = False

    # ------------------------------------------------------------- entry
    def value_at(self, v: Value, idx: Index, vector: bool = False) -> ir.Value:
        """``v`` at ``idx``; with ``vector``, ``lanes`` elements from ``idx`` along the last axis."""
        if vector and idx:
            idx = list(idx[:-1]) + [self.ix.iota(idx[-1])]
        out = self._at(v, list(idx))
        if vector and not isinstance(out.type, ir.VectorType):
            out = splat(self.b, out, self.lanes)
        return out

    def forget(self) -> None:
        """Drop memoized values (call when leaving the basic block they were computed in)."""
        self._memo.clear()

    @contextmanager
    def inner_scope(self) -> Iterator[None]:
        """For code emitted inside a loop the kernel opens: values memoized there do not dominate
        what follows the loop, so on leaving, the memo is what it was on entering."""
        saved = dict(self._memo)
        try:
            yield
        finally:
            self._memo.clear()
            self._memo.update(saved)

    def _at(self, v: Value, idx: Index) -> ir.Value:
        key = (id(v), tuple(id(i) for i in idx))
        hit = self._memo.get(key)
        if hit is None:
            hit = self._memo[key] = self._compute(v, idx)
        return hit

    # ------------------------------------------------------------ compute
    def _compute(self, v: Value, idx: Index) -> ir.Value:
        if id(v) in self.provided:
            return self._provided(v, idx)
        node = v.producer
        if node is None or (self.members is not None and id(node) not in self.members):
            return self.load(v, idx)  # a leaf: a kernel input or a constant
        if self.flat and is_row_major_view(node):
            return self._at(node.inputs[0], idx)
        if is_index_map(node):
            return self._injective(node, idx, v.index)
        if node.op == "Dropout" and v.index == 1:  # the mask of inference-mode Dropout: all kept
            one = constant(ir.Constant(compute_type(v.type.dtype), 0), 1)
            return one
        out_shape = shape_of(v)
        operands = []
        for k, inp in enumerate(node.inputs):
            if inp is None:
                operands.append(None)
            elif self.flat:
                operands.append(self._at(inp, idx))
            elif node.op == "BatchNormalization" and k > 0:
                # Per-channel parameters [C] follow the channel axis (1), not numpy broadcasting.
                operands.append(self._at(inp, [idx[1]]))
            else:
                operands.append(self._at(inp, broadcast_index(self.b, idx, out_shape, shape_of(inp))))
        return emit_op(self.kb, self.b, node, operands)

    def _provided(self, v: Value, idx: Index) -> ir.Value:
        """A value the kernel computes itself, asked for at a scalar index or a lane run."""
        if not idx or not self.ix.is_vector(idx[-1]):
            if any(self.ix.is_vector(i) for i in idx):
                raise BackendError("internal: provided value needed at a gathered index", subject=f"%{v.name}")
            return self.provided[id(v)](idx, False)
        run = self.ix.affine(idx[-1])
        if run is None or run[1] != 1 or any(self.ix.is_vector(i) for i in idx[:-1]):
            raise BackendError("internal: provided value needed at a gathered index", subject=f"%{v.name}")
        return self.provided[id(v)](list(idx[:-1]) + [run[0]], True)

    def load(self, v: Value, idx: Index) -> ir.Value:
        """Element(s) of a leaf tensor at ``idx`` (compute type): load, load+broadcast or gather."""
        dtype = v.type.dtype
        shape = shape_of(v)
        if v.const is not None and v.const.size <= INLINE_CONSTANT_LIMIT:
            return constant(ir.Constant(compute_type(dtype), 0), np.asarray(v.const).reshape(-1)[0].item())
        base = self.tf.value_pointer(self.leaf_keys.get(id(v), v))
        if self.flat:
            off = idx[-1] if int(np.prod(shape)) > 1 else const_int(0)
        else:
            off = self._offset(idx, shape)
        if not self.ix.is_vector(off):
            raw = self.b.load(self.b.gep(base, [off]))
        else:
            run = self.ix.affine(off)
            if run is not None and run[1] == 1:
                raw = load_vector(self.b, base, run[0], self.lanes)
            elif run is not None and run[1] == 0:
                raw = self.b.load(self.b.gep(base, [run[0]]))
            else:
                raw = self._gather(base, off)
        return load_convert(self.b, raw, dtype)

    def _offset(self, idx: Index, shape: Sequence[int]) -> ir.Value:
        # Every axis counts, size-1 ones too: kernels that collapse adjacent axes put the
        # collapsed position on the group's last axis, which may have size 1.
        off = const_int(0)
        for i, st in zip(idx, strides_of(shape)):
            off = self.ix.add(off, self.ix.mul(i, st))
        return off

    def _gather(self, base: ir.Value, offsets: ir.Value) -> ir.Value:
        """One element per lane from ``base[offsets[lane]]`` (vgather on x86)."""
        b, lanes = self.b, self.lanes
        elem = base.type.pointee
        size = max(1, elem.width // 8) if isinstance(elem, ir.IntType) else \
            {"float": 4, "double": 8, "half": 2}[str(elem)]
        addr = self.ix.add(self.ix.mul(offsets, size), b.ptrtoint(base, I64))
        ptrs = b.inttoptr(addr, ir.VectorType(elem.as_pointer(), lanes))
        vty = ir.VectorType(elem, lanes)
        fn = self.kb.declare(f"llvm.masked.gather.{type_suffix(vty)}.v{lanes}p0{type_suffix(elem)}", vty,
                             [ptrs.type, I32, ir.VectorType(I1, lanes), vty])
        zero = [0] * lanes if isinstance(elem, ir.IntType) else [0.0] * lanes
        return b.call(fn, [ptrs, const_int(size, I32), ir.Constant(ir.VectorType(I1, lanes), [1] * lanes),
                           ir.Constant(vty, zero)])

    # -------------------------------------------------------- injective
    def _injective(self, node: Node, idx: Index, which: int = 0) -> ir.Value:
        """Output ``which`` of an index-mapping op at ``idx``, read from its inputs (see ``index_map``)."""
        m = index_map_of(node)
        if m is None:
            raise BackendError("internal: unhandled injective op", subject=node.describe())
        return m.fn(self, node, idx, which)

    def _split_index(self, node: Node, idx: Index, in_shape, which: int) -> Index:
        """Output ``which`` of a Split reads the input from the sizes of the outputs before it."""
        axis = node.attr("axis") % len(in_shape)
        start = sum(shape_of(o)[axis] for o in node.outputs[:which])
        out = list(idx)
        out[axis] = self.ix.add(idx[axis], start)
        return out

    def _reshape_index(self, idx: Index, out_shape, in_shape) -> Index:
        """Index into the reshape's input.  When the last axis is kept, only the others are remapped."""
        if out_shape and in_shape and out_shape[-1] == in_shape[-1]:
            flat = self._linear(idx[:-1], out_shape[:-1])
            return self._delinearize(flat, in_shape[:-1]) + [idx[-1]]
        return self._delinearize(self._linear(idx, out_shape), in_shape)

    def _linear(self, idx: Index, shape) -> ir.Value:
        off = const_int(0)
        for i, st in zip(idx, strides_of(shape)):
            off = self.ix.add(off, self.ix.mul(i, st))
        return off

    def _delinearize(self, flat: ir.Value, shape) -> Index:
        return [const_int(0) if d == 1 else self.ix.rem(self.ix.div(flat, st), d)
                for st, d in zip(strides_of(shape), shape)]

    def _trilu(self, node: Node, idx: Index) -> ir.Value:
        k = _const_ints(node.input(1))[0] if node.input(1) is not None else 0
        diff = self.ix.sub(idx[-1], idx[-2])  # column - row
        keep = self.ix.cmp(">=" if node.attr("upper") else "<=", diff, k)
        val = self._at(node.inputs[0], idx)
        return _select(self.b, keep, val, constant(val, 0), self.lanes)

    def _one_hot(self, node: Node, idx: Index) -> ir.Value:
        b, ix = self.b, self.ix
        rank = len(idx)
        axis = node.attr("axis")
        axis = axis + rank if axis < 0 else axis
        depth = int(np.asarray(node.input(1).const).reshape(-1)[0])
        raw = self._at(node.inputs[0], list(idx[:axis]) + list(idx[axis + 1:]))
        raw = _to_i64(b, raw)
        fixed = ix.select(ix.cmp("<", raw, 0), ix.add(raw, depth), raw)
        hit = ix.cmp("==", fixed, idx[axis])
        off = self._at(node.inputs[2], [const_int(0)])
        on = self._at(node.inputs[2], [const_int(1)])
        return _select(b, hit, on, off, self.lanes)

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
            out[a] = self.ix.add(self.ix.mul(idx[a], st), s)
        return out

    def _concat(self, node: Node, idx: Index) -> ir.Value:
        ix = self.ix
        axis = node.attr("axis")
        rank = len(idx)
        axis = axis + rank if axis < 0 else axis
        result, offset, pieces = None, 0, []
        for inp in node.inputs:
            n = shape_of(inp)[axis]
            if n:
                pieces.append((inp, offset, n))
            offset += n
        for inp, start, n in pieces:  # later pieces take over from their start on
            sub = list(idx)
            sub[axis] = ix.clamp(ix.sub(idx[axis], start), 0, n - 1)
            val = self._at(inp, sub)
            result = val if result is None else _select(self.b, ix.cmp(">=", idx[axis], start), val, result,
                                                        self.lanes)
        return result

    def _pad(self, node: Node, idx: Index, in_shape: Sequence[int]) -> ir.Value:
        ix = self.ix
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
            i = ix.sub(idx[a], begin[a]) if begin[a] else idx[a]
            n = in_shape[a]
            if mode == "constant":
                if begin[a] or shape_of(node.outputs[0])[a] != n:
                    ok = ix.and_(ix.cmp(">=", i, 0), ix.cmp("<", i, n))
                    inside = ok if inside is None else ix.and_(inside, ok)
                    i = ix.clamp(i, 0, n - 1)
            elif mode == "edge":
                i = ix.clamp(i, 0, n - 1)
            elif mode == "reflect":
                if n > 1:
                    period = 2 * (n - 1)
                    m = ix.floor_mod(i, period)
                    i = ix.select(ix.cmp(">=", m, n), ix.sub(period, m), m)
                else:
                    i = const_int(0)
            else:  # wrap
                i = ix.floor_mod(i, n)
            src_idx.append(i)
        val = self._at(node.inputs[0], src_idx)
        if mode != "constant" or inside is None:
            return val
        pad_value = 0
        if node.input(2) is not None:
            pad_value = np.asarray(node.input(2).const).reshape(-1)[0].item()
        return _select(self.b, inside, val, constant(val, pad_value), self.lanes)

    def _gather_op(self, node: Node, idx: Index, in_shape: Sequence[int]) -> ir.Value:
        ix = self.ix
        axis = node.attr("axis")
        rank = len(in_shape)
        axis = axis + rank if axis < 0 else axis
        q = len(shape_of(node.inputs[1]))
        raw = _to_i64(self.b, self._at(node.inputs[1], idx[axis:axis + q]))
        fixed = ix.select(ix.cmp("<", raw, 0), ix.add(raw, in_shape[axis]), raw)
        return self._at(node.inputs[0], list(idx[:axis]) + [fixed] + list(idx[axis + q:]))

    def _depth_space(self, node: Node, idx: Index, in_shape, out_shape) -> Index:
        ix = self.ix
        bs = node.attr("blocksize")
        n, c, h, w = idx
        if node.op == "SpaceToDepth":
            oc = in_shape[1]
            if node.attr("mode") == "CRD":
                ci, blk = ix.div(c, bs * bs), ix.rem(c, bs * bs)
            else:  # DCR
                ci, blk = ix.rem(c, oc), ix.div(c, oc)
            return [n, ci, ix.add(ix.mul(h, bs), ix.div(blk, bs)), ix.add(ix.mul(w, bs), ix.rem(blk, bs))]
        oc = out_shape[1]
        hb, wb = ix.rem(h, bs), ix.rem(w, bs)
        if node.attr("mode") == "CRD":
            ci = ix.add(ix.mul(c, bs * bs), ix.add(ix.mul(hb, bs), wb))
        else:  # DCR
            ci = ix.add(ix.mul(ix.add(ix.mul(hb, bs), wb), oc), c)
        return [n, ci, ix.div(h, bs), ix.div(w, bs)]

    def _to_blocked(self, node: Node, idx: Index, in_shape) -> ir.Value:
        ix = self.ix
        blk = shape_of(node.outputs[0])[-1]
        channels = in_shape[1]
        c = ix.add(ix.mul(idx[1], blk), idx[-1])
        if channels % blk == 0:
            return self._at(node.inputs[0], [idx[0], c, *idx[2:-1]])
        ok = ix.cmp("<", c, channels)
        val = self._at(node.inputs[0], [idx[0], ix.select(ok, c, 0), *idx[2:-1]])
        return _select(self.b, ok, val, constant(val, 0), self.lanes)


# ------------------------------------------------------------ index maps
IndexMapFn = Callable[["Evaluator", Node, Index, int], ir.Value]


@dataclass(frozen=True)
class IndexMap:
    """How the evaluator computes an injective op: output ``which`` at ``idx`` from its inputs."""

    fn: IndexMapFn
    check: Optional[Callable[[Node], Optional[str]]] = None  # op-specific support: None, or why not
    remaps: bool = True  # False when the op reads its input at the output's own index (Identity)


# (domain, op) -> index map: the injective ops every cpu kernel can compute inside a fused group.
_INDEX_MAPS: dict[tuple[str, str], IndexMap] = {}


def index_map(*names: str, domain: str = "", check: Optional[Callable[[Node], Optional[str]]] = None,
              remaps: bool = True):
    """Decorator: ``@index_map("Transpose")`` registers ``fn(ev, node, idx, which)`` for those ops."""
    def register(fn: IndexMapFn) -> IndexMapFn:
        for n in names:
            key = (normalize_domain(domain), n)
            if key in _INDEX_MAPS:
                raise ValueError(f"a cpu index map for {n!r} (domain {domain!r}) is registered twice")
            _INDEX_MAPS[key] = IndexMap(fn, check, remaps)
        return fn
    return register


def unregister_index_map(name: str, domain: str = "") -> None:
    """Remove an op's index map (for maps registered at run time, e.g. by tests)."""
    _INDEX_MAPS.pop((normalize_domain(domain), name), None)


def index_map_of(node: Node) -> Optional[IndexMap]:
    _discover_kernels()
    return _INDEX_MAPS.get((normalize_domain(node.domain), node.op))


def _discover_kernels() -> None:
    """Kernel modules may register index maps too (``kernels/resample.py``): import them first."""
    from .kernels import _DISCOVERY
    _DISCOVERY.ensure()


def is_index_map(node: Node) -> bool:
    """Does the evaluator compute ``node`` by mapping indices (an injective op it knows)?"""
    return index_map_of(node) is not None


def remaps_index(node: Node) -> bool:
    """Does ``node`` read an input at another index than the output's (every index map but Identity)?"""
    m = index_map_of(node)
    return m is not None and m.remaps


def index_map_ops() -> frozenset[tuple[str, str]]:
    """The (domain, op) pairs with an index map."""
    _discover_kernels()
    return frozenset(_INDEX_MAPS)


def _const_input(i: int, what: str) -> Callable[[Node], Optional[str]]:
    def check(node: Node) -> Optional[str]:
        v = node.input(i)
        return None if v is None or v.const is not None else f"{node.op} with a run-time {what} (specialize first)"
    return check


def _index_dtype(node: Node) -> Optional[str]:
    if node.inputs[1].type.dtype not in (DType.I32, DType.I64):
        return f"{node.op} indices must be int32 or int64"
    return None


def _slice_check(node: Node) -> Optional[str]:
    if any(_const_ints(node.input(i)) is None for i in (1, 2) if node.input(i) is not None):
        return "Slice with run-time starts/ends (specialize first)"
    return None


def _pad_check(node: Node) -> Optional[str]:
    if _const_ints(node.input(1)) is None:
        return "Pad with run-time pads (specialize first)"
    if node.input(2) is not None and node.input(2).const is None:
        return "Pad with a run-time constant value"
    return None


def _one_hot_check(node: Node) -> Optional[str]:
    return "OneHot needs a constant depth (specialize first)" if node.input(1).const is None else None


@index_map("Identity", remaps=False)
def _(ev: Evaluator, node: Node, idx: Index, which: int) -> ir.Value:
    return ev._at(node.inputs[0], idx)


@index_map("Split")
def _(ev: Evaluator, node: Node, idx: Index, which: int) -> ir.Value:
    src = node.inputs[0]
    return ev._at(src, ev._split_index(node, idx, shape_of(src), which))


@index_map("Reshape", "Flatten", "Squeeze", "Unsqueeze")
def _(ev: Evaluator, node: Node, idx: Index, which: int) -> ir.Value:
    src = node.inputs[0]
    return ev._at(src, ev._reshape_index(idx, shape_of(node.outputs[0]), shape_of(src)))


@index_map("Transpose")
def _(ev: Evaluator, node: Node, idx: Index, which: int) -> ir.Value:
    src = node.inputs[0]
    in_shape = shape_of(src)
    perm = node.attr("perm") or list(reversed(range(len(in_shape))))
    src_idx: list = [None] * len(in_shape)
    for k, p in enumerate(perm):
        src_idx[p] = idx[k]
    return ev._at(src, src_idx)


@index_map("Expand")
def _(ev: Evaluator, node: Node, idx: Index, which: int) -> ir.Value:
    src = node.inputs[0]
    return ev._at(src, broadcast_index(ev.b, idx, shape_of(node.outputs[0]), shape_of(src)))


@index_map("Tile")
def _(ev: Evaluator, node: Node, idx: Index, which: int) -> ir.Value:
    src = node.inputs[0]
    return ev._at(src, [ev.ix.rem(i, d) for i, d in zip(idx, shape_of(src))])


@index_map("Slice", check=_slice_check)
def _(ev: Evaluator, node: Node, idx: Index, which: int) -> ir.Value:
    src = node.inputs[0]
    return ev._at(src, ev._slice_index(node, idx, shape_of(src)))


@index_map("Concat")
def _(ev: Evaluator, node: Node, idx: Index, which: int) -> ir.Value:
    return ev._concat(node, idx)


@index_map("Pad", check=_pad_check)
def _(ev: Evaluator, node: Node, idx: Index, which: int) -> ir.Value:
    return ev._pad(node, idx, shape_of(node.inputs[0]))


@index_map("Gather", check=_index_dtype)
def _(ev: Evaluator, node: Node, idx: Index, which: int) -> ir.Value:
    return ev._gather_op(node, idx, shape_of(node.inputs[0]))


@index_map("GatherElements", check=_index_dtype)
def _(ev: Evaluator, node: Node, idx: Index, which: int) -> ir.Value:
    ix, src = ev.ix, node.inputs[0]
    in_shape = shape_of(src)
    axis = node.attr("axis") % len(in_shape)
    raw = _to_i64(ev.b, ev._at(node.inputs[1], idx))
    fixed = ix.select(ix.cmp("<", raw, 0), ix.add(raw, in_shape[axis]), raw)
    return ev._at(src, list(idx[:axis]) + [fixed] + list(idx[axis + 1:]))


@index_map("DepthToSpace", "SpaceToDepth")
def _(ev: Evaluator, node: Node, idx: Index, which: int) -> ir.Value:
    src = node.inputs[0]
    return ev._at(src, ev._depth_space(node, idx, shape_of(src), shape_of(node.outputs[0])))


@index_map("ToBlocked", domain="nnc")
def _(ev: Evaluator, node: Node, idx: Index, which: int) -> ir.Value:
    return ev._to_blocked(node, idx, shape_of(node.inputs[0]))


@index_map("FromBlocked", domain="nnc")
def _(ev: Evaluator, node: Node, idx: Index, which: int) -> ir.Value:
    ix, src = ev.ix, node.inputs[0]
    blk = shape_of(src)[-1]
    return ev._at(src, [idx[0], ix.div(idx[1], blk), *idx[2:], ix.rem(idx[1], blk)])


@index_map("Trilu", check=_const_input(1, "k"))
def _(ev: Evaluator, node: Node, idx: Index, which: int) -> ir.Value:
    return ev._trilu(node, idx)


@index_map("OneHot", check=_one_hot_check)
def _(ev: Evaluator, node: Node, idx: Index, which: int) -> ir.Value:
    return ev._one_hot(node, idx)


@index_map("EyeLike")
def _(ev: Evaluator, node: Node, idx: Index, which: int) -> ir.Value:
    ix = ev.ix
    on = ix.cmp("==", ix.sub(idx[1], idx[0]), node.attr("k") or 0)
    one = constant(ir.Constant(compute_type(node.outputs[0].type.dtype), 0), 1)
    vec = isinstance(on.type, ir.VectorType)
    return ev.b.select(on, splat(ev.b, one, ev.lanes) if vec else one,
                       constant(splat(ev.b, one, ev.lanes) if vec else one, 0))


def _to_i64(b: ir.IRBuilder, v: ir.Value) -> ir.Value:
    """Index values as i64 (floats truncate, as OneHot allows)."""
    elem = v.type.element if isinstance(v.type, ir.VectorType) else v.type
    target = ir.VectorType(I64, v.type.count) if isinstance(v.type, ir.VectorType) else I64
    if not isinstance(elem, ir.IntType):
        return b.fptosi(v, target)
    return b.sext(v, target) if elem.width < 64 else v


def _select(b: ir.IRBuilder, cond: ir.Value, x: ir.Value, y: ir.Value, lanes: int) -> ir.Value:
    """select() that splats scalars when the condition or a value is a vector."""
    vec = any(isinstance(v.type, ir.VectorType) for v in (cond, x, y))
    if vec:
        cond, x, y = (v if isinstance(v.type, ir.VectorType) else splat(b, v, lanes) for v in (cond, x, y))
    return b.select(cond, x, y)


# ------------------------------------------------------------ index math
def linear_offset(b: ir.IRBuilder, idx: Index, shape: Sequence[int]) -> ir.Value:
    """Row-major element offset of ``idx`` in ``shape`` (a collapsed position may sit on a size-1 axis)."""
    off = const_int(0)
    for i, st in zip(idx, strides_of(shape)):
        off = b.add(off, b.mul(i, const_int(st)) if st != 1 else i)
    return off


def is_row_major_view(node: Node) -> bool:
    """A view op (Reshape, Flatten, Squeeze...) between plain layouts: element i in is element i out."""
    if len(node.outputs) != 1 or not node.inputs or node.inputs[0] is None or not is_view_op(node):
        return False
    return all(getattr(v.type, "layout", None) is None for v in (node.inputs[0], node.outputs[0]))


def delinearize(b: ir.IRBuilder, flat: ir.Value, shape: Sequence[int]) -> Index:
    out = []
    for st, d in zip(strides_of(shape), shape):
        out.append(const_int(0) if d == 1 else b.srem(b.sdiv(flat, const_int(st)), const_int(d)))
    return out


def broadcast_index(b: ir.IRBuilder, idx: Index, out_shape: Sequence[int], in_shape: Sequence[int]) -> Index:
    """The index of an operand of shape ``in_shape`` broadcast to ``out_shape`` (right-aligned)."""
    lead = len(out_shape) - len(in_shape)
    # Only axes the operand is broadcast along read index 0; an axis of size 1 on both sides keeps
    # the index (kernels that collapse axes may put a whole group's position on it).
    return [const_int(0) if d == 1 and out_shape[lead + k] != 1 else idx[lead + k]
            for k, d in enumerate(in_shape)]


def vector_ok(body: Optional[Graph], outputs: Sequence[Value], provided: Sequence[Value] = (),
              members: Sequence[Node] = ()) -> bool:
    """Can the last axis of every output be computed ``lanes`` at a time?

    Leaves can always be read as lane vectors (loads or gathers); a value the
    kernel provides itself (an accumulator) only at the output's own index.
    So the answer is no only when an index-mapping op lies between an output
    and a provided value.
    """
    given = {id(v) for v in provided}
    inside = {id(n) for n in members} if members else None

    def reaches_provided(v: Value, seen: set) -> bool:
        if id(v) in given:
            return True
        node = v.producer
        if node is None or id(v) in seen or (inside is not None and id(node) not in inside):
            return False
        seen.add(id(v))
        return any(inp is not None and reaches_provided(inp, seen) for inp in node.inputs)

    if not given:
        return True
    stack = list(outputs)
    seen: set[int] = set()
    while stack:
        v = stack.pop()
        if id(v) in seen or id(v) in given:
            continue
        seen.add(id(v))
        node = v.producer
        if node is None or (inside is not None and id(node) not in inside):
            continue
        mapping = remaps_index(node)
        for inp in node.inputs:
            if inp is None:
                continue
            if mapping and reaches_provided(inp, set()):
                return False
            if shape_of(inp) != shape_of(v) and node.op != "BatchNormalization" and reaches_provided(inp, set()):
                return False  # broadcasting the accumulator itself
            stack.append(inp)
    return True
