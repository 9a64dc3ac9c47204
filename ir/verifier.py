"""Checks the IR invariants listed in ``ir.graph``; errors show the IR around the fault.

Pass results are checked too: a node's schedule must still fit the node
(``ir.schedule.stale_schedule``), and a graph with a memory plan must carry a
sound one (``ir.memory.verify_plan``: every intermediate placed, sizes,
alignment, no two live values sharing bytes).  Nested graphs (fused bodies,
control-flow branches) carry neither.
"""

from __future__ import annotations

from typing import Optional

from .errors import CompilerError, VerificationError
from .graph import Graph, Node, Use, Value
from .memory import PLACEMENT_KINDS, plan_of, verify_plan
from .printer import Printer
from .registry import get_schema, has_schema
from .schedule import stale_schedule
from .types import TensorType


def _context(g: Graph, node: Optional[Node], radius: int = 2) -> str:
    """A few printed lines of ``g`` around ``node``, the faulty one marked."""
    if node is None or node not in g.nodes:
        return ""
    p = Printer()
    idx = next(i for i, n in enumerate(g.nodes) if n is node)
    lines = []
    for i in range(max(0, idx - radius), min(len(g.nodes), idx + radius + 1)):
        mark = ">>" if i == idx else "  "
        try:
            text = p.node(g.nodes[i], "")
        except Exception as exc:  # a broken node may not even print
            text = f"<unprintable: {exc}>"
        lines.append(f"    {mark} {text}")
    return "\n" + "\n".join(lines)


class _Verifier:
    def __init__(self, g: Graph, check_types: bool, nested: bool = False) -> None:
        self.g = g
        self.check_types = check_types
        self.nested = nested

    def fail(self, msg: str, node: Optional[Node] = None, **kw) -> None:
        subject = f"graph @{self.g.name}" + (f", {node.describe()}" if node else "")
        err = VerificationError(msg, subject=subject, **kw)
        err.args = (str(err) + _context(self.g, node),)
        raise err

    def run(self) -> None:
        g = self.g
        defined: set[int] = set()
        names: dict[str, Value] = {}

        def define(v: Value, where: str, node: Optional[Node] = None) -> None:
            if v.graph is not g:
                self.fail(f"{where} %{v.name} does not belong to this graph", node)
            if v.name in names and names[v.name] is not v:
                self.fail(f"value name %{v.name} is defined twice", node)
            if g._names.get(v.name) is not v:
                self.fail(f"name table is stale for %{v.name}", node)
            if v.type is None:
                self.fail(f"%{v.name} has no type", node)
            names[v.name] = v
            defined.add(id(v))

        for v in g.inputs:
            if v.producer is not None or v.const is not None:
                self.fail(f"graph input %{v.name} has a producer or constant data")
            define(v, "input")
        if g.batch is not None and (len(g.batch.inputs) != len(g.inputs) or len(g.batch.outputs) != len(g.outputs)):
            self.fail(f"the batch signature has {len(g.batch.inputs)} input and {len(g.batch.outputs)} output "
                      f"flags for {len(g.inputs)} inputs and {len(g.outputs)} outputs")
        for name, v in g.constants.items():
            if v.const is None or v.name != name:
                self.fail(f"constant table entry {name!r} is inconsistent")
            if isinstance(v.type, TensorType) and tuple(v.const.shape) != v.type.shape:
                self.fail(f"constant %{v.name} data shape {v.const.shape} != type {v.type}")
            define(v, "constant")

        seen_nodes: set[int] = set()
        for node in g.nodes:
            if id(node) in seen_nodes:
                self.fail("node appears twice in the node list", node)
            seen_nodes.add(id(node))
            if node.graph is not g:
                self.fail("node's graph pointer is wrong", node)
            self.check_schema(node)
            for i, v in enumerate(node.inputs):
                if v is None:
                    continue
                if id(v) not in defined:
                    self.fail(f"input {i} (%{v.name}) is used before it is defined "
                              "or is not in this graph", node)
                if Use(node, i) not in v._uses:
                    self.fail(f"use list of %{v.name} misses input {i} of this node", node)
            for j, out in enumerate(node.outputs):
                if out.producer is not node or out.index != j:
                    self.fail(f"output %{out.name} does not point back to its producer", node)
                define(out, "output", node)
            for sub in node.subgraphs():
                try:
                    _Verifier(sub, self.check_types, nested=True).run()
                except VerificationError as exc:
                    self.fail(f"in subgraph @{sub.name}: {exc}", node)

        for v in list(g.values()):
            for use in v._uses:
                if use.node.graph is not g or id(use.node) not in seen_nodes:
                    self.fail(f"%{v.name} is used by a node that is not in the graph")
                if use.index >= len(use.node.inputs) or use.node.inputs[use.index] is not v:
                    self.fail(f"use list of %{v.name} names input {use.index} of "
                              f"{use.node.describe()}, which reads something else")
        for v in g.outputs:
            if id(v) not in defined:
                self.fail(f"graph output %{v.name} is not defined in the graph")
        if len(g._names) != len(names):
            stale = sorted(set(g._names) - set(names))[:5]
            self.fail(f"name table holds values not in the graph: {stale}")
        self.check_schedules()
        self.check_memory_plan()

    # ------------------------------------------------------- pass results
    def check_schedules(self) -> None:
        for node in self.g.nodes:
            if node.schedule is None:
                continue
            if self.nested:
                self.fail("a node of a nested graph has a schedule (only top-level kernels have one)", node)
            why = stale_schedule(node)
            if why is not None:
                self.fail(f"schedule of %{node.outputs[0].name if node.outputs else '?'} is stale: {why}; "
                          "re-run `schedule`", node)

    def check_memory_plan(self) -> None:
        g = self.g
        placed = [v for v in g.values() if v.placement is not None]
        if self.nested and (g.memory is not None or placed):
            self.fail("a nested graph has a memory plan (only the top-level graph is planned)")
        if g.memory is None:
            if placed:
                self.fail(f"%{placed[0].name} has a memory placement but the graph has no memory plan; "
                          "re-run `plan-memory`", placed[0].producer)
            return
        for v in placed:
            base = v.placement.base
            if v.placement.kind not in PLACEMENT_KINDS or (v.placement.kind == "arena") != (base is None):
                self.fail(f"memory placement of %{v.name} has a bad kind", v.producer,
                          found=f"{v.placement.kind} of {'%' + base.name if base is not None else 'nothing'}")
            if base is not None and (base.graph is not g or g._names.get(base.name) is not base):
                self.fail(f"memory placement of %{v.name} aliases a value that is not in this graph",
                          v.producer, found=f"%{base.name}")
        try:
            verify_plan(g, plan_of(g))  # type: ignore[arg-type]
        except CompilerError as exc:
            name = (exc.subject or "").split(" and ")[-1].lstrip("%")
            value = g._names.get(name)
            self.fail(f"{exc.message} ({exc.subject}); re-run `plan-memory`",
                      value.producer if value is not None else None, expected=exc.expected, found=exc.found)

    def check_schema(self, node: Node) -> None:
        if not has_schema(node.op, node.domain):
            self.fail("op is not registered", node)
        schema = get_schema(node.op, node.domain)
        n_in = len(node.inputs)
        if n_in < schema.min_inputs or (schema.max_inputs is not None and n_in > schema.max_inputs):
            self.fail("wrong number of inputs", node,
                      expected=f"{schema.min_inputs}..{schema.max_inputs or 'many'}", found=str(n_in))
        for i, p in enumerate(schema.inputs):
            if not p.optional and not p.variadic and i < n_in and node.inputs[i] is None:
                self.fail(f"required input {p.name!r} is missing", node)
        if schema.max_outputs is not None and len(node.outputs) > schema.max_outputs:
            self.fail("too many outputs", node, expected=str(schema.max_outputs),
                      found=str(len(node.outputs)))
        for name, spec in schema.attrs.items():
            if spec.required and name not in node.attrs:
                self.fail(f"required attribute {name!r} is missing", node)
        for name in node.attrs:
            if name not in schema.attrs:
                self.fail(f"unknown attribute {name!r}", node,
                          hint=f"{schema.qualified_name} takes {sorted(schema.attrs)}")
        if self.check_types and schema.infer_fn is not None:
            self.check_inferred_types(node)

    def check_inferred_types(self, node: Node) -> None:
        from .registry import InferContext
        try:
            inferred = get_schema(node.op, node.domain).infer_fn(InferContext(node, node.schema))
        except CompilerError as exc:
            self.fail(f"type rule rejects the node: {exc}", node)
        for out, t in zip(node.outputs, inferred):
            if not compatible(out.type, t):
                self.fail(f"output %{out.name} has type {out.type} but the op's rule gives {t}", node)


def compatible(stored, inferred) -> bool:
    """Whether a stored type agrees with an inferred one (stored may be more precise)."""
    if not isinstance(stored, TensorType) or not isinstance(inferred, TensorType):
        return type(stored) is type(inferred)
    if stored.dtype != inferred.dtype:
        return False
    if stored.shape is None or inferred.shape is None:
        return True
    if len(stored.shape) != len(inferred.shape):
        return False
    for a, b in zip(stored.shape, inferred.shape):
        if isinstance(a, int) and isinstance(b, int) and a != b:
            return False
    return True


def verify(g: Graph, *, check_types: bool = True) -> None:
    """Raise ``VerificationError`` if ``g`` breaks an IR invariant."""
    _Verifier(g, check_types).run()
