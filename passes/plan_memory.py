"""plan-memory: give every intermediate tensor an offset in one reusable arena.

Contract:
* Reads the node order as the execution order; each top-level node (an op or
  an ``nnc.Fused`` group) is one kernel that reads its inputs and writes its
  outputs.  Node outputs that are not graph outputs are planned (graph outputs
  too with ``plan_outputs=true``); graph inputs and constants never are.
* Views (``views``): Reshape/Flatten/Squeeze/Unsqueeze/Identity outputs take
  no bytes and alias a planned input.  In place (``inplace``): an
  elementwise/broadcast kernel (or a Fused group whose path from that input is
  elementwise) writes over a full-size planned input that nothing reads later.
* Writes the plan into the IR (``ir.memory.set_plan``): each planned value's
  ``Value.placement`` (offset, size, the value it views or overwrites) and the
  graph's ``Graph.memory`` (arena size, alignment, statistics), printed as
  ``@mem(...)`` after the value's type and ``memory{...}`` in the graph
  header; ``ir.memory.plan_of`` reads it back as a ``MemoryPlan``.  Checked by
  ``ir.memory.verify_plan`` here and by the verifier after every later pass.
  The plan describes the graph as it is now: run this pass last (a later
  rewrite must drop the plan, ``ir.memory.clear_plan``, or re-run this pass).
* Does not fire on a graph with a value of non-static size: it records why,
  and drops any earlier plan (backends plan per static specialization).
"""

from __future__ import annotations

from ir.graph import Graph
from ir.memory import ALIGNMENT, MemoryPlan, clear_plan, set_plan, verify_plan

from .manager import PassContext, register_pass
from .memory_plan import Unplannable, build_plan

__all__ = ["plan_memory"]


@register_pass("plan-memory")
def plan_memory(graph: Graph, ctx: PassContext, *, views: bool = True, inplace: bool = True,
                plan_outputs: bool = False, alignment: int = ALIGNMENT) -> bool:
    """Plan intermediate tensors into one arena with views and in-place reuse."""
    try:
        plan, details = build_plan(graph, views=views, inplace=inplace, plan_outputs=plan_outputs,
                                   alignment=alignment)
    except Unplannable as exc:
        dropped = clear_plan(graph)
        ctx.decide("no memory plan: a tensor size is not static", rule="static shapes only",
                   value=str(exc), hint="compile a static specialization to plan memory")
        ctx.stats["memory_planned"] = False
        return dropped
    verify_plan(graph, plan)
    set_plan(graph, plan)
    _report(ctx, plan, details)
    return True


def _report(ctx: PassContext, plan: MemoryPlan, details: dict) -> None:
    alias_bytes = {p: sum(e.nbytes for e in plan.entries.values() if e.kind.startswith(p))
                   for p in ("view-of", "inplace-of")}
    ctx.decide("place intermediates in one arena", rule=plan.algorithm,
               values=len(plan.entries), buffers=details["buffers"], arena_bytes=plan.arena_bytes,
               naive_bytes=plan.naive_bytes, ratio=round(plan.ratio, 4),
               saves_bytes=plan.naive_bytes - plan.arena_bytes, peak_live_bytes=plan.peak_live_bytes,
               arena_by_strategy=details["arena_by_strategy"])
    if plan.count("view-of"):
        ctx.decide("alias view outputs to their input", rule="row-major view op, same bytes",
                   count=plan.count("view-of"), saves_bytes=alias_bytes["view-of"])
    if plan.count("inplace-of"):
        ctx.decide("write elementwise results over dying inputs",
                   rule="elementwise/broadcast kernel, full-size input read nowhere later",
                   count=plan.count("inplace-of"), saves_bytes=alias_bytes["inplace-of"])
    ctx.stats.update(memory_planned=True, memory_arena_bytes=plan.arena_bytes,
                     memory_naive_bytes=plan.naive_bytes, memory_ratio=plan.ratio,
                     memory_peak_live_bytes=plan.peak_live_bytes,
                     memory_views=plan.count("view-of"), memory_inplace=plan.count("inplace-of"))
