"""AMX-INT8 tile bodies for the integer conv and matmul (``int8_gemm`` picks them where they fit).

An AMX tile multiply (``tdpbsud``/``tdpbusd``/``tdpbssd``) takes a 16-row tile
A of up to 64 bytes per row, a tile B of up to 16 rows of 16 x 4 bytes (the
VNNI layout: row ``k/4`` holds four consecutive k of each of 16 columns) and
adds ``A @ B`` (int32) to a 16 x 16 accumulator tile: 16 K-deep dot products
per output, 1024 multiply-adds per instruction.  Both packed layouts the VNNI
kernels read are already tile-shaped:

* conv: ``C[oc][pixel] = W[oc][K] @ X[K][pixel]`` with A = the packed weights
  ``[M][Kp]`` (16 output channels, int8) and B = the task's packed receptive
  fields ``[K/4][pixels][4]`` (uint8), so the result is NCHW rows;
* matmul: ``C[row][n] = A[row][K] @ B`` with A = the activations (rows of K
  bytes) and B = the packed weights ``[N/16][K/4][16][4]``.

The kernels use fixed tile registers through inline assembly (nothing else in
a compiled module touches them): tmm0-3 accumulate a 2 x 2 block of output
tiles, tmm4-5 hold A, tmm6-7 hold B.  The tile shape is static per kernel
(``ldtilecfg`` of a constant configuration at the start of each task; K runs
in groups of ``4 * d`` bytes, d the largest divisor of K/4 up to 16).  Edge
tiles are moved back inside the tensor (they recompute a few outputs and store
the same values), so no tile ever reads past a buffer.  The accumulators go
through a small stack buffer into the same register epilogue as the VNNI
kernels (``_Emitter.finish``), so the integers are the same bit for bit.

Linux hands a process the AMX register state only on request: each task
calls the runtime's ``nnc_amx_enable`` (asks once per process, see
``runtime/c``) before ``ldtilecfg``.
"""

from __future__ import annotations

import ctypes
from functools import lru_cache
from typing import Optional

import llvmlite.ir as ir

from ..codegen import F32, I8, I32, VOID, KernelBuilder, const_int, for_range, lane_mask, masked_load
from ..host import host_features

TILE_K_MAX = 16          # rows of a B tile: k/4 groups per tile multiply
MIN_K_GROUP = 8          # below this many k/4 groups per multiply the VNNI loop is as good
ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA, SYS_ARCH_PRCTL = 0x1023, 18, 158


@lru_cache(maxsize=None)
def amx_permitted() -> bool:
    """Whether this process may use the AMX tile state (asks Linux once, as the runtime does)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.syscall(SYS_ARCH_PRCTL, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) == 0
    except (OSError, AttributeError):
        return False


def has_amx(kb: KernelBuilder) -> bool:
    """AMX-INT8 tiles in the target (and, when this machine has them too, permission to use them).

    A build for another machine (the host lacks AMX) trusts the target's
    features; on this machine a kernel that refuses the tile state would
    make every run abort, so the VNNI kernels are used instead.
    """
    f = set(kb.target.features)
    if not ({"amx-int8", "amx-tile", "avx512bw"} <= f and kb.lanes >= 16):
        return False
    return amx_permitted() if host_features().get("amx-int8") else True


def k_group(kb4: int) -> Optional[int]:
    """k/4 groups per tile multiply: the largest divisor of ``kb4`` up to 16 (None: too small)."""
    d = max(x for x in range(1, min(TILE_K_MAX, kb4) + 1) if kb4 % x == 0)
    return d if d >= MIN_K_GROUP else None


class Tiles:
    """Inline-assembly AMX instructions on the fixed registers (tmm0-3 C, tmm4-5 A, tmm6-7 B)."""

    def __init__(self, kb: KernelBuilder, b: ir.IRBuilder, name: str, d: int) -> None:
        self.kb, self.b = kb, b
        cfg = bytearray(64)
        cfg[0] = 1  # palette 1
        for t, (rows, colsb) in enumerate([(16, 64)] * 4 + [(16, 4 * d)] * 2 + [(d, 64)] * 2):
            cfg[16 + 2 * t:18 + 2 * t] = colsb.to_bytes(2, "little")
            cfg[48 + t] = rows
        ty = ir.ArrayType(I8, 64)
        g = ir.GlobalVariable(kb.module, ty, kb.unique(f"tilecfg_{name}"))
        g.linkage, g.global_constant, g.align = "internal", True, 64
        g.initializer = ir.Constant(ty, bytearray(cfg))
        b.call(kb.declare("nnc_amx_enable", VOID, []), [])
        self._asm("ldtilecfg ($0)", "r", b.bitcast(g, I8.as_pointer()))

    def _asm(self, text: str, cons: str, *args: ir.Value) -> None:
        ft = ir.FunctionType(VOID, [a.type for a in args])
        self.b.call(ir.InlineAsm(ft, text, (cons + "," if cons else "") + "~{memory}", side_effect=True),
                    list(args))

    def zero(self, t: int) -> None:
        self._asm(f"tilezero %tmm{t}", "")

    def load(self, t: int, ptr: ir.Value, stride: ir.Value) -> None:
        self._asm(f"tileloadd ($0,$1,1), %tmm{t}", "r,r", self.b.bitcast(ptr, I8.as_pointer()), stride)

    def store(self, t: int, ptr: ir.Value, stride: ir.Value) -> None:
        self._asm(f"tilestored %tmm{t}, ($0,$1,1)", "r,r", self.b.bitcast(ptr, I8.as_pointer()), stride)

    def dot(self, op: str, c: int, a: int, bt: int) -> None:
        """C += A @ B; ``op`` names the signedness (tdpbsud: A int8, B uint8; ...)."""
        self._asm(f"{op} %tmm{bt}, %tmm{a}, %tmm{c}", "")

    def release(self) -> None:
        self._asm("tilerelease", "")


def _offset(e, bias: ir.Value, colsum: ir.Value) -> ir.Value:
    """``bias - x_zp * colsum``: the accumulator's per-channel correction, once per channel."""
    b = e.b
    za = e.za if not isinstance(bias.type, ir.VectorType) else _splat_like(b, e.za, bias)
    return b.sub(bias, b.mul(za, colsum))


def _splat_like(b: ir.IRBuilder, scalar: ir.Value, like: ir.Value) -> ir.Value:
    n = like.type.count
    vty = ir.VectorType(scalar.type, n)
    one = b.insert_element(ir.Constant(vty, ir.Undefined), scalar, ir.Constant(I32, 0))
    return b.shuffle_vector(one, ir.Constant(vty, ir.Undefined), ir.Constant(ir.VectorType(I32, n), [0] * n))


def _requantize(e, acc: ir.Value, offset: ir.Value, mult: ir.Value) -> ir.Value:
    """``_Emitter.finish`` with the correction added once and fewer steps, the same integers.

    The clamp bounds are integers, so clamping before rounding (vmaxps/vminps)
    equals the reference's order; ``vcvtps2dq`` with round-to-nearest-even
    ({rn-sae}) is ``roundeven`` then the conversion; the int32 sum wraps the
    same way in either order.
    """
    if e.p.yzp is None:
        return e.b.add(acc, offset)
    b, kb, p = e.b, e.kb, e.p
    L = acc.type.count
    fv = ir.VectorType(F32, L)
    f = b.fmul(b.sitofp(b.add(acc, offset), fv), mult)
    f = b.call(kb.intrinsic("maxnum", fv, 2), [f, ir.Constant(fv, [float(p.lo - p.yzp)] * L)])
    f = b.call(kb.intrinsic("minnum", fv, 2), [f, ir.Constant(fv, [float(p.hi - p.yzp)] * L)])
    iv = ir.VectorType(I32, L)
    cvt = kb.declare("llvm.x86.avx512.mask.cvtps2dq.512", iv, [fv, iv, ir.IntType(16), I32])
    q = b.call(cvt, [f, ir.Constant(iv, [0] * L), ir.Constant(ir.IntType(16), 0xFFFF), ir.Constant(I32, 8)])
    q = b.add(q, ir.Constant(iv, [p.yzp] * L))
    return b.trunc(q, ir.VectorType(I8, L))


def _alloca(tf, nbytes: int) -> ir.Value:
    with tf.builder.goto_block(tf._entry):
        return tf.builder.alloca(I8, size=const_int(nbytes, I32), name="tiles")


def _imin(b: ir.IRBuilder, x: ir.Value, y: ir.Value) -> ir.Value:
    return b.select(b.icmp_signed("<", x, y), x, y)


def _block(t: Tiles, op: str, a_ptrs, a_stride, b_ptrs, b_stride, a_step: int, b_step: int,
           groups: int) -> None:
    """The 2 x 2 tile block: C[i][j] (tmm 2i+j) = sum over the K groups of A_i @ B_j."""
    b = t.b
    for c in range(4):
        t.zero(c)
    with for_range(b, 0, groups, name="kt") as kc:
        for i in range(2):
            t.load(4 + i, b.gep(a_ptrs[i], [b.mul(kc, const_int(a_step))]), a_stride)
            t.load(6 + i, b.gep(b_ptrs[i], [b.mul(kc, const_int(b_step))]), b_stride)
        for i in range(2):
            for j in range(2):
                t.dot(op, 2 * i + j, 4 + i, 6 + j)


def conv_tiles(e, ctx: dict, d: int) -> None:
    """Step 3 of ``_emit_conv`` on tiles: output channels [oc_lo, oc_hi) x all pixel vectors."""
    b, kb = e.b, e.kb
    L = 16
    kb4, pp, nvec, mg, kp = ctx["kb4"], ctx["pp"], ctx["nvec"], ctx["mg"], 4 * ctx["kb4"]
    grp, xp, w8 = ctx["grp"], ctx["xp"], ctx["w8"]
    t = Tiles(kb, b, e.node.outputs[0].name, d)
    cbuf = _alloca(e.tf, 4 * 16 * 16 * 4)
    c32 = b.bitcast(cbuf, I32.as_pointer())
    last_tile = const_int(mg - 16)
    with for_range(b, ctx["oc_lo"], ctx["oc_hi"], 32, name="oc") as oc0:
        tiles_oc = [_imin(b, oc0, last_tile), _imin(b, b.add(oc0, const_int(16)), last_tile)]
        occ0 = [b.add(b.mul(grp, const_int(mg)), o) for o in tiles_oc]   # absolute first channel
        a_ptrs = [b.gep(w8, [b.mul(o, const_int(kp))]) for o in occ0]
        with for_range(b, 0, nvec, 2, name="pv") as v0:
            vs = [v0, _imin(b, b.add(v0, const_int(1)), const_int(nvec - 1))]
            b_ptrs = [b.gep(xp, [b.mul(v, const_int(L * 4))]) for v in vs]
            _block(t, "tdpbsud", a_ptrs, const_int(kp), b_ptrs, const_int(pp * 4), 4 * d, d * pp * 4, kb4 // d)
            for c in range(4):
                t.store(c, b.gep(cbuf, [const_int(c * 1024)]), const_int(64))
            with for_range(b, 0, 16, name="r") as r:
                for i in range(2):
                    idx = b.add(occ0[i], r)
                    off = ctx["splat"](_offset(e, b.load(b.gep(e.bias, [idx])), b.load(b.gep(e.colsum, [idx]))))
                    mult = ctx["splat"](b.load(b.gep(e.mult, [idx])))
                    for j in range(2):
                        acc = b.load(b.bitcast(b.gep(c32, [b.add(const_int((2 * i + j) * 256), b.mul(r, const_int(16)))]),
                                               ir.VectorType(I32, L).as_pointer()), align=4)
                        start = b.mul(vs[j], const_int(L))
                        mask = lane_mask(b, _imin(b, b.sub(ctx["valid"], start), const_int(L)), L)
                        y = _requantize(e, acc, off, mult)
                        out_idx = b.add(b.mul(b.add(b.mul(ctx["img"], const_int(ctx["m"])), idx),
                                              const_int(ctx["oh"] * ctx["ow"])),
                                        b.add(b.mul(ctx["oh0"], const_int(ctx["ow"])), start))
                        e.store(y, out_idx, mask)
    t.release()


MATMUL_N_TILES = 8  # column tiles (of 16) a matmul task covers: its A rows stay in L1 across them


def matmul_plan(rows: int, n: int) -> tuple[int, int, int]:
    """(row-tile pairs, column chunks, tasks) of the tile matmul."""
    pairs = -(-(-(-rows // 16)) // 2)
    chunks = -(-(-(-n // 16)) // MATMUL_N_TILES)
    return pairs, chunks, pairs * chunks


def matmul_tiles(e, a8: ir.Value, w: ir.Value, rows: int, k: int, n: int, d: int) -> int:
    """The whole ``nnc.QMatMul`` task body on tiles; returns the number of tasks."""
    b, kb, p = e.b, e.kb, e.p
    L = 16
    kb4 = k // 4
    ntiles = -(-n // 16)
    pairs, chunks, tasks = matmul_plan(rows, n)
    if p.signed_x:  # int8 activations multiply as they are (tdpbssd): the zero point stays unshifted
        e.za = b.sub(e.za, const_int(128, I32))
    op = "tdpbssd" if p.signed_x else "tdpbusd"
    t = Tiles(kb, b, e.node.outputs[0].name, d)
    cbuf = _alloca(e.tf, 4 * 16 * 16 * 4)
    c32 = b.bitcast(cbuf, I32.as_pointer())
    task = e.tf.task
    tp, tc = b.sdiv(task, const_int(chunks)), b.srem(task, const_int(chunks))
    last_row = const_int(rows - 16)
    row0 = [_imin(b, b.mul(tp, const_int(32)), last_row),
            _imin(b, b.add(b.mul(tp, const_int(32)), const_int(16)), last_row)]
    a_ptrs = [b.gep(a8, [b.mul(r, const_int(k))]) for r in row0]
    n_lo = b.mul(tc, const_int(MATMUL_N_TILES))
    n_hi = _imin(b, b.add(n_lo, const_int(MATMUL_N_TILES)), const_int(ntiles))
    with for_range(b, n_lo, n_hi, 2, name="nt") as nt0:
        nts = [nt0, _imin(b, b.add(nt0, const_int(1)), const_int(ntiles - 1))]
        b_ptrs = [b.gep(w, [b.mul(x, const_int(kb4 * 64))]) for x in nts]
        _block(t, op, a_ptrs, const_int(k), b_ptrs, const_int(64), 4 * d, d * 64, kb4 // d)
        for c in range(4):
            t.store(c, b.gep(cbuf, [const_int(c * 1024)]), const_int(64))
        for j in range(2):
            col0 = b.mul(nts[j], const_int(L))
            mask = lane_mask(b, _imin(b, b.sub(const_int(n), col0), const_int(L)), L)
            bias, colsum, mult = (masked_load(kb, b, ptr, col0, mask, L) for ptr in (e.bias, e.colsum, e.mult))
            off = _offset(e, bias, colsum)
            with for_range(b, 0, 16, name="r") as r:
                for i in range(2):
                    acc = b.load(b.bitcast(b.gep(c32, [b.add(const_int((2 * i + j) * 256), b.mul(r, const_int(16)))]),
                                           ir.VectorType(I32, L).as_pointer()), align=4)
                    y = _requantize(e, acc, off, mult)
                    e.store(y, b.add(b.mul(b.add(row0[i], r), const_int(n)), col0), mask)
    t.release()
    b.ret_void()
    return tasks

