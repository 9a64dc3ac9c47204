"""Loop nests of kernels that fold a tensor ``x`` over some of its axes.

The axes of ``x`` are *reduced* (folded: the reduction axes of ReduceSum,
the softmax axis, the normalized axes of LayerNormalization) or *kept*
(one result, or one row to normalize, per index).  Adjacent axes of one
class are walked as one flat axis when every tensor the kernel touches
allows it (``anchored.collapsible``): GlobalAveragePool over ``7x7`` is one
loop of 49, a softmax over axis 1 of ``[N, C, H, W]`` vectorizes along
``H*W``.

Three loop shapes, decided once per kernel:

* ``inner``: the last axis group is kept.  It is cut into blocks of
  ``WIDE_VECTORS * lanes`` (one wide IR vector that LLVM splits into
  registers: that many independent folds, fewer passes down strided
  columns); tasks share the (other kept index, block) pairs.  The last,
  partial block goes ``lanes`` at a time, then a scalar tail.  Every fold
  runs on whole vectors (one result per lane, no horizontal step).  The
  blocked ``[N, C/16, H, W, 16]`` ReduceMean over H, W is this shape.
* ``reduce``: the last axis group is reduced: folds run ``lanes`` at a
  time with ``UNROLL`` independent vector accumulators (latency hiding,
  and shorter summation chains), then one horizontal step and a scalar
  tail.  Softmax over the last axis, ReduceSum(axis=-1).
* ``scalar``: everything one element at a time (short axes, prologues
  with index-mapping ops).

A kernel calls ``RowSpace.run(row_fn)``; ``row_fn(row)`` folds over the
reduced indices with ``row.fold`` (any number of accumulators at once),
walks them again with ``row.each`` and stores through ``row.store``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Optional

import llvmlite.ir as ir

from ir.graph import Value

from ..codegen import I64, KernelBuilder, TaskFunction, const_int, for_range, splat, task_range
from ..evaluator import shape_of
from .anchored import Epilogue, collapsible, has_injective, path_values, task_count
from .vecmath import Var, combine, const_like, horizontal, identity

UNROLL = 4          # independent accumulators of a vectorized fold
WIDE_VECTORS = 4    # registers per chunk of the kept last axis (``inner`` mode)
MIN_TASK = 1 << 14  # elements of work per task, at least


class Stat:
    """One accumulator of a fold: its kind (add, mul, max, min), element type and signedness."""

    def __init__(self, kind: str, elem: ir.Type, signed: bool = True) -> None:
        self.kind, self.elem, self.signed = kind, elem, signed


class RowSpace:
    """The loop nest over ``x`` (see the module docstring)."""

    def __init__(self, kb: KernelBuilder, tf: TaskFunction, ep: Epilogue, x_shape: Sequence[int],
                 reduced: Sequence[int], out_axis: Callable[[int], Optional[int]],
                 x_operands: Sequence[Value] = (), vectorize: bool = True, unroll: bool = True) -> None:
        self.kb, self.tf, self.ep, self.b = kb, tf, ep, tf.builder
        self.lanes = kb.lanes
        self.x_shape = tuple(x_shape)
        self.rank = len(self.x_shape)
        self.reduced = set(reduced)
        self.out_axis = out_axis
        self.unroll = unroll
        self.groups = self._groups(list(x_operands))
        last = self.groups[-1] if self.groups else None
        ext = self.extent(last) if last else 0
        self.mode = "scalar"
        if vectorize and last is not None and ext >= self.lanes and ep.input_vector_ok(tuple(x_operands)):
            self.mode = "reduce" if last[0] in self.reduced else "inner"
        self.vector_out = ep.output_vector_ok() and all(ep.output_vector_ok([o]) for o in ep.expanded)
        self.red_groups = [g for g in self.groups if g[0] in self.reduced]
        self.kept_groups = [g for g in self.groups if g[0] not in self.reduced]
        self.outer_groups = self.kept_groups[:-1] if self.mode == "inner" else self.kept_groups
        outer = math.prod(self.extent(g) for g in self.outer_groups) if self.outer_groups else 1
        # inner mode: the last group splits into blocks of WIDE_VECTORS registers, tasks share them too
        self.block = WIDE_VECTORS * self.lanes
        self.blocks = -(-self.extent(self.kept_groups[-1]) // self.block) if self.mode == "inner" else 1
        self.outer = outer
        self.n_tasks = task_count(math.prod(self.x_shape) if self.x_shape else 1, outer * self.blocks, MIN_TASK)

    # ------------------------------------------------------------ axis groups
    def extent(self, g: tuple[int, ...]) -> int:
        return math.prod(self.x_shape[a] for a in g)

    def _groups(self, operands: list[Value]) -> list[tuple[int, ...]]:
        """Runs of adjacent axes of one class, collapsed where every tensor allows it."""
        a = self.ep.a
        x_side = path_values([a.anchor.inputs[0], *operands], a.members)
        runs: list[list[int]] = []
        for ax in range(self.rank):
            if runs and (runs[-1][0] in self.reduced) == (ax in self.reduced):
                runs[-1].append(ax)
            else:
                runs.append([ax])
        # Index-mapping ops (a Transpose in the prologue) need every index where it belongs.
        flat_ok = not has_injective(x_side, a.members)
        groups: list[tuple[int, ...]] = []
        for run in runs:
            if len(run) > 1 and flat_ok and self._run_ok(run, x_side):
                groups.append(tuple(run))
            else:
                groups.extend((ax,) for ax in run)
        return groups

    def _run_ok(self, run: list[int], x_side: list[Value]) -> bool:
        axes = range(run[0], run[-1] + 1)
        if not collapsible(x_side, self.x_shape, axes):
            return False
        mapped = [self.out_axis(ax) for ax in run]
        if any(m is None for m in mapped):
            return all(m is None for m in mapped)  # reduced away: only the x side matters
        if mapped != list(range(mapped[0], mapped[0] + len(mapped))):
            return False
        ep = self.ep
        for outs, shape in [(ep.direct, ep.shape)] + [([o], shape_of(o[0])) for o in ep.expanded]:
            if not outs:
                continue
            lead = len(shape) - len(ep.shape)
            if not collapsible(ep.epilogue_values(outs) + [ep.a.result], shape,
                               range(mapped[0] + lead, mapped[-1] + lead + 1)):
                return False
        return True

    # ------------------------------------------------------------------ loops
    def run(self, row_fn: Callable[["Row"], None]) -> None:
        """Emit the outer loops (this task's share) and call ``row_fn`` for each row."""
        b = self.b
        start, stop = task_range(b, self.tf.task, self.n_tasks, self.outer * self.blocks)
        with for_range(b, start, stop, name="outer") as flat:
            block = None
            if self.blocks > 1:
                block, flat = b.srem(flat, const_int(self.blocks)), b.sdiv(flat, const_int(self.blocks))
            vals: dict[tuple, ir.Value] = {}
            rem = flat
            for g in reversed(self.outer_groups):
                n = self.extent(g)
                vals[g] = b.srem(rem, const_int(n)) if g is not self.outer_groups[0] else rem
                rem = b.sdiv(rem, const_int(n))
            if self.mode == "inner":
                self._columns(row_fn, vals, block)
            else:
                row_fn(Row(self, vals, False, self.lanes))
        self.ep.forget()

    def _columns(self, row_fn: Callable[["Row"], None], vals: dict, block: Optional[ir.Value]) -> None:
        """``inner`` mode, one block of the last (kept) group: one chunk of WIDE_VECTORS registers
        (a wide IR vector LLVM splits: independent folds in flight, fewer passes down strided
        columns), or for the last, partial block, single registers then scalars."""
        b, ep = self.b, self.ep
        g = self.kept_groups[-1]
        n, width = self.extent(g), self.block
        whole = n // width
        rest = n - whole * width

        def wide() -> None:
            ep.set_lanes(width)
            col = b.mul(block, const_int(width)) if block is not None else const_int(0)
            row_fn(Row(self, {**vals, g: col}, True, width))
            ep.set_lanes(self.lanes)

        def partial() -> None:
            pos = whole * width
            full = pos + rest // self.lanes * self.lanes
            if full > pos:
                with for_range(b, pos, full, self.lanes, name="col") as col:
                    row_fn(Row(self, {**vals, g: col}, True, self.lanes))
                ep.forget()
            if full < n:
                with for_range(b, full, n, name="coltail") as col:
                    row_fn(Row(self, {**vals, g: col}, False, self.lanes))
                ep.forget()

        if not rest:
            wide()
        elif not whole:
            partial()
        else:
            with b.if_else(b.icmp_signed("<", block, const_int(whole))) as (then, otherwise):
                with then:
                    wide()
                    ep.forget()
                with otherwise:
                    partial()
                    ep.forget()
        ep.forget()

    def x_index(self, vals: dict) -> list[ir.Value]:
        idx: list[ir.Value] = []
        for g in self.groups:
            idx.extend(const_int(0) for _ in g[:-1])
            idx.append(vals.get(g) if g in vals else const_int(0))
        return idx

    def out_index(self, x_idx: list[ir.Value]) -> list[ir.Value]:
        out: list[Optional[ir.Value]] = [None] * len(self.ep.shape)
        for ax in range(self.rank):
            j = self.out_axis(ax)
            if j is not None:
                out[j] = x_idx[ax]
        return [v if v is not None else const_int(0) for v in out]


class Row:
    """One row: fixed kept indices (and, in ``inner`` mode, one vector of them along the last axis)."""

    def __init__(self, space: RowSpace, kept: dict, vector: bool, lanes: int) -> None:
        self.s, self.kept, self.vector = space, kept, vector
        self.b = space.b
        self.kb = space.kb
        self.lanes = lanes  # of this row's vectors (inner mode may use several registers' worth)

    @property
    def width(self) -> int:
        return self.lanes if self.vector else 1

    # ------------------------------------------------------------- folding
    def fold(self, stats: Sequence[Stat],
             contrib: Callable[[list, bool, ir.Value], Sequence[ir.Value]]) -> list[ir.Value]:
        """Fold ``contrib(idx, vector, pos)`` (one value per stat) over the reduced indices.

        ``pos`` is the position along the innermost reduced axis group (i64,
        a vector of positions in ``reduce`` mode).  Results are scalars, or
        vectors in ``inner`` mode.
        """
        s, b = self.s, self.b
        red = s.red_groups
        if not red:
            vals = contrib(s.x_index(self.kept), self.vector, const_int(0))
            return [combine(self.kb, b, st.kind, const_like(v.type, identity(st.kind, st.elem, st.signed)), v,
                            st.signed) for st, v in zip(stats, vals)]
        reduce_vec = s.mode == "reduce"
        inner = red[-1]
        n = s.extent(inner)
        step = s.lanes if reduce_vec else 1
        vec = reduce_vec or self.vector
        full = n // step * step
        # Several accumulators per stat, unless the row's vectors already span several registers.
        u = UNROLL if s.unroll and full >= 2 * UNROLL * step and self.lanes == s.lanes else 1
        main = full // (u * step) * (u * step)

        def vty(st: Stat) -> ir.Type:
            return ir.VectorType(st.elem, self.lanes) if vec else st.elem

        accs = [[Var(s.tf, vty(st)) for st in stats] for _ in range(u)]
        for group in accs:
            for st, var in zip(stats, group):
                var.set(const_like(vty(st), identity(st.kind, st.elem, st.signed)))
        tails = [Var(s.tf, st.elem) for st in stats] if reduce_vec and full < n else []
        for st, var in zip(stats, tails):
            var.set(const_like(st.elem, identity(st.kind, st.elem, st.signed)))

        def add(group: list[Var], i: ir.Value, vector: bool, vals_of: dict) -> None:
            pos = self._pos(i, vector and reduce_vec)
            vals = contrib(s.x_index({**self.kept, **vals_of, inner: i}), vector, pos)
            for st, var, v in zip(stats, group, vals):
                var.set(combine(self.kb, b, st.kind, var.get(), v, st.signed))

        def innermost(vals_of: dict) -> None:
            if main:
                with for_range(b, 0, main, u * step, name="r") as i:
                    for k in range(u):
                        add(accs[k], b.add(i, const_int(k * step)) if k else i, vec, vals_of)
                s.ep.forget()
            if main < full:
                with for_range(b, main, full, step, name="rr") as i:
                    add(accs[0], i, vec, vals_of)
                s.ep.forget()
            if full < n:
                with for_range(b, full, n, name="rt") as i:
                    add(tails, i, False, vals_of)
                s.ep.forget()

        self._nest(red[:-1], {}, innermost)
        results = []
        for k, st in enumerate(stats):
            v = accs[0][k].get()
            for j in range(1, u):
                v = combine(self.kb, b, st.kind, v, accs[j][k].get(), st.signed)
            if reduce_vec:
                v = horizontal(self.kb, b, st.kind, v, st.signed)
                if tails:
                    v = combine(self.kb, b, st.kind, v, tails[k].get(), st.signed)
            results.append(v)
        return results

    def each(self, body: Callable[[list, bool, ir.Value], None], reverse: bool = False,
             vectorize: bool = True) -> None:
        """Call ``body(idx, vector, pos)`` for every reduced index (vectors in ``reduce`` mode)."""
        s, b = self.s, self.b
        red = s.red_groups
        if not red:
            body(s.x_index(self.kept), self.vector, const_int(0))
            return
        reduce_vec = s.mode == "reduce" and vectorize and not reverse
        inner = red[-1]
        n = s.extent(inner)
        step = s.lanes if reduce_vec else 1
        full = n // step * step

        def innermost(vals_of: dict) -> None:
            def one(i: ir.Value, vector: bool) -> None:
                body(s.x_index({**self.kept, **vals_of, inner: i}), vector, self._pos(i, vector and reduce_vec))
            if reverse:
                with for_range(b, const_int(n - 1), const_int(-1), -1, name="w") as i:
                    one(i, self.vector)
                s.ep.forget()
                return
            if full:
                with for_range(b, 0, full, step, name="w") as i:
                    one(i, reduce_vec or self.vector)
                s.ep.forget()
            if full < n:
                with for_range(b, full, n, name="wt") as i:
                    one(i, False)
                s.ep.forget()

        self._nest(red[:-1], {}, innermost, reverse)

    def _nest(self, groups: list, vals: dict, inner: Callable[[dict], None], reverse: bool = False) -> None:
        if not groups:
            inner(vals)
            return
        g, rest = groups[0], groups[1:]
        n = self.s.extent(g)
        lo, hi, st = (n - 1, -1, -1) if reverse else (0, n, 1)
        with for_range(self.b, const_int(lo), const_int(hi), st, name="red") as i:
            self._nest(rest, {**vals, g: i}, inner, reverse)
        self.s.ep.forget()

    def _pos(self, i: ir.Value, vector: bool) -> ir.Value:
        if not vector:
            return i
        iota = ir.Constant(ir.VectorType(I64, self.lanes), list(range(self.lanes)))
        return self.b.add(splat(self.b, i, self.lanes), iota)

    # ------------------------------------------------------------- indices
    def x_index(self) -> list[ir.Value]:
        return self.s.x_index(self.kept)

    def input(self, idx: list, vector: bool, k: int = 0) -> ir.Value:
        return self.s.ep.input(idx, vector, k)

    def store(self, x_idx: list, value: ir.Value, vector: bool) -> None:
        """Store the anchor's ``value`` at the output index matching ``x_idx`` (epilogue included)."""
        s = self.s
        idx = s.out_index(x_idx)
        s.ep.store(idx, value, vector, base=idx[-1] if idx else None, vector_out=s.vector_out)
