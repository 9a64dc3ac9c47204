"""Memory plans as the IR holds them: where each intermediate lives in one arena.

A plan is a pass result (``passes.plan_memory`` computes it), but what a plan
*means* belongs to the IR: which ops may alias their input (views), which may
write over an input (in place), when a value is live, and the checker that
proves a plan sound from the graph alone.  Backends read plans through here
and never compute one.

The IR holds a plan as annotations: each planned node output carries its
``Placement`` (``Value.placement``: offset, size, and the value it views or
overwrites, if any) and the graph its ``Arena`` (``Graph.memory``: size,
alignment, statistics).  The text form shows both (see ``ir.printer``)::

    graph @main(%x: f32[4,16]) memory{arena_bytes=256, alignment=64, ...} {
      %a: f32[4,16] @mem(offset=0, nbytes=256) = Softmax(%x)
      %b: f32[4,16] @mem(offset=0, nbytes=256, inplace_of=%a) = Relu(%a)
      ...

Annotations live on values, so renames keep them right; ``plan_of`` rebuilds
the name-keyed ``MemoryPlan`` that consumers and ``verify_plan`` read, and
``set_plan`` writes one back.  Nested graphs (fused bodies) have no plan.

Over the node order a value is live from the node that produces it to its
last reader (inclusive: a kernel's inputs and outputs are live together);
graph outputs live to the end.  Graph inputs and constants are never planned.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import NamedTuple, Optional

from .errors import CompilerError
from .graph import Graph, Node, Value
from .registry import BROADCAST, ELEMENTWISE
from .types import TensorType

ALIGNMENT = 64


def aligned_buffer(nbytes: int, fill: "Optional[np.ndarray]" = None) -> "np.ndarray":
    """A zeroed uint8 array of ``nbytes`` whose data pointer is ``ALIGNMENT``-byte aligned.

    The weights blob and the arena of compiled code are such buffers: the
    generated code uses aligned vector loads on them.
    """
    import numpy as np
    raw = np.zeros(nbytes + ALIGNMENT, np.uint8)
    start = (-raw.ctypes.data) % ALIGNMENT
    buf = raw[start:start + nbytes]
    if fill is not None:
        buf[:] = fill
    return buf
INPLACE_KINDS = frozenset({ELEMENTWISE, BROADCAST})


class PlanEntry(NamedTuple):
    """Where one value lives: ``kind`` is arena, view-of:<name> or inplace-of:<name>."""

    offset: int
    nbytes: int
    kind: str = "arena"

    @property
    def base(self) -> Optional[str]:
        """The aliased value's name for a view or an in-place result."""
        return self.kind.split(":", 1)[1] if ":" in self.kind else None


PLACEMENT_KINDS = ("arena", "view", "inplace")


@dataclass(frozen=True)
class Placement:
    """Where one node output lives in the arena (``Value.placement``).

    ``kind`` is ``arena`` (its own bytes), ``view`` (a view op's output on
    its input's bytes) or ``inplace`` (a kernel writing over an input that
    dies there); ``base`` is that input (the value itself, so renames keep
    it right) for the last two.
    """

    offset: int
    nbytes: int
    kind: str = "arena"
    base: Optional[Value] = None

    def entry(self) -> PlanEntry:
        """The name-keyed form: kind ``arena``, ``view-of:<base>`` or ``inplace-of:<base>``."""
        if self.kind == "arena" or self.base is None:
            return PlanEntry(self.offset, self.nbytes, self.kind)
        return PlanEntry(self.offset, self.nbytes, f"{self.kind}-of:{self.base.name}")


@dataclass(frozen=True)
class Arena:
    """The graph-level part of a memory plan (``Graph.memory``)."""

    arena_bytes: int
    alignment: int = ALIGNMENT
    naive_bytes: int = 0        # every planned value in its own buffer
    peak_live_bytes: int = 0    # lower bound: most aligned bytes live at one node
    algorithm: str = ""


@dataclass
class MemoryPlan:
    """Offsets of a graph's intermediates in one arena of ``arena_bytes``."""

    arena_bytes: int
    alignment: int
    entries: dict[str, PlanEntry]
    naive_bytes: int            # every planned value in its own buffer
    peak_live_bytes: int = 0    # lower bound: most aligned bytes live at one node
    algorithm: str = ""

    @property
    def ratio(self) -> float:
        return self.arena_bytes / self.naive_bytes if self.naive_bytes else 0.0

    def count(self, prefix: str) -> int:
        return sum(1 for e in self.entries.values() if e.kind.startswith(prefix))

    def to_json(self) -> str:
        d = {"arena_bytes": self.arena_bytes, "alignment": self.alignment,
             "naive_bytes": self.naive_bytes, "peak_live_bytes": self.peak_live_bytes,
             "algorithm": self.algorithm,
             "entries": {k: list(e) for k, e in self.entries.items()}}
        return json.dumps(d, indent=1)

    @classmethod
    def from_json(cls, text: str) -> MemoryPlan:
        d = json.loads(text)
        entries = {k: PlanEntry(int(o), int(n), str(kind)) for k, (o, n, kind) in d["entries"].items()}
        return cls(int(d["arena_bytes"]), int(d["alignment"]), entries, int(d["naive_bytes"]),
                   int(d.get("peak_live_bytes", 0)), str(d.get("algorithm", "")))

    def summary(self) -> str:
        return (f"arena {self.arena_bytes} B for {len(self.entries)} values (naive {self.naive_bytes} B, "
                f"{self.ratio:.1%}; peak live {self.peak_live_bytes} B), {self.count('view-of')} views, "
                f"{self.count('inplace-of')} in place, by {self.algorithm}")


# ---------------------------------------------------------- IR annotations
def plan_of(graph: Graph) -> Optional[MemoryPlan]:
    """The graph's memory plan rebuilt from its annotations; None when it has none.

    Entries are keyed by the values' current names, in definition order.
    Placements on graph inputs or constants are included (``verify_plan``
    rejects them).
    """
    arena = graph.memory
    if arena is None:
        return None
    entries = {v.name: v.placement.entry() for v in graph.values() if v.placement is not None}
    return MemoryPlan(arena.arena_bytes, arena.alignment, entries, arena.naive_bytes,
                      arena.peak_live_bytes, arena.algorithm)


def set_plan(graph: Graph, plan: MemoryPlan) -> None:
    """Write ``plan`` into the graph: placements on its values, the arena on the graph.

    Replaces any plan the graph had.  Every entry must name a node output of
    ``graph`` (and a view's or in-place result's base a value of it).
    """
    clear_plan(graph)
    by_name = {v.name: v for v in graph.values()}
    for name, e in plan.entries.items():
        v = by_name.get(name)
        if v is None:
            raise CompilerError("memory plan names a value that is not in the graph", subject=f"%{name}")
        base = None
        kind = "arena"
        if e.base is not None:
            kind = e.kind.split("-of:", 1)[0]
            base = by_name.get(e.base)
            if kind not in ("view", "inplace") or base is None:
                raise CompilerError("memory plan entry has a bad kind", subject=f"%{name}", found=e.kind)
        elif e.kind != "arena":
            raise CompilerError("memory plan entry has a bad kind", subject=f"%{name}", found=e.kind)
        v.placement = Placement(e.offset, e.nbytes, kind, base)
    graph.memory = Arena(plan.arena_bytes, plan.alignment, plan.naive_bytes, plan.peak_live_bytes,
                         plan.algorithm)


def clear_plan(graph: Graph) -> bool:
    """Drop the graph's memory plan (arena and placements); returns whether it had any."""
    had = graph.memory is not None
    graph.memory = None
    for v in graph.values():
        if v.placement is not None:
            v.placement = None
            had = True
    return had


# ------------------------------------------------------------------ liveness
def align(n: int, alignment: int) -> int:
    return -(-n // alignment) * alignment


def static_nbytes(v: Value) -> Optional[int]:
    t = v.type
    return t.nbytes if isinstance(t, TensorType) and t.is_static else None


def live_ranges(graph: Graph) -> dict[str, tuple[int, int]]:
    """Node outputs' ``(producer index, last reader index)``; graph outputs end at len(nodes)."""
    index = {id(n): i for i, n in enumerate(graph.nodes)}
    end_of_graph = len(graph.nodes)
    outputs = {id(v) for v in graph.outputs}
    ranges = {}
    for i, n in enumerate(graph.nodes):
        for v in n.outputs:
            last = max((index[id(u.node)] for u in v.uses), default=i)
            ranges[v.name] = (i, end_of_graph if id(v) in outputs else max(i, last))
    return ranges


# ------------------------------------------------------------ aliasing rules
def is_view_op(node: Node) -> bool:
    """Does the registry mark ``node``'s op as a view (output = input 0's bytes, reshaped)?"""
    try:
        return node.schema.view
    except CompilerError:  # an op without a schema: assume nothing
        return False


def view_source(node: Node) -> Optional[Value]:
    """The input a view op's output can alias: same bytes, plain row-major layout."""
    if not is_view_op(node) or len(node.outputs) != 1:
        return None
    src, out = node.input(0), node.outputs[0]
    if src is None or not isinstance(src.type, TensorType) or not isinstance(out.type, TensorType):
        return None
    same_layout = src.type.layout == out.type.layout and (src.type.layout is None or node.op == "Identity")
    return src if same_layout and static_nbytes(src) == static_nbytes(out) else None


def _elementwise_inputs(node: Node) -> set[int]:
    """Input positions that every path to the outputs reads only at the output's index."""
    if node.domain == "nnc" and node.op == "Fused":
        return _fused_elementwise_inputs(node)
    return set(range(len(node.inputs))) if _kind(node) in INPLACE_KINDS else set()


def _kind(node: Node) -> Optional[str]:
    try:
        return node.schema.kind
    except CompilerError:  # an op without a schema: assume nothing
        return None


def _fused_elementwise_inputs(node: Node) -> set[int]:
    """Body inputs whose readers, transitively, are all elementwise/broadcast body nodes."""
    body = node.attrs.get("body")
    if not isinstance(body, Graph):
        return set()
    ok = set()
    for i, bx in enumerate(body.inputs):
        tainted, legal = {id(bx)}, True
        for n in body.nodes:
            if any(v is not None and id(v) in tainted for v in n.inputs):
                if _kind(n) not in INPLACE_KINDS:
                    legal = False
                    break
                tainted.update(id(o) for o in n.outputs)
        if legal:
            ok.add(i)
    return ok


def inplace_candidates(node: Node) -> list[tuple[int, int]]:
    """(output index, input index) pairs where the output may overwrite the input.

    Legal when the kernel reads that input only element by element at the
    output's own index (elementwise/broadcast, and the input is full size: same
    element count and width, same layout), so it can read ``in[i]`` and write
    ``out[i]`` in one loop step.  Only single-output kernels: a kernel writing
    several outputs may run one loop per output.  Liveness is the caller's.
    """
    if len(node.outputs) != 1:
        return []
    positions = _elementwise_inputs(node)
    pairs = []
    for k, out in enumerate(node.outputs):
        for j in sorted(positions):
            src = node.input(j)
            if src is None or not isinstance(src.type, TensorType) or not isinstance(out.type, TensorType):
                continue
            if any(x is src and i not in positions for i, x in enumerate(node.inputs)):
                continue  # also read, elsewhere, in another pattern
            same = (src.type.is_static and out.type.is_static and src.type.numel == out.type.numel
                    and src.type.dtype.itemsize == out.type.dtype.itemsize
                    and src.type.layout == out.type.layout)
            if same:
                pairs.append((k, j))
    return pairs


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
        for _, _, other in active:
            o = plan.entries[other]
            if o.offset < hi and lo < o.offset + o.nbytes and overwrites.get(name) != other:
                raise _bad("two values live at the same time share bytes", f"%{other} and %{name}",
                           found=f"[{o.offset}, {o.offset + o.nbytes}) and [{lo}, {hi}), "
                                 f"both live at node {s}")
        active.append((s, e, name))
