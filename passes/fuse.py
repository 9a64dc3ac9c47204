"""fuse: group nodes into kernels, each replaced by one ``nnc.Fused`` node.

The grouping rule is TVM's, driven by the op kinds of the registry, in the
registry's order ``KIND_RANK``
(ELEMENTWISE < BROADCAST < INJECTIVE < REDUCTION < COMPLEX < OPAQUE), and the
post-dominator tree of the dataflow graph:

* phase 0, epilogues: a COMPLEX node (Conv, Gemm, MatMul...) absorbs the
  nodes up to its immediate post-dominator when every node on every path in
  between (the post-dominator included) is elementwise or broadcast: bias,
  activation, residual Add, Clip, requantization.
* phase 0, prologues: an elementwise/broadcast node joins a post-dominator
  that is injective or a reduction when all paths in between are at most
  injective (``Exp`` before a ``ReduceSum``, a scale before a Softmax).
* phase 1, injective chains: an injective node (transpose, reshape, pad...)
  joins its post-dominator when all paths in between are at most injective.

Fusing along post-dominator paths keeps every group convex (no path leaves a
group and comes back), so a group can run as one kernel.  Groups of one node
stay plain nodes.  Constants a group reads move into its body; the group's
inputs are the activations it reads.

The pass is target-aware through ``ctx.backend``: a backend may refuse to fuse
an op it cannot generate inside a fused kernel (``Backend.fusable``).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Optional

import networkx as nx

from ir.graph import Graph, Node, Value
from ir.registry import BROADCAST, COMPLEX, ELEMENTWISE, INJECTIVE, KIND_RANK as RANK, OPAQUE, REDUCTION
from ir.types import TensorType

from .manager import PassContext, register_pass

_SINK = "__sink__"
# Anchors whose kernels take only elementwise/broadcast ops in their group (convolutions also read
# side operands through index-mapping ops, e.g. a residual through a layout conversion).
GEMM_ANCHORS = frozenset({"MatMul", "Gemm"})


def node_kind(node: Node, ctx: Optional[PassContext] = None) -> str:
    """The fusion kind of a node: its schema's kind, made OPAQUE where it cannot fuse."""
    kind = node.schema.kind
    if any(True for _ in node.subgraphs()) or not node.schema.pure:
        return OPAQUE
    if node.op == "BatchNormalization" and node.attr("training_mode"):
        return OPAQUE  # reduces over the batch in training mode
    if any(not isinstance(o.type, TensorType) for o in node.outputs) or len(node.outputs) != 1:
        return OPAQUE
    backend = ctx.backend if ctx is not None else None
    if backend is not None and not backend.fusable(node):
        return OPAQUE
    return kind


class _Groups:
    """Union-find over nodes; each root remembers its group's pattern (max kind) and size."""

    def __init__(self, nodes: list[Node], kinds: dict[int, str]) -> None:
        self.parent = {id(n): id(n) for n in nodes}
        self.pattern = {id(n): kinds[id(n)] for n in nodes}
        self.size = {id(n): 1 for n in nodes}
        self.anchor = {id(n): n for n in nodes}

    def find(self, k: int) -> int:
        while self.parent[k] != k:
            self.parent[k] = self.parent[self.parent[k]]
            k = self.parent[k]
        return k

    def union(self, child: int, root_of: int) -> None:
        a, b = self.find(child), self.find(root_of)
        if a == b:
            return
        # Keep the heavier pattern's anchor as the group's anchor.
        keep, drop = (a, b) if RANK[self.pattern[a]] >= RANK[self.pattern[b]] else (b, a)
        self.parent[drop] = keep
        self.size[keep] += self.size[drop]


def _dataflow(graph: Graph) -> nx.DiGraph:
    g = nx.DiGraph()
    g.add_node(_SINK)
    outputs = {id(v) for v in graph.outputs}
    for n in graph.nodes:
        g.add_node(id(n))
        for out in n.outputs:
            readers = out.users
            for r in readers:
                g.add_edge(id(n), id(r))
            if id(out) in outputs or not readers:
                g.add_edge(id(n), _SINK)
    return g


def _between(flow: nx.DiGraph, src: int, dst: int, kinds: dict[int, str], limit: int) -> Optional[set]:
    """The nodes on paths src -> dst (both included) if each strictly between has kind rank <= limit.

    ``dst`` post-dominates ``src``, so every node reachable from ``src``
    without passing ``dst`` lies on such a path; a path that reaches the
    graph's end first, or a node of a heavier kind, makes fusion illegal.
    """
    stack, seen = [src], {src, dst}
    while stack:
        k = stack.pop()
        for nxt in flow.successors(k):
            if nxt == dst:
                continue  # the post-dominator's own kind is checked by the caller's rule
            if nxt == _SINK or RANK[kinds[nxt]] > limit:
                return None
            if nxt not in seen:
                seen.add(nxt)
                stack.append(nxt)
    return seen


def find_groups(graph: Graph, ctx: Optional[PassContext] = None, max_group: int = 64) -> list[list[Node]]:
    """The groups the rule forms, each in graph order (groups of one node included)."""
    nodes = list(graph.nodes)
    kinds = {id(n): node_kind(n, ctx) for n in nodes}
    flow = _dataflow(graph)
    ipdom = nx.immediate_dominators(flow.reverse(copy=False), _SINK)
    groups = _Groups(nodes, kinds)

    def try_fuse(n: Node, limit: int, dom_ok: Iterable[str]) -> None:
        dom = ipdom.get(id(n))
        if dom is None or dom == _SINK or dom == id(n):
            return
        if groups.find(dom) == groups.find(id(n)):
            return
        if kinds[dom] not in dom_ok or groups.pattern[groups.find(dom)] == OPAQUE:
            return
        members = _between(flow, id(n), dom, kinds, limit)
        if members is None:
            return
        roots = {groups.find(m) for m in members}
        if sum(groups.size[r] for r in roots) > max_group:
            return
        # An anchor group (conv/matmul/reduction) may absorb only one heavy op.
        if sum(1 for r in roots if RANK[groups.pattern[r]] >= RANK[REDUCTION]) > 1:
            return
        root = groups.find(id(n))
        for m in members:
            groups.union(m, root)

    for phase in (0, 1):
        for n in nodes:
            pattern = groups.pattern[groups.find(id(n))]
            kind = kinds[id(n)]
            if kind == OPAQUE:
                continue
            if phase == 0 and pattern in (COMPLEX, REDUCTION):
                try_fuse(n, RANK[BROADCAST], (ELEMENTWISE, BROADCAST))
            elif phase == 0 and RANK[kind] <= RANK[BROADCAST]:
                try_fuse(n, RANK[INJECTIVE], (ELEMENTWISE, BROADCAST, INJECTIVE, REDUCTION))
            elif phase == 1 and kind == INJECTIVE and pattern == INJECTIVE:
                dom = ipdom.get(id(n))
                if dom in groups.parent and groups.anchor[groups.find(dom)].op in GEMM_ANCHORS:
                    continue  # gemm kernels read side operands directly, not through index maps
                try_fuse(n, RANK[INJECTIVE], (ELEMENTWISE, BROADCAST, INJECTIVE))
    members: dict[int, list[Node]] = {}
    for n in nodes:
        members.setdefault(groups.find(id(n)), []).append(n)
    return list(members.values())


def _pattern(group: list[Node]) -> str:
    """``"Conv+Add+Relu"``: the heavy anchor op (conv, matmul, reduction) first, else graph order."""
    anchor = max(group, key=lambda n: RANK[n.schema.kind])
    if RANK[anchor.schema.kind] < RANK[REDUCTION]:
        return "+".join(n.op for n in group)
    return "+".join([anchor.op] + [n.op for n in group if n is not anchor])


def materialize(graph: Graph, group: list[Node], name: str) -> Node:
    """Replace ``group`` (a convex set of nodes in graph order) by one nnc.Fused node."""
    inside = {id(n) for n in group}
    produced = {id(o) for n in group for o in n.outputs}
    inputs: list[Value] = []
    seen: set[int] = set()
    for n in group:
        for v in n.inputs:
            if v is None or id(v) in produced or id(v) in seen or v.const is not None:
                continue
            seen.add(id(v))
            inputs.append(v)
    outputs = [o for n in group for o in n.outputs
               if o.is_graph_output or any(id(u.node) not in inside for u in o.uses)]
    body = Graph(name)
    mapping: dict[int, Value] = {}
    for v in inputs:
        mapping[id(v)] = body.add_input(v.name, v.type)
    for n in group:
        args = []
        for v in n.inputs:
            if v is None:
                args.append(None)
            elif v.const is not None:
                if id(v) not in mapping:
                    c = body.add_constant(v.const, v.name, dtype=v.type.dtype)
                    c.type = v.type
                    mapping[id(v)] = c
                args.append(mapping[id(v)])
            else:
                args.append(mapping[id(v)])
        copy = body.create_node(n.op, args, dict(n.attrs), domain=n.domain, name=n.name,
                                output_names=[o.name for o in n.outputs],
                                output_types=[o.type for o in n.outputs])
        for old, new in zip(n.outputs, copy.outputs):
            mapping[id(old)] = new
    body.set_outputs(mapping[id(o)] for o in outputs)
    names = [o.name for o in outputs]
    fused = graph.create_node("Fused", inputs, {"body": body, "pattern": _pattern(group)}, domain="nnc",
                              name=name, output_names=[o.name + "_fused" for o in outputs],
                              output_types=[o.type for o in outputs], after=group[-1])
    for old, new in zip(outputs, fused.outputs):
        graph.replace_all_uses(old, new)
    for n in reversed(group):
        graph.remove_node(n)
    for name, new in zip(names, fused.outputs):  # the group's outputs keep their names
        if new.name != name and not graph.has_value(name):
            graph.rename(new, name)
    return fused


def _bytes(v: Value) -> int:
    return (v.type.nbytes or 0) if isinstance(v.type, TensorType) else 0


@register_pass("fuse")
def fuse(graph: Graph, ctx: PassContext, *, max_group: int = 64) -> bool:
    """Group nodes into fused kernels along post-dominator paths (TVM's rule)."""
    groups = [g for g in find_groups(graph, ctx, max_group) if len(g) > 1]
    for i, group in enumerate(groups):
        inside = {id(n) for n in group}
        internal = [o for n in group for o in n.outputs
                    if not o.is_graph_output and all(id(u.node) in inside for u in o.uses)]
        pattern = _pattern(group)
        name = f"fused_{i}_{pattern.split('+')[0].lower()}"
        fused_node = materialize(graph, group, name)
        ctx.decide("fuse", group=name, pattern=pattern, nodes=len(group),
                   rule=_rule_for(group), saves_nodes=len(group) - 1,
                   saves_bytes=2 * sum(_bytes(v) for v in internal),
                   output=fused_node.outputs[0].name)
    if groups:
        graph.topological_sort()
        ctx.stats["fused_groups"] = ctx.stats.get("fused_groups", 0) + len(groups)
    return bool(groups)


def _rule_for(group: list[Node]) -> str:
    kinds = {n.schema.kind for n in group}
    if COMPLEX in kinds:
        return "epilogue: elementwise ops on every path to the post-dominator of a conv/matmul"
    if REDUCTION in kinds:
        return "prologue/epilogue: elementwise ops around a reduction"
    if INJECTIVE in kinds:
        return "injective chain: index-mapping ops fused along post-dominator paths"
    return "elementwise chain"
