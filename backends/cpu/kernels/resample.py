"""Resize on the cpu target: per-axis tap tables built at compile time, blended in the kernel.

Resize is separable, and with static shapes everything but the data is
known when the kernel is generated: for each resized axis and each output
position, which input positions it reads and with what weight.  Those come
from the reference's own helpers (``ir.ops.resize``: ``source_coords``,
nearest rounding, the linear/cubic/antialias weight matrix), so every
coordinate_transformation_mode, nearest_mode, cubic_coeff_a,
exclude_outside, antialias and tf_crop_and_resize's extrapolation agree with
the reference by construction.  The kernel holds them as constant tables
(``T`` taps per output position, padded with zero weights) and computes

    y[o] = sum over taps t_a of each resized axis a:  prod_a w_a[o_a, t_a] * x[i_a[o_a, t_a]]

Nearest mode is one tap with weight 1: a pure gather, for any element type.
Resize registers as an index map (``evaluator.index_map``), so the
elementwise kernel runs it: vectorized along the last axis (table lookups
and input reads become gathers when that axis is resized), split into tasks
over rows.  Resize stays OPAQUE for fusion (its registry kind), so it is
always a kernel of its own.
"""

from __future__ import annotations

import hashlib
import weakref
from dataclasses import dataclass
from typing import Optional

import llvmlite.ir as ir
import numpy as np

from ir.dtypes import DType
from ir.graph import Node
from ir.ops.resize import _nearest_index, _present, interpolation_matrix, resize_plan, source_coords
from ir.shapes import normalize_axes

from ..codegen import F32, F64, I8, I64, KernelBuilder, const_int, load_vector, splat
from ..evaluator import Evaluator, index_map, shape_of
from ..expr import compute_type, constant

_FLOATS = {DType.F32, DType.F64, DType.F16}


# ------------------------------------------------------------------ planning
@dataclass
class AxisTaps:
    """One resized axis: ``index[o, t]`` and ``weight[o, t]`` (None: one tap of weight 1)."""

    index: np.ndarray                     # (out, taps) int64
    weight: Optional[np.ndarray]          # (out, taps) float64, or None for nearest
    outside: Optional[np.ndarray] = None  # (out,) bool: tf_crop_and_resize extrapolates there


def _const(node: Node, i: int) -> Optional[np.ndarray]:
    v = node.input(i)
    return None if v is None else (None if v.const is None else np.asarray(v.const))


def resize_taps(node: Node) -> dict[int, AxisTaps]:
    """Axis -> taps for every axis the Resize changes (the reference's plan, axis by axis)."""
    x_shape = shape_of(node.inputs[0])
    rank = len(x_shape)
    axes = normalize_axes(node.attr("axes"), rank) if node.attr("axes") else list(range(rank))
    roi, scales, sizes = _const(node, 1), _const(node, 2), _const(node, 3)
    use_scales = _present(scales)
    out, factors = resize_plan(x_shape, axes, scales if use_scales else None, None if use_scales else sizes,
                               node.attr("keep_aspect_ratio_policy"))
    roi_pairs = None
    if _present(roi):
        r = roi.astype(np.float64).reshape(-1)
        k = len(r) // 2
        roi_pairs = dict(zip(axes if k == len(axes) else range(rank), zip(r[:k], r[k:])))
    cmode, mode = node.attr("coordinate_transformation_mode"), node.attr("mode")
    taps: dict[int, AxisTaps] = {}
    for a in axes:
        n_in, n_out = x_shape[a], int(out[a])
        if n_out == 0 or n_in == 0:
            continue  # an empty output: nothing is read
        scale = float(factors[a])
        pair = None if roi_pairs is None else roi_pairs.get(a, (0.0, 1.0))
        if n_out == n_in and scale == 1.0 and (cmode != "tf_crop_and_resize" or pair == (0.0, 1.0)):
            continue
        coords, mask = source_coords(cmode, n_out, n_in, scale, pair)
        if mode == "nearest":
            index = _nearest_index(coords, node.attr("nearest_mode"), scale, n_in).astype(np.int64)[:, None]
            taps[a] = AxisTaps(index, None, mask)
            continue
        m = interpolation_matrix(coords, n_in, scale, mode, node.attr("cubic_coeff_a"),
                                 bool(node.attr("antialias")), bool(node.attr("exclude_outside")))
        width = max(1, int((m != 0).sum(axis=1).max()))
        index = np.zeros((n_out, width), np.int64)
        weight = np.zeros((n_out, width))
        for o in range(n_out):
            cols = np.nonzero(m[o])[0]
            index[o, :len(cols)] = cols
            weight[o, :len(cols)] = m[o, cols]
        taps[a] = AxisTaps(index, weight, mask)
    return taps


MAX_TAP_PRODUCT = 4096  # input reads per output element; beyond that the unrolled code gets too large


def resize_support(node: Node) -> Optional[str]:
    for i, what in ((1, "roi"), (2, "scales"), (3, "sizes")):
        v = node.input(i)
        if v is not None and v.const is None:
            return f"Resize with a run-time {what} (specialize first)"
    dtype = node.inputs[0].type.dtype
    if node.attr("mode") != "nearest" and dtype not in _FLOATS:
        return f"Resize {node.attr('mode')} on {dtype.short} is not supported by the cpu target (float types only)"
    if not all(getattr(v.type, "is_static", False) for v in (node.inputs[0], node.outputs[0])):
        return "the cpu target needs static shapes here"
    reads = int(np.prod([t.index.shape[1] for t in resize_taps(node).values()] or [1]))
    if reads > MAX_TAP_PRODUCT:
        return f"Resize reading {reads} input elements per output element (at most {MAX_TAP_PRODUCT})"
    return None


# ------------------------------------------------------------ constant tables
# Per kernel module: (element type, content digest) -> its global, so equal tables are emitted once.
_TABLES: "weakref.WeakKeyDictionary[KernelBuilder, dict]" = weakref.WeakKeyDictionary()


def constant_table(kb: KernelBuilder, values: np.ndarray, elem: ir.Type, hint: str) -> ir.GlobalVariable:
    """A read-only global array of ``values`` in the kernel's module (one per distinct content)."""
    tables = _TABLES.setdefault(kb, {})
    flat = np.ascontiguousarray(values).reshape(-1)
    key = (str(elem), hashlib.sha256(flat.tobytes()).hexdigest())
    g = tables.get(key)
    if g is None:
        ty = ir.ArrayType(elem, max(1, flat.size))
        items = [x.item() for x in flat] if flat.size else [0]
        g = ir.GlobalVariable(kb.module, ty, name=kb.unique(hint))
        g.initializer = ir.Constant(ty, [int(x) if isinstance(elem, ir.IntType) else float(x) for x in items])
        g.global_constant = True
        g.linkage = "internal"
        tables[key] = g
    return g


def table_at(ev: Evaluator, table: ir.GlobalVariable, pos: ir.Value) -> ir.Value:
    """``table[pos]`` for a scalar position, or one element per lane for a lane vector of positions."""
    b = ev.b
    base = b.gep(table, [const_int(0), const_int(0)])
    if not ev.ix.is_vector(pos):
        return b.load(b.gep(base, [pos]))
    run = ev.ix.affine(pos)
    if run is not None and run[1] == 0:
        return splat(b, b.load(b.gep(base, [run[0]])), ev.lanes)
    if run is not None and run[1] == 1:
        return load_vector(b, base, run[0], ev.lanes)
    return ev._gather(base, pos)


def _like(b: ir.IRBuilder, v: ir.Value, vector: bool, lanes: int) -> ir.Value:
    return splat(b, v, lanes) if vector and not isinstance(v.type, ir.VectorType) else v


# -------------------------------------------------------------- index map
@index_map("Resize", check=resize_support)
def _(ev: Evaluator, node: Node, idx: list, which: int) -> ir.Value:
    b, ix, kb = ev.b, ev.ix, ev.kb
    x = node.inputs[0]
    taps = resize_taps(node)
    ct = compute_type(x.type.dtype)
    wty = F64 if ct == F64 else F32
    # Per resized axis: the list of (input index, weight or None) of each tap at this output index.
    per_axis: dict[int, list[tuple[ir.Value, Optional[ir.Value]]]] = {}
    outside = None
    for a, t in sorted(taps.items()):
        width = t.index.shape[1]
        pos = ix.mul(idx[a], width)
        itab = constant_table(kb, t.index, I64, f"resize_idx{a}")
        wtab = constant_table(kb, t.weight, wty, f"resize_w{a}") if t.weight is not None else None
        per_axis[a] = [(table_at(ev, itab, ix.add(pos, k)),
                        table_at(ev, wtab, ix.add(pos, k)) if wtab is not None else None) for k in range(width)]
        if t.outside is not None and t.outside.any():
            flag = table_at(ev, constant_table(kb, t.outside.astype(np.int8), I8, f"resize_out{a}"), idx[a])
            hit = b.icmp_unsigned("!=", flag, constant(flag, 0))
            if outside is None:
                outside = hit
            else:
                wide = isinstance(outside.type, ir.VectorType) or isinstance(hit.type, ir.VectorType)
                outside = b.or_(_like(b, outside, wide, ev.lanes), _like(b, hit, wide, ev.lanes))
    vector = any(ix.is_vector(i) for i in idx)
    total = None
    combos: list[tuple[list, Optional[ir.Value]]] = [(list(idx), None)]
    for a in sorted(per_axis):
        nxt = []
        for sub, w in combos:
            for i_a, w_a in per_axis[a]:
                s = list(sub)
                s[a] = i_a
                if w_a is None:
                    nw = w
                elif w is None:
                    nw = w_a
                else:
                    nw = b.fmul(_like(b, w, vector, ev.lanes), _like(b, w_a, vector, ev.lanes))
                nxt.append((s, nw))
        combos = nxt
    for sub, w in combos:
        v = ev._at(x, sub)
        if w is not None:
            if wty != ct:
                w = b.fpext(w, ir.VectorType(ct, w.type.count) if isinstance(w.type, ir.VectorType) else ct)
            vector_now = vector or isinstance(v.type, ir.VectorType) or isinstance(w.type, ir.VectorType)
            v = b.fmul(_like(b, v, vector_now, ev.lanes), _like(b, w, vector_now, ev.lanes))
        if total is None:
            total = v
        else:
            vector_now = isinstance(total.type, ir.VectorType) or isinstance(v.type, ir.VectorType)
            total = b.fadd(_like(b, total, vector_now, ev.lanes), _like(b, v, vector_now, ev.lanes))
    if outside is not None:
        fill = node.attr("extrapolation_value")
        vector_now = isinstance(total.type, ir.VectorType) or isinstance(outside.type, ir.VectorType)
        total = _like(b, total, vector_now, ev.lanes)
        outside = _like(b, outside, vector_now, ev.lanes)
        total = b.select(outside, constant(total, fill), total)
    return total


__all__ = ["AxisTaps", "constant_table", "resize_support", "resize_taps", "table_at"]
