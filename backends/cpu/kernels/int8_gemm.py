"""Integer conv and matmul kernels (``nnc.QConv``, ``nnc.QMatMul``) on VNNI dot products.

Both accumulate ``u8 x s8`` products four at a time into int32 lanes with
AVX512-VNNI's ``vpdpbusd`` (``llvm.x86.avx512.vpdpbusd.512``).  Without VNNI
the same step is written in plain LLVM vector IR (widen to i32, multiply, add
groups of four), which LLVM lowers to AVX2 ``vpmaddwd``-style code: slower, but
exact (no int16 saturation, so no ``reduce_range`` is needed), so every target
gives the reference's integers.

* ``nnc.QMatMul`` (Y[M, N] = A[M, K] @ B): vectors run along N over B packed
  at build time as ``[N/16][K/4][16][4]``; each step broadcasts 4 bytes of a row
  of A and issues one dot product per (row, column vector) of the register tile.
* ``nnc.QConv`` (NCHW): a task owns one output row of one group; it packs the
  row's receptive fields ``[K/4][OW][4]`` (u8; padding holds the input zero
  point), then vectors run along the output row and each step broadcasts 4
  bytes of one output channel's packed weights ``[M][Kp]``.

Signed activations are made unsigned by flipping the top bit (``a + 128``),
with the zero point moved by 128.  The zero points never touch the inner loop:

    sum_k (a - za)(w - wz) = dot(a, w) - za * colsum(w) - wz * rowsum(a) + K * za * wz

(``colsum`` is a build-time constant; ``rowsum`` is only computed when some
weight zero point is not 0).  The epilogue is ``ir.quant.requantize_clamped``
in registers: int32 + bias -> float32 * multiplier -> clamp to the saturation
bounds (fused Relu/Clip) -> round half to even -> + zero point -> 8 bits.
"""

from __future__ import annotations

import math
from typing import Any, Optional

import llvmlite.ir as ir
import numpy as np

from ir import quant
from ir.dtypes import DType
from ir.errors import BackendError
from ir.graph import Node
from ir.ops.qlinear_nnc import I32_MAX, I32_MIN

from ..codegen import (F32, I8, I32, I64, KernelBuilder, const_int, for_range, lane_mask, loop_carry,
                       masked_load, masked_store, splat)
from . import Kernel, generator, int8_amx, label_of

QOPS = [("nnc", "QConv"), ("nnc", "QMatMul")]
PIXELS_PER_TASK = 64   # output pixels a conv task packs and computes (whole rows, at least one)
MAX_SCRATCH = 1 << 20  # stack bytes a conv task may use for its packed row (the pool's threads have 8 MB)


def has_vnni(kb: KernelBuilder) -> bool:
    """AVX512-VNNI with 512-bit vectors (``vpdpbusd zmm``)."""
    f = set(kb.target.features)
    return kb.lanes >= 16 and "avx512vnni" in f and "avx512bw" in f


def int_lanes(kb: KernelBuilder) -> int:
    """int32 lanes per vector: 16 with AVX-512, else 8 (AVX2)."""
    return 16 if kb.lanes >= 16 else 8


def support(node: Node) -> Optional[str]:
    if (node.domain, node.op) not in QOPS:
        return f"{node.qualified_op} is not an integer conv/matmul"
    for v in list(node.inputs) + list(node.outputs):
        if v is not None and not getattr(v.type, "is_static", False):
            return f"{node.qualified_op} needs static shapes on the cpu target"
    for i in (1, 2, 3, 5, 6, 7):
        v = node.input(i)
        if v is not None and v.const is None:
            return (f"{node.qualified_op}: input {i} ({node.schema.inputs[i].name}) must be a constant "
                    f"on the cpu target (weights are packed at build time)")
    return None


# ------------------------------------------------------------ dot product
def dot4(kb: KernelBuilder, b: ir.IRBuilder, acc: ir.Value, u8x4: ir.Value, s8x4: ir.Value) -> ir.Value:
    """``acc[i] += sum_j u8(u8x4[i].byte j) * s8(s8x4[i].byte j)`` on <L x i32> vectors (exact)."""
    n = acc.type.count
    if n == 16 and has_vnni(kb):
        vt = acc.type
        fn = kb.declare("llvm.x86.avx512.vpdpbusd.512", vt, [vt, vt, vt])
        return b.call(fn, [acc, u8x4, s8x4])
    bytes_t = ir.VectorType(I8, 4 * n)
    wide = ir.VectorType(I32, 4 * n)
    ua = b.zext(b.bitcast(u8x4, bytes_t), wide)
    sb = b.sext(b.bitcast(s8x4, bytes_t), wide)
    prod = b.mul(ua, sb)
    undef = ir.Constant(wide, ir.Undefined)
    for j in range(4):
        part = b.shuffle_vector(prod, undef, ir.Constant(ir.VectorType(I32, n), [4 * i + j for i in range(n)]))
        acc = b.add(acc, part)
    return acc


def _global_i32(kb: KernelBuilder, name: str, values: list[int]) -> ir.GlobalVariable:
    """A constant i32 table in the module (a kernel's static offsets)."""
    ty = ir.ArrayType(I32, len(values))
    g = ir.GlobalVariable(kb.module, ty, kb.unique(name))
    g.linkage = "internal"
    g.global_constant = True
    g.initializer = ir.Constant(ty, [int(v) for v in values])
    return g


def _alloca_entry(tf, nbytes: int) -> ir.Value:
    with tf.builder.goto_block(tf._entry):
        return tf.builder.alloca(I8, size=const_int(nbytes, I32), name="qpack")


def _imin(b: ir.IRBuilder, x: ir.Value, y: ir.Value) -> ir.Value:
    return b.select(b.icmp_signed("<", x, y), x, y)


class _Params:
    """The node's constant operands and what the epilogue needs from them."""

    def __init__(self, node: Node) -> None:
        self.signed_x = node.inputs[0].type.dtype == DType.I8
        self.wzp = np.asarray(node.input(5).const).reshape(-1)
        self.need_rowsum = bool(np.any(self.wzp != 0))
        yzp = node.input(7)
        self.out_dtype = node.outputs[0].type.dtype
        if yzp is not None:
            self.yzp = int(np.asarray(yzp.const).reshape(-1)[0])
            lo, hi = quant.qrange(self.out_dtype)
            self.lo = max(lo, node.attr("act_min") if node.attr("act_min") is not None else I32_MIN)
            self.hi = min(hi, node.attr("act_max") if node.attr("act_max") is not None else I32_MAX)
        else:
            self.yzp = None


class _Emitter:
    """Shared pieces of the two kernels: zero point, corrections, requantizing store."""

    def __init__(self, kb: KernelBuilder, node: Node, name: str) -> None:
        self.kb, self.node = kb, node
        self.tf = kb.task_function(name)
        self.b = self.tf.builder
        self.L = int_lanes(kb)
        self.vt = ir.VectorType(I32, self.L)
        self.p = _Params(node)
        b = self.b
        ptr = self.tf.value_pointer(node.inputs[4])
        raw = b.load(ptr)
        za = b.sext(raw, I32) if node.inputs[4].type.dtype == DType.I8 else b.zext(raw, I32)
        self.za = b.add(za, const_int(128, I32)) if self.p.signed_x else za  # in the u8 domain
        self.bias = self.tf.value_pointer(node.inputs[2])
        self.mult = self.tf.value_pointer(node.inputs[3])
        self.wzp = self.tf.value_pointer(node.inputs[5])
        self.colsum = self.tf.value_pointer(node.inputs[6])
        self.y = self.tf.value_pointer(node.outputs[0])

    def finish(self, acc: ir.Value, bias: ir.Value, colsum: ir.Value, wzp: ir.Value, mult: ir.Value,
               rowsum: Optional[ir.Value], k: int) -> ir.Value:
        """int32 accumulator (vector) -> requantized values (vector, compute type of the output)."""
        b = self.b
        za = splat(b, self.za, self.L)
        v = b.add(b.sub(acc, b.mul(za, colsum)), bias)
        if rowsum is not None:
            v = b.add(v, b.mul(wzp, b.sub(b.mul(za, splat(b, const_int(k, I32), self.L)), rowsum)))
        if self.p.yzp is None:
            return v
        f = b.fmul(b.sitofp(v, ir.VectorType(F32, self.L)), mult)
        fv = f.type
        lo = ir.Constant(fv, [float(self.p.lo - self.p.yzp)] * self.L)
        hi = ir.Constant(fv, [float(self.p.hi - self.p.yzp)] * self.L)
        f = b.select(b.fcmp_ordered(">", f, lo), f, lo)
        f = b.select(b.fcmp_ordered("<", f, hi), f, hi)
        f = b.call(self.kb.intrinsic("roundeven", fv), [f])
        q = b.add(b.fptosi(f, self.vt), ir.Constant(self.vt, [self.p.yzp] * self.L))
        return b.trunc(q, ir.VectorType(I8, self.L))

    def store(self, value: ir.Value, index: ir.Value, mask: ir.Value) -> None:
        masked_store(self.kb, self.b, value, self.y, index, mask)

    def x_word(self, ptr: ir.Value, index: ir.Value) -> ir.Value:
        """4 input bytes at ``ptr[index]`` as an i32 (top bits flipped for int8 data)."""
        b = self.b
        w = b.load(b.bitcast(b.gep(ptr, [index]), I32.as_pointer()), align=1)
        return b.xor(w, const_int(0x80808080, I32)) if self.p.signed_x else w


# ------------------------------------------------------------------ QMatMul
def _emit_matmul(kb: KernelBuilder, node: Node) -> Kernel:
    e = _Emitter(kb, node, f"qmatmul_{node.outputs[0].name}")
    b, L, vt, p = e.b, e.L, e.vt, e.p
    a_shape = tuple(node.inputs[0].type.shape)
    k = a_shape[-1]
    rows = max(1, math.prod(a_shape[:-1]))
    n = node.attr("n")
    kb4 = -(-k // 4)
    nvec = -(-n // L)
    nv = min(nvec, 4)
    regs = 32 if L == 16 else 16
    mr = max(1, min(rows, (regs - nv - 2) // nv, 8))
    m_tiles, n_tiles = -(-rows // mr), -(-nvec // nv)
    a = e.tf.value_pointer(node.inputs[0])
    a8 = b.bitcast(a, I8.as_pointer())
    w = b.bitcast(e.tf.value_pointer(node.inputs[1]), I8.as_pointer())
    d = int8_amx.k_group(kb4) if k % 4 == 0 and rows >= 16 and not p.need_rowsum and int8_amx.has_amx(kb) else None
    if d is not None:
        tasks = int8_amx.matmul_tiles(e, a8, w, rows, k, n, d)
        return Kernel(e.tf.fn.name, tasks, e.tf.buffers, label_of(node))
    task = e.tf.task
    tm = b.sdiv(task, const_int(n_tiles))
    tn = b.srem(task, const_int(n_tiles))
    row_ids = [_imin(b, b.add(b.mul(tm, const_int(mr)), const_int(r)), const_int(rows - 1)) for r in range(mr)]
    vec_ids = [_imin(b, b.add(b.mul(tn, const_int(nv)), const_int(v)), const_int(nvec - 1)) for v in range(nv)]
    row_base = [b.mul(r, const_int(k)) for r in row_ids]
    # Byte offset of column vector v's first k group in the packed B: block*(KB*64) + sub*4.
    col0 = [b.mul(v, const_int(L)) for v in vec_ids]
    w_base = [b.add(b.mul(b.sdiv(c, const_int(16)), const_int(kb4 * 64)),
                    b.mul(b.srem(c, const_int(16)), const_int(4))) for c in col0]
    zero = ir.Constant(vt, [0] * L)

    def step(k4: ir.Value, accs: list[ir.Value], words: Optional[list[ir.Value]] = None) -> list[ir.Value]:
        if words is None:
            words = [e.x_word(a8, b.add(rb, b.mul(k4, const_int(4)))) for rb in row_base]
        wv = [b.load(b.bitcast(b.gep(w, [b.add(wb, b.mul(k4, const_int(64)))]), vt.as_pointer()), align=1)
              for wb in w_base]
        out = list(accs)
        for r in range(mr):
            s = splat(b, words[r], L)
            for v in range(nv):
                out[r * nv + v] = dot4(kb, b, out[r * nv + v], s, wv[v])
        return out

    accs = loop_carry(b, 0, k // 4, 1, [zero] * (mr * nv), step, name="k4")
    if k % 4:  # last partial group of 4: bytes past K are 0 (their weights are 0 too)
        words = []
        for rb in row_base:
            word = const_int(0, I32)
            for j in range(k % 4):
                byte = b.zext(b.load(b.gep(a8, [b.add(rb, const_int(4 * (k // 4) + j))])), I32)
                word = b.or_(word, b.shl(byte, const_int(8 * j, I32)))
            words.append(b.xor(word, const_int(0x80808080 & ((1 << (8 * (k % 4))) - 1), I32))
                         if p.signed_x else word)
        accs = step(const_int(k // 4), accs, words)
    rowsums = [None] * mr
    if p.need_rowsum:
        for r in range(mr):
            def add_byte(i: ir.Value, vals: list[ir.Value], r: int = r) -> list[ir.Value]:
                byte = b.zext(b.load(b.gep(a8, [b.add(row_base[r], i)])), I32)
                if p.signed_x:
                    byte = b.xor(byte, const_int(0x80, I32))
                return [b.add(vals[0], byte)]
            rowsums[r] = splat(b, loop_carry(b, 0, k, 1, [const_int(0, I32)], add_byte, name="rs")[0], L)
    for v in range(nv):
        count = b.sub(const_int(n), col0[v])
        mask = lane_mask(b, _imin(b, count, const_int(L)), L)
        bias, colsum, wzp, mult = (masked_load(kb, b, ptr, col0[v], mask, L)
                                   for ptr in (e.bias, e.colsum, e.wzp, e.mult))
        for r in range(mr):
            y = e.finish(accs[r * nv + v], bias, colsum, wzp, mult, rowsums[r], k)
            e.store(y, b.add(b.mul(row_ids[r], const_int(n)), col0[v]), mask)
    b.ret_void()
    return Kernel(e.tf.fn.name, m_tiles * n_tiles, e.tf.buffers, label_of(node))


# -------------------------------------------------------------------- QConv
def _emit_conv(kb: KernelBuilder, node: Node) -> Kernel:
    e = _Emitter(kb, node, f"qconv_{node.outputs[0].name}")
    b, L, vt, p = e.b, e.L, e.vt, e.p
    nb, c, h, wd = node.inputs[0].type.shape
    _, m, oh, ow = node.outputs[0].type.shape
    kh, kw = node.attr("kernel_shape")
    sh, sw = node.attr("strides") or [1, 1]
    dh, dw = node.attr("dilations") or [1, 1]
    pt, pl = (node.attr("pads") or [0, 0, 0, 0])[:2]
    g = node.attr("group") or 1
    cg, mg = c // g, m // g
    k = cg * kh * kw
    kp = -(-k // 4) * 4
    kb4 = kp // 4
    # A task owns R output rows (the flattened pixels of narrow rows fill whole vectors) and a
    # share of the output channels (so small late layers still give every core work).
    rows_per = max(1, min(oh, -(-PIXELS_PER_TASK // ow)))
    n_rb = -(-oh // rows_per)
    pix = rows_per * ow
    nvec = -(-pix // L)
    nvr = -(-ow // L)                                # vectors one row's packing writes
    pp = max(nvec * L, (rows_per - 1) * ow + nvr * L)  # pixels per k-group slab of xp
    nv = min(nvec, 4)
    regs = 32 if L == 16 else 16
    mr = max(1, min(mg, (regs - nv - 3) // nv, 12))
    want_tasks = 2 * max(1, kb.target.cores)
    amx_d = (int8_amx.k_group(kb4) if mg >= 16 and not p.need_rowsum and int8_amx.has_amx(kb) else None)
    oc_step = 32 if amx_d is not None else mr   # the tile kernel's block: two 16-channel tiles
    n_oc = max(1, min(-(-mg // oc_step), -(-want_tasks // max(1, nb * g * n_rb))))
    oc_chunk = -(-(-(-mg // n_oc)) // oc_step) * oc_step
    n_oc = -(-mg // oc_chunk)
    rw = -(-max(pl + wd, nvr * L * sw + (kw - 1) * dw) // 16) * 16
    nr = (rows_per - 1) * sh + (kh - 1) * dh + 1   # input rows per channel the task's rows read
    nrows = cg * nr
    zbytes = ((rows_per - 1) * sh + 1) * rw         # zeros for the taps past K, for every row shift
    scratch = kb4 * pp * 4 + nrows * rw + zbytes
    if scratch > MAX_SCRATCH:
        raise BackendError(f"the integer convolution needs {scratch} bytes of scratch per task, more than "
                           f"{MAX_SCRATCH}", subject=node.describe(),
                           hint="a narrower output row or fewer input channels per group fit")
    x8 = b.bitcast(e.tf.value_pointer(node.inputs[0]), I8.as_pointer())
    w8 = b.bitcast(e.tf.value_pointer(node.inputs[1]), I8.as_pointer())
    xp = _alloca_entry(e.tf, kb4 * pp * 4)
    prow = _alloca_entry(e.tf, nrows * rw + zbytes)
    task = e.tf.task  # ((image * G + group) * row blocks + row block) * oc chunks + oc chunk
    occk = b.srem(task, const_int(n_oc))
    rest = b.sdiv(task, const_int(n_oc))
    rb = b.srem(rest, const_int(n_rb))
    rest = b.sdiv(rest, const_int(n_rb))
    grp = b.srem(rest, const_int(g))
    img = b.sdiv(rest, const_int(g))
    oh0 = b.mul(rb, const_int(rows_per))
    rows_here = _imin(b, const_int(rows_per), b.sub(const_int(oh), oh0))
    za8 = b.trunc(e.za, I8)
    zrow = b.gep(prow, [const_int(nrows * rw)])
    v16 = ir.VectorType(I8, 16)  # rw and zbytes are multiples of 16: the fills are vector stores
    with for_range(b, 0, zbytes, 16, name="pz") as i:
        b.store(ir.Constant(v16, [0] * 16), b.bitcast(b.gep(zrow, [i]), v16.as_pointer()), align=1)
    za16 = splat(b, za8, 16)
    flip16 = ir.Constant(v16, [0x80] * 16)
    # --- 1. the input rows the task's output rows read, once, padded with the zero point (int8
    #        flipped to uint8): prow[c][t][rw] for input row oh0*sh - pt + t
    with for_range(b, 0, nrows, name="pr") as rr:
        ci, t = b.sdiv(rr, const_int(nr)), b.srem(rr, const_int(nr))
        ih = b.add(b.sub(b.mul(oh0, const_int(sh)), const_int(pt)), t)
        ok = b.and_(b.icmp_signed(">=", ih, const_int(0)), b.icmp_signed("<", ih, const_int(h)))
        dst = b.gep(prow, [b.mul(rr, const_int(rw))])
        with for_range(b, 0, rw, 16, name="pf") as i:
            b.store(za16, b.bitcast(b.gep(dst, [i]), v16.as_pointer()), align=1)
        with b.if_then(ok):
            chan = b.add(b.mul(img, const_int(c)), b.add(b.mul(grp, const_int(cg)), ci))
            src = b.gep(x8, [b.mul(b.add(b.mul(chan, const_int(h)), ih), const_int(wd))])
            dst_in = b.gep(dst, [const_int(pl)])
            with for_range(b, 0, wd, 16, name="pc") as i:
                mask = lane_mask(b, _imin(b, b.sub(const_int(wd), i), const_int(16)), 16)
                val = masked_load(kb, b, src, i, mask, 16)
                if p.signed_x:
                    val = b.xor(val, flip16)
                masked_store(kb, b, val, dst_in, i, mask)
    offsets = []
    for kk in range(kp):
        if kk < k:
            ci, tap = divmod(kk, kh * kw)
            ki, kj = divmod(tap, kw)
            offsets.append((ci * nr + ki * dh) * rw + kj * dw)
        else:
            offsets.append(nrows * rw)
    off_tab = _global_i32(kb, f"qoff_{node.outputs[0].name}", offsets)
    wide = ir.VectorType(I8, L * sw)
    undef_w = ir.Constant(wide, ir.Undefined)
    pick = ir.Constant(ir.VectorType(I32, L), [i * sw for i in range(L)])
    zip2 = ir.Constant(ir.VectorType(I32, 2 * L), [x for i in range(L) for x in (i, L + i)])
    zip4 = ir.Constant(ir.VectorType(I32, 4 * L), [x for i in range(L) for x in (2 * i, 2 * i + 1,
                                                                                  2 * L + 2 * i, 2 * L + 2 * i + 1)])
    with for_range(b, 0, rows_here, name="orow") as r:
        shift = b.mul(r, const_int(sh * rw))  # output row r reads input rows r*sh further down
        # --- 2. interleave 4 taps at a time into xp[k/4][pixel][k%4], this row's pixels at r*OW
        #        (a row's tail past OW is overwritten by the next row, or masked at the store)
        base_pix = b.mul(r, const_int(ow))
        with for_range(b, 0, kb4, name="pk") as k4:
            srcs = [b.gep(prow, [b.add(shift, b.sext(b.load(b.gep(off_tab, [const_int(0), b.add(
                b.mul(k4, const_int(4)), const_int(j))])), I64))]) for j in range(4)]
            for v in range(nvr):
                vs_ = []
                for j in range(4):
                    ptr = b.bitcast(b.gep(srcs[j], [const_int(v * L * sw)]), wide.as_pointer())
                    raw = b.load(ptr, align=1)
                    vs_.append(raw if sw == 1 else b.shuffle_vector(raw, undef_w, pick))
                ab = b.shuffle_vector(vs_[0], vs_[1], zip2)
                cd = b.shuffle_vector(vs_[2], vs_[3], zip2)
                out = b.shuffle_vector(ab, cd, zip4)
                pix0 = b.add(b.mul(k4, const_int(pp)), b.add(base_pix, const_int(v * L)))
                dst = b.gep(xp, [b.mul(pix0, const_int(4))])
                b.store(out, b.bitcast(dst, out.type.as_pointer()), align=1)
    xp32 = b.bitcast(xp, I32.as_pointer())
    w32 = b.bitcast(w8, I32.as_pointer())
    ones = ir.Constant(vt, [0x01010101] * L)
    zero = ir.Constant(vt, [0] * L)
    valid = b.mul(rows_here, const_int(ow))
    oc_lo = b.mul(occk, const_int(oc_chunk))
    oc_hi = _imin(b, b.add(oc_lo, const_int(oc_chunk)), const_int(mg))
    if amx_d is not None:  # --- 3. on AMX tiles
        ctx = dict(kb4=kb4, pp=pp, nvec=nvec, mg=mg, grp=grp, xp=xp, w8=w8, oc_lo=oc_lo, oc_hi=oc_hi,
                   valid=valid, img=img, m=m, oh=oh, ow=ow, oh0=oh0, k=k, splat=lambda v: splat(b, v, L))
        int8_amx.conv_tiles(e, ctx, amx_d)
        b.ret_void()
        return Kernel(e.tf.fn.name, nb * g * n_rb * n_oc, e.tf.buffers, label_of(node))
    # --- 3. output channel tiles x pixel-vector tiles
    with for_range(b, oc_lo, oc_hi, mr, name="oc") as oc0:
        last = b.sub(oc_hi, const_int(1))
        ocs = [_imin(b, b.add(oc0, const_int(r)), last) for r in range(mr)]
        occ = [b.add(b.mul(grp, const_int(mg)), o) for o in ocs]  # absolute output channel
        with for_range(b, 0, nvec, nv, name="pv") as v0:
            vs = [_imin(b, b.add(v0, const_int(v)), const_int(nvec - 1)) for v in range(nv)]

            def step(k4: ir.Value, accs: list[ir.Value]) -> list[ir.Value]:
                xv = [b.load(b.bitcast(b.gep(xp32, [b.add(b.mul(k4, const_int(pp)), b.mul(v, const_int(L)))]),
                                       vt.as_pointer()), align=4) for v in vs]
                out = list(accs)
                for r in range(mr):
                    wword = b.load(b.gep(w32, [b.add(b.mul(occ[r], const_int(kb4)), k4)]))
                    s_ = splat(b, wword, L)
                    for v in range(nv):
                        out[r * nv + v] = dot4(kb, b, out[r * nv + v], xv[v], s_)
                if p.need_rowsum:
                    for v in range(nv):
                        out[mr * nv + v] = dot4(kb, b, out[mr * nv + v], xv[v], ones)
                return out

            extra = nv if p.need_rowsum else 0
            accs = loop_carry(b, 0, kb4, 1, [zero] * (mr * nv + extra), step, name="k4")
            for r in range(mr):
                idx = occ[r]
                scal = lambda ptr: splat(b, b.load(b.gep(ptr, [idx])), L)  # noqa: E731
                bias, colsum, wzp, mult = scal(e.bias), scal(e.colsum), scal(e.wzp), scal(e.mult)
                for v in range(nv):
                    start = b.mul(vs[v], const_int(L))
                    mask = lane_mask(b, _imin(b, b.sub(valid, start), const_int(L)), L)
                    rs = accs[mr * nv + v] if p.need_rowsum else None
                    y = e.finish(accs[r * nv + v], bias, colsum, wzp, mult, rs, k)
                    out_idx = b.add(b.mul(b.add(b.mul(img, const_int(m)), idx), const_int(oh * ow)),
                                    b.add(b.mul(oh0, const_int(ow)), start))
                    e.store(y, out_idx, mask)
    b.ret_void()
    return Kernel(e.tf.fn.name, nb * g * n_rb * n_oc, e.tf.buffers, label_of(node))


@generator("qgemm", supports=support, ops=QOPS)
def emit(kb: KernelBuilder, node: Node, schedule: Any) -> Kernel:
    if node.op == "QMatMul":
        return _emit_matmul(kb, node)
    return _emit_conv(kb, node)
