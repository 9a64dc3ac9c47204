"""Schedules for the kernels: DLight's rules on GPUs, a small parallel rule on CPUs.

GPU targets get DLight's default rules in TVM's order (Matmul, GEMV,
Reduction, GeneralReduction, Fallback): the first that applies schedules the
function.  On the host (``llvm``) DLight has no general rule, so ``cpu_schedule``
inlines injective stages (zero-padding excepted: a padded read inside the
reduction loop defeats vectorization), then tiles a function with one
reduction (convolution, matmul) into 8 x 16 register tiles with the
epilogue computed per tile and the tiles on TVM's thread pool; functions
with several reductions (softmax, normalizations) get each stage's spatial
loops on the thread pool.  A rule that does not fit falls back to the next.
"""

from __future__ import annotations

from typing import Any

import tvm
from tvm import s_tir
from tvm.s_tir import dlight as dl
from tvm.s_tir.dlight.analysis import normalize_prim_func
from tvm.s_tir.dlight.base import try_inline

from ir.errors import BackendError

GPU_RULES = ("Matmul", "GEMV", "Reduction", "GeneralReduction", "Fallback")


def gpu_schedule(mod: tvm.IRModule, target: Any) -> tvm.IRModule:
    """Every function of ``mod`` scheduled by the first DLight GPU rule that applies.

    Like ``dlight.ApplyDefaultSchedule``, except that a rule that fails on a
    function (some assert on shapes they do not expect) passes it to the next
    rule instead of failing the build.
    """
    rules = [getattr(dl.gpu, name)() for name in GPU_RULES]
    out = {}
    with target:
        for gv, func in mod.functions.items():
            out[gv.name_hint] = _gpu_schedule_func(gv.name_hint, func, rules, target)
    return tvm.IRModule(out)


def _gpu_schedule_func(name: str, func: Any, rules: list, target: Any) -> Any:
    errors = []
    for r in rules:
        try:
            sch = r.apply(func, target, False)
        except Exception as exc:  # noqa: BLE001 - DLight rules raise assorted errors on shapes they do not fit
            errors.append(f"{type(r).__name__}: {type(exc).__name__}")
            continue
        if isinstance(sch, list):
            sch = sch[0] if sch else None
        if sch is not None:
            return sch.mod["main"].with_attr("tirx.is_scheduled", True)
    raise BackendError("no DLight GPU rule schedules this kernel", subject=name,
                       found="; ".join(errors) or "none applied")


def _extent(sch: s_tir.Schedule, loop: Any) -> int:
    ext = sch.get(loop).extent
    try:
        return int(ext)
    except TypeError:
        return 1


def _split_loops(sch: s_tir.Schedule, info: Any) -> tuple[list, list]:
    """The block's spatial and reduction loops; ValueError for other iteration kinds."""
    loops = sch.get_loops(info.block_rv)
    kinds = info.dom_kind()
    if len(loops) != len(kinds) or set(kinds) - {"S", "R"}:
        raise ValueError("not a plain spatial/reduction nest")
    return ([lp for lp, k in zip(loops, kinds) if k == "S"], [lp for lp, k in zip(loops, kinds) if k == "R"])


def _inline(sch: s_tir.Schedule) -> tuple[list, list]:
    """Inline injective stages except zero-padding (a padded read in a reduction's inner loop blocks
    vectorization); returns (padding stages, the rest)."""
    infos = normalize_prim_func(sch)
    if infos is None:
        raise ValueError("cannot analyze the function")
    pads = [i for i in infos if "pad" in sch.get(i.block_rv).name_hint and not i.is_reduction()]
    return pads, try_inline(sch, [i for i in infos if i not in pads])


def _injective(sch: s_tir.Schedule, info: Any) -> None:
    """Outer loops on the thread pool, the innermost vectorized where it divides evenly."""
    loops = sch.get_loops(info.block_rv)
    if not loops:
        return
    inner = loops[-1]
    outer = loops[:-1]
    if outer:
        sch.parallel(sch.fuse(*outer) if len(outer) > 1 else outer[0])
    if _extent(sch, inner) % 8 == 0:
        try:
            sch.vectorize(sch.split(inner, [None, 8])[-1])
        except Exception:  # noqa: BLE001 - a gather or a select that does not vectorize stays scalar
            pass
    elif not outer:
        sch.parallel(inner)


def _tiled(func: Any) -> Any:
    """One reduction (conv, matmul) in register tiles: ROWS x VEC accumulators, VEC lanes over the
    innermost output axis, reduction loops around the tile, epilogues computed per tile."""
    sch = s_tir.Schedule(func)
    pads, infos = _inline(sch)
    red = [i for i in infos if i.is_reduction()]
    rest = [i for i in infos if not i.is_reduction()]
    if len(red) != 1:
        raise ValueError("not one reduction")
    s, r = _split_loops(sch, red[0])
    if len(s) < 2 or not r:
        raise ValueError("no tile to form")
    block = red[0].block_rv
    width = _extent(sch, s[-1])
    vec = next((v for v in (16, 8) if width % v == 0), 16 if width >= 16 else 8)
    jo, ji = sch.split(s[-1], [None, vec])
    ro, ri = sch.split(s[-2], [None, 8])
    order = s[:-2] + [ro]
    sch.reorder(*order, jo, *r, ri, ji)
    for c in rest:
        sch.reverse_compute_at(c.block_rv, jo)
    fused = sch.fuse(*order) if len(order) > 1 else order[0]
    sch.parallel(fused)
    sch.unroll(ri)
    sch.vectorize(ji)
    sch.decompose_reduction(block, r[0])
    for c in rest:
        loops = sch.get_loops(c.block_rv)
        try:
            sch.vectorize(sch.split(loops[-1], [None, vec])[-1])
        except Exception:  # noqa: BLE001
            pass
    for p in pads:
        _injective(sch, p)
    return sch.mod["main"]


def _simple(func: Any) -> Any:
    """Every stage on its own: spatial loops fused onto the thread pool, reductions innermost."""
    sch = s_tir.Schedule(func)
    pads, infos = _inline(sch)
    for info in pads + infos:
        if not info.is_reduction():
            _injective(sch, info)
            continue
        s, r = _split_loops(sch, info)
        sch.reorder(*s, *r)
        if s:
            sch.parallel(sch.fuse(*s) if len(s) > 1 else s[0])
        sch.decompose_reduction(info.block_rv, r[0])
    return sch.mod["main"]


def cpu_schedule_func(func: Any) -> Any:
    """``func`` scheduled for the host: the tiled rule, else the simple one, else as written."""
    for rule in (_tiled, _simple):
        try:
            return rule(func)
        except Exception:  # noqa: BLE001 - a rule that does not fit: try the next
            continue
    return func


def cpu_schedule(mod: tvm.IRModule) -> tvm.IRModule:
    return tvm.IRModule({gv.name_hint: cpu_schedule_func(f) for gv, f in mod.functions.items()})
