"""DFT and STFT kernels: the reference's transforms (``ir/ops/signal.py``) as direct sums in float64.

The input is viewed as ``[outer, n_in, inner, 1|2]`` (the transformed axis in
the middle, the last dim real or (re, im)); each output element sums
``z[k] * w**(m*k)`` over the ``min(n, n_in)`` input samples (zero padding and
truncation to ``dft_length`` for free), with ``w = exp(-+2 pi i / n)`` read
from a table of ``n`` twiddles indexed by ``m*k mod n`` (exact symmetries, no
accumulated angle error) and accumulated in float64, so the result is at
least as accurate as numpy's float32 FFT the suite was made with.  The
inverse divides by ``n``; ``onesided`` keeps ``n//2 + 1`` bins; the inverse
of a one-sided spectrum (IRFFT) is the real sum over the Hermitian spectrum,
ignoring the imaginary parts numpy's ``irfft`` ignores.  ``dft_length`` and
``axis`` must be constants.

STFT gathers each frame (``frame_step`` apart), multiplies it by the window
in the signal's precision as the reference does, and sums it the same way.

O(n^2) per line, with lines split over tasks: meant for the short transforms
of the suite and of audio front ends, not for long signals.
"""

from __future__ import annotations

import math
from typing import Any, Optional

import llvmlite.ir as ir
import numpy as np

from ir.dtypes import DType
from ir.graph import Node

from ..codegen import F64, KernelBuilder, const_int, for_range, loop_carry, task_range
from ..expr import compute_type, load_convert, store_convert
from . import Kernel, generator, label_of

FLOATS = (DType.F32, DType.F64, DType.F16, DType.BF16)
MAX_POINTS = 1 << 16  # twiddle table entries (n)


def _static(node: Node, i: int) -> Optional[int]:
    v = node.input(i)
    if v is None or v.const is None:
        return None
    return int(np.asarray(v.const).reshape(-1)[0])


def _plan(node: Node) -> tuple[int, int, int, int, int, int, int]:
    """(outer, n_in, inner, c_in, n, n_out, c_out)."""
    shape = tuple(node.inputs[0].type.shape)
    out = tuple(node.outputs[0].type.shape)
    r = len(shape)
    axis = _static(node, 2)
    ax = (-2 if axis is None else axis) % r
    inverse, onesided = node.attr("inverse"), node.attr("onesided")
    n_in = shape[ax]
    length = _static(node, 1)
    n = length if length is not None else (2 * (n_in - 1) if inverse and onesided else n_in)
    return (math.prod(shape[:ax]), n_in, math.prod(shape[ax + 1:-1]), shape[-1], n, out[ax], out[-1])


def support(node: Node) -> Optional[str]:
    if node.domain or node.op != "DFT":
        return f"{node.qualified_op} is not DFT"
    for v in (node.inputs[0], node.outputs[0]):
        if not getattr(v.type, "is_static", False):
            return "DFT needs static shapes on the cpu target"
    if node.inputs[0].type.dtype not in FLOATS:
        return f"DFT on {node.inputs[0].type.dtype.short} is not supported by the cpu target"
    for i, what in ((1, "dft_length"), (2, "axis")):
        if node.input(i) is not None and _static(node, i) is None:
            return f"DFT with a run-time {what} is not supported by the cpu target (it must be a constant)"
    n = _plan(node)[4]
    if not 1 <= n <= MAX_POINTS:
        return f"DFT of {n} points is not supported by the cpu target (1 to {MAX_POINTS})"
    return None


def _twiddles(kb: KernelBuilder, n: int, inverse: bool) -> tuple[ir.GlobalVariable, ir.GlobalVariable]:
    """cos and sin of the angle -+2 pi r / n for r in [0, n), exact at multiples of a quarter turn."""
    name = f"nnc_dft_{'inv' if inverse else 'fwd'}_{n}"
    got = kb.module.globals.get(name + "_cos")
    if got is not None:
        return got, kb.module.globals[name + "_sin"]
    r = np.arange(n)
    ang = 2 * np.pi * r / n
    cos, sin = np.cos(ang), np.sin(ang) * (1 if inverse else -1)
    for q, (c, s) in enumerate(((1.0, 0.0), (0.0, 1.0), (-1.0, 0.0), (0.0, -1.0))):
        if (q * n) % 4 == 0:
            cos[q * n // 4] = c
            sin[q * n // 4] = s * (1 if inverse else -1)
    tables = []
    for suffix, values in (("_cos", cos), ("_sin", sin)):
        ty = ir.ArrayType(F64, n)
        gv = ir.GlobalVariable(kb.module, ty, name + suffix)
        gv.linkage = "internal"
        gv.global_constant = True
        gv.initializer = ir.Constant(ty, [float(v) for v in values])
        tables.append(gv)
    return tables[0], tables[1]


@generator("dft", supports=support, ops=["DFT"])
def emit(kb: KernelBuilder, node: Node, schedule: Any) -> Kernel:
    outer, n_in, inner, c_in, n, n_out, c_out = _plan(node)
    inverse, onesided = bool(node.attr("inverse")), bool(node.attr("onesided"))
    irfft = inverse and onesided
    x_val, y_val = node.inputs[0], node.outputs[0]
    dtype = x_val.type.dtype
    tf = kb.task_function(f"dft_{y_val.name}")
    b = tf.builder
    x, y = tf.value_pointer(x_val), tf.value_pointer(y_val)
    cos_t, sin_t = _twiddles(kb, n, inverse)
    lines = outer * inner
    n_tasks = max(1, min(lines * n_out, 64, (lines * n_out * n) // 4096 or 1))
    zero = ir.Constant(F64, 0.0)
    terms = min(n // 2 + 1, n_in) if irfft else min(n, n_in)
    scale = ir.Constant(F64, 1.0 / n)

    def load(off: ir.Value) -> ir.Value:
        v = load_convert(b, b.load(b.gep(x, [off])), dtype)
        return b.fpext(v, F64) if v.type != F64 else v

    def store(off: ir.Value, v: ir.Value) -> None:
        ct = compute_type(dtype)
        v = b.fptrunc(v, ct) if ct != F64 else v
        b.store(store_convert(b, v, dtype), b.gep(y, [off]))

    start, stop = task_range(b, tf.task, n_tasks, lines * n_out)
    with for_range(b, start, stop, name="e") as e:
        line = b.sdiv(e, const_int(n_out))
        m = b.srem(e, const_int(n_out))
        o = b.sdiv(line, const_int(inner))
        q = b.srem(line, const_int(inner))
        in_base = b.add(b.mul(o, const_int(n_in * inner * c_in)), b.mul(q, const_int(c_in)))

        def term(k: ir.Value, accs: list) -> list:
            off = b.add(in_base, b.mul(k, const_int(inner * c_in)))
            zr = load(off)
            zi = load(b.add(off, const_int(1))) if c_in == 2 else zero
            r = b.srem(b.mul(m, k), const_int(n))
            c = b.load(b.gep(cos_t, [const_int(0), r]))
            s = b.load(b.gep(sin_t, [const_int(0), r]))
            if irfft:
                # Re(z w^(mk)), doubled for the bins whose mirror image is not stored.
                v = b.fsub(b.fmul(zr, c), b.fmul(zi, s))
                single = b.icmp_signed("==", k, const_int(0))
                if n % 2 == 0:
                    single = b.or_(single, b.icmp_signed("==", k, const_int(n // 2)))
                if_zero_im = b.fmul(zr, c)  # numpy ignores the imaginary part of those bins
                v = b.select(single, if_zero_im, b.fmul(ir.Constant(F64, 2.0), v))
                return [b.fadd(accs[0], v), accs[1]]
            re = b.fsub(b.fmul(zr, c), b.fmul(zi, s))
            im = b.fadd(b.fmul(zr, s), b.fmul(zi, c))
            return [b.fadd(accs[0], re), b.fadd(accs[1], im)]

        # irfft: the sum runs over the spectrum's bins k (m is the output sample)
        acc_re, acc_im = loop_carry(b, 0, terms, 1, [zero, zero], term, name="k")
        if inverse:
            acc_re, acc_im = b.fmul(acc_re, scale), b.fmul(acc_im, scale)
        out_off = b.add(b.add(b.mul(o, const_int(n_out * inner * c_out)), b.mul(m, const_int(inner * c_out))),
                        b.mul(q, const_int(c_out)))
        store(out_off, acc_re)
        if c_out == 2:
            store(b.add(out_off, const_int(1)), acc_im)
    b.ret_void()
    return Kernel(tf.fn.name, n_tasks, tf.buffers, label_of(node))



# ----------------------------------------------------------------------- STFT
def _stft_plan(node: Node) -> tuple[int, int, int, int, int, int]:
    """(batch, signal length, channels, frame_step, frame_length, bins)."""
    batch, sig, c_in = node.inputs[0].type.shape
    step = _static(node, 1)
    length = _static(node, 3)
    if length is None:
        length = node.input(2).type.shape[0]
    return batch, sig, c_in, step, length, node.outputs[0].type.shape[2]


def stft_support(node: Node) -> Optional[str]:
    if node.domain or node.op != "STFT":
        return f"{node.qualified_op} is not STFT"
    for v in [v for v in list(node.inputs) + list(node.outputs) if v is not None]:
        if not getattr(v.type, "is_static", False):
            return "STFT needs static shapes on the cpu target"
    if node.inputs[0].type.dtype not in FLOATS:
        return f"STFT on {node.inputs[0].type.dtype.short} is not supported by the cpu target"
    if _static(node, 1) is None or (node.input(3) is not None and _static(node, 3) is None):
        return "STFT with a run-time frame_step or frame_length is not supported by the cpu target"
    length = _stft_plan(node)[4]
    if not 1 <= length <= MAX_POINTS:
        return f"STFT frames of {length} points are not supported by the cpu target (1 to {MAX_POINTS})"
    return None


@generator("stft", supports=stft_support, ops=["STFT"])
def emit_stft(kb: KernelBuilder, node: Node, schedule: Any) -> Kernel:
    """Each frame, windowed in the signal's precision (as the reference multiplies), through the DFT sum."""
    batch, sig, c_in, step, n, bins = _stft_plan(node)
    frames = node.outputs[0].type.shape[1]
    x_val, w_val, y_val = node.inputs[0], node.input(2), node.outputs[0]
    dtype = x_val.type.dtype
    tf = kb.task_function(f"stft_{y_val.name}")
    b = tf.builder
    x, y = tf.value_pointer(x_val), tf.value_pointer(y_val)
    w = tf.value_pointer(w_val) if w_val is not None else None
    cos_t, sin_t = _twiddles(kb, n, False)
    total = batch * frames * bins
    n_tasks = max(1, min(total, 64, (total * n) // 4096 or 1))
    zero = ir.Constant(F64, 0.0)

    def load(ptr: ir.Value, off: ir.Value, dt: DType) -> ir.Value:
        return load_convert(b, b.load(b.gep(ptr, [off])), dt)

    start, stop = task_range(b, tf.task, n_tasks, total)
    with for_range(b, start, stop, name="e") as e:
        m = b.srem(e, const_int(bins))
        fr = b.srem(b.sdiv(e, const_int(bins)), const_int(frames))
        bt = b.sdiv(e, const_int(bins * frames))
        base = b.mul(b.add(b.mul(bt, const_int(sig)), b.mul(fr, const_int(step))), const_int(c_in))

        def term(k: ir.Value, accs: list) -> list:
            off = b.add(base, b.mul(k, const_int(c_in)))
            zr = load(x, off, dtype)
            zi = load(x, b.add(off, const_int(1)), dtype) if c_in == 2 else None
            if w is not None:
                wk = load(w, k, w_val.type.dtype)
                zr = b.fmul(zr, wk)
                zi = b.fmul(zi, wk) if zi is not None else None
            zr = b.fpext(zr, F64) if zr.type != F64 else zr
            zi = zero if zi is None else (b.fpext(zi, F64) if zi.type != F64 else zi)
            r = b.srem(b.mul(m, k), const_int(n))
            c = b.load(b.gep(cos_t, [const_int(0), r]))
            s = b.load(b.gep(sin_t, [const_int(0), r]))
            return [b.fadd(accs[0], b.fsub(b.fmul(zr, c), b.fmul(zi, s))),
                    b.fadd(accs[1], b.fadd(b.fmul(zr, s), b.fmul(zi, c)))]

        acc_re, acc_im = loop_carry(b, 0, n, 1, [zero, zero], term, name="k")
        ct = compute_type(dtype)
        for part, v in enumerate((acc_re, acc_im)):
            v = b.fptrunc(v, ct) if ct != F64 else v
            b.store(store_convert(b, v, dtype), b.gep(y, [b.add(b.mul(e, const_int(2)), const_int(part))]))
    b.ret_void()
    return Kernel(tf.fn.name, n_tasks, tf.buffers, label_of(node))
