"""Det: the determinant of each square matrix in the last two dims.

One task per matrix: it is copied to the task's stack in float64 and
reduced by Gaussian elimination with partial pivoting (the row with the
largest magnitude in the column becomes the pivot, as LAPACK's getrf, which
NumPy's reference calls); the determinant is the product of the pivots,
negated once per row swap.
"""

from __future__ import annotations

import math
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
MAX_ORDER = 128  # n * n float64 on a task's stack


def support(node: Node) -> Optional[str]:
    if node.domain != "" or node.op != "Det":
        return f"no cpu kernel for {node.qualified_op}"
    x = node.inputs[0]
    if not getattr(x.type, "is_static", False):
        return "the cpu target needs static shapes here"
    if x.type.dtype not in _FLOATS:
        return f"Det on {x.type.dtype.short} is not supported by the cpu target"
    if shape_of(x)[-1] > MAX_ORDER:
        return f"Det of a {shape_of(x)[-1]}x{shape_of(x)[-1]} matrix (at most {MAX_ORDER})"
    return None


@generator("det", supports=support, ops=("Det",))
def emit(kb: KernelBuilder, node: Node, schedule: Any) -> Kernel:
    x, y = node.inputs[0], node.outputs[0]
    xs = shape_of(x)
    n = xs[-1]
    count = math.prod(xs[:-2])
    tf = kb.task_function(f"k_{y.name}")
    b = tf.builder
    if count == 0:  # no matrices: nothing to do
        b.ret_void()
        return Kernel(tf.fn.name, 1, tf.buffers, label_of(node))
    xp, yp = tf.value_pointer(x), tf.value_pointer(y)
    f = lambda v: ir.Constant(F64, float(v))  # noqa: E731
    fabs = kb.intrinsic("fabs", F64)
    with b.goto_block(tf._entry):
        a = b.alloca(F64, size=const_int(max(n * n, 1)), name="lu")
    det, best, piv = Var(tf, F64, "det"), Var(tf, F64, "best"), Var(tf, I64, "piv")

    def at(i, j):
        return b.gep(a, [b.add(b.mul(i, const_int(n)), j)])

    base = b.mul(tf.task, const_int(n * n))
    with for_range(b, 0, n * n, name="copy") as i:
        v = load_convert(b, b.load(b.gep(xp, [b.add(base, i)])), x.type.dtype)
        b.store(v if v.type == F64 else b.fpext(v, F64), b.gep(a, [i]))
    det.set(f(1.0))
    with for_range(b, 0, n, name="k") as k:
        best.set(f(-1.0))
        piv.set(k)
        with for_range(b, k, const_int(n), name="r") as r:
            mag = b.call(fabs, [b.load(at(r, k))])
            with b.if_then(b.fcmp_ordered(">", mag, best.get())):
                best.set(mag)
                piv.set(r)
        p = piv.get()
        with b.if_then(b.icmp_signed("!=", p, k)):  # swap rows p and k, flip the sign
            with for_range(b, 0, n, name="sw") as j:
                t = b.load(at(k, j))
                b.store(b.load(at(p, j)), at(k, j))
                b.store(t, at(p, j))
            det.set(b.fsub(f(0.0), det.get()))
        pivot = b.load(at(k, k))
        det.set(b.fmul(det.get(), pivot))
        with b.if_then(b.fcmp_unordered("!=", pivot, f(0.0))):
            with for_range(b, b.add(k, const_int(1)), const_int(n), name="e") as r:
                factor = b.fdiv(b.load(at(r, k)), pivot)
                with for_range(b, b.add(k, const_int(1)), const_int(n), name="ej") as j:
                    cell = at(r, j)
                    b.store(b.fsub(b.load(cell), b.fmul(factor, b.load(at(k, j)))), cell)
    out = det.get()
    if y.type.dtype is not DType.F64:
        out = b.fptrunc(out, ir.FloatType())
    b.store(store_convert(b, out, y.type.dtype), b.gep(yp, [tf.task]))
    b.ret_void()
    return Kernel(tf.fn.name, max(count, 1), tf.buffers, label_of(node))


__all__ = ["emit", "support"]
