"""``nnc.BF16MatMul`` on AVX512-BF16 (``vdpbf16ps``), for CPUs without AMX-BF16 tiles.

The packed B (``[N/16][Kp/2][16][2]``, see ``ir.ops.bf16_nnc``) holds, per
k pair, one 64-byte row of 16 columns: exactly one zmm of 32 bfloat16.  A task
owns ``MR`` rows and ``NV`` column vectors; for each k pair it rounds the rows'
two floats to bfloat16 (to nearest even, in integer registers), broadcasts the
pair and issues ``vdpbf16ps`` (inline assembly: llvmlite has no bfloat type)
into float32 accumulators.  The sums run in another order than the tile
kernel's, so the two differ by float32 rounding only.
"""

from __future__ import annotations

from typing import Any

import llvmlite.ir as ir

from ir.graph import Node

from ..codegen import F32, I32, I64, KernelBuilder, const_int, lane_mask, loop_carry, masked_load, masked_store, splat
from . import Kernel, label_of
from .int8_amx import _imin

MR, NV = 4, 4


def has_avx512_bf16(features) -> bool:
    return {"avx512bf16", "avx512f", "avx512bw"} <= set(features)


def _bf16_bits(b: ir.IRBuilder, f: ir.Value) -> ir.Value:
    """float32 -> bfloat16 bits in the low 16 bits of an i32 (round to nearest even, NaN stays NaN)."""
    bits = b.bitcast(f, I32)
    odd = b.and_(b.lshr(bits, const_int(16, I32)), const_int(1, I32))
    r = b.lshr(b.add(bits, b.add(odd, const_int(0x7FFF, I32))), const_int(16, I32))
    return b.select(b.fcmp_unordered("uno", f, f), const_int(0x7FC0, I32), r)


def emit(kb: KernelBuilder, node: Node, schedule: Any) -> Kernel:
    """The kernel (``bf16_amx.emit`` hands over nodes of targets without AMX-BF16)."""
    from ir.errors import BackendError
    if not has_avx512_bf16(kb.target.features):
        raise BackendError("precision=bf16 needs AMX-BF16 (amx-bf16) or AVX512-BF16 (avx512bf16) on the target",
                           subject=node.describe(),
                           hint="build without --option precision=bf16, or for a CPU with bfloat16 dot products")
    a_shape = tuple(node.inputs[0].type.shape)
    k, n = a_shape[-1], node.attr("n")
    rows = 1
    for d in a_shape[:-1]:
        rows *= d
    kp2 = node.inputs[1].type.shape[1]   # k pairs per packed column block
    nvec = -(-n // 16)
    m_tiles, n_tiles = -(-rows // MR), -(-nvec // NV)
    tf = kb.task_function(f"bf16dot_{node.outputs[0].name}")
    b = tf.builder
    a = tf.value_pointer(node.inputs[0])
    w32 = b.bitcast(tf.value_pointer(node.inputs[1]), I32.as_pointer())
    bias = tf.value_pointer(node.input(2)) if node.input(2) is not None else None
    y = tf.value_pointer(node.outputs[0])
    tm, tn = b.sdiv(tf.task, const_int(n_tiles)), b.srem(tf.task, const_int(n_tiles))
    row_ids = [_imin(b, b.add(b.mul(tm, const_int(MR)), const_int(r)), const_int(rows - 1)) for r in range(MR)]
    vec_ids = [_imin(b, b.add(b.mul(tn, const_int(NV)), const_int(v)), const_int(nvec - 1)) for v in range(NV)]
    vt, it = ir.VectorType(F32, 16), ir.VectorType(I32, 16)
    dot = ir.InlineAsm(ir.FunctionType(vt, [vt, it, it]), "vdpbf16ps $3, $2, $0", "=v,0,v,v")

    def pair(r: int, kk: ir.Value, last: bool) -> ir.Value:
        base = b.add(b.mul(row_ids[r], const_int(k)), b.mul(kk, const_int(2)))
        lo = _bf16_bits(b, b.load(b.gep(a, [base])))
        if last:  # K odd: the pair's second value is 0 (B is 0 there too; 0 * NaN would not be)
            return lo
        hi = _bf16_bits(b, b.load(b.gep(a, [b.add(base, const_int(1))])))
        return b.or_(lo, b.shl(hi, const_int(16, I32)))

    def step(kk: ir.Value, accs: list, last: bool = False) -> list:
        ws = [b.load(b.bitcast(b.gep(w32, [b.add(b.mul(v, const_int(kp2 * 16)), b.mul(kk, const_int(16)))]),
                               it.as_pointer()), align=4) for v in vec_ids]
        out = list(accs)
        for r in range(MR):
            s = splat(b, pair(r, kk, last), 16)
            for v in range(NV):
                out[r * NV + v] = b.call(dot, [out[r * NV + v], s, ws[v]])
        return out

    zero = ir.Constant(vt, [0.0] * 16)
    accs = loop_carry(b, 0, k // 2, 1, [zero] * (MR * NV), lambda kk, acc: step(kk, acc), name="kk")
    if k % 2:
        accs = step(const_int(k // 2, I64), accs, last=True)
    for v in range(NV):
        col0 = b.mul(vec_ids[v], const_int(16))
        mask = lane_mask(b, _imin(b, b.sub(const_int(n), col0), const_int(16)), 16)
        bv = masked_load(kb, b, bias, col0, mask, 16) if bias is not None else None
        for r in range(MR):
            acc = accs[r * NV + v] if bv is None else b.fadd(accs[r * NV + v], bv)
            masked_store(kb, b, acc, y, b.add(b.mul(row_ids[r], const_int(n)), col0), mask)
    b.ret_void()
    return Kernel(tf.fn.name, m_tiles * n_tiles, tf.buffers, label_of(node))
