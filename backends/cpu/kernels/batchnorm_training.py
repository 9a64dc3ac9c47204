"""Training-mode BatchNormalization: batch statistics, the normalized output, the running statistics.

Inference-mode BatchNormalization is elementwise (``expr.py``); with
``training_mode=1`` each channel's mean and (population) variance over the
batch and spatial axes come first.  One task per channel: a pass summing x
and x^2 (in float64), then ``y = x * a + shift`` with ``a = scale /
sqrt(var + eps)`` and ``shift = B - mean * a`` in the statistics type
(float64 for float64 input, else float32, as the reference), and the
running statistics ``input * momentum + batch * (1 - momentum)``.
"""

from __future__ import annotations

import math
from typing import Any, Optional

import llvmlite.ir as ir

from ir.dtypes import DType
from ir.graph import Node

from ..codegen import F32, F64, KernelBuilder, const_int, for_range
from ..evaluator import shape_of
from ..expr import load_convert, store_convert
from . import Kernel, generator, label_of
from .vecmath import Var

_FLOATS = {DType.F32, DType.F64, DType.F16}


def support(node: Node) -> Optional[str]:
    if node.domain != "" or node.op != "BatchNormalization" or not node.attr("training_mode"):
        # Not ours: the elementwise kernel's own reason (the same words, so reports show it once).
        from .elementwise import support as elementwise_support
        return elementwise_support(node) or f"no cpu kernel for {node.qualified_op}"
    for v in list(node.inputs) + list(node.outputs):
        if not getattr(v.type, "is_static", False):
            return "the cpu target needs static shapes here"
        if v.type.dtype not in _FLOATS:
            return f"BatchNormalization on {v.type.dtype.short} is not supported by the cpu target"
    return None


@generator("elementwise", supports=support, ops=("BatchNormalization",), priority=-1)
def emit(kb: KernelBuilder, node: Node, schedule: Any) -> Kernel:
    x, scale, bias, mean_in, var_in = node.inputs
    y = node.outputs[0]
    xs = shape_of(x)
    n, c, inner = xs[0], xs[1], math.prod(xs[2:])
    st = F64 if x.type.dtype is DType.F64 else F32
    eps, momentum = float(node.attr("epsilon")), float(node.attr("momentum"))
    tf = kb.task_function(f"k_{y.name}")
    b = tf.builder
    ch = tf.task

    def load(v, off: ir.Value, ty: ir.Type = st) -> ir.Value:
        raw = load_convert(b, b.load(b.gep(tf.value_pointer(v), [off])), v.type.dtype)
        if raw.type == ty:
            return raw
        return b.fpext(raw, ty) if ty == F64 else b.fptrunc(raw, ty)

    def store(v, off: ir.Value, val: ir.Value) -> None:
        want = F64 if v.type.dtype is DType.F64 else F32
        if val.type != want:
            val = b.fptrunc(val, want) if want == F32 else b.fpext(val, want)
        b.store(store_convert(b, val, v.type.dtype), b.gep(tf.value_pointer(v), [off]))

    def offset(i: ir.Value, j: ir.Value) -> ir.Value:  # x[i, ch, j] with the spatial axes flattened
        return b.add(b.mul(b.add(b.mul(i, const_int(c)), ch), const_int(inner)), j)

    total, squares = Var(tf, F64, "sum"), Var(tf, F64, "sumsq")
    total.set(ir.Constant(F64, 0.0))
    squares.set(ir.Constant(F64, 0.0))
    with for_range(b, 0, n, name="n") as i:
        with for_range(b, 0, inner, name="s") as j:
            v = load(x, offset(i, j), F64)
            total.set(b.fadd(total.get(), v))
            squares.set(b.fadd(squares.get(), b.fmul(v, v)))
    count = ir.Constant(F64, float(max(n * inner, 1)))
    mean64 = b.fdiv(total.get(), count)
    var64 = b.fsub(b.fdiv(squares.get(), count), b.fmul(mean64, mean64))
    var64 = b.select(b.fcmp_ordered("<", var64, ir.Constant(F64, 0.0)), ir.Constant(F64, 0.0), var64)
    mean = mean64 if st == F64 else b.fptrunc(mean64, st)
    var = var64 if st == F64 else b.fptrunc(var64, st)
    sqrt = kb.intrinsic("sqrt", st)
    a = b.fdiv(load(scale, ch), b.call(sqrt, [b.fadd(var, ir.Constant(st, eps))]))
    shift = b.fsub(load(bias, ch), b.fmul(mean, a))
    with for_range(b, 0, n, name="n2") as i:
        with for_range(b, 0, inner, name="s2") as j:
            off = offset(i, j)
            store(y, off, b.fadd(b.fmul(load(x, off), a), shift))
    for k, (stat, given) in enumerate(((mean, mean_in), (var, var_in)), start=1):
        if len(node.outputs) > k:
            run = b.fadd(b.fmul(load(given, ch), ir.Constant(st, momentum)),
                         b.fmul(stat, ir.Constant(st, 1.0 - momentum)))
            store(node.outputs[k], ch, run)
    b.ret_void()
    return Kernel(tf.fn.name, c, tf.buffers, label_of(node))


__all__ = ["emit", "support"]
