"""Window pooling kernels: MaxPool, AveragePool, LpPool (1-D, 2-D, 3-D, and the blocked layout).

An output element folds the input over its window: ``max``, or a sum
divided by the number of counted taps (AveragePool; ``count_include_pad``
counts the explicit padding, never the ceil_mode overhang), or
``(sum |x|^p)^(1/p)`` (LpPool).  Padded taps contribute the fold's identity.

Loop structure, for ``x = [N, C, S0, ..., Sd-1]``:

* a spatial dim is *trivial* when its window is one tap that maps output
  index to input index (kernel 1, stride 1, dilation 1, no padding).  The
  layout pass's blocked ``[N, C/16, H, W, 16]`` tensors pool with window
  ``[kh, kw, 1]``: their last dim is trivial.
* the *scan* dim is the last non-trivial one (W); the dims before it,
  with N and C, form the outer loop that tasks split; trivial dims after
  it are inner loops.
* the scan dim's outputs are split into a left border, an interior where
  every tap lies inside the input (no bounds checks at all), and a right
  border.  Taps of the other dims are checked (``select`` on a clamped
  load) only when their padding or ceil_mode can put a tap outside.
* taps are unrolled (up to ``UNROLL_TAPS`` of them), else looped.

Vectors (``lanes`` f32):

* ``inner``: the last dim is trivial (blocked layouts): each tap is one
  contiguous vector load of ``lanes`` channels: max/add on whole vectors.
* ``scan``: plain NCHW, stride <= 4: ``lanes`` consecutive outputs of the
  scan dim's interior at once; a tap loads ``stride`` vectors and keeps
  every ``stride``-th lane (one shuffle).
* otherwise scalars.

Fused elementwise prologues (``Relu`` -> MaxPool) are evaluated per tap
(``Epilogue.input``), epilogues per output vector (``Epilogue.store``).
MaxPool's Indices output is refused.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Any, Optional

import llvmlite.ir as ir

from ir.dtypes import DType
from ir.graph import Node
from ir.ops._window import resolve_pads, window_output_dims

from ..codegen import I32, I64, KernelBuilder, const_int, for_range, task_range
from ..evaluator import shape_of
from ..expr import compute_type, constant
from . import Kernel, generator, label_of
from .anchored import Anchored, Epilogue, fused_support, task_count
from .vecmath import Var, combine, combine_all, const_like, identity, is_signed_dtype, like, to_float

POOL_OPS = frozenset({"MaxPool", "AveragePool", "LpPool"})
UNROLL_TAPS = 64
MAX_SCAN_STRIDE = 4
_FLOATS = {DType.F32, DType.F64, DType.F16}


def support(node: Node) -> Optional[str]:
    why = fused_support(node, POOL_OPS)
    if why is not None:
        return why
    anchor = Anchored.of(node).anchor
    dtype = anchor.inputs[0].type.dtype
    if anchor.op == "MaxPool":
        if len(anchor.outputs) > 1 and (anchor.outputs[1].users or anchor.outputs[1].is_graph_output):
            return "MaxPool's Indices output is not supported by the cpu target"
        if dtype not in _FLOATS | {DType.I8, DType.U8}:
            return f"MaxPool on {dtype.short} is not supported by the cpu target"
    elif dtype not in _FLOATS:
        return f"{anchor.op} on {dtype.short} is not supported by the cpu target"
    if len(shape_of(anchor.inputs[0])) < 3:
        return f"{anchor.op} needs an input with spatial axes"
    return None


@dataclass
class Dim:
    """The window along one spatial dim."""

    size: int   # input length
    out: int    # output length
    k: int
    s: int
    d: int
    pb: int     # padding before
    pe: int     # padding after

    @property
    def trivial(self) -> bool:
        return self.k == 1 and self.s == 1 and self.d == 1 and self.pb == 0 and self.out == self.size

    def pos_range(self) -> tuple[int, int]:
        """Smallest and largest input position a tap reads (padding and overhang included)."""
        return -self.pb, (self.out - 1) * self.s - self.pb + (self.k - 1) * self.d

    def needs_check(self) -> bool:
        lo, hi = self.pos_range()
        return lo < 0 or hi >= self.size

    def count_varies(self, include_pad: bool) -> bool:
        lo, hi = self.pos_range()
        return hi >= self.size + self.pe if include_pad else self.needs_check()

    def interior(self) -> tuple[int, int]:
        """[lo, hi): the outputs whose taps all lie inside the input."""
        lo = min(self.out, -(-self.pb // self.s))
        top = (self.size - 1 - (self.k - 1) * self.d + self.pb)
        hi = min(self.out, top // self.s + 1) if top >= 0 else 0
        return lo, max(lo, hi)


def window_dims(anchor: Node, xs: tuple) -> list[Dim]:
    sizes = list(xs[2:])
    nd = len(sizes)
    kernel = list(anchor.attr("kernel_shape"))
    strides = list(anchor.attr("strides") or [1] * nd)
    dil = list(anchor.attr("dilations") or [1] * nd)
    auto_pad = anchor.attr("auto_pad") or "NOTSET"
    pads = resolve_pads(sizes, kernel, strides, dil, anchor.attr("pads"), auto_pad)
    outs = window_output_dims(sizes, kernel, strides, dil, pads, auto_pad, bool(anchor.attr("ceil_mode")))
    return [Dim(sizes[i], int(outs[i]), kernel[i], strides[i], dil[i], pads[i], pads[i + nd]) for i in range(nd)]


@generator("pool", supports=support, ops=POOL_OPS)
def emit(kb: KernelBuilder, node: Node, schedule: Any) -> Kernel:
    return PoolKernel(kb, node).emit()


class PoolKernel:
    """One pooling kernel being generated (see the module docstring)."""

    def __init__(self, kb: KernelBuilder, node: Node) -> None:
        self.kb, self.node = kb, node
        self.a = Anchored.of(node)
        anchor = self.anchor = self.a.anchor
        self.xs = shape_of(anchor.inputs[0])
        self.dims = window_dims(anchor, self.xs)
        self.op = anchor.op
        dtype = anchor.inputs[0].type.dtype
        self.ct = compute_type(dtype)
        self.signed = is_signed_dtype(dtype)
        self.kind = "max" if self.op == "MaxPool" else "add"
        self.include_pad = bool(anchor.attr("count_include_pad")) if self.op == "AveragePool" else False
        self.p = int(anchor.attr("p")) if self.op == "LpPool" else 0
        self.lanes = kb.lanes
        nd = len(self.dims)
        nontrivial = [i for i, dm in enumerate(self.dims) if not dm.trivial]
        self.scan = nontrivial[-1] if nontrivial else 0
        self.inner = list(range(self.scan + 1, nd))        # trivial dims after the scan dim
        self.tap_dims = [i for i in range(self.scan + 1) if not self.dims[i].trivial]
        self.tf = kb.task_function(f"k_{node.outputs[0].name}")
        self.b = self.tf.builder
        self.ep = Epilogue(kb, self.tf, self.a, self.lanes)
        in_ok = self.ep.input_vector_ok()
        self.vector_out = self.ep.output_vector_ok() and all(self.ep.output_vector_ok([o]) for o in self.ep.expanded)
        last = self.dims[-1]
        self.mode = "scalar"
        if self.inner and last.size >= self.lanes and in_ok:
            self.mode = "inner"
        elif not self.inner and in_ok and self.dims[self.scan].s <= MAX_SCAN_STRIDE:
            self.mode = "scan"
        # Recomputing outputs is harmless unless an in-place output overwrote what the epilogue reads.
        self.overlap_ok = not self.ep.reads_activations()
        self.taps = math.prod(self.dims[i].k for i in self.tap_dims) if self.tap_dims else 1
        outer_dims = [self.xs[0], self.xs[1]] + [self.dims[i].out for i in range(self.scan)]
        self.outer_dims = outer_dims
        self.outer = math.prod(outer_dims)
        out_elems = self.outer * math.prod(dm.out for dm in self.dims[self.scan:])
        self.n_tasks = task_count(out_elems * self.taps, self.outer)

    # ------------------------------------------------------------ structure
    def emit(self) -> Kernel:
        b = self.b
        start, stop = task_range(b, self.tf.task, self.n_tasks, self.outer)
        with for_range(b, start, stop, name="outer") as flat:
            rem, vals = flat, []
            for d in reversed(self.outer_dims[1:]):
                vals.insert(0, b.srem(rem, const_int(d)))
                rem = b.sdiv(rem, const_int(d))
            vals.insert(0, rem)
            self._scan(vals)
        self.ep.forget()
        b.ret_void()
        return Kernel(self.tf.fn.name, self.n_tasks, self.tf.buffers, label_of(self.node))

    def _scan(self, outer: list) -> None:
        """The scan dim in three regions: checked border, unchecked interior, checked border."""
        b = self.b
        dm = self.dims[self.scan]
        lo, hi = dm.interior()
        if self.mode == "scan":
            nvec, last = self._scan_vectors(lo, hi)
            if nvec:
                with for_range(b, lo, lo + nvec * self.lanes, self.lanes, name="ov") as o:
                    self._point(outer + [o], "scan", False)
                self.ep.forget()
                lo += nvec * self.lanes
                if lo < hi and last > lo - self.lanes and self.overlap_ok:
                    # One more vector ending where the loads must stop, overlapping the previous:
                    # its first lanes are recomputed (the same values), the rest are new.
                    self._point(outer + [const_int(last)], "scan", False)
                    self.ep.forget()
                    lo = last + self.lanes
        for a_, z, checked in ((0, lo, True), (lo, hi, False), (hi, dm.out, True)):
            if a_ < z:
                with for_range(b, a_, z, name="o") as o:
                    self._inner(outer + [o], checked)
                self.ep.forget()

    def _scan_vectors(self, lo: int, hi: int) -> tuple[int, int]:
        """(vectors of outputs that fit in the interior from ``lo``, the last start a vector may have).

        A vector starting at output ``o`` reads ``stride * lanes`` inputs per tap."""
        dm, v = self.dims[self.scan], self.lanes
        top = dm.size - 1 - (dm.s - 1) - (dm.k - 1) * dm.d + dm.pb   # (o + v - 1) * s <= top
        if top < 0:
            return 0, -1
        last_start = min(top // dm.s, hi - 1) - (v - 1)
        return (max(0, (last_start - lo) // v + 1) if last_start >= lo else 0), last_start

    def _inner(self, idx: list, checked: bool) -> None:
        """Loops over the trivial dims after the scan dim (the blocked lanes, vectorized)."""
        b = self.b

        def nest(k: int, cur: list) -> None:
            if k == len(self.inner):
                self._point(cur, None, checked)
                return
            n = self.dims[self.inner[k]].out
            if k == len(self.inner) - 1 and self.mode == "inner":
                full = n // self.lanes * self.lanes
                with for_range(b, 0, full, self.lanes, name="lane") as i:
                    self._point(cur + [i], "inner", checked)
                self.ep.forget()
                if full < n:
                    with for_range(b, full, n, name="lanet") as i:
                        self._point(cur + [i], None, checked)
                    self.ep.forget()
                return
            with for_range(b, 0, n, name=f"t{k}") as i:
                nest(k + 1, cur + [i])
            self.ep.forget()

        nest(0, list(idx))

    # ---------------------------------------------------------------- taps
    def _point(self, out_idx: list, vmode: Optional[str], scan_checked: bool) -> None:
        """Fold one output's window (or a vector of them) and store it."""
        b = self.b
        vector = vmode is not None
        spatial = out_idx[2:]

        def tap(taps: dict) -> ir.Value:
            pos, valid = [], None
            for i, dm in enumerate(self.dims):
                if dm.trivial:
                    pos.append(spatial[i])
                    continue
                t = taps[i]
                p = b.add(b.sub(b.mul(spatial[i], const_int(dm.s)), const_int(dm.pb)),
                          b.mul(t, const_int(dm.d)) if isinstance(t, ir.Value) else const_int(t * dm.d))
                if dm.needs_check() and (i != self.scan or scan_checked):
                    ok = b.and_(b.icmp_signed(">=", p, const_int(0)), b.icmp_signed("<", p, const_int(dm.size)))
                    valid = ok if valid is None else b.and_(valid, ok)
                    p = b.select(ok, p, const_int(0))
                pos.append(p)
            v = self._pre(self._load(out_idx[:2] + pos, vmode))
            if valid is not None:
                v = b.select(like(b, valid, vector, self.lanes), v,
                             const_like(v.type, identity(self.kind, self.ct, self.signed)))
            return v

        value = self._post(self._fold_taps(tap, vector), spatial, vmode, scan_checked)
        self.ep.store(out_idx, value, vector, base=out_idx[-1], vector_out=self.vector_out)
        self.ep.forget()

    def _fold_taps(self, tap, vector: bool) -> ir.Value:
        """Fold ``tap({dim: offset})`` over the window: a balanced tree of unrolled taps when there
        are few (independent loads and max/adds in flight), else loops over the tap dims."""
        b = self.b
        ranges = [range(self.dims[i].k) for i in self.tap_dims]
        if self.taps <= UNROLL_TAPS:
            vals = [tap(dict(zip(self.tap_dims, combo))) for combo in itertools.product(*ranges)]
            return combine_all(self.kb, b, self.kind, vals, self.signed)
        ty = ir.VectorType(self.ct, self.lanes) if vector else self.ct
        acc = Var(self.tf, ty)
        acc.set(const_like(ty, identity(self.kind, self.ct, self.signed)))

        def nest(k: int, cur: dict) -> None:
            if k == len(self.tap_dims):
                acc.set(combine(self.kb, b, self.kind, acc.get(), tap(cur), self.signed))
                return
            i = self.tap_dims[k]
            with for_range(b, 0, self.dims[i].k, name=f"k{i}") as t:
                nest(k + 1, {**cur, i: t})
            self.ep.forget()

        nest(0, {})
        return acc.get()

    def _load(self, idx: list, vmode: Optional[str]) -> ir.Value:
        """The (prologue-computed) input at ``idx``; in scan mode ``lanes`` strided positions."""
        if vmode != "scan":
            return self.ep.input(idx, vmode is not None)
        s = self.dims[self.scan].s
        if s == 1:
            return self.ep.input(idx, True)
        b, v = self.b, self.lanes
        parts = [self.ep.input(idx[:-1] + [b.add(idx[-1], const_int(m * v))], True) for m in range(s)]
        return _pick_strided(b, parts, s, v)

    def _pre(self, v: ir.Value) -> ir.Value:
        b = self.b
        if self.op != "LpPool":
            return v
        a = b.call(self.kb.intrinsic("fabs", v.type), [v])
        out = a
        for _ in range(self.p - 1):
            out = b.fmul(out, a)
        return out

    def _post(self, acc: ir.Value, spatial: list, vmode: Optional[str], scan_checked: bool) -> ir.Value:
        b = self.b
        if self.op == "MaxPool":
            return acc
        if self.op == "LpPool":
            if self.p == 1:
                return acc
            if self.p == 2:
                return b.call(self.kb.intrinsic("sqrt", acc.type), [acc])
            return b.call(self.kb.intrinsic("pow", acc.type, 2), [acc, constant(acc, 1.0 / self.p)])
        count = self._count(spatial, vmode == "scan" or not scan_checked)
        if isinstance(count, int):
            return b.fdiv(acc, constant(acc, float(count)))
        count = b.select(b.icmp_signed("<", count, const_int(1)), const_int(1), count)
        return b.fdiv(acc, to_float(b, count, acc.type))

    def _count(self, spatial: list, scan_interior: bool):
        """Taps counted by AveragePool at this output: a Python int when known, else an i64."""
        b = self.b
        const, runtime = 1, None
        for i in self.tap_dims:
            dm = self.dims[i]
            if not dm.count_varies(self.include_pad) or (i == self.scan and scan_interior):
                const *= dm.k
                continue
            lo, hi = (-dm.pb, dm.size + dm.pe) if self.include_pad else (0, dm.size)
            base = b.sub(b.mul(spatial[i], const_int(dm.s)), const_int(dm.pb))
            n = const_int(0)
            for t in range(dm.k):
                p = b.add(base, const_int(t * dm.d))
                ok = b.and_(b.icmp_signed(">=", p, const_int(lo)), b.icmp_signed("<", p, const_int(hi)))
                n = b.add(n, b.zext(ok, I64))
            runtime = n if runtime is None else b.mul(runtime, n)
        if runtime is None:
            return const
        return b.mul(runtime, const_int(const)) if const != 1 else runtime


def _pick_strided(b: ir.IRBuilder, parts: list, s: int, v: int) -> ir.Value:
    """Lanes 0, s, 2s, ... of the concatenation of ``parts`` (s vectors of v lanes)."""
    vecs = list(parts)
    # Concatenate pairwise into one <s*v> vector (pad to a power of two with undef).
    while len(vecs) > 1:
        nxt = []
        for k in range(0, len(vecs), 2):
            if k + 1 == len(vecs):
                a = vecs[k]
                n = a.type.count
                nxt.append(b.shuffle_vector(a, ir.Constant(a.type, ir.Undefined),
                                            ir.Constant(ir.VectorType(I32, 2 * n), list(range(2 * n)))))
            else:
                a, c = vecs[k], vecs[k + 1]
                n = a.type.count
                nxt.append(b.shuffle_vector(a, c, ir.Constant(ir.VectorType(I32, 2 * n), list(range(2 * n)))))
        vecs = nxt
    wide = vecs[0]
    return b.shuffle_vector(wide, ir.Constant(wide.type, ir.Undefined),
                            ir.Constant(ir.VectorType(I32, v), [j * s for j in range(v)]))
