"""``nnc.BF16MatMul`` on AMX-BF16 tiles (``tdpbf16ps``).

A task owns 32 rows of A (two 16-row tiles) and a chunk of column tiles (all
of them unless the cores need more tasks than row pairs).  It
first rounds its rows of A to bfloat16 (round to nearest even, in vector
registers) into a stack buffer ``[32][Kp]`` padded with zeros (rows past M, k
past K), so every tile load stays inside a buffer; B is packed at build time
as AMX reads it.  Each step multiplies a 2 x 2 block of 16 x 16 float32
accumulator tiles by 32 k (tmm0-3 C, tmm4-5 A, tmm6-7 B, the same fixed
registers as the int8 tile kernels); the epilogue adds the bias and stores the
valid rows and columns.

A target without AMX-BF16 gets the AVX512-BF16 kernel (``bf16_dot``); one
with neither is refused by name, never silently run in float32.
"""

from __future__ import annotations

from typing import Any, Optional

import llvmlite.ir as ir

from ir.graph import Node
from ir.ops.bf16_nnc import BF16_K, packed_k

from ..codegen import F32, I16, I32, I8, KernelBuilder, const_int, for_range, lane_mask, masked_load, masked_store
from . import Kernel, generator, label_of
from .int8_amx import Tiles, _alloca, _imin, amx_permitted
from ..host import host_features

MAX_SCRATCH = 1 << 20


def has_amx_bf16(features) -> bool:
    f = set(features)
    if not {"amx-bf16", "amx-tile", "avx512f"} <= f:
        return False
    return amx_permitted() if host_features().get("amx-bf16") else True


def support(node: Node) -> Optional[str]:
    """What both bf16 kernels need (static shapes, constant packed weights)."""
    if (node.domain, node.op) != ("nnc", "BF16MatMul"):
        return f"{node.qualified_op} is not nnc.BF16MatMul"
    for v in list(node.inputs) + list(node.outputs):
        if v is not None and not getattr(v.type, "is_static", False):
            return "nnc.BF16MatMul needs static shapes on the cpu target"
    for i in (1, 2):
        v = node.input(i)
        if v is not None and v.const is None:
            return f"nnc.BF16MatMul: input {i} must be a constant (packed at build time)"
    k = node.inputs[0].type.shape[-1]
    if 32 * (packed_k(k) * 2 + 64) > MAX_SCRATCH:
        return f"nnc.BF16MatMul: K = {k} is too long for the kernel's stack buffer"
    return None


def _to_bf16(b: ir.IRBuilder, v: ir.Value) -> ir.Value:
    """<16 x float> -> <16 x i16> bfloat16 bits, round to nearest even (NaN -> quiet NaN)."""
    vt = ir.VectorType(I32, 16)
    bits = b.bitcast(v, vt)
    one = ir.Constant(vt, [1] * 16)
    odd = b.and_(b.lshr(bits, ir.Constant(vt, [16] * 16)), one)
    r = b.lshr(b.add(bits, b.add(odd, ir.Constant(vt, [0x7FFF] * 16))), ir.Constant(vt, [16] * 16))
    nan = b.fcmp_unordered("uno", v, v)
    r = b.select(nan, ir.Constant(vt, [0x7FC0] * 16), r)
    return b.trunc(r, ir.VectorType(I16, 16))


@generator("bf16-amx", supports=support, ops=[("nnc", "BF16MatMul")])
def emit(kb: KernelBuilder, node: Node, schedule: Any) -> Kernel:
    if not has_amx_bf16(kb.target.features):  # AVX512-BF16 dot products instead (or a refusal by name)
        from .bf16_dot import emit as emit_dot
        return emit_dot(kb, node, schedule)
    a_shape = tuple(node.inputs[0].type.shape)
    k, n = a_shape[-1], node.attr("n")
    rows = 1
    for d in a_shape[:-1]:
        rows *= d
    kp = packed_k(k)
    ntiles = -(-n // 16)
    pairs = -(-rows // 32)
    # Columns split only as far as the cores need tasks: every task rounds its rows of A again.
    chunks = max(1, min(-(-ntiles // 2), -(-2 * max(1, kb.target.cores) // pairs)))
    per_task = -(-(-(-ntiles // chunks)) // 2) * 2
    chunks = -(-ntiles // per_task)
    tf = kb.task_function(f"bf16mm_{node.outputs[0].name}")
    b = tf.builder
    a = tf.value_pointer(node.inputs[0])
    w8 = b.bitcast(tf.value_pointer(node.inputs[1]), I8.as_pointer())
    bias = tf.value_pointer(node.input(2)) if node.input(2) is not None else None
    y = tf.value_pointer(node.outputs[0])
    tp, tc = b.sdiv(tf.task, const_int(chunks)), b.srem(tf.task, const_int(chunks))
    row0 = b.mul(tp, const_int(32))
    # --- 1. this task's 32 rows of A as bfloat16, zero-padded: abuf[32][kp]
    stride = kp * 2 + 64   # one extra cache line per row: power-of-two strides crowd a few L1 sets
    abuf = _alloca(tf, 32 * stride)
    a16 = b.bitcast(abuf, I16.as_pointer())
    with for_range(b, 0, 32, name="ar") as r:
        row = b.add(row0, r)
        ok = b.icmp_signed("<", row, const_int(rows))
        with for_range(b, 0, kp, 16, name="ak") as k0:
            cnt = b.select(ok, _imin(b, b.sub(const_int(k), k0), const_int(16)), const_int(0))
            mask = lane_mask(b, cnt, 16)  # lanes past K (or past M) load 0.0
            v = masked_load(kb, b, a, b.add(b.mul(_imin(b, row, const_int(rows - 1)), const_int(k)), k0), mask, 16)
            dst = b.bitcast(b.gep(a16, [b.add(b.mul(r, const_int(stride // 2)), k0)]),
                            ir.VectorType(I16, 16).as_pointer())
            b.store(_to_bf16(b, v), dst, align=2)
    # --- 2. tiles
    t = Tiles(kb, b, node.outputs[0].name, BF16_K // 2)
    cbuf = _alloca(tf, 4 * 16 * 16 * 4)
    c32 = b.bitcast(cbuf, F32.as_pointer())
    a_ptrs = [b.gep(abuf, [const_int(i * 16 * stride)]) for i in range(2)]
    n_lo = b.mul(tc, const_int(per_task))
    n_hi = _imin(b, b.add(n_lo, const_int(per_task)), const_int(ntiles))
    with for_range(b, n_lo, n_hi, 2, name="nt") as nt0:
        nts = [nt0, _imin(b, b.add(nt0, const_int(1)), const_int(ntiles - 1))]
        b_ptrs = [b.gep(w8, [b.mul(x, const_int(kp * 2 * 16))]) for x in nts]
        for c in range(4):
            t.zero(c)
        with for_range(b, 0, kp // BF16_K, name="kt") as kc:
            for i in range(2):
                t.load(4 + i, b.gep(a_ptrs[i], [b.mul(kc, const_int(BF16_K * 2))]), const_int(stride))
                t.load(6 + i, b.gep(b_ptrs[i], [b.mul(kc, const_int(BF16_K * 2 * 16))]), const_int(64))
            for i in range(2):
                for j in range(2):
                    t.dot("tdpbf16ps", 2 * i + j, 4 + i, 6 + j)
        for c in range(4):
            t.store(c, b.gep(cbuf, [const_int(c * 1024)]), const_int(64))
        for j in range(2):
            col0 = b.mul(nts[j], const_int(16))
            mask = lane_mask(b, _imin(b, b.sub(const_int(n), col0), const_int(16)), 16)
            bv = masked_load(kb, b, bias, col0, mask, 16) if bias is not None else None
            for i in range(2):
                with for_range(b, 0, 16, name="r") as r:
                    row = b.add(row0, b.add(const_int(16 * i), r))
                    with b.if_then(b.icmp_signed("<", row, const_int(rows))):
                        acc = b.load(b.bitcast(b.gep(c32, [b.add(const_int((2 * i + j) * 256), b.mul(r, const_int(16)))]),
                                               ir.VectorType(F32, 16).as_pointer()), align=4)
                        if bv is not None:
                            acc = b.fadd(acc, bv)
                        masked_store(kb, b, acc, y, b.add(b.mul(row, const_int(n)), col0), mask)
    t.release()
    b.ret_void()
    return Kernel(tf.fn.name, pairs * chunks, tf.buffers, label_of(node))
