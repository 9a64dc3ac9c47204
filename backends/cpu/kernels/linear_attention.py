"""LinearAttention (opset 27) as one kernel: the recurrence over time, one task per (batch, KV head).

The state ``S`` of one (batch, KV head) is a ``[d_k, d_v]`` f32 matrix kept
on the task's stack for the whole sequence (loaded from ``past_state`` or
zeros, written to ``present_state`` at the end), so it never round-trips
through memory between steps.  Per time step ``t`` (``k``, ``v``, ``q`` the
step's rows of the head)::

    gated:  S *= exp(decay)                    (one factor per head, or per key row)
    delta:  u = beta * (v - S^T k)             (else u = v)
    S += k u^T
    out[q head] = scale * q S                  (each query head of the KV head's group)

Every inner loop runs along ``d_v`` over contiguous memory (LLVM vectorizes
them).  Inputs and outputs are read and written in their own element type
(f32, f16, bf16) and converted to f32 (the reference computes in f32 too);
an element type the cpu code generator has no LLVM type for is refused.
"""

from __future__ import annotations

from typing import Any, Optional

import llvmlite.ir as ir

from ir.dtypes import DType
from ir.graph import Node

from ..codegen import F32, I32, KernelBuilder, const_int, for_range, supported_dtype
from . import Kernel, generator, label_of
from ._f32_io import from_f32, to_f32
from .vecmath import vexp

MAX_STACK_BYTES = 1 << 17  # the state and two d_v rows live on the task's stack


def _dims(node: Node) -> tuple[int, int, int, int, int, int]:
    """(B, T, Hq, Hkv, d_k, d_v)."""
    b, t, qw = node.inputs[0].type.shape
    hq, hkv = int(node.attr("q_num_heads")), int(node.attr("kv_num_heads"))
    return int(b), int(t), hq, hkv, int(qw) // hq, int(node.inputs[2].type.shape[2]) // hkv


def support(node: Node) -> Optional[str]:
    if node.domain != "" or node.op != "LinearAttention":
        return "not a LinearAttention node"
    for v in list(node.inputs) + list(node.outputs):
        if v is None:
            continue
        if not v.type.is_static:
            return "the cpu target needs static shapes here"
        if v.type.dtype not in (DType.F32, DType.F16, DType.BF16) or not supported_dtype(v.type.dtype):
            return f"LinearAttention on {v.type.dtype.short} is not supported by the cpu target"
    _, _, _, _, dk, dv = _dims(node)
    if 4 * (dk * dv + 2 * dv) > MAX_STACK_BYTES:
        return f"a LinearAttention state of {dk}x{dv} is larger than the kernel keeps on its stack"
    return None


def _load(b: ir.IRBuilder, ptr: ir.Value, at: ir.Value) -> ir.Value:
    return to_f32(b, b.load(b.gep(ptr, [at])))


def _store(b: ir.IRBuilder, x: ir.Value, ptr: ir.Value, at: ir.Value) -> None:
    b.store(from_f32(b, x, ptr.type.pointee), b.gep(ptr, [at]))


@generator("linear_attention", supports=support, ops=["LinearAttention"])
def emit(kb: KernelBuilder, node: Node, schedule: Any) -> Kernel:
    B, T, Hq, Hkv, dk, dv = _dims(node)
    group = Hq // Hkv
    scale = float(node.attr("scale") or 0.0) or dk ** -0.5
    past, decay, beta = node.input(3), node.input(4), node.input(5)
    per_head_decay = decay is not None and int(decay.type.shape[2]) == Hkv
    beta_heads = int(beta.type.shape[2]) if beta is not None else 0
    y, present = node.outputs[0], node.outputs[1] if len(node.outputs) > 1 else None

    tf = kb.task_function(f"k_{y.name}")
    b = tf.builder
    q_ptr, k_ptr, v_ptr = (tf.value_pointer(node.inputs[i]) for i in range(3))
    p_ptr = tf.value_pointer(past) if past is not None else None
    g_ptr = tf.value_pointer(decay) if decay is not None else None
    be_ptr = tf.value_pointer(beta) if beta is not None else None
    y_ptr = tf.value_pointer(y)
    s_out = tf.value_pointer(present) if present is not None else None
    with b.goto_block(tf._entry):
        S = b.alloca(F32, size=const_int(dk * dv, I32), name="state")
        S.align = 64
        u = b.alloca(F32, size=const_int(dv, I32), name="u")
        u.align = 64
        acc = b.alloca(F32, size=const_int(dv, I32), name="acc")
        acc.align = 64
    c = const_int
    zero = ir.Constant(F32, 0.0)

    bi, hi = b.sdiv(tf.task, c(Hkv)), b.srem(tf.task, c(Hkv))
    s_base = b.mul(tf.task, c(dk * dv))  # (b, h) block of a [B, Hkv, dk, dv] state
    with for_range(b, 0, dk * dv, name="i") as i:
        b.store(_load(b, p_ptr, b.add(s_base, i)) if p_ptr is not None else zero, b.gep(S, [i]))

    def row(t: ir.Value, width: int) -> ir.Value:
        """Offset of (bi, t, 0) in a [B, T, width] tensor."""
        return b.mul(b.add(b.mul(bi, c(T)), t), c(width))

    def at(base, *terms):
        out = base
        for x in terms:
            out = b.add(out, x)
        return out

    def state_t_times(vec_ptr: ir.Value, base: ir.Value) -> None:
        """acc = S^T x, x the d_k elements of ``vec_ptr`` from ``base`` (a key or a query row)."""
        with for_range(b, 0, dv, name="m") as m:
            b.store(zero, b.gep(acc, [m]))
        with for_range(b, 0, dk, name="d") as d:
            xd = _load(b, vec_ptr, b.add(base, d))
            with for_range(b, 0, dv, name="m") as m:
                p = b.gep(acc, [m])
                b.store(b.fadd(b.load(p), b.fmul(xd, b.load(b.gep(S, [b.add(b.mul(d, c(dv)), m)])))), p)

    with for_range(b, 0, T, name="t") as t:
        k_base = at(row(t, Hkv * dk), b.mul(hi, c(dk)))
        v_base = at(row(t, Hkv * dv), b.mul(hi, c(dv)))
        if decay is not None:
            if per_head_decay:
                gh = vexp(kb, b, _load(b, g_ptr, at(row(t, Hkv), hi)))
                with for_range(b, 0, dk * dv, name="i") as i:
                    p = b.gep(S, [i])
                    b.store(b.fmul(b.load(p), gh), p)
            else:
                with for_range(b, 0, dk, name="d") as d:
                    gd = vexp(kb, b, _load(b, g_ptr, at(row(t, Hkv * dk), b.mul(hi, c(dk)), d)))
                    with for_range(b, 0, dv, name="m") as m:
                        p = b.gep(S, [b.add(b.mul(d, c(dv)), m)])
                        b.store(b.fmul(b.load(p), gd), p)
        if beta is not None:  # u = beta * (v - S^T k)
            state_t_times(k_ptr, k_base)
            bh = hi if beta_heads == Hkv else c(0)
            bt = _load(b, be_ptr, at(row(t, beta_heads), bh))
            with for_range(b, 0, dv, name="m") as m:
                diff = b.fsub(_load(b, v_ptr, b.add(v_base, m)), b.load(b.gep(acc, [m])))
                b.store(b.fmul(bt, diff), b.gep(u, [m]))
        else:
            with for_range(b, 0, dv, name="m") as m:
                b.store(_load(b, v_ptr, b.add(v_base, m)), b.gep(u, [m]))
        with for_range(b, 0, dk, name="d") as d:  # S += k u^T
            kd = _load(b, k_ptr, b.add(k_base, d))
            with for_range(b, 0, dv, name="m") as m:
                p = b.gep(S, [b.add(b.mul(d, c(dv)), m)])
                b.store(b.fadd(b.load(p), b.fmul(kd, b.load(b.gep(u, [m])))), p)
        for j in range(group):  # each query head reading this state
            hq = b.add(b.mul(hi, c(group)), c(j))
            q_base = at(row(t, Hq * dk), b.mul(hq, c(dk)))
            state_t_times(q_ptr, q_base)
            y_base = at(row(t, Hq * dv), b.mul(hq, c(dv)))
            with for_range(b, 0, dv, name="m") as m:
                _store(b, b.fmul(b.load(b.gep(acc, [m])), ir.Constant(F32, scale)), y_ptr, b.add(y_base, m))
    if s_out is not None:
        with for_range(b, 0, dk * dv, name="i") as i:
            _store(b, b.load(b.gep(S, [i])), s_out, b.add(s_base, i))
    b.ret_void()
    return Kernel(tf.fn.name, B * Hkv, tf.buffers, label_of(node))
