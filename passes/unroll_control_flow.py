"""unroll-control-flow: If, Loop and Scan with static trip counts become their bodies' ops.

A target that compiles a graph of kernels (cpu) has no kernel for a node
that runs a subgraph; but once shapes and shape-deciding values are
constants (after specialization), many control-flow nodes have a known
trip count and can be rewritten into straight-line code:

* ``Scan``: the trip count is the static length of the scanned axis.  Step
  ``t`` reads ``Gather(x, t, axis)`` of each scan input (``L-1-t`` when
  scanning backwards), the states flow from one copy of the body to the
  next, and each scan output is the ``Concat`` of the steps' values, each
  ``Unsqueeze``-d at its output axis (in reverse order for a backward output).
* ``Loop``: the trip count ``M`` and the initial ``cond`` must be constants
  (the Loop's schema makes them shape-deciding inputs, so specialization
  turns them into constants) and the body's condition must be provably true
  on every iteration (a constant, or the incoming condition passed through
  Identity/And/Or), so the loop runs exactly ``M`` times.  The iteration
  number is a constant in each copy; scan outputs stack along axis 0.
* ``If``: a constant condition keeps one branch; otherwise, when both
  branches return tensors of one static type and every op in them is pure,
  both are inlined and each output becomes ``Where(cond, then, else)``
  (if-conversion: both branches are computed, so only cheap branches should
  reach this; ONNX bodies here are small).

Bodies are inlined with their types inferred again from the now static
inputs; a nested control-flow node is unrolled in the next round, after
constants are folded (its condition is often computed from shapes).  After
the rewrite the downstream types are refined (``ir.infer.refine_types``).
A node that cannot be unrolled is left in place, with the reason logged;
``blocker`` gives the same reason to the target, which reports it.
"""

from __future__ import annotations

from typing import Any, Optional

import numpy as np

from ir.dtypes import DType
from ir.errors import CompilerError
from ir.graph import Graph, Node, Value
from ir.registry import get_schema
from ir.types import TensorType

from .manager import PassContext, register_pass

CONTROL_FLOW_OPS = frozenset({"If", "Loop", "Scan"})
MAX_COPIED_NODES = 50_000  # body nodes created by unrolling one node (iterations x body size)


def _static(v: Optional[Value]) -> bool:
    return v is not None and isinstance(v.type, TensorType) and v.type.is_static


def _const_scalar(v: Optional[Value]) -> Optional[Any]:
    if v is None or v.const is None or np.asarray(v.const).size != 1:
        return None
    return np.asarray(v.const).reshape(-1)[0]


def _body_nodes(g: Graph) -> int:
    """Nodes of ``g`` and of the subgraphs inside it."""
    return sum(1 + sum(_body_nodes(s) for s in n.subgraphs()) for n in g.nodes)


def _all_pure(g: Graph) -> bool:
    return all(get_schema(n.op, n.domain).pure and all(_all_pure(s) for s in n.subgraphs()) for n in g.nodes)


def _tensors_only(vals) -> Optional[str]:
    for v in vals:
        if v is not None and not isinstance(v.type, TensorType):
            return f"{v.type} values (sequences, optionals) cannot be unrolled into kernels"
    return None


def _always_true(v: Optional[Value], body: Graph, depth: int = 0) -> bool:
    """Whether a Loop body's condition is true on every iteration that starts with a true one."""
    if v is None or depth > 16:
        return False
    if v.const is not None:
        return bool(np.all(v.const))
    if len(body.inputs) > 1 and v is body.inputs[1]:
        return True
    p = v.producer
    if p is None or p.domain != "":
        return False
    args = [_always_true(x, body, depth + 1) for x in p.inputs]
    if p.op in ("Identity", "And"):
        return all(args)
    if p.op == "Or":
        return any(args)
    return False


# ------------------------------------------------------------------ analysis
def loop_trip_count(node: Node) -> tuple[Optional[int], str]:
    """(the number of iterations, "") for an unrollable Loop, else (None, why not)."""
    why = _tensors_only(list(node.inputs) + list(node.outputs))
    if why:
        return None, why
    body: Graph = node.attr("body")
    m, cond = node.input(0), node.input(1)
    if m is None:
        return None, "a Loop without a trip count M (a while loop) cannot be unrolled"
    mv = _const_scalar(m)
    if mv is None:
        return None, "its trip count M is not a constant"
    if cond is not None:
        cv = _const_scalar(cond)
        if cv is None:
            return None, "its initial condition is not a constant"
        if not bool(cv):
            return 0, ""
    if not _always_true(body.outputs[0] if body.outputs else None, body):
        return None, "its body computes the loop condition from data (the trip count is not static)"
    return max(int(mv), 0), ""


def scan_length(node: Node) -> tuple[Optional[int], str]:
    """(the sequence length, "") for an unrollable Scan, else (None, why not)."""
    why = _tensors_only(list(node.inputs) + list(node.outputs))
    if why:
        return None, why
    m, c = node.attr("num_scan_inputs"), node.attr("num_captures") or 0
    n = len(node.inputs) - m - c
    axes = node.attr("scan_input_axes") or [0] * m
    length = None
    for j in range(m):
        x = node.input(n + j)
        if not _static(x):
            return None, "its scan inputs' shapes are not static"
        d = x.type.shape[axes[j] % len(x.type.shape)]
        if length is not None and d != length:
            return None, "its scan inputs have different sequence lengths"
        length = int(d)
    if not length:
        return None, "its sequence length is 0"
    return length, ""


def if_plan(node: Node) -> tuple[Optional[str], str]:
    """("then" | "else" | "select", "") for an unrollable If, else (None, why not)."""
    why = _tensors_only(list(node.inputs) + list(node.outputs))
    if why:
        return None, why
    then_g, else_g = node.attr("then_branch"), node.attr("else_branch")
    cv = _const_scalar(node.input(0))
    if cv is not None:
        return ("then" if bool(cv) else "else"), ""
    for a, b in zip(then_g.outputs[:len(node.outputs)], else_g.outputs[:len(node.outputs)]):
        if not isinstance(a.type, TensorType) or not isinstance(b.type, TensorType):
            return None, "its branches return sequences or optionals"
        if not (a.type.is_static and b.type.is_static and a.type == b.type):
            return None, (f"its condition is a run-time value and its branches return different or "
                          f"non-static types ({a.type} and {b.type}), so it cannot become a select")
    if not (_all_pure(then_g) and _all_pure(else_g)):
        return None, "its condition is a run-time value and a branch has an op with side effects"
    return "select", ""


def blocker(node: Node) -> Optional[str]:
    """Why ``unroll-control-flow`` leaves this If/Loop/Scan node in place (None: it unrolls it)."""
    if node.domain != "" or node.op not in CONTROL_FLOW_OPS:
        return None
    if node.op == "If":
        plan, why = if_plan(node)
        return None if plan else why
    if node.op == "Loop":
        trip, why = loop_trip_count(node)
        size = _body_nodes(node.attr("body"))
    else:
        trip, why = scan_length(node)
        size = _body_nodes(node.attr("body"))
    if trip is None:
        return why
    if trip * size > MAX_COPIED_NODES:
        return f"unrolling it would copy {trip} x {size} body nodes (more than {MAX_COPIED_NODES})"
    return None


# ------------------------------------------------------------------ rewriting
class _Inliner:
    """Copies bodies into ``graph`` before ``anchor``; body constants are added once per body."""

    def __init__(self, graph: Graph, anchor: Node) -> None:
        self.graph, self.anchor = graph, anchor
        self.prefix = anchor.outputs[0].name
        self._consts: dict[int, Value] = {}

    def constant(self, array: Any, dtype: DType, hint: str) -> Value:
        return self.graph.add_constant(np.asarray(array, dtype.np), self.graph.fresh_name(f"{self.prefix}_{hint}"),
                                       dtype=dtype)

    def node(self, op: str, inputs: list[Optional[Value]], attrs: Optional[dict] = None, hint: str = "") -> Value:
        return self.graph.create_node(op, inputs, attrs or {}, name=self.anchor.name,
                                      output_names=[f"{self.prefix}_{hint or op.lower()}"],
                                      before=self.anchor).output

    def body(self, body: Graph, args: list[Value], tag: str) -> list[Value]:
        """The values of ``body``'s outputs computed from ``args`` by a fresh copy of its nodes."""
        mapping: dict[int, Value] = {id(b): a for b, a in zip(body.inputs, args)}
        for c in body.constants.values():
            if id(c) not in self._consts:
                self._consts[id(c)] = self.graph.add_constant(
                    c.const, self.graph.fresh_name(f"{self.prefix}_{c.name}"), dtype=c.type.dtype)
            mapping[id(c)] = self._consts[id(c)]
        for n in body.nodes:
            attrs = {k: (v.clone() if isinstance(v, Graph) else v) for k, v in n.attrs.items()}
            new = self.graph.create_node(n.op, [None if v is None else mapping[id(v)] for v in n.inputs], attrs,
                                         domain=n.domain, name=n.name,
                                         output_names=[f"{self.prefix}_{tag}_{o.name}" for o in n.outputs],
                                         before=self.anchor)
            for old, out in zip(n.outputs, new.outputs):
                mapping[id(old)] = out
        return [mapping[id(v)] for v in body.outputs]

    def stack(self, steps: list[Value], axis: int, hint: str) -> Value:
        """The per-step values stacked along a new ``axis``."""
        axes = self.constant([axis], DType.I64, "axis")
        rows = [self.node("Unsqueeze", [s, axes], hint=f"{hint}_row") for s in steps]
        if len(rows) == 1:
            return rows[0]
        rank = len(rows[0].type.shape)
        return self.node("Concat", rows, {"axis": axis % rank}, hint=hint)

    def empty(self, step: Value) -> Value:
        """Zero steps of ``step``'s type stacked along axis 0."""
        t = step.type
        if not (isinstance(t, TensorType) and t.is_static):
            raise _Refused("a zero-trip loop's scan output has no static shape")
        return self.constant(np.zeros((0,) + tuple(t.shape), t.dtype.np), t.dtype, "empty")


class _Refused(Exception):
    pass


def _rollback(graph: Graph, nodes: set[int], constants: set[str]) -> None:
    """Remove what a failed rewrite added (nodes not in ``nodes``, constants not in ``constants``)."""
    for n in reversed([n for n in graph.nodes if id(n) not in nodes]):
        graph.remove_node(n)
    for name in [c for c in graph.constants if c not in constants]:
        graph.remove_constant(graph.constants[name])


def _replace_outputs(graph: Graph, node: Node, results: list[Value]) -> None:
    for old, new in zip(node.outputs, results):
        if not graph.can_replace(old, new):
            new = graph.create_node("Identity", [new], {}, output_names=[old.name + "_id"], before=node).output
        graph.replace_all_uses(old, new)
    graph.remove_node(node)


def _unroll_if(graph: Graph, node: Node, plan: str) -> list[Value]:
    inl = _Inliner(graph, node)
    captures = list(node.inputs[1:])
    k = len(node.outputs)
    if plan != "select":
        branch = node.attr("then_branch" if plan == "then" else "else_branch")
        return inl.body(branch, captures, plan)[:k]
    then_out = inl.body(node.attr("then_branch"), captures, "then")[:k]
    else_out = inl.body(node.attr("else_branch"), captures, "else")[:k]
    cond = node.input(0)
    if cond.type.shape != ():
        cond = inl.node("Reshape", [cond, inl.constant(np.zeros(0, np.int64), DType.I64, "scalar")], hint="cond")
    return [inl.node("Where", [cond, a, b], hint="select") for a, b in zip(then_out, else_out)]


def _unroll_loop(graph: Graph, node: Node, trip: int) -> list[Value]:
    inl = _Inliner(graph, node)
    body: Graph = node.attr("body")
    c = node.attr("num_captures") or 0
    rest = list(node.inputs[2:])
    carried, captures = rest[:len(rest) - c], rest[len(rest) - c:]
    n = len(carried)
    scans: list[list[Value]] = [[] for _ in range(len(body.outputs) - 1 - n)]
    true = inl.constant(True, DType.BOOL, "true")
    for i in range(trip):
        outs = inl.body(body, [inl.constant(i, DType.I64, f"iter{i}"), true, *carried, *captures], f"it{i}")
        carried = outs[1:1 + n]
        for acc, y in zip(scans, outs[1 + n:]):
            acc.append(y)
    if trip == 0 and scans and len(node.outputs) > n:
        # No iteration: each scan output is empty, shaped like one step's value.  A copy of the
        # body (left dead, for dce) infers that shape from the static inputs.
        probe = inl.body(body, [inl.constant(0, DType.I64, "iter0"), true, *carried, *captures], "probe")
        return list(carried) + [inl.empty(y) for y in probe[1 + n:]][:len(node.outputs) - n]
    results = list(carried)
    for j, acc in enumerate(scans):
        if len(results) >= len(node.outputs):
            break
        results.append(inl.stack(acc, 0, f"scan{j}"))
    return results[:len(node.outputs)]


def _unroll_scan(graph: Graph, node: Node, length: int) -> list[Value]:
    inl = _Inliner(graph, node)
    body: Graph = node.attr("body")
    m, c = node.attr("num_scan_inputs"), node.attr("num_captures") or 0
    n = len(node.inputs) - m - c
    states = list(node.inputs[:n])
    xs, captures = list(node.inputs[n:n + m]), list(node.inputs[n + m:])
    in_axes = node.attr("scan_input_axes") or [0] * m
    in_dirs = node.attr("scan_input_directions") or [0] * m
    k = len(body.outputs) - n
    out_axes = node.attr("scan_output_axes") or [0] * k
    out_dirs = node.attr("scan_output_directions") or [0] * k
    scans: list[list[Value]] = [[] for _ in range(k)]
    for t in range(length):
        slices = []
        for j, x in enumerate(xs):
            at = length - 1 - t if in_dirs[j] else t
            idx = inl.constant(at, DType.I64, f"t{at}")
            slices.append(inl.node("Gather", [x, idx], {"axis": in_axes[j] % len(x.type.shape)}, hint=f"x{j}_t{at}"))
        outs = inl.body(body, [*states, *slices, *captures], f"t{t}")
        states = outs[:n]
        for acc, y in zip(scans, outs[n:]):
            acc.append(y)
    results = list(states)
    for j, acc in enumerate(scans):
        if len(results) >= len(node.outputs):
            break
        steps = acc[::-1] if out_dirs[j] else acc
        t = steps[0].type
        if not isinstance(t, TensorType) or t.shape is None:
            raise _Refused("a scan output's rank is unknown")
        rank = len(t.shape) + 1
        results.append(inl.stack(steps, out_axes[j] % rank, f"scan{j}"))
    return results[:len(node.outputs)]


@register_pass("unroll-control-flow")
def unroll_control_flow(graph: Graph, ctx: PassContext, *, max_rounds: int = 8) -> bool:
    """Rewrite If/Loop/Scan nodes with static trip counts into their bodies' ops."""
    changed = False
    for _ in range(max_rounds):  # a nested node is unrolled in the round after its parent
        progress = False
        for node in list(graph.nodes):
            if node.graph is not graph or node.domain != "" or node.op not in CONTROL_FLOW_OPS:
                continue
            why = blocker(node)
            if why is not None:
                ctx.decide("keep control flow", node=node.describe(), reason=why)
                continue
            label = node.describe()
            before = len(graph.nodes)
            snapshot = ({id(n) for n in graph.nodes}, set(graph.constants))
            try:
                if node.op == "If":
                    plan = if_plan(node)[0]
                    results, rule = _unroll_if(graph, node, plan), f"If: {plan}"
                elif node.op == "Loop":
                    trip = loop_trip_count(node)[0]
                    results, rule = _unroll_loop(graph, node, trip), f"Loop: {trip} iterations"
                else:
                    length = scan_length(node)[0]
                    results, rule = _unroll_scan(graph, node, length), f"Scan: {length} steps"
            except (_Refused, CompilerError) as exc:  # e.g. a branch that is ill-typed for these shapes
                _rollback(graph, *snapshot)
                ctx.decide("keep control flow", node=label, reason=str(exc).splitlines()[0])
                continue
            _replace_outputs(graph, node, results)
            ctx.decide("unroll control flow", node=label, rule=rule, nodes=len(graph.nodes) - before + 1)
            progress = True
        if not progress:
            break
        changed = True
        from ir.infer import refine_types
        refine_types(graph)
        # Conditions and trip counts of nodes inlined this round may be computed from shapes and
        # constants: fold them so the next round sees constants.
        from .fold_constants import fold_constants
        fold_constants(graph, PassContext())
    if changed:
        graph.topological_sort()
    return changed
