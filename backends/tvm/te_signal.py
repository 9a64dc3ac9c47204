"""TE rule for DFT: the transform as a direct sum (every length, no FFT), in float64.

Lengths are static, so each output bin is one reduction over the input
samples with twiddles ``exp(-+2 pi i (k m mod n) / n)`` (the integer modulo
keeps the angle small, so float64 sines stay exact to rounding).  The
one-sided inverse (IRFFT) sums the Hermitian-completed spectrum, ignoring
the imaginary parts of the DC and Nyquist bins like NumPy's ``irfft``.
"""

from __future__ import annotations

import math
from typing import Any

from tvm import te, tirx

from ir.graph import Node

from .rules import const_array, rule, static_shape

Expr = Any
F64 = "float64"


def _f(v: float) -> Expr:
    return tirx.const(v, F64)


@rule("DFT", const_inputs=(1, 2))
def _dft(node: Node, xs: list) -> list:
    x = xs[0]
    shape = [int(d) for d in x.shape]
    rank = len(shape)
    axis_arr = const_array(node.input(2))
    ax = (-2 if axis_arr is None else int(axis_arr.reshape(-1)[0])) % rank
    inverse, onesided = bool(node.attr("inverse") or 0), bool(node.attr("onesided") or 0)
    length = shape[ax]
    out_shape = static_shape(node.outputs[0])
    n_arr = const_array(node.input(1))
    n = int(n_arr.reshape(-1)[0]) if n_arr is not None else (2 * (length - 1) if inverse and onesided else length)
    is_complex = shape[-1] == 2
    dtype = x.dtype

    def sample(idx: list, m: Expr, part: int) -> Expr:
        src = list(idx)
        src[ax] = m
        src[-1] = part if is_complex else 0
        v = x(*src).astype(F64)
        return v if part == 0 or is_complex else _f(0.0)

    def angle(k: Expr, m: Expr) -> Expr:
        return _f(2 * math.pi / n) * tirx.floormod(k * m, n).astype(F64)

    if inverse and onesided:  # IRFFT: real output [..., n, 1]
        bins = min(length, n // 2 + 1)
        r = te.reduce_axis((0, bins), name="k")

        def irfft(*o: Expr) -> Expr:
            idx = list(o)
            m = o[ax]
            re, im = sample(idx, r, 0), sample(idx, r, 1)
            a = angle(r, m)
            edge = tirx.any(r == 0, (n % 2 == 0) and r == n // 2) if n % 2 == 0 else (r == 0)
            term = tirx.Select(edge, re * tirx.cos(a), _f(2.0) * (re * tirx.cos(a) - im * tirx.sin(a)))
            return te.sum(term, axis=r)
        acc = te.compute(out_shape, irfft, name="irfft")
        return [te.compute(out_shape, lambda *o: (acc(*o) / _f(float(n))).astype(dtype), name="irfft_out")]

    r = te.reduce_axis((0, min(length, n)), name="m")
    sign = 1.0 if inverse else -1.0

    def dft(*o: Expr) -> Expr:
        idx = list(o)
        k = o[ax]
        re, im = sample(idx, r, 0), sample(idx, r, 1)
        a = angle(k, r)
        c, s = tirx.cos(a), _f(sign) * tirx.sin(a)
        # (re + i im)(c + i s): the real part for o[-1] == 0, the imaginary for 1
        return te.sum(tirx.Select(o[-1] == 0, re * c - im * s, re * s + im * c), axis=r)
    acc = te.compute(out_shape, dft, name="dft")
    scale = 1.0 / n if inverse else 1.0
    return [te.compute(out_shape, lambda *o: (acc(*o) * _f(scale)).astype(dtype), name="dft_out")]
