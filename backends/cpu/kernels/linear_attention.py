"""LinearAttention (opset 27): the recurrent state update and read-out, one task per (batch, kv head).

For each time step, in order (the recurrence is sequential in time)::

    S = S * exp(g_t)                           (gated rules; g per head or per key dim)
    v_t = beta_t * (v_t - S^T k_t)             (delta rules)
    S = S + k_t v_t^T
    y_t[h] = scale * q_t[h]^T S                (every query head h of the kv head's group)

The state ``S`` (d_k x d_v, float32) lives on the task's stack and is stored
to ``present_state`` at the end; inputs are read in their packed
(B, T, H*D) layout and converted to float32 as the reference computes.
The innermost loops run along d_v (contiguous in the state).
"""

from __future__ import annotations

import math
from typing import Any, Optional

import llvmlite.ir as ir

from ir.dtypes import DType
from ir.graph import Node

from ..codegen import F32, KernelBuilder, const_int, for_range, loop_carry
from ..evaluator import shape_of
from ..expr import load_convert, store_convert
from . import Kernel, generator, label_of

_TYPES = {DType.F32, DType.F16}
MAX_STATE = 1 << 16  # d_k * d_v floats on a task's stack


def support(node: Node) -> Optional[str]:
    if node.domain != "" or node.op != "LinearAttention":
        return f"no cpu kernel for {node.qualified_op}"
    for v in list(node.inputs) + list(node.outputs):
        if v is None:
            continue
        if not getattr(v.type, "is_static", False):
            return "the cpu target needs static shapes here"
        if v.type.dtype not in _TYPES:
            return f"LinearAttention on {v.type.dtype.short} is not supported by the cpu target"
    q, v = shape_of(node.inputs[0]), shape_of(node.inputs[2])
    dk, dv = q[2] // node.attr("q_num_heads"), v[2] // node.attr("kv_num_heads")
    if dk * dv > MAX_STATE:
        return f"LinearAttention with a {dk}x{dv} state (at most {MAX_STATE} elements per head)"
    return None


@generator("linear_attention", supports=support, ops=("LinearAttention",))
def emit(kb: KernelBuilder, node: Node, schedule: Any) -> Kernel:
    query, key, value = node.inputs[:3]
    past, decay, beta = node.input(3), node.input(4), node.input(5)
    out, present = node.outputs[0], node.outputs[1] if len(node.outputs) > 1 else None
    bsz, steps, _ = shape_of(query)
    hq, hkv = node.attr("q_num_heads"), node.attr("kv_num_heads")
    dk, dv = shape_of(query)[2] // hq, shape_of(value)[2] // hkv
    group = hq // hkv
    scale = node.attr("scale") or 1.0 / math.sqrt(dk)
    tf = kb.task_function(f"k_{out.name}")
    b = tf.builder
    ptr = {id(v): tf.value_pointer(v) for v in (query, key, value, past, decay, beta, out, present) if v is not None}

    def load(v, offset: ir.Value) -> ir.Value:
        raw = b.load(b.gep(ptr[id(v)], [offset]))
        return load_convert(b, raw, v.type.dtype)

    def store(v, offset: ir.Value, x: ir.Value) -> None:
        b.store(store_convert(b, x, v.type.dtype), b.gep(ptr[id(v)], [offset]))

    def c(x: int) -> ir.Value:
        return const_int(x)

    with b.goto_block(tf._entry):
        state = b.alloca(F32, size=c(dk * dv), name="state")
        upd = b.alloca(F32, size=c(max(dv, 1)), name="vt")
    bi = b.sdiv(tf.task, c(hkv))
    h = b.srem(tf.task, c(hkv))
    sbase = b.mul(tf.task, c(dk * dv))  # this (batch, head)'s state in past/present_state
    with for_range(b, 0, dk * dv, name="init") as i:
        b.store(load(past, b.add(sbase, i)) if past is not None else ir.Constant(F32, 0.0), b.gep(state, [i]))
    per_head_decay = decay is not None and shape_of(decay)[2] == hkv
    beta_heads = shape_of(beta)[2] if beta is not None else 0
    with for_range(b, 0, steps, name="t") as t:
        row = b.add(b.mul(bi, c(steps)), t)  # (b, t) row of the packed inputs
        kbase = b.add(b.mul(row, c(hkv * dk)), b.mul(h, c(dk)))
        vbase = b.add(b.mul(row, c(hkv * dv)), b.mul(h, c(dv)))
        if decay is not None:
            exp = kb.intrinsic("exp", F32)
            if per_head_decay:
                g = b.call(exp, [load(decay, b.add(b.mul(row, c(hkv)), h))])
            with for_range(b, 0, dk, name="dd") as d:
                if not per_head_decay:
                    g = b.call(exp, [load(decay, b.add(kbase, d))])
                with for_range(b, 0, dv, name="dm") as m:
                    p = b.gep(state, [b.add(b.mul(d, c(dv)), m)])
                    b.store(b.fmul(b.load(p), g), p)
        # v_t, or beta * (v_t - S^T k_t) for the delta rules.
        with for_range(b, 0, dv, name="m0") as m:
            b.store(load(value, b.add(vbase, m)), b.gep(upd, [m]))
        if beta is not None:
            bt = load(beta, b.add(b.mul(row, c(beta_heads)), h if beta_heads > 1 else c(0)))
            with for_range(b, 0, dv, name="m1") as m:
                acc = _dot_column(b, state, key, load, kbase, m, dk, dv)
                p = b.gep(upd, [m])
                b.store(b.fmul(bt, b.fsub(b.load(p), acc)), p)
        with for_range(b, 0, dk, name="d2") as d:
            kd = load(key, b.add(kbase, d))
            with for_range(b, 0, dv, name="m2") as m:
                p = b.gep(state, [b.add(b.mul(d, c(dv)), m)])
                b.store(b.fadd(b.load(p), b.fmul(kd, b.load(b.gep(upd, [m])))), p)
        for g_i in range(group):
            hh = b.add(b.mul(h, c(group)), c(g_i))
            qbase = b.add(b.mul(row, c(hq * dk)), b.mul(hh, c(dk)))
            obase = b.add(b.mul(row, c(hq * dv)), b.mul(hh, c(dv)))
            with for_range(b, 0, dv, name="m3") as m:
                acc = _dot_column(b, state, query, load, qbase, m, dk, dv)
                store(out, b.add(obase, m), b.fmul(acc, ir.Constant(F32, scale)))
    if present is not None:
        with for_range(b, 0, dk * dv, name="fin") as i:
            store(present, b.add(sbase, i), b.load(b.gep(state, [i])))
    b.ret_void()
    return Kernel(tf.fn.name, bsz * hkv, tf.buffers, label_of(node))


def _dot_column(b: ir.IRBuilder, state: ir.Value, vec, load, base: ir.Value, m: ir.Value, dk: int,
                dv: int) -> ir.Value:
    """sum_d vec[base + d] * S[d, m] (float32)."""
    def body(d, vals):
        s = b.load(b.gep(state, [b.add(b.mul(d, const_int(dv)), m)]))
        return [b.fadd(vals[0], b.fmul(load(vec, b.add(base, d)), s))]
    return loop_carry(b, 0, dk, 1, [ir.Constant(F32, 0.0)], body, name="d")[0]


__all__ = ["emit", "support"]
