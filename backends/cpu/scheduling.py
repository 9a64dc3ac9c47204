"""The cpu target's schedule rules: kernel templates and their analytical cost models.

Each top-level node is one kernel (a fused group or a plain op).  Its kind
(the template in ``backends.cpu.kernels``) is that of the generator that
declares its anchor op (else it follows the op's registry kind); for each
kind a small model of the target (vector lanes, registers, FMA units, L1/L2
sizes, cores) scores candidate tile sizes and keeps the best.  The
``schedule`` pass asks ``CpuScheduler`` through the target contract; measured
tuning times the model's best candidates (``passes.tuning``).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any, Optional

from ir.anchor import anchor_of
from ir.graph import Node
from ir.schedule import Schedule
from ir.target import TargetInfo
from ir.types import TensorType

from .kernels import template_of


def kernel_kind(node: Node) -> str:
    """The kernel template of ``node``: the generator declaring its anchor op, else by the op's kind."""
    anchor = anchor_of(node)
    kind = template_of(anchor.domain, anchor.op)
    if kind is not None:
        if kind == "conv2d_nchwc" and anchor.attr("group") not in (None, 1):
            return "dwconv2d_nchwc"
        return kind
    return {"elementwise": "elementwise", "broadcast": "elementwise",
            "injective": "injective", "reduction": "reduction"}.get(anchor.schema.kind, "opaque")


def _shape(v) -> Optional[tuple[int, ...]]:
    t = v.type
    return tuple(t.shape) if isinstance(t, TensorType) and t.is_static else None


# ------------------------------------------------------------------ models
def _conv_nchwc_candidates(anchor: Node, t: TargetInfo) -> Iterator[Schedule]:
    out = _shape(anchor.outputs[0])
    if out is None:
        return
    n, oc_outer, oh, ow, ocb = out
    lanes = t.vector_lanes_f32
    kh, kw = anchor.attr("kernel_shape")
    icb = anchor.attr("ic_block")
    cin = anchor.attr("channels_in")
    macs = n * oc_outer * ocb * oh * ow * cin * kh * kw
    vecs_per_block = max(1, ocb // lanes)
    flat = kh == kw == 1 and tuple(anchor.attr("strides") or (1, 1)) == (1, 1) and not any(anchor.attr("pads") or ())
    for oc_unroll in (1, 2, 3, 4):
        if oc_outer % oc_unroll:
            continue
        if oc_unroll == 3 and oc_outer % 2 == 0:
            # Tried only where 2 and 4 cannot apply: odd block counts (SqueezeNet's 48 channels,
            # the 63 blocks of a 1000-class classifier conv) otherwise get one weight vector per
            # broadcast (1x1 512->1000 at 13x13, 2 threads: 0.64 -> 0.54 ms, the kernel alone).
            continue
        weights = oc_unroll * vecs_per_block
        max_acc = t.registers - weights - 1
        if kw > 1 and not flat:
            # With several taps unrolled, LLVM keeps the weight vectors of the next taps live
            # beside the tile: measured on AVX-512 (3x3 convs), 28 accumulators spill and run
            # 1.7x slower than 20, 24 about 1.15x.  Keep the tile to 5/8 of the registers.
            max_acc = min(max_acc, t.registers * 5 // 8)
        for ow_block in range(1, min(ow, 32) + 1):
            acc = ow_block * weights
            if acc > max_acc:
                break
            # FMAs per load issued in the inner loop (broadcasts + weight vectors).
            intensity = acc / (ow_block + weights)
            blocks = math.ceil(ow / ow_block)
            waste = blocks * ow_block / ow - 1.0  # the tail block's idle lanes
            efficiency = min(1.0, intensity / 2.0) / (1.0 + waste)
            cycles = macs / (lanes * t.fma_units) / max(efficiency, 1e-3) / max(1, t.cores)
            tasks = n * (oc_outer // oc_unroll) * oh
            yield Schedule("conv2d_nchwc", {"ow_block": ow_block, "oc_unroll": oc_unroll,
                                            "ic_unroll": min(icb, 4)},
                           vector_axis="oc", vector_width=lanes, parallel=3,
                           est_cycles=int(cycles * max(1.0, t.cores / max(tasks, 1))))


def _dwconv_nchwc_candidates(anchor: Node, t: TargetInfo) -> Iterator[Schedule]:
    out = _shape(anchor.outputs[0])
    if out is None:
        return
    n, c_outer, oh, ow, cb = out
    kh, kw = anchor.attr("kernel_shape")
    lanes = t.vector_lanes_f32
    vpb = max(1, cb // lanes)
    budget = max(1, (t.registers - (kw + 2) * vpb) // vpb)  # accumulators next to a row of taps
    for ow_block in range(1, min(ow, budget) + 1):
        tiles = math.ceil(ow / ow_block)
        # One FMA per tap and pixel (idle columns of the last tile included), two per cycle,
        # plus a fixed cost per tile and kernel row (loop, bias, epilogue, stores).
        per_row = tiles * (ow_block * kh * kw * vpb / 2.0 + 8 * kh + 10)
        cycles = n * c_outer * oh * per_row / max(1, t.cores)
        yield Schedule("dwconv2d_nchwc", {"ow_block": ow_block}, vector_axis="c", vector_width=lanes,
                       parallel=3, est_cycles=int(cycles))


def _gemm_candidates(anchor: Node, t: TargetInfo) -> Iterator[Schedule]:
    a, b = (_shape(v) if v is not None else None for v in anchor.inputs[:2])
    out = _shape(anchor.outputs[0])
    if a is None or b is None or out is None:
        return
    if anchor.op == "MatMul" and len(b) == 1:  # a 1-D B: one output column per row
        m, ncols = max(1, math.prod(out)), 1
    else:
        m = math.prod(out[:-1]) if len(out) > 1 else 1
        ncols = out[-1] if out else 1  # a 1-D x 1-D MatMul gives a scalar
    if m == 0 or ncols == 0 or not a or a[-1] == 0:
        yield Schedule("gemm", {"mr": 1, "nr": t.vector_lanes_f32, "kc": 1, "mc": 1}, vector_axis="n",
                       vector_width=t.vector_lanes_f32, est_cycles=0)
        return
    k = a[-1] if not (anchor.op == "Gemm" and anchor.attr("transA")) else a[0]
    lanes = t.vector_lanes_f32
    for nr_vecs in (1, 2, 3, 4):
        nr = nr_vecs * lanes
        for mr in range(1, 29):
            if mr * nr_vecs + nr_vecs + 1 > t.registers:
                break
            if m == 1 and mr > 1:
                break
            # Cache blocking: a kc x nr panel of B and an mr x kc strip of A in L1, mc x kc of A in L2.
            kc = max(lanes, min(k, (t.l1d_bytes // 2) // (4 * (nr + mr))))
            mc = max(mr, min(m, (t.l2_bytes // 2) // (4 * kc) // mr * mr))
            intensity = (mr * nr_vecs) / (mr + nr_vecs)
            tail = (math.ceil(m / mr) * mr / m) * (math.ceil(ncols / nr) * nr / ncols) - 1.0
            # Two loads per cycle feed two FMAs: near-peak from ~2.4 FMAs per load on AVX-512.
            efficiency = min(1.0, intensity / 2.4) / (1.0 + tail)
            macs = m * ncols * k
            if m == 1:  # matrix-vector: bound by streaming B from memory (~16 bytes/cycle/core)
                cycles = max(macs / lanes / t.fma_units, 4 * k * ncols / 16) / max(1, t.cores)
            else:
                cycles = macs / (lanes * t.fma_units) / max(efficiency, 1e-3) / max(1, t.cores)
            yield Schedule("gemm", {"mr": mr, "nr": nr, "kc": kc, "mc": mc}, vector_axis="n",
                           vector_width=lanes, parallel=1, est_cycles=int(cycles))


def _streaming_schedule(kind: str, node: Node, t: TargetInfo) -> Schedule:
    """Memory-bound kernels: vectorize the innermost axis, split the outer work across cores."""
    out = _shape(node.outputs[0])
    elems = math.prod(out) if out else 0
    lanes = t.vector_lanes_f32
    nbytes = sum(4 * math.prod(s) for s in (_shape(v) for v in list(node.inputs) + list(node.outputs)
                                             if v is not None) if s)
    chunk = max(lanes, min(1 << 16, elems // max(1, 4 * t.cores) // lanes * lanes or lanes))
    cycles = max(elems / lanes, nbytes / 16) / max(1, t.cores)
    return Schedule(kind, {"chunk": chunk}, vector_axis="inner", vector_width=lanes, parallel=1,
                    est_cycles=int(cycles))


_GENERATORS = {"conv2d_nchwc": _conv_nchwc_candidates, "dwconv2d_nchwc": _dwconv_nchwc_candidates,
               "gemm": _gemm_candidates}


def model_schedule(node: Node, target: TargetInfo) -> Schedule:
    """The analytical model's best schedule for ``node`` on ``target``."""
    kind = kernel_kind(node)
    if kind in _GENERATORS:
        best = min(_GENERATORS[kind](anchor_of(node), target), key=lambda s: s.est_cycles, default=None)
        if best is not None:
            return best
    return _streaming_schedule(kind, node, target)


def candidates(node: Node, target: TargetInfo, limit: int = 12) -> list[Schedule]:
    """The model's top candidates (for measured tuning)."""
    kind = kernel_kind(node)
    if kind not in _GENERATORS:
        return [model_schedule(node, target)]
    return sorted(_GENERATORS[kind](anchor_of(node), target), key=lambda s: s.est_cycles)[:limit]


def kernel_signature(node: Node) -> str:
    """What a schedule depends on: kernel kind, anchor op, attributes and shapes."""
    anchor = anchor_of(node)
    shapes = ";".join(str(v.type) for v in list(anchor.inputs) + list(anchor.outputs) if v is not None)
    attrs = ",".join(f"{k}={anchor.attrs[k]}" for k in sorted(anchor.attrs)
                     if not hasattr(anchor.attrs[k], "nodes"))
    return f"{kernel_kind(node)}|{anchor.qualified_op}|{attrs}|{shapes}"


class CpuScheduler:
    """The cpu target's answer to the ``schedule`` pass (``passes.target_hooks.Scheduler``)."""

    def schedule(self, node: Node, target: TargetInfo) -> Optional[Schedule]:
        return model_schedule(node, target)

    def candidates(self, node: Node, target: TargetInfo, limit: int) -> list[Schedule]:
        return candidates(node, target, limit)

    def signature(self, node: Node) -> str:
        return kernel_signature(node)

    def details(self, schedule: Schedule, target: TargetInfo) -> dict[str, Any]:
        return {}
