"""TE rules for image geometry: Resize, GridSample, AffineGrid.

Resize is the reference's arithmetic written as index expressions
(``ir.ops.resize``): each resized axis maps an output position to a float32
source coordinate by the same formula, then reads one tap (nearest) or
``T`` taps (linear, cubic, antialiased) whose weights come from the same
kernels; the taps of all resized axes form the kernel's reduction, so a
bilinear 2-D resize is one 2 x 2 weighted sum per output.  Sizes, scales
and roi are compile-time constants, so every axis's formula is fixed when
the kernel is generated.  GridSample is TOPI's; AffineGrid is ours (TOPI's
is 2-D only).
"""

from __future__ import annotations

import math
from typing import Any, Optional

import numpy as np
from tvm import te, tirx, topi

from ir.graph import Node
from ir.ops.resize import _present, resize_plan
from ir.shapes import normalize_axes

from .rules import const_array, rule, static_shape, tvm_dtype

Expr = Any
F32, F64 = "float32", "float64"


def _f(v: float, dtype: str = F32) -> Expr:
    return tirx.const(v, dtype)


def _coord(mode: str, o: Expr, n_in: int, n_out: int, scale: float, roi: Optional[tuple]) -> Expr:
    """``source_coords`` of ``ir.ops.resize`` for one output position, in float32."""
    y = o.astype(F32)
    s = _f(float(np.float32(scale)))
    if mode == "half_pixel":
        return (y + _f(0.5)) / s - _f(0.5)
    if mode == "half_pixel_symmetric":
        f32 = np.float32
        offset = float(f32(n_in) / f32(2) * (f32(1) - f32(n_out) / (f32(scale) * f32(n_in))))
        return _f(offset) + (y + _f(0.5)) / s - _f(0.5)
    if mode == "pytorch_half_pixel":
        return (y + _f(0.5)) / s - _f(0.5) if n_out > 1 else _f(0.0)
    if mode == "align_corners":
        return y * _f(n_in - 1) / _f(n_out - 1) if n_out > 1 else _f(0.0)
    if mode == "asymmetric":
        return y / s
    if mode == "tf_half_pixel_for_nn":
        return (y + _f(0.5)) / s
    f32 = np.float32
    start, end = f32(roi[0]), f32(roi[1])
    if n_out > 1:
        return (_f(float(start)) * _f(n_in - 1) + y * _f(float(end - start)) * _f(n_in - 1) / _f(n_out - 1))
    return _f(float(f32(0.5) * (start + end) * f32(n_in - 1)))


def _nearest(x: Expr, mode: str, scale: float, n_in: int) -> Expr:
    if mode == "simple":
        mode = "ceil" if scale < 1 else "floor"
    if mode == "round_prefer_floor":
        i = tirx.ceil(x - _f(0.5))
    elif mode == "round_prefer_ceil":
        i = tirx.floor(x + _f(0.5))
    elif mode == "floor":
        i = tirx.floor(x)
    else:
        i = tirx.ceil(x)
    return tirx.min(tirx.max(i, _f(0.0)), _f(n_in - 1)).astype("int32")


def _kernel(t: Expr, mode: str, a: float) -> Expr:
    t = tirx.abs(t)
    if mode == "linear":
        return tirx.max(_f(0.0, F64), _f(1.0, F64) - t)
    a_ = _f(a, F64)
    near = ((a_ + 2) * t - (a_ + 3)) * t * t + 1
    far = ((a_ * t - 5 * a_) * t + 8 * a_) * t - 4 * a_
    return tirx.Select(t <= 1, near, tirx.Select(t < 2, far, _f(0.0, F64)))


class _Axis:
    """One resized axis: its coordinate, taps and weights as expressions of the output index."""

    def __init__(self, node: Node, axis: int, n_in: int, n_out: int, scale: float, roi) -> None:
        self.axis, self.n_in, self.n_out, self.scale, self.roi = axis, n_in, n_out, scale, roi
        self.cmode = node.attr("coordinate_transformation_mode") or "half_pixel"
        self.mode = node.attr("mode") or "nearest"
        self.nearest_mode = node.attr("nearest_mode") or "round_prefer_floor"
        self.cubic_a = float(node.attr("cubic_coeff_a") if node.attr("cubic_coeff_a") is not None else -0.75)
        self.antialias = bool(node.attr("antialias") or 0)
        self.exclude = bool(node.attr("exclude_outside") or 0)
        support = 1 if self.mode == "linear" else 2
        self.stretch = min(scale, 1.0) if self.antialias else 1.0
        self.start = int(math.floor(-support / self.stretch)) + 1 if self.antialias else 1 - support
        self.taps = 2 - 2 * self.start

    def coord(self, o: Expr) -> Expr:
        return _coord(self.cmode, o, self.n_in, self.n_out, self.scale, self.roi)

    def outside(self, o: Expr) -> Optional[Expr]:
        if self.cmode != "tf_crop_and_resize":
            return None
        x = self.coord(o)
        return tirx.any(x < _f(0.0), x > _f(self.n_in - 1))

    def _base_ratio(self, o: Expr) -> tuple[Expr, Expr]:
        x = self.coord(o)
        fl = tirx.floor(x)
        exact = x == fl
        ratio = tirx.Select(exact, _f(1.0, F64), (x - fl).astype(F64))
        base = tirx.Select(exact, fl - _f(1.0), fl).astype("int32")
        return base, ratio

    def _raw(self, ratio: Expr, base: Expr, i: Expr) -> Expr:
        t = (i.astype(F64) - ratio) * _f(self.stretch, F64)
        w = _kernel(t, self.mode, self.cubic_a)
        if self.exclude:
            tap = base + i
            w = tirx.Select(tirx.any(tap < 0, tap >= self.n_in), _f(0.0, F64), w)
        return w

    def tap_weight(self, o: Expr, r: Expr) -> tuple[Expr, Expr]:
        """(input index, weight) of tap ``r`` (0-based) of output ``o``."""
        base, ratio = self._base_ratio(o)
        i = r + self.start
        w = self._raw(ratio, base, i)
        if self.antialias or self.exclude:
            total = sum((self._raw(ratio, base, tirx.const(k, "int32")) for k in range(self.start, 2 - self.start)),
                        _f(0.0, F64))
            w = w / tirx.Select(total == _f(0.0, F64), _f(1.0, F64), total)
        idx = tirx.min(tirx.max(base + i, 0), self.n_in - 1)
        return idx, w


def _resize_check(node: Node) -> Optional[str]:
    for i in (1, 2, 3):
        v = node.input(i)
        if v is not None and v.const is None:
            return f"Resize input {i} must be a constant (known when compiling)"
    return None


@rule("Resize", check=_resize_check, const_inputs=(1, 2, 3))
def _resize(node: Node, xs: list) -> list:
    x = xs[0]
    in_shape = [int(d) for d in x.shape]
    rank = len(in_shape)
    out_shape = static_shape(node.outputs[0])
    axes = normalize_axes(node.attr("axes"), rank) if node.attr("axes") else list(range(rank))
    roi, scales, sizes = (const_array(node.input(i)) for i in (1, 2, 3))
    use_scales = _present(scales)
    _, factors = resize_plan(in_shape, axes, scales if use_scales else None,
                             None if use_scales else sizes, node.attr("keep_aspect_ratio_policy") or "stretch")
    roi_pairs = None
    if _present(roi):
        r = roi.astype(np.float64).reshape(-1)
        k = len(r) // 2
        roi_pairs = dict(zip(axes if k == len(axes) else range(rank), zip(r[:k], r[k:])))
    cmode = node.attr("coordinate_transformation_mode") or "half_pixel"
    resized: list[_Axis] = []
    for a in axes:
        n_in, n_out = in_shape[a], out_shape[a]
        scale = float(factors[a])
        pair = None if roi_pairs is None else roi_pairs.get(a, (0.0, 1.0))
        if n_out == n_in and scale == 1.0 and (cmode != "tf_crop_and_resize" or pair == (0.0, 1.0)):
            continue
        resized.append(_Axis(node, a, n_in, n_out, scale, pair))
    dtype = tvm_dtype(node.outputs[0].type)
    extrapolation = float(node.attr("extrapolation_value") or 0.0)
    mode = node.attr("mode") or "nearest"

    def masked(o: tuple, value: Expr) -> Expr:
        outs = [m for m in (ax.outside(o[ax.axis]) for ax in resized) if m is not None]
        if not outs:
            return value
        return tirx.Select(tirx.any(*outs), tirx.const(extrapolation, dtype), value)

    if mode == "nearest":
        def near(*o: Expr) -> Expr:
            src = list(o)
            for ax in resized:
                src[ax.axis] = _nearest(ax.coord(o[ax.axis]), ax.nearest_mode, ax.scale, ax.n_in)
            return masked(o, x(*src))
        return [te.compute(out_shape, near, name="resize_nearest")]

    rs = [te.reduce_axis((0, ax.taps), name=f"t{k}") for k, ax in enumerate(resized)]

    def blend(*o: Expr) -> Expr:
        src = list(o)
        w: Expr = _f(1.0, F64)
        for ax, r in zip(resized, rs):
            idx, wa = ax.tap_weight(o[ax.axis], r)
            src[ax.axis] = idx
            w = w * wa
        return te.sum(w * x(*src).astype(F64), axis=rs) if rs else x(*src).astype(F64)
    acc = te.compute(out_shape, blend, name="resize_blend")
    antialias = bool(node.attr("antialias") or 0)

    def cast(*o: Expr) -> Expr:
        v = acc(*o)
        if dtype.startswith(("int", "uint")):
            info = np.iinfo(np.dtype(dtype))
            v = tirx.round(v) if antialias else tirx.trunc(v.astype(F32)).astype(F64)
            v = tirx.min(tirx.max(v, _f(float(info.min), F64)), _f(float(info.max), F64))
        return masked(o, v.astype(dtype))
    return [te.compute(out_shape, cast, name="resize")]


_GRID_METHODS = {"linear": "bilinear", "bilinear": "bilinear", "nearest": "nearest",
                 "cubic": "bicubic", "bicubic": "bicubic"}


def _grid_check(node: Node) -> Optional[str]:
    rank = len(node.inputs[0].type.shape or ())
    mode = node.attr("mode") or "linear"
    if rank == 5 and _GRID_METHODS.get(mode) == "bicubic":
        return "GridSample: cubic mode on volumes is not generated by the tvm target"
    if rank not in (4, 5):
        return f"GridSample on rank {rank} is not generated by the tvm target (4-D and 5-D only)"
    return None


@rule("GridSample", check=_grid_check)
def _grid_sample(node: Node, xs: list) -> list:
    x, grid = xs
    rank = len(x.shape)
    # TOPI wants the grid as (N, D, H, W...) with the coordinate axis second.
    perm = [0, rank - 1] + list(range(1, rank - 1))
    g = topi.transpose(grid, perm)
    if g.dtype != x.dtype:
        g = topi.cast(g, x.dtype)
    out = topi.image.grid_sample(x, g, method=_GRID_METHODS[node.attr("mode") or "linear"],
                                 layout="NCHW" if rank == 4 else "NCDHW",
                                 padding_mode=node.attr("padding_mode") or "zeros",
                                 align_corners=bool(node.attr("align_corners") or 0))
    return [out]


@rule("AffineGrid", const_inputs=(1,))
def _affine_grid(node: Node, xs: list) -> list:
    theta = xs[0]
    out_shape = static_shape(node.outputs[0])  # (N, H, W, 2) or (N, D, H, W, 3)
    spatial = out_shape[1:-1]
    nd = len(spatial)
    align = bool(node.attr("align_corners") or 0)
    dtype = theta.dtype

    def base(i: Expr, n: int) -> Expr:
        fi = i.astype(dtype)
        if align:
            return fi * _f(2.0 / (n - 1), dtype) - _f(1.0, dtype) if n > 1 else _f(0.0, dtype)
        return (fi * _f(2.0, dtype) + _f(1.0, dtype)) / _f(float(n), dtype) - _f(1.0, dtype)

    def body(b: Expr, *rest: Expr) -> Expr:
        pos, k = rest[:-1], rest[-1]
        # coordinates ordered x (last spatial axis) first
        coords = [base(pos[nd - 1 - j], spatial[nd - 1 - j]) for j in range(nd)]
        acc = theta(b, k, nd)
        for j in range(nd):
            acc = acc + theta(b, k, j) * coords[j]
        return acc
    return [te.compute(out_shape, body, name="affine_grid")]
