"""Fused attention: ``nnc.StridedAttention`` (from ``passes/fuse_attention.py``) as one kernel.

One task computes a block of query rows of one (batch, head).  It first
packs ``K^T`` of its head into a ``[D, L]`` buffer on its stack (rows padded
to whole vectors), reading ``K`` through its view's strides, so a head
split out of a fused QKV projection or a transposed K costs no copy
kernel; ``V`` is read in place when its rows are contiguous (else packed
the same way).  Then, per query row:

1. scores: ``L / lanes`` vector accumulators, one FMA per (d, vector) with
   ``q[s, d]`` broadcast; scaled, the mask added (vector loads when it is
   contiguous along L, a broadcast when it does not vary), padding lanes
   set to -inf; kept in one row buffer, with the running max;
2. ``exp(x - max)`` in place (the vectorized polynomial of ``vecmath``)
   and its sum;
3. ``P V``: ``Dv / lanes`` accumulators, one broadcast probability per key;
   scaled by 1 / sum and stored through the output view (vector stores when
   the output's D axis is contiguous).

The scores and probabilities never reach memory beyond one row, and no
Transpose/Gather/Reshape kernel runs around attention.  Every sample of a
run-time batch runs the same code on its own bytes.
"""

from __future__ import annotations

import math
from typing import Any, Optional

import llvmlite.ir as ir

from ir.dtypes import DType
from ir.graph import Node

from ..codegen import F32, I32, KernelBuilder, const_int, supported_dtype, for_range, load_vector, loop_carry, splat, \
    store_vector, task_range
from . import Kernel, generator, label_of
from ._f32_io import from_f32, to_f32
from .vecmath import horizontal, vexp

MIN_ROWS_PER_TASK = 16         # each task re-packs K^T: keep enough rows to pay for it
ROWS_TOGETHER = 2              # query rows computed together (each K^T and V vector loaded once for them)


# Element types read and written, computed in f32: narrow floats are widened on load and rounded
# once on store.  bfloat16 is stored as i16 (its bits are f32's high half); it runs once the cpu
# code generator has an LLVM type for it (``supported_dtype``), and is refused until then.
DTYPES = frozenset({DType.F32, DType.F16, DType.BF16})


def support(node: Node) -> Optional[str]:
    if node.domain != "nnc" or node.op != "StridedAttention":
        return "not an nnc.StridedAttention node"
    lengths = node.input(4)
    if lengths is not None and lengths.type.dtype is not DType.I64:
        return "StridedAttention takes int64 key/value lengths"
    for v in list(node.inputs[:4]) + list(node.outputs):
        if v is not None and (v.type.dtype not in DTYPES or not supported_dtype(v.type.dtype)):
            return f"StridedAttention on {v.type.dtype.short} is not supported by the cpu target"
        if v is not None and not v.type.is_static:
            return "the cpu target needs static shapes here"
    return None


def _tasks(b: int, h: int, s: int, cores: int) -> int:
    """Row blocks per (batch, head): as few as give every core the same number of tasks.

    Each task packs its head's K^T again, so heads are split only to balance
    the cores (3 heads on 2 cores: 2 blocks each, 6 tasks).
    """
    cores = max(1, cores)
    nblk = cores // math.gcd(b * h, cores)
    return max(1, min(nblk, math.ceil(s / MIN_ROWS_PER_TASK)))


@generator("attention", supports=support, ops=[("nnc", "StridedAttention")])
def emit(kb: KernelBuilder, node: Node, schedule: Any) -> Kernel:
    B, H, S, L, D, Dv = (int(x) for x in node.attr("dims"))
    qv, kv, vv, yv = ([int(x) for x in node.attr(n)] for n in ("q_view", "k_view", "v_view", "y_view"))
    has_mask = node.input(3) is not None
    mv = [int(x) for x in node.attr("mask_view")] if has_mask else None
    scale = float(node.attr("scale"))
    kv_group = int(node.attr("kv_group") or 1)
    causal = bool(node.attr("causal"))
    causal_offset = int(node.attr("causal_offset") or 0)
    left, right = int(node.attr("left_window")), int(node.attr("right_window"))
    has_lengths = node.input(4) is not None
    by_position = causal or left >= 0 or right >= 0
    W = kb.lanes
    lp, n_l = -(-L // W) * W, -(-L // W)
    dvp, n_d = -(-Dv // W) * W, -(-Dv // W)
    group = max(2, kb.target.registers - 6)  # vector accumulators per pass (the rest for operands)
    nblk = _tasks(B, H, S, kb.target.cores)
    direct_v = vv[4] == 1 and Dv % W == 0 and node.inputs[2].type.dtype is DType.F32

    tf = kb.task_function(f"k_{node.outputs[0].name}")
    b = tf.builder
    q_ptr = tf.value_pointer(node.inputs[0])
    k_ptr = tf.value_pointer(node.inputs[1])
    v_ptr = tf.value_pointer(node.inputs[2])
    m_ptr = tf.value_pointer(node.inputs[3]) if has_mask else None
    len_ptr = tf.value_pointer(node.inputs[4]) if has_lengths else None
    y_ptr = tf.value_pointer(node.outputs[0])
    with b.goto_block(tf._entry):
        kt = b.alloca(F32, size=const_int(D * lp, I32), name="kt")
        kt.align = 64
        sc = b.alloca(F32, size=const_int(2 * lp, I32), name="scores")
        sc.align = 64
        vp = None
        if not direct_v:
            vp = b.alloca(F32, size=const_int(L * dvp, I32), name="vpack")
            vp.align = 64
    c = lambda v: const_int(v)  # noqa: E731
    vty = ir.VectorType(F32, W)
    zero_v = ir.Constant(vty, [0.0] * W)
    fma = lambda x, y, acc: b.call(kb.intrinsic("fma", vty, 3), [x, y, acc])  # noqa: E731

    bh = b.sdiv(tf.task, c(nblk))
    blk = b.srem(tf.task, c(nblk))
    bi, hi = b.sdiv(bh, c(H)), b.srem(bh, c(H))
    s0, s1 = task_range(b, blk, nblk, S)

    def head_base(view, head=hi):
        return b.add(c(view[0]), b.add(b.mul(bi, c(view[1])), b.mul(head, c(view[2]))))

    hk = b.sdiv(hi, c(kv_group)) if kv_group > 1 else hi  # grouped-query attention: shared K/V head
    qb, kbase, vb, yb = head_base(qv), head_base(kv, hk), head_base(vv, hk), head_base(yv)
    kv_len = b.load(b.gep(len_ptr, [bi])) if has_lengths else None  # keys past it are padding
    # Query row s sits at key position s + offset (after the cache; with per-batch lengths, the
    # last S of the valid keys).
    offset = b.sub(kv_len, c(S)) if has_lengths else c(causal_offset)
    mb = head_base(mv) if has_mask else None

    # K^T packed: kt[d * lp + l] = k[l, d]; lanes past L are zero.  Written in order (strided
    # reads from a head that sits in cache cost less than strided writes).
    with for_range(b, 0, D, name="d") as d:
        col = b.add(kbase, b.mul(d, c(kv[4])))
        dst = b.mul(d, c(lp))
        with for_range(b, 0, L, name="l") as l:
            x = to_f32(b, b.load(b.gep(k_ptr, [b.add(col, b.mul(l, c(kv[3])))])))
            b.store(x, b.gep(kt, [b.add(dst, l)]))
    if lp > L:
        with for_range(b, 0, D, name="d") as d:
            with for_range(b, L, lp, name="l") as l:
                b.store(ir.Constant(F32, 0.0), b.gep(kt, [b.add(b.mul(d, c(lp)), l)]))
    if vp is not None:  # V packed: vp[l * dvp + d] = v[l, d]; lanes past Dv are zero
        with for_range(b, 0, L, name="l") as l:
            row = b.add(vb, b.mul(l, c(vv[3])))
            with for_range(b, 0, dvp, name="d") as d:
                inside = b.icmp_signed("<", d, c(Dv))
                safe_d = b.select(inside, d, c(0))
                x = to_f32(b, b.load(b.gep(v_ptr, [b.add(row, b.mul(safe_d, c(vv[4])))])))
                b.store(b.select(inside, x, ir.Constant(F32, 0.0)), b.gep(vp, [b.add(b.mul(l, c(dvp)), d)]))

    lane_ids = ir.Constant(ir.VectorType(I32, W), list(range(W)))

    def rows(srows: list) -> None:
        """Steps 1-3 for the query rows ``srows`` together (each K^T / V vector loaded once for all)."""
        R = len(srows)
        qrows = [b.add(qb, b.mul(s, c(qv[3]))) for s in srows]
        mrows = [b.add(mb, b.mul(s, c(mv[3]))) for s in srows] if has_mask else None
        # 1. scores, the running max
        vmax: list = [None] * R
        for g0 in range(0, n_l, group // R):
            cnt = min(group // R, n_l - g0)

            def score_step(d, accs, g0=g0, cnt=cnt):
                qd = [splat(b, to_f32(b, b.load(b.gep(q_ptr, [b.add(qr, b.mul(d, c(qv[4])))]))), W) for qr in qrows]
                at = b.add(b.mul(d, c(lp)), c(g0 * W))
                out = list(accs)
                for j in range(cnt):
                    kvec = load_vector(b, kt, b.add(at, c(j * W)), W, align=64)
                    for r in range(R):
                        out[r * cnt + j] = fma(qd[r], kvec, accs[r * cnt + j])
                return out

            accs = loop_carry(b, 0, D, 1, [zero_v] * (cnt * R), score_step, name="d")
            for r in range(R):
                for j in range(cnt):
                    l0 = (g0 + j) * W
                    x = b.fmul(accs[r * cnt + j], splat(b, ir.Constant(F32, scale), W))
                    if has_mask:
                        x = b.fadd(x, _mask_vector(b, m_ptr, mrows[r], mv[4], l0, L, W))
                    if l0 + W > L:
                        valid = b.icmp_signed("<", lane_ids, ir.Constant(ir.VectorType(I32, W), [L - l0] * W))
                        x = b.select(valid, x, ir.Constant(vty, [-math.inf] * W))
                    keep = None
                    if by_position:  # d = (s + offset) - key, key = l0 + lane
                        rel = b.trunc(b.sub(b.add(srows[r], offset), c(l0)), I32)
                        keep = _window_test(b, b.sub(splat(b, rel, W), lane_ids), causal, left, right, W)
                    if has_lengths:
                        lim = b.trunc(b.sub(kv_len, c(l0)), I32)
                        keep = _and(b, keep, b.icmp_signed("<", lane_ids, splat(b, lim, W)))
                    if keep is not None:
                        x = b.select(keep, x, ir.Constant(vty, [-math.inf] * W))
                    store_vector(b, x, sc, c(r * lp + l0), align=64)
                    vmax[r] = x if vmax[r] is None else b.select(b.fcmp_ordered(">", x, vmax[r]), x, vmax[r])
        inv = []
        for r in range(R):
            m = horizontal(kb, b, "max", vmax[r])
            m = splat(b, b.select(b.fcmp_ordered("==", m, ir.Constant(F32, -math.inf)), ir.Constant(F32, 0.0), m), W)

            # 2. exp(x - max) in place, and the sum
            def exp_step(i, accs, r=r, m=m):
                at = b.add(i, c(r * lp))
                e = vexp(kb, b, b.fsub(load_vector(b, sc, at, W, align=64), m))
                store_vector(b, e, sc, at, align=64)
                return [b.fadd(accs[0], e)]

            (total,) = loop_carry(b, 0, lp, W, [zero_v], exp_step, name="e")
            total = horizontal(kb, b, "add", total)  # 0 when the row may attend no key: it outputs zeros
            nonzero = b.fcmp_ordered("!=", total, ir.Constant(F32, 0.0))
            inv.append(splat(b, b.select(nonzero, b.fdiv(ir.Constant(F32, 1.0), total), ir.Constant(F32, 0.0)), W))

        # 3. P V, scaled by 1 / sum, through the output view
        yrows = [b.add(yb, b.mul(s, c(yv[3]))) for s in srows]
        for g0 in range(0, n_d, group // R):
            cnt = min(group // R, n_d - g0)

            def pv_step(l, accs, g0=g0, cnt=cnt):
                p = [splat(b, b.load(b.gep(sc, [b.add(l, c(r * lp))])), W) for r in range(R)]
                if direct_v:
                    at, ptr, align = b.add(b.add(vb, b.mul(l, c(vv[3]))), c(g0 * W)), v_ptr, 4
                else:
                    at, ptr, align = b.add(b.mul(l, c(dvp)), c(g0 * W)), vp, 64
                out = list(accs)
                for j in range(cnt):
                    vvec = load_vector(b, ptr, b.add(at, c(j * W)), W, align=align)
                    for r in range(R):
                        out[r * cnt + j] = fma(p[r], vvec, accs[r * cnt + j])
                return out

            accs = loop_carry(b, 0, L, 1, [zero_v] * (cnt * R), pv_step, name="l")
            for r in range(R):
                for j in range(cnt):
                    d0 = (g0 + j) * W
                    y = from_f32(b, b.fmul(accs[r * cnt + j], inv[r]), y_ptr.type.pointee)
                    if yv[4] == 1 and d0 + W <= Dv:
                        store_vector(b, y, y_ptr, b.add(yrows[r], c(d0)))
                        continue
                    for lane in range(min(W, Dv - d0)):
                        at = b.add(yrows[r], c((d0 + lane) * yv[4]))
                        b.store(b.extract_element(y, const_int(lane, I32)), b.gep(y_ptr, [at]))

    # Rows two at a time (a row's result does not depend on its partner: same operations, own
    # accumulators), then the odd one.
    if ROWS_TOGETHER == 1:
        with for_range(b, s0, s1, name="s") as s:
            rows([s])
    else:
        pairs = b.sdiv(b.sub(s1, s0), c(2))
        with for_range(b, 0, pairs, name="pair") as i:
            s = b.add(s0, b.mul(i, c(2)))
            rows([s, b.add(s, c(1))])
        with b.if_then(b.icmp_signed("!=", b.add(s0, b.mul(pairs, c(2))), s1)):
            rows([b.sub(s1, c(1))])
    b.ret_void()
    return Kernel(tf.fn.name, B * H * nblk, tf.buffers, label_of(node))


def _and(b: ir.IRBuilder, x: Optional[ir.Value], y: ir.Value) -> ir.Value:
    return y if x is None else b.and_(x, y)


def _window_test(b: ir.IRBuilder, d: ir.Value, causal: bool, left: int, right: int, W: int) -> ir.Value:
    """Lanes whose key is visible from the query: ``d = query position - key`` (an i32 vector)."""
    iv = lambda v: ir.Constant(ir.VectorType(I32, W), [v] * W)  # noqa: E731
    keep = None
    if causal:
        keep = _and(b, keep, b.icmp_signed(">=", d, iv(0)))
    if left >= 0:
        keep = _and(b, keep, b.icmp_signed("<=", d, iv(left)))
    if right >= 0:
        keep = _and(b, keep, b.icmp_signed(">=", d, iv(-right)))
    return keep


def _mask_vector(b: ir.IRBuilder, m_ptr: ir.Value, mrow: ir.Value, stride: int, l0: int, L: int,
                 W: int) -> ir.Value:
    """The mask at keys l0 .. l0+W-1 of one row (lanes past L are 0: they become -inf anyway)."""
    if stride == 0:
        return splat(b, to_f32(b, b.load(b.gep(m_ptr, [mrow]))), W)
    if stride == 1 and l0 + W <= L:
        return to_f32(b, load_vector(b, m_ptr, b.add(mrow, const_int(l0)), W))
    out = ir.Constant(ir.VectorType(F32, W), [0.0] * W)
    for lane in range(min(W, L - l0)):
        x = to_f32(b, b.load(b.gep(m_ptr, [b.add(mrow, const_int((l0 + lane) * stride))])))
        out = b.insert_element(out, x, const_int(lane, I32))
    return out
