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
* Stores ``graph.meta["memory_plan"]`` (a ``passes.memory_plan.MemoryPlan``),
  checked by ``verify_plan``; the IR text is untouched.  The plan describes the
  graph as it is now: run this pass last (any later rewrite makes it stale;
  ``verify_plan`` tells).
* Does not fire on a graph with a value of non-static size: it records why,
  and drops a stale plan (backends plan per static specialization).
"""

from __future__ import annotations

from ir.errors import CompilerError
from ir.graph import Graph, Value

from .manager import PassContext, register_pass
from .memory_plan import (ALIGNMENT, MemoryPlan, PlanEntry, Unplannable, build_plan,
                          inplace_candidates, live_ranges, static_nbytes, view_source)

__all__ = ["plan_memory", "verify_plan"]


@register_pass("plan-memory")
def plan_memory(graph: Graph, ctx: PassContext, *, views: bool = True, inplace: bool = True,
                plan_outputs: bool = False, alignment: int = ALIGNMENT) -> bool:
    """Plan intermediate tensors into one arena with views and in-place reuse."""
    try:
        plan, details = build_plan(graph, views=views, inplace=inplace, plan_outputs=plan_outputs,
                                   alignment=alignment)
    except Unplannable as exc:
        graph.meta.pop("memory_plan", None)
        ctx.decide("no memory plan: a tensor size is not static", rule="static shapes only",
                   value=str(exc), hint="compile a static specialization to plan memory")
        ctx.stats["memory_planned"] = False
        return False
    verify_plan(graph, plan)
    graph.meta["memory_plan"] = plan
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


# ------------------------------------------------------------------- checker
def _bad(message: str, subject: str, **kw: str) -> CompilerError:
    return CompilerError(f"memory plan is invalid: {message}", subject=subject, **kw)


def verify_plan(graph: Graph, plan: MemoryPlan) -> None:
    """Re-check ``plan`` against the graph alone; raise CompilerError on the first problem.

    Every intermediate is planned, each entry is aligned, fits the arena and has
    its value's size; a view sits on the value it views and shares its contents;
    an in-place result sits on an input of an elementwise kernel that is read
    nowhere later.  Then no two different contents live at the same node may
    share a byte, except an in-place result and the input it overwrites, at the
    node that does it.
    """
    ranges = live_ranges(graph)
    outputs = {id(v) for v in graph.outputs}
    version: dict[str, str] = {}             # value -> the value whose contents it holds
    span: dict[str, list[int]] = {}          # contents -> [first node, last node]
    overwrites: dict[str, str] = {}          # in-place contents -> the contents it replaced
    seen = 0
    for i, node in enumerate(graph.nodes):
        for v in node.outputs:
            e = plan.entries.get(v.name)
            if e is None:
                if id(v) not in outputs:
                    raise _bad("an intermediate has no place", f"%{v.name}")
                continue
            seen += 1
            _check_entry(v, e, plan)
            start, end = ranges[v.name]
            base = e.base
            if base is None:
                version[v.name] = v.name
                span[v.name] = [start, end]
                continue
            b = plan.entries.get(base)
            if b is None or not any(x is not None and x.name == base for x in node.inputs):
                raise _bad(f"{e.kind} names a value that is not a planned input of its kernel",
                           f"%{v.name}")
            if (b.offset, b.nbytes) != (e.offset, e.nbytes):
                raise _bad("an alias does not sit on its base", f"%{v.name}",
                           expected=f"offset {b.offset}, {b.nbytes} B", found=f"offset {e.offset}, {e.nbytes} B")
            if e.kind.startswith("view-of:"):
                if view_source(node) is None:
                    raise _bad(f"{node.qualified_op} cannot be a view", f"%{v.name}")
                version[v.name] = version[base]
                span[version[base]][1] = max(span[version[base]][1], end)
            elif e.kind.startswith("inplace-of:"):
                if not any(node.outputs[k] is v and node.inputs[j].name == base
                           for k, j in inplace_candidates(node)):
                    raise _bad(f"{node.qualified_op} cannot write over this input", f"%{v.name}",
                               found=e.kind)
                version[v.name] = v.name
                span[v.name] = [start, end]
                overwrites[v.name] = version[base]
            else:
                raise _bad("unknown entry kind", f"%{v.name}", found=e.kind)
    if seen != len(plan.entries):
        extra = sorted(set(plan.entries) - set(version))
        raise _bad("entries for values that are not node outputs", ", ".join(extra[:5]))
    for new, old in overwrites.items():
        if span[old][1] != span[new][0]:
            raise _bad("in-place write over contents still read later", f"%{new}",
                       found=f"%{old} is read until node {span[old][1]}")
    _check_overlaps(plan, span, overwrites)


def _check_entry(v: Value, e: PlanEntry, plan: MemoryPlan) -> None:
    if static_nbytes(v) != e.nbytes:
        raise _bad("wrong size", f"%{v.name}", expected=str(static_nbytes(v)), found=str(e.nbytes))
    if e.offset < 0 or e.offset % plan.alignment or e.offset + e.nbytes > plan.arena_bytes:
        raise _bad("misaligned or outside the arena", f"%{v.name}",
                   found=f"offset {e.offset}, {e.nbytes} B in {plan.arena_bytes} B")


def _check_overlaps(plan: MemoryPlan, span: dict[str, list[int]], overwrites: dict[str, str]) -> None:
    """Sweep the contents by first node; compare each with those still live."""
    items = sorted((s, e, name) for name, (s, e) in span.items() if plan.entries[name].nbytes)
    active: list[tuple[int, int, str]] = []
    for s, e, name in items:
        active = [a for a in active if a[1] >= s]
        lo = plan.entries[name].offset
        hi = lo + plan.entries[name].nbytes
        for _, a_end, other in active:
            o = plan.entries[other]
            if o.offset < hi and lo < o.offset + o.nbytes and overwrites.get(name) != other:
                raise _bad("two values live at the same time share bytes", f"%{other} and %{name}",
                           found=f"[{o.offset}, {o.offset + o.nbytes}) and [{lo}, {hi}), "
                                 f"both live at node {s}")
        active.append((s, e, name))
