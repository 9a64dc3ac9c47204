"""Schedules for the kernels: DLight's rules on GPUs, a small parallel rule on CPUs.

GPU targets get DLight's default rules in TVM's order (Matmul, GEMV,
Reduction, GeneralReduction, Fallback): the first that applies schedules the
function.  On the host (``llvm``) DLight has no general rule, so ``cpu_schedule``
inlines every injective stage, puts spatial loops outside reduction loops
(the innermost spatial loop innermost of all, where LLVM vectorizes it),
runs the outer spatial loops on TVM's thread pool, and computes an epilogue
that could not be inlined inside its producer's parallel loop.
"""

from __future__ import annotations

from typing import Any

import tvm
from tvm import s_tir
from tvm.s_tir import dlight as dl
from tvm.s_tir.dlight.analysis import normalize_prim_func
from tvm.s_tir.dlight.base import try_inline

GPU_RULES = ("Matmul", "GEMV", "Reduction", "GeneralReduction", "Fallback")


def gpu_schedule(mod: tvm.IRModule, target: Any) -> tvm.IRModule:
    """Every function of ``mod`` scheduled by the first DLight GPU rule that applies."""
    rules = [getattr(dl.gpu, name)() for name in GPU_RULES]
    with target:
        return dl.ApplyDefaultSchedule(*rules)(mod)


def _parallel_extent(sch: s_tir.Schedule, loops: list) -> int:
    n = 1
    for lp in loops:
        ext = sch.get(lp).extent
        n *= int(ext) if hasattr(ext, "value") or isinstance(ext, int) else 1
    return n


def cpu_schedule_func(func: Any) -> Any:
    """``func`` scheduled for the host; unscheduled (still correct) where a step does not apply."""
    sch = s_tir.Schedule(func)
    infos = normalize_prim_func(sch)
    if infos is None:
        return func
    infos = try_inline(sch, infos)
    producer_loop = None
    for info in infos:
        block = info.block_rv
        try:
            kinds = info.dom_kind()
            loops = sch.get_loops(block)
            if len(loops) != len(kinds):
                continue
            s = [lp for lp, k in zip(loops, kinds) if k == "S"]
            r = [lp for lp, k in zip(loops, kinds) if k == "R"]
            if len(kinds) != len(s) + len(r):
                continue
            if not info.is_reduction() and producer_loop is not None and s:
                try:  # an epilogue stage: compute it inside the producer's parallel loop
                    sch.reverse_compute_at(block, producer_loop)
                    continue
                except Exception:  # noqa: BLE001 - not every consumer can move there
                    pass
            if r and len(s) >= 2 and _parallel_extent(sch, s[-1:]) >= 4:
                sch.reorder(*s[:-1], *r, s[-1])
                outer = s[:-1]
            elif r:
                sch.reorder(*s, *r)
                outer = s
            else:
                outer = s[:-1] if len(s) > 1 and _parallel_extent(sch, s[-1:]) >= 8 else s
            if r:
                sch.decompose_reduction(block, r[0])
            if outer:
                fused = sch.fuse(*outer) if len(outer) > 1 else outer[0]
                sch.parallel(fused)
                producer_loop = fused if r else None
        except Exception:  # noqa: BLE001 - a rule that does not fit leaves the stage serial
            continue
    return sch.mod["main"]


def cpu_schedule(mod: tvm.IRModule) -> tvm.IRModule:
    return tvm.IRModule({gv.name_hint: cpu_schedule_func(f) for gv, f in mod.functions.items()})
