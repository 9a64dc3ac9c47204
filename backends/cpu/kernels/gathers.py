"""Index maps of gather-like ops: GatherND, ReverseSequence, CenterCropPad, Compress.

Each output element reads one input element whose index follows from the
output's (through data for GatherND's indices and ReverseSequence's lengths,
through a compile-time table for Compress's constant condition), so the
evaluator computes them like Transpose or Gather (``evaluator.index_map``):
inside any elementwise kernel, vectorized along the last axis with gathers
where the mapped index is not a contiguous run.  Data-dependent indices are
clamped into the input (out-of-range values are an error in the reference;
here they must not read outside the buffer).
"""

from __future__ import annotations

from typing import Optional

import llvmlite.ir as ir
import numpy as np

from ir.dtypes import DType
from ir.graph import Node

from ..codegen import I64
from ..evaluator import Evaluator, _select, _to_i64, index_map, shape_of
from ..expr import constant
from .resample import constant_table, table_at

Index = list


def _fix_index(ev: Evaluator, raw: ir.Value, dim: int) -> ir.Value:
    """A data index as i64, negative ones counted from the end, clamped into [0, dim)."""
    ix = ev.ix
    raw = _to_i64(ev.b, raw)
    fixed = ix.select(ix.cmp("<", raw, 0), ix.add(raw, dim), raw)
    return ix.clamp(fixed, 0, max(dim - 1, 0))


# ------------------------------------------------------------------ GatherND
def _gather_nd_check(node: Node) -> Optional[str]:
    if node.inputs[1].type.dtype not in (DType.I32, DType.I64):
        return "GatherND indices must be int32 or int64"
    if not getattr(node.inputs[1].type, "is_static", False):
        return "the cpu target needs static shapes here"
    return None


@index_map("GatherND", check=_gather_nd_check)
def _(ev: Evaluator, node: Node, idx: Index, which: int) -> ir.Value:
    data, indices = node.inputs[0], node.inputs[1]
    ds, qs = shape_of(data), shape_of(indices)
    bd = int(node.attr("batch_dims") or 0)
    k = qs[-1]
    lead = list(idx[:len(qs) - 1])  # the position in indices (batch dims first)
    src = list(idx[:bd])
    for j in range(k):
        raw = ev._at(indices, lead + [_const(j)])
        src.append(_fix_index(ev, raw, ds[bd + j]))
    src += list(idx[len(qs) - 1:])
    return ev._at(data, src)


def _const(j: int) -> ir.Value:
    return ir.Constant(I64, j)


# ----------------------------------------------------------- ReverseSequence
@index_map("ReverseSequence")
def _(ev: Evaluator, node: Node, idx: Index, which: int) -> ir.Value:
    ix = ev.ix
    x, lens = node.inputs[0], node.inputs[1]
    steps = shape_of(x)[node.attr("time_axis")]
    b_axis, t_axis = node.attr("batch_axis"), node.attr("time_axis")
    n = ix.clamp(_to_i64(ev.b, ev._at(lens, [idx[b_axis]])), 0, steps)
    t = idx[t_axis]
    src = list(idx)
    src[t_axis] = ix.select(ix.cmp("<", t, n), ix.sub(ix.sub(n, 1), t), t)
    return ev._at(x, src)


# ------------------------------------------------------------- CenterCropPad
def _shape_check(node: Node) -> Optional[str]:
    return None if node.inputs[1].const is not None else "CenterCropPad with a run-time shape (specialize first)"


@index_map("CenterCropPad", check=_shape_check)
def _(ev: Evaluator, node: Node, idx: Index, which: int) -> ir.Value:
    ix = ev.ix
    x = node.inputs[0]
    xs = shape_of(x)
    rank = len(xs)
    axes = node.attr("axes") or list(range(rank))
    sizes = [int(s) for s in np.asarray(node.inputs[1].const).reshape(-1)]
    src, inside = list(idx), None
    for a, size in zip((a % rank for a in axes), sizes):
        dim = xs[a]
        if size < dim:
            src[a] = ix.add(idx[a], (dim - size) // 2)
        elif size > dim:
            i = ix.sub(idx[a], (size - dim) // 2)
            ok = ix.and_(ix.cmp(">=", i, 0), ix.cmp("<", i, dim))
            inside = ok if inside is None else ix.and_(inside, ok)
            src[a] = ix.clamp(i, 0, dim - 1)
    val = ev._at(x, src)
    if inside is None:
        return val
    return _select(ev.b, inside, val, constant(val, 0), ev.lanes)


# ------------------------------------------------------------------ Compress
def _compress_check(node: Node) -> Optional[str]:
    return None if node.inputs[1].const is not None else "Compress with a run-time condition (specialize first)"


@index_map("Compress", check=_compress_check)
def _(ev: Evaluator, node: Node, idx: Index, which: int) -> ir.Value:
    x = node.inputs[0]
    xs = shape_of(x)
    axis = node.attr("axis")
    cond = np.asarray(node.inputs[1].const, bool).reshape(-1)
    if axis is None:
        kept = np.nonzero(cond[:int(np.prod(xs))])[0].astype(np.int64)
        flat = table_at(ev, constant_table(ev.kb, kept, I64, "compress_kept"), idx[0])
        return ev._at(x, ev._delinearize(flat, xs))
    axis %= len(xs)
    kept = np.nonzero(cond[:xs[axis]])[0].astype(np.int64)
    src = list(idx)
    src[axis] = table_at(ev, constant_table(ev.kb, kept, I64, "compress_kept"), idx[axis])
    return ev._at(x, src)
