"""GridSample and AffineGrid on the cpu target, as index maps.

GridSample: each output element ``y[n, c, *p]`` reads the normalized
position ``grid[n, *p, :]``, maps it to input coordinates per spatial axis
(align_corners or not), pads it (zeros, border, reflection) and blends the
nearest / linear / cubic taps, exactly the steps of the reference
(``ir.ops.resize._grid_taps``), in float64.  As an index map
(``evaluator.index_map``) it runs in the elementwise kernel: vectorized
along the output's last axis, with gathers for the grid and the taps.

AffineGrid: ``grid[n, *p, j] = sum_k theta[n, j, k] * base_k(p)`` where the
base coordinates of pixel centres (or corners) along each axis and the
homogeneous 1 are compile-time tables.
"""

from __future__ import annotations

from typing import Optional

import llvmlite.ir as ir
import numpy as np

from ir.dtypes import DType
from ir.graph import Node
from ir.ops.resize import _base_coords

from ..codegen import F64, I64, match_lanes
from ..evaluator import Evaluator, index_map, shape_of
from ..expr import compute_type, constant
from .resample import constant_table, table_at

_FLOATS = {DType.F32, DType.F64, DType.F16}


class _F:
    """Float64 arithmetic on scalars or lane vectors alike."""

    def __init__(self, ev: Evaluator) -> None:
        self.ev, self.b, self.kb = ev, ev.b, ev.kb

    def f64(self, v: ir.Value) -> ir.Value:
        ty = v.type.element if isinstance(v.type, ir.VectorType) else v.type
        if ty == F64:
            return v
        return self.b.fpext(v, ir.VectorType(F64, v.type.count) if isinstance(v.type, ir.VectorType) else F64)

    def c(self, like: ir.Value, x: float) -> ir.Value:
        return constant(like, x)

    def call(self, name: str, v: ir.Value) -> ir.Value:
        return self.b.call(self.kb.intrinsic(name, v.type), [v])

    def sel(self, cond: ir.Value, x: ir.Value, y: ir.Value) -> ir.Value:
        return self.b.select(cond, x, y)

    def lt(self, x, y):
        return self.b.fcmp_ordered("<", x, y)

    def gt(self, x, y):
        return self.b.fcmp_ordered(">", x, y)

    def ge(self, x, y):
        return self.b.fcmp_ordered(">=", x, y)

    def clamp(self, x: ir.Value, lo: float, hi: float) -> ir.Value:
        x = self.sel(self.lt(x, self.c(x, lo)), self.c(x, lo), x)
        return self.sel(self.gt(x, self.c(x, hi)), self.c(x, hi), x)

    def reflect(self, x: ir.Value, lo: float, hi: float) -> ir.Value:
        """Fold ``x`` into [lo, hi] by reflecting at the borders (the reference's ``_reflect``)."""
        b, c = self.b, self.c
        span = hi - lo
        if span <= 0:
            return c(x, lo)
        below, above = self.lt(x, c(x, lo)), self.gt(x, c(x, hi))
        dist = self.sel(below, b.fsub(c(x, lo), x), self.sel(above, b.fsub(x, c(x, hi)), c(x, 0.0)))
        flips = self.call("floor", b.fdiv(dist, c(x, span)))
        rest = b.fsub(dist, b.fmul(flips, c(x, span)))
        half = b.fmul(flips, c(x, 0.5))
        even = b.fcmp_ordered("==", self.call("floor", half), half)
        out = self.sel(below, self.sel(even, b.fadd(c(x, lo), rest), b.fsub(c(x, hi), rest)), x)
        return self.sel(above, self.sel(even, b.fsub(c(x, hi), rest), b.fadd(c(x, lo), rest)), out)

    def cubic(self, t: ir.Value, a: float) -> ir.Value:
        b, c = self.b, self.c
        t = self.call("fabs", t)
        near = b.fadd(b.fmul(b.fmul(b.fsub(b.fmul(c(t, a + 2), t), c(t, a + 3)), t), t), c(t, 1.0))
        far = b.fsub(b.fmul(b.fadd(b.fmul(b.fsub(b.fmul(c(t, a), t), c(t, 5 * a)), t), c(t, 8 * a)), t),
                     c(t, 4 * a))
        le1 = b.fcmp_ordered("<=", t, c(t, 1.0))
        lt2 = self.lt(t, c(t, 2.0))
        return self.sel(le1, near, self.sel(lt2, far, c(t, 0.0)))


def _grid_support(node: Node) -> Optional[str]:
    if node.inputs[0].type.dtype not in _FLOATS or node.inputs[1].type.dtype not in _FLOATS:
        return "GridSample on the cpu target takes float32, float64 or float16 X and grid"
    if not getattr(node.inputs[1].type, "is_static", False):
        return "the cpu target needs static shapes here"
    return None


def _taps(f: _F, coord: ir.Value, size: int, mode: str, padding: str, align: bool):
    """(index as i64, weight) of each tap along one axis, as the reference's ``_grid_taps``."""
    b, c = f.b, f.c
    lo, hi = (0.0, size - 1.0) if align else (-0.5, size - 0.5)
    if mode == "nearest":
        coord = f.call("roundeven", coord)
    if padding == "border" and mode != "cubic":
        coord = f.clamp(coord, 0.0, size - 1.0)
    elif padding == "reflection":
        coord = f.reflect(coord, lo, hi)
    if mode == "nearest":
        taps = [(f.call("trunc", coord), None)]
    else:
        base = f.call("floor", coord)
        frac = b.fsub(coord, base)
        if mode == "linear":
            taps = [(base, b.fsub(c(frac, 1.0), frac)), (b.fadd(base, c(base, 1.0)), frac)]
        else:
            taps = [(b.fadd(base, c(base, float(k))), f.cubic(b.fsub(frac, c(frac, float(k))), -0.75))
                    for k in (-1, 0, 1, 2)]
    out = []
    for idx, w in taps:
        if padding == "zeros":
            inside = b.and_(f.ge(idx, c(idx, 0.0)), f.lt(idx, c(idx, float(size))))
            w = f.sel(inside, w if w is not None else c(idx, 1.0), c(idx, 0.0))
            idx = f.clamp(idx, 0.0, size - 1.0)
        elif padding == "border":
            idx = f.clamp(idx, 0.0, size - 1.0)
        else:
            idx = f.clamp(f.call("trunc", f.reflect(idx, lo, hi)), 0.0, size - 1.0)
        ity = ir.VectorType(I64, idx.type.count) if isinstance(idx.type, ir.VectorType) else I64
        out.append((b.fptosi(idx, ity), w))
    return out


@index_map("GridSample", check=_grid_support)
def _(ev: Evaluator, node: Node, idx: list, which: int) -> ir.Value:
    f, b = _F(ev), ev.b
    x, grid = node.inputs
    sizes = shape_of(x)[2:]
    d = len(sizes)
    align = bool(node.attr("align_corners"))
    mode, padding = node.attr("mode"), node.attr("padding_mode")
    n, c, out_pos = idx[0], idx[1], list(idx[2:])
    per_axis = []
    for i, size in enumerate(sizes):
        norm = f.f64(ev._at(grid, [n, *out_pos, ir.Constant(I64, d - 1 - i)]))  # grid is ordered x, y, z
        one = f.c(norm, 1.0)
        if align:
            coord = b.fmul(b.fmul(b.fadd(norm, one), f.c(norm, 0.5)), f.c(norm, size - 1.0))
        else:
            coord = b.fmul(b.fsub(b.fmul(b.fadd(norm, one), f.c(norm, float(size))), one), f.c(norm, 0.5))
        per_axis.append(_taps(f, coord, size, mode, padding, align))
    combos = [([], None)]
    for taps in per_axis:
        combos = [(sub + [i], w if tw is None else (tw if w is None else b.fmul(w, tw)))
                  for sub, w in combos for i, tw in taps]
    total = None
    for sub, w in combos:
        v = f.f64(ev._at(x, [n, c, *sub]))
        if w is not None:
            v, w = match_lanes(b, v, w)
            v = b.fmul(v, w)
        if total is not None:
            total, v = match_lanes(b, total, v)
        total = v if total is None else b.fadd(total, v)
    return _to(b, total, compute_type(x.type.dtype))


# ---------------------------------------------------------------- AffineGrid
def _affine_support(node: Node) -> Optional[str]:
    if node.inputs[0].type.dtype not in _FLOATS:
        return "AffineGrid on the cpu target takes float32, float64 or float16 theta"
    if node.inputs[1].const is None:
        return "AffineGrid with a run-time size (specialize first)"
    return None


@index_map("AffineGrid", check=_affine_support)
def _(ev: Evaluator, node: Node, idx: list, which: int) -> ir.Value:
    """grid[n, *p, j] = sum_k theta[n, j, k] * homo_k(p), homo = (x, y, (z), 1), in float64."""
    f, b = _F(ev), ev.b
    theta = node.inputs[0]
    size = [int(v) for v in np.asarray(node.inputs[1].const).reshape(-1)]
    spatial = size[2:]
    d = len(spatial)
    align = bool(node.attr("align_corners"))
    n, p, j = idx[0], list(idx[1:-1]), idx[-1]
    total = None
    for k in range(d + 1):
        term = f.f64(ev._at(theta, [n, j, ir.Constant(I64, k)]))
        if k < d:  # column k multiplies the coordinate along spatial axis d-1-k (x is the last axis)
            axis = d - 1 - k
            table = constant_table(ev.kb, _base_coords(spatial[axis], align).astype(np.float64), F64,
                                   f"affine_base{axis}")
            term, coord = match_lanes(b, term, table_at(ev, table, p[axis]))
            term = b.fmul(term, coord)
        if total is not None:
            total, term = match_lanes(b, total, term)
        total = term if total is None else b.fadd(total, term)
    return _to(b, total, compute_type(theta.type.dtype))



def _to(b: ir.IRBuilder, v: ir.Value, ct: ir.Type) -> ir.Value:
    """A float64 result in the compute type ``ct``."""
    if ct == F64:
        return v
    return b.fptrunc(v, ir.VectorType(ct, v.type.count) if isinstance(v.type, ir.VectorType) else ct)
