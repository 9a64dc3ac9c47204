"""RoiAlign: average (or max) of bilinear samples over each region's output bins.

One task per region; for each channel and output bin the kernel reads the
region's box, derives the sampling grid (``sampling_ratio``, or
``ceil(bin size)`` samples per bin: a run-time count, so run-time loops) and
accumulates the four weighted corners of each sample, with the reference's
edge rules (``ir.ops.resize._roi_axis``: samples beyond one pixel outside
the image count as zero, coordinates clamp at the last row/column).
Arithmetic in float64 like the reference.
"""

from __future__ import annotations

from typing import Any, Optional

import llvmlite.ir as ir

from ir.dtypes import DType
from ir.graph import Node

from ..codegen import F64, I64, KernelBuilder, const_int, for_range
from ..evaluator import shape_of
from ..expr import load_convert, store_convert
from . import Kernel, generator, label_of
from .vecmath import Var

_FLOATS = {DType.F32, DType.F64, DType.F16}


def support(node: Node) -> Optional[str]:
    if node.domain != "" or node.op != "RoiAlign":
        return f"no cpu kernel for {node.qualified_op}"
    for v in list(node.inputs) + list(node.outputs):
        if not getattr(v.type, "is_static", False):
            return "the cpu target needs static shapes here"
    if node.inputs[0].type.dtype not in _FLOATS:
        return f"RoiAlign on {node.inputs[0].type.dtype.short} is not supported by the cpu target"
    return None


@generator("roi_align", supports=support, ops=("RoiAlign",))
def emit(kb: KernelBuilder, node: Node, schedule: Any) -> Kernel:
    x, rois, batch = node.inputs
    y = node.outputs[0]
    _, c, height, width = shape_of(x)
    n_rois = shape_of(rois)[0]
    oh, ow = node.attr("output_height"), node.attr("output_width")
    ratio, scale = node.attr("sampling_ratio"), node.attr("spatial_scale")
    half = node.attr("coordinate_transformation_mode") == "half_pixel"
    avg = node.attr("mode") == "avg"
    tf = kb.task_function(f"k_{y.name}")
    b = tf.builder
    xp, rp, bp, yp = (tf.value_pointer(v) for v in (x, rois, batch, y))
    f = lambda v: ir.Constant(F64, float(v))  # noqa: E731
    floor = kb.intrinsic("floor", F64)
    ceil = kb.intrinsic("ceil", F64)

    def fmax(p, q):
        return b.select(b.fcmp_ordered(">", p, q), p, q)

    def load_f(ptr, off, dtype):
        v = load_convert(b, b.load(b.gep(ptr, [off])), dtype)
        return v if v.type == F64 else b.fpext(v, F64)

    r = tf.task
    box = [b.fsub(b.fmul(load_f(rp, b.add(b.mul(r, const_int(4)), const_int(i)), rois.type.dtype), f(scale)),
                  f(0.5 if half else 0.0)) for i in range(4)]
    x1, y1, x2, y2 = box
    rw, rh = b.fsub(x2, x1), b.fsub(y2, y1)
    if not half:  # output_half_pixel: regions are at least one pixel
        rw, rh = fmax(rw, f(1.0)), fmax(rh, f(1.0))
    if ratio > 0:
        gh = gw = const_int(ratio)
    else:
        gh = b.fptosi(b.call(ceil, [b.fdiv(rh, f(oh))]), I64)
        gw = b.fptosi(b.call(ceil, [b.fdiv(rw, f(ow))]), I64)
    ghf, gwf = b.sitofp(gh, F64), b.sitofp(gw, F64)
    count = b.mul(gh, gw)
    n_img = shape_of(x)[0]
    bi = load_convert(b, b.load(b.gep(bp, [r])), batch.type.dtype)
    bi = b.select(b.icmp_signed("<", bi, const_int(0)), const_int(0), bi)  # a bad index must not read outside
    bi = b.select(b.icmp_signed(">", bi, const_int(n_img - 1)), const_int(n_img - 1), bi)
    img = b.mul(bi, const_int(c * height * width))

    def axis(start, length, bins, grid, gridf, k, i, size):
        """(low, high, w_low, w_high, valid) of sample i of bin k along one axis (the reference's _roi_axis)."""
        step = b.fdiv(length, f(bins))
        pos = b.fadd(b.fadd(start, b.fmul(b.sitofp(k, F64), step)),
                     b.fdiv(b.fmul(b.fadd(b.sitofp(i, F64), f(0.5)), step), gridf))
        valid = b.and_(b.fcmp_ordered(">=", pos, f(-1.0)), b.fcmp_ordered("<=", pos, f(size)))
        pos = fmax(pos, f(0.0))
        low = b.call(floor, [pos])
        edge = b.fcmp_ordered(">=", low, f(size - 1))
        low = b.select(edge, f(size - 1), low)
        high = b.select(edge, f(size - 1), b.fadd(low, f(1.0)))
        pos = b.select(edge, low, pos)
        frac = b.fsub(pos, low)
        return b.fptosi(low, I64), b.fptosi(high, I64), b.fsub(f(1.0), frac), frac, valid

    with for_range(b, 0, c, name="c") as ci:
        plane = b.add(img, b.mul(ci, const_int(height * width)))
        with for_range(b, 0, oh, name="ph") as ph:
            with for_range(b, 0, ow, name="pw") as pw:
                acc = Var(tf, F64, "acc")
                acc.set(f(0.0) if avg else f(float("-inf")))
                with for_range(b, 0, gh, name="iy") as iy:
                    ylo, yhi, wylo, wyhi, vy = axis(y1, rh, oh, gh, ghf, ph, iy, height)
                    with for_range(b, 0, gw, name="ix") as ixx:
                        xlo, xhi, wxlo, wxhi, vx = axis(x1, rw, ow, gw, gwf, pw, ixx, width)
                        valid = b.and_(vy, vx)
                        for yi, wy in ((ylo, wylo), (yhi, wyhi)):
                            for xi, wx in ((xlo, wxlo), (xhi, wxhi)):
                                v = load_f(xp, b.add(plane, b.add(b.mul(yi, const_int(width)), xi)), x.type.dtype)
                                term = b.fmul(v, b.select(valid, b.fmul(wy, wx), f(0.0)))
                                acc.set(b.fadd(acc.get(), term) if avg else fmax(acc.get(), term))
                out = acc.get()
                if avg:
                    n = b.select(b.icmp_signed(">", count, const_int(1)), count, const_int(1))
                    out = b.fdiv(out, b.sitofp(n, F64))
                else:
                    out = b.select(b.icmp_signed(">", count, const_int(0)), out, f(0.0))
                off = b.add(b.mul(b.add(b.mul(r, const_int(c)), ci), const_int(oh * ow)),
                            b.add(b.mul(ph, const_int(ow)), pw))
                dty = y.type.dtype
                res = out if dty is DType.F64 else b.fptrunc(out, ir.FloatType())
                b.store(store_convert(b, res, dty), b.gep(yp, [off]))
    b.ret_void()
    return Kernel(tf.fn.name, n_rois, tf.buffers, label_of(node))


__all__ = ["emit", "support"]
