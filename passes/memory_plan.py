"""Static memory plans: liveness, views, in-place reuse, and packing into one arena.

Every top-level node is one kernel (an ordinary op or an ``nnc.Fused`` group):
it reads its inputs and writes its outputs.  Over the node order a value is
live from the node that produces it to its last reader (inclusive: a kernel's
inputs and outputs are live together); graph outputs live to the end.  Graph
inputs and constants are never planned (caller buffers / the weights blob).

A *buffer* is one arena allocation shared by a root value and the values that
alias it: views (Reshape & co. of a planned value) and in-place results (an
elementwise kernel writing over an input that dies there).  Buffers whose live
ranges overlap must not overlap in the arena; the offsets come from a few
offline greedy packers (TFLite's greedy-by-size with best fit among them), and
the smallest arena wins.  ``ir.memory.verify_plan`` re-checks a plan
from the graph alone.

What a plan asks of a backend: a view reads its base's bytes as its own shape
(row-major, no copy); an in-place kernel reads ``in[i]`` and writes ``out[i]``
in the same loop step and keeps fused intermediates out of the arena.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np

from ir.graph import Graph, Node, Value
from ir.memory import (ALIGNMENT, MemoryPlan, PlanEntry, align, inplace_candidates, live_ranges,
                       static_nbytes, view_source)


@dataclass
class Buffer:
    """One arena allocation: its root value and everything aliasing it."""

    name: str
    size: int       # aligned bytes
    start: int      # node index writing the root
    end: int        # last node index reading any member (len(nodes) for graph outputs)
    members: list[str] = field(default_factory=list)


class Unplannable(Exception):
    """The graph has a value whose size is not known statically."""



def planned_values(graph: Graph, plan_outputs: bool) -> list[Value]:
    """Node outputs to plan, in node order; raises Unplannable for a dynamic one."""
    outputs = {id(v) for v in graph.outputs}
    values = []
    for n in graph.nodes:
        for v in n.outputs:
            if id(v) in outputs and not plan_outputs:
                continue
            if static_nbytes(v) is None:
                raise Unplannable(f"%{v.name} ({v.type}, written by {n.qualified_op}) "
                                  "has no static size")
            values.append(v)
    return values


# ------------------------------------------------------------------ storage
def assign_buffers(graph: Graph, values: list[Value], ranges: dict[str, tuple[int, int]], *,
                   views: bool, inplace: bool, alignment: int) -> tuple[dict[str, str], dict[str, Buffer]]:
    """Decide each planned value's storage: ``(kinds by name, buffers by root name)``."""
    planned = {v.name for v in values}
    root: dict[str, str] = {}
    kinds: dict[str, str] = {}
    buffers: dict[str, Buffer] = {}
    by_node: dict[int, list[Value]] = {}
    for v in values:
        by_node.setdefault(id(v.producer), []).append(v)
    for i, node in enumerate(graph.nodes):
        outs = by_node.get(id(node))
        if not outs:
            continue
        taken: set[str] = set()  # buffers already overwritten by this node
        src = view_source(node) if views else None
        pairs = inplace_candidates(node) if inplace else []
        for v in outs:
            base = None
            if src is not None and src.name in planned:
                base, kind = src, "view-of"
            else:
                for k, j in pairs:
                    cand = node.input(j)
                    if node.outputs[k] is v and cand is not None and cand.name in planned:
                        r = root[cand.name]
                        if r not in taken and buffers[r].end <= i and _only_reader_of_buffer(node, cand, root):
                            base, kind = cand, "inplace-of"
                            taken.add(r)
                            break
            start, end = ranges[v.name]
            if base is None:
                root[v.name] = v.name
                kinds[v.name] = "arena"
                buffers[v.name] = Buffer(v.name, align(static_nbytes(v) or 0, alignment), start, end, [v.name])
            else:
                r = root[base.name]
                root[v.name] = r
                kinds[v.name] = f"{kind}:{base.name}"
                buffers[r].members.append(v.name)
                buffers[r].end = max(buffers[r].end, end)
    return kinds, buffers


def _only_reader_of_buffer(node: Node, value: Value, root: dict[str, str]) -> bool:
    """No other operand of ``node`` reads the same buffer through another value (a view)."""
    r = root[value.name]
    return all(v is None or v is value or root.get(v.name) != r for v in node.inputs)


# ------------------------------------------------------------------ packing
def _place(order: Iterable[Buffer], best_fit: bool) -> dict[str, int]:
    """Put each buffer at the lowest (first fit) or tightest (best fit) free gap among the
    already placed buffers live at the same time, or above all of them.

    Placed buffers are kept in NumPy arrays so each step is one vectorized scan.
    """
    order = list(order)
    n = len(order)
    starts, ends = np.empty(n, np.int64), np.empty(n, np.int64)
    lows, highs = np.empty(n, np.int64), np.empty(n, np.int64)
    offsets: dict[str, int] = {}
    k = 0
    for b in order:
        offset = 0
        if k and b.size:
            live = (starts[:k] <= b.end) & (ends[:k] >= b.start) & (highs[:k] > lows[:k])
            offset = _fit(lows[:k][live], highs[:k][live], b.size, best_fit)
        offsets[b.name] = offset
        starts[k], ends[k], lows[k], highs[k] = b.start, b.end, offset, offset + b.size
        k += 1
    return offsets


def _fit(lows: np.ndarray, highs: np.ndarray, size: int, best_fit: bool) -> int:
    """Offset of the chosen gap between the busy ranges ``[lows, highs)``."""
    if lows.size == 0:
        return 0
    by_low = np.argsort(lows, kind="stable")
    lows, highs = lows[by_low], highs[by_low]
    below = np.maximum.accumulate(np.concatenate(([0], highs[:-1])))  # top of everything lower
    gaps = lows - below
    fits = np.flatnonzero(gaps >= size)
    if fits.size == 0:
        return int(max(below[-1], highs[-1]))
    pick = fits[np.argmin(gaps[fits])] if best_fit else fits[0]
    return int(below[pick])


STRATEGIES: dict[str, Callable[[list[Buffer]], dict[str, int]]] = {
    # TFLite's arena planner: biggest first, each into the tightest gap.
    "greedy-by-size/best-fit": lambda bs: _place(sorted(bs, key=lambda b: (-b.size, b.start)), True),
    "greedy-by-size/first-fit": lambda bs: _place(sorted(bs, key=lambda b: (-b.size, b.start)), False),
    "greedy-by-lifetime/best-fit": lambda bs: _place(
        sorted(bs, key=lambda b: (b.start - b.end, -b.size, b.start)), True),
    # What a runtime allocator would do: in execution order, lowest free address.
    "in-order/first-fit": lambda bs: _place(sorted(bs, key=lambda b: (b.start, -b.size)), False),
}


def arena_size(buffers: Iterable[Buffer], offsets: dict[str, int]) -> int:
    return max((offsets[b.name] + b.size for b in buffers), default=0)


def peak_live(buffers: Iterable[Buffer], num_nodes: int) -> int:
    """Most aligned bytes live at one node: no packing can beat it."""
    delta = [0] * (num_nodes + 2)
    for b in buffers:
        delta[b.start] += b.size
        delta[b.end + 1] -= b.size
    best = cur = 0
    for d in delta:
        cur += d
        best = max(best, cur)
    return best


def pack(buffers: list[Buffer], strategies: Iterable[str] = tuple(STRATEGIES)
         ) -> tuple[dict[str, int], str, dict[str, int]]:
    """Run each strategy and keep the smallest arena: ``(offsets, winner, size per strategy)``."""
    best: Optional[tuple[int, str, dict[str, int]]] = None
    sizes = {}
    for name in strategies:
        offsets = STRATEGIES[name](buffers)
        sizes[name] = arena_size(buffers, offsets)
        if best is None or sizes[name] < best[0]:
            best = (sizes[name], name, offsets)
    assert best is not None
    return best[2], best[1], sizes


# ------------------------------------------------------------------- driver
def build_plan(graph: Graph, *, views: bool = True, inplace: bool = True, plan_outputs: bool = False,
               alignment: int = ALIGNMENT, strategies: Iterable[str] = tuple(STRATEGIES)
               ) -> tuple[MemoryPlan, dict[str, Any]]:
    """Plan ``graph``'s intermediates; raises Unplannable when a size is not static.

    Returns the plan and details for the decision log (arena size per strategy).
    """
    if alignment <= 0:
        raise ValueError("alignment must be positive")
    values = planned_values(graph, plan_outputs)
    ranges = live_ranges(graph)
    kinds, buffers = assign_buffers(graph, values, ranges, views=views, inplace=inplace,
                                    alignment=alignment)
    blist = list(buffers.values())
    offsets, winner, sizes = pack(blist, strategies)
    root = {m: b.name for b in blist for m in b.members}
    entries = {v.name: PlanEntry(offsets[root[v.name]], static_nbytes(v) or 0, kinds[v.name])
               for v in values}
    plan = MemoryPlan(arena_size(blist, offsets), alignment, entries,
                      sum(e.nbytes for e in entries.values()), peak_live(blist, len(graph.nodes)),
                      winner)
    return plan, {"arena_by_strategy": sizes, "buffers": len(blist)}
