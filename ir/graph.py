"""The dataflow IR: SSA values, nodes and graphs.

Invariants, kept by construction (only ``Graph`` methods mutate them):

* every ``Value`` has exactly one definition: a graph input, a constant, or
  one output of one node (its ``producer``);
* ``value.uses`` lists every ``(node, input_index)`` reading it, in any order;
* ``graph.nodes`` is in topological order;
* value names are unique within a graph;
* subgraphs (node attributes of type ``Graph``) are closed: they read only
  their own inputs and constants.  Ops that capture outer values (``If``,
  ``Loop``, ``Scan``) receive them as explicit extra inputs.

``ir.verifier.verify`` checks all of these, so a pass that breaks one is
caught right after it runs.

Pass results that later stages rely on are part of the IR too (printed,
parsed and verified like the rest):

* ``Node.schedule``: the ``ir.schedule.Schedule`` chosen for a kernel node
  (a plain op or an ``nnc.Fused`` group) by the ``schedule`` pass;
* ``Value.placement``: where the memory plan puts a node output
  (an ``ir.memory.Placement``: arena offset, size, view of or in place of
  another value), and ``Graph.memory``: the arena it lives in (an
  ``ir.memory.Arena``), both written by ``plan-memory``.

They describe the graph as it was when computed: a rewrite that replaces a
node drops its schedule and its outputs' placements with it, and the
verifier reports a schedule or plan that no longer fits.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple, Optional

import numpy as np

from .batch import BatchSignature
from .dtypes import DType
from .errors import CompilerError
from .types import TensorType, Type

if TYPE_CHECKING:
    from .memory import Arena, Placement
    from .schedule import Schedule


class Use(NamedTuple):
    """One read of a value: ``node.inputs[index]``."""

    node: "Node"
    index: int


class Value:
    """An SSA value: a graph input, a constant, or a node output."""

    __slots__ = ("name", "type", "producer", "index", "_uses", "const", "graph", "placement")

    def __init__(self, name: str, type: Type, *, const: Optional[np.ndarray] = None) -> None:
        self.name = name
        self.type = type
        self.producer: Optional[Node] = None
        self.index = 0
        self._uses: list[Use] = []
        self.const = const
        self.graph: Optional[Graph] = None
        # Where the memory plan puts this node output (None when unplanned).
        self.placement: Optional[Placement] = None

    @property
    def uses(self) -> tuple[Use, ...]:
        return tuple(self._uses)

    @property
    def users(self) -> list["Node"]:
        """Distinct nodes reading this value, in first-use order."""
        seen: dict[int, Node] = {}
        for u in self._uses:
            seen.setdefault(id(u.node), u.node)
        return list(seen.values())

    @property
    def is_constant(self) -> bool:
        return self.const is not None

    @property
    def is_graph_input(self) -> bool:
        return self.producer is None and self.const is None

    @property
    def is_graph_output(self) -> bool:
        return self.graph is not None and any(o is self for o in self.graph.outputs)

    @property
    def dtype(self) -> DType:
        return self.type.dtype  # type: ignore[union-attr]

    @property
    def shape(self):
        return self.type.shape  # type: ignore[union-attr]

    def __repr__(self) -> str:
        return f"%{self.name}: {self.type}"


class Node:
    """One operation: ``outputs = op(inputs) {attrs}``.

    ``inputs`` may hold ``None`` for an omitted optional input.  Attribute
    values are plain Python data (int, float, str, bytes, lists of them,
    ``numpy.ndarray`` for tensors, ``Graph`` for subgraphs).  ``schedule``
    is the kernel schedule the ``schedule`` pass chose (None before).
    """

    __slots__ = ("op", "domain", "_inputs", "outputs", "attrs", "name", "graph", "schedule")

    def __init__(self, op: str, domain: str = "", attrs: Optional[dict[str, Any]] = None,
                 name: str = "") -> None:
        self.op = op
        self.domain = domain
        self._inputs: list[Optional[Value]] = []
        self.outputs: list[Value] = []
        self.attrs: dict[str, Any] = dict(attrs or {})
        self.name = name
        self.graph: Optional[Graph] = None
        self.schedule: Optional[Schedule] = None

    @property
    def inputs(self) -> tuple[Optional[Value], ...]:
        return tuple(self._inputs)

    @property
    def qualified_op(self) -> str:
        """``op`` for the default ONNX domain, ``domain.op`` otherwise."""
        return f"{self.domain}.{self.op}" if self.domain else self.op

    @property
    def output(self) -> Value:
        """The single output of a one-output node."""
        if len(self.outputs) != 1:
            raise CompilerError("node has several outputs", subject=self.describe())
        return self.outputs[0]

    @property
    def schema(self):
        from .registry import get_schema
        return get_schema(self.op, self.domain)

    def attr(self, name: str) -> Any:
        """The attribute's value, or the schema's default when it is not set."""
        if name in self.attrs:
            return self.attrs[name]
        return self.schema.attr_default(name)

    def input(self, i: int) -> Optional[Value]:
        """``inputs[i]`` or None when the input is omitted or out of range."""
        return self._inputs[i] if i < len(self._inputs) else None

    def subgraphs(self) -> Iterator[Graph]:
        for v in self.attrs.values():
            if isinstance(v, Graph):
                yield v
            elif isinstance(v, (list, tuple)):
                for g in v:
                    if isinstance(g, Graph):
                        yield g

    def describe(self) -> str:
        """A short human reference: ``Conv node 'conv1' (%conv1_out)``."""
        label = f"{self.qualified_op} node"
        if self.name:
            label += f" {self.name!r}"
        if self.outputs:
            label += f" (%{self.outputs[0].name})"
        return label

    def __repr__(self) -> str:
        outs = ", ".join(f"%{o.name}" for o in self.outputs)
        ins = ", ".join("none" if v is None else f"%{v.name}" for v in self._inputs)
        return f"<{outs} = {self.qualified_op}({ins})>"


_NAME_SUFFIX = re.compile(r"^(.*?)(?:_(\d+))?$")


class Graph:
    """An ordered dataflow graph with named inputs, constants and outputs."""

    def __init__(self, name: str = "main") -> None:
        self.name = name
        self.inputs: list[Value] = []
        self.outputs: list[Value] = []
        self.constants: dict[str, Value] = {}
        self.nodes: list[Node] = []
        self._names: dict[str, Value] = {}
        self._fresh = itertools.count()
        # The memory plan's arena (None when unplanned); values carry their placements.
        self.memory: Optional[Arena] = None
        # Set when the graph describes one sample of a run-time batch (``ir.batch``).
        self.batch: Optional[BatchSignature] = None
        # Free-form metadata (opset, producer...) that printers ignore.
        self.meta: dict[str, Any] = {}

    # ------------------------------------------------------------ naming
    def fresh_name(self, hint: str = "v") -> str:
        """A value name not yet used in this graph, derived from ``hint``."""
        hint = hint or "v"
        if hint not in self._names:
            return hint
        base = _NAME_SUFFIX.match(hint).group(1) or hint  # type: ignore[union-attr]
        while True:
            cand = f"{base}_{next(self._fresh)}"
            if cand not in self._names:
                return cand

    def _register(self, value: Value, name: Optional[str]) -> Value:
        value.name = self.fresh_name(name or value.name)
        value.graph = self
        self._names[value.name] = value
        return value

    def rename(self, value: Value, name: str) -> None:
        """Give ``value`` a new name (made unique if taken)."""
        if value.name == name:
            return
        del self._names[value.name]
        value.name = self.fresh_name(name)
        self._names[value.name] = value

    def value(self, name: str) -> Value:
        try:
            return self._names[name]
        except KeyError:
            raise CompilerError("no such value in graph", subject=f"%{name}") from None

    def has_value(self, name: str) -> bool:
        return name in self._names

    def values(self) -> Iterator[Value]:
        """Every value: inputs, constants, then node outputs in order."""
        yield from self.inputs
        yield from self.constants.values()
        for n in self.nodes:
            yield from n.outputs

    # ---------------------------------------------------------- creation
    def add_input(self, name: str, type: Type) -> Value:
        v = self._register(Value(name, type), name)
        self.inputs.append(v)
        return v

    def add_constant(self, array: Any, name: str = "const", dtype: Optional[DType] = None) -> Value:
        """Add a constant tensor.  The array is copied and frozen."""
        arr = np.array(array, dtype=None if dtype is None else dtype.np, copy=True)
        arr.setflags(write=False)
        ttype = TensorType(dtype or DType.from_numpy(arr.dtype), tuple(arr.shape))
        v = self._register(Value(name, ttype, const=arr), name)
        self.constants[v.name] = v
        return v

    def create_node(
        self,
        op: str,
        inputs: Sequence[Optional[Value]],
        attrs: Optional[dict[str, Any]] = None,
        *,
        domain: str = "",
        num_outputs: int = 1,
        output_names: Optional[Sequence[str]] = None,
        output_types: Optional[Sequence[Type]] = None,
        name: str = "",
        before: Optional[Node] = None,
        after: Optional[Node] = None,
    ) -> Node:
        """Create a node, insert it, and infer its output types.

        The node goes at the end, or ``before``/``after`` an existing node.
        Output types are inferred by the op's registered rule unless
        ``output_types`` are given.
        """
        node = Node(op, domain, attrs, name)
        node.graph = self
        for i, v in enumerate(inputs):
            node._inputs.append(v)
            if v is not None:
                self._check_owned(v, node)
                v._uses.append(Use(node, i))
        if output_names is not None:
            num_outputs = len(output_names)
        if output_types is not None:
            num_outputs = len(output_types)
        for i in range(num_outputs):
            hint = output_names[i] if output_names is not None else (name or op.lower())
            out = Value(hint, None)  # type: ignore[arg-type]
            out.producer, out.index = node, i
            self._register(out, hint)
            node.outputs.append(out)
        self._insert(node, before=before, after=after)
        if output_types is not None:
            for out, t in zip(node.outputs, output_types):
                out.type = t
        else:
            from .infer import infer_node
            infer_node(node)
        return node

    def add(self, op: str, *inputs: Optional[Value], domain: str = "",
            name: str = "", **attrs: Any) -> Value:
        """Builder shorthand for one-output nodes: ``y = g.add("Relu", x)``."""
        return self.create_node(op, list(inputs), attrs, domain=domain, name=name).output

    def _insert(self, node: Node, *, before: Optional[Node], after: Optional[Node]) -> None:
        if before is not None:
            self.nodes.insert(self._index(before), node)
        elif after is not None:
            self.nodes.insert(self._index(after) + 1, node)
        else:
            self.nodes.append(node)

    def _index(self, node: Node) -> int:
        for i, n in enumerate(self.nodes):
            if n is node:
                return i
        raise CompilerError("node is not in this graph", subject=node.describe())

    def _check_owned(self, v: Value, node: Node) -> None:
        if v.graph is not self:
            raise CompilerError(
                "input value belongs to another graph", subject=f"%{v.name} used by {node.describe()}",
                hint="subgraphs are closed: pass outer values as explicit inputs")

    def set_outputs(self, values: Iterable[Value]) -> None:
        self.outputs = list(values)

    # ---------------------------------------------------------- mutation
    def set_input(self, node: Node, index: int, value: Optional[Value]) -> None:
        """Make ``node.inputs[index]`` read ``value`` (None omits it)."""
        while len(node._inputs) <= index:
            node._inputs.append(None)
        old = node._inputs[index]
        if old is value:
            return
        if old is not None:
            old._uses.remove(Use(node, index))
        if value is not None:
            self._check_owned(value, node)
            value._uses.append(Use(node, index))
        node._inputs[index] = value
        self._trim_inputs(node)

    @staticmethod
    def _trim_inputs(node: Node) -> None:
        while node._inputs and node._inputs[-1] is None:
            node._inputs.pop()

    def replace_all_uses(self, old: Value, new: Value) -> None:
        """Make every reader of ``old`` (graph outputs too) read ``new``.

        When ``old`` is a graph output it is replaced in ``outputs`` and ``new``
        takes over its name if ``new`` is a plain node output, so a model's
        output names survive rewrites.  Use ``can_replace`` first when ``new``
        may be an input or constant.
        """
        if old is new:
            return
        for use in list(old._uses):
            self.set_input(use.node, use.index, new)
        if any(o is old for o in self.outputs):
            take_name = new.producer is not None and not new.is_graph_output
            self.outputs = [new if o is old else o for o in self.outputs]
            if take_name:
                old_name = old.name
                self.rename(old, old_name + "_replaced")
                self.rename(new, old_name)

    def can_replace(self, old: Value, new: Value) -> bool:
        """Whether ``replace_all_uses(old, new)`` keeps the graph's interface names.

        Replacing a graph output with a graph input, a constant or another
        output would rename a model output, so rewrites must keep the node.
        """
        if not old.is_graph_output:
            return True
        return new.producer is not None and not new.is_graph_output

    def remove_node(self, node: Node) -> None:
        """Delete a node whose outputs nobody reads."""
        for out in node.outputs:
            if out._uses or out.is_graph_output:
                raise CompilerError(
                    "cannot remove a node whose output is still used",
                    subject=node.describe(), found=f"%{out.name} has {len(out._uses)} use(s)")
        for i, v in enumerate(node._inputs):
            if v is not None:
                v._uses.remove(Use(node, i))
        node._inputs = []
        self.nodes.pop(self._index(node))
        for out in node.outputs:
            self._names.pop(out.name, None)
        node.graph = None

    def remove_constant(self, value: Value) -> None:
        if value._uses or value.is_graph_output:
            raise CompilerError("cannot remove a used constant", subject=f"%{value.name}")
        del self.constants[value.name]
        del self._names[value.name]

    def remove_input(self, value: Value) -> None:
        if value._uses or value.is_graph_output:
            raise CompilerError("cannot remove a used graph input", subject=f"%{value.name}")
        self.inputs.remove(value)
        del self._names[value.name]

    # ----------------------------------------------------------- queries
    def find_nodes(self, op: str, domain: str = "") -> list[Node]:
        return [n for n in self.nodes if n.op == op and n.domain == domain]

    def walk(self) -> Iterator[Node]:
        """Every node of this graph and, depth first, of its subgraphs."""
        for n in self.nodes:
            yield n
            for g in n.subgraphs():
                yield from g.walk()

    def all_constants(self, prefix: str = "") -> Iterator[tuple[str, Value]]:
        """Every constant here and in subgraphs, with a unique key.

        Top-level constants are keyed by name; a subgraph's by
        ``<first output of its node>.<attribute>/<name>`` (nested likewise),
        the key the parser uses to find elided weights.
        """
        for v in self.constants.values():
            yield prefix + v.name, v
        for n in self.nodes:
            for key, attr in n.attrs.items():
                subs = [attr] if isinstance(attr, Graph) else \
                    [g for g in attr if isinstance(g, Graph)] if isinstance(attr, (list, tuple)) else []
                for i, g in enumerate(subs):
                    tag = key if isinstance(attr, Graph) else f"{key}[{i}]"
                    yield from g.all_constants(f"{prefix}{n.outputs[0].name}.{tag}/")

    def op_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for n in self.nodes:
            counts[n.qualified_op] = counts.get(n.qualified_op, 0) + 1
        return counts

    def topological_sort(self) -> None:
        """Restore topological order, keeping the current order where legal."""
        order = {id(n): i for i, n in enumerate(self.nodes)}
        indegree = {id(n): 0 for n in self.nodes}
        for n in self.nodes:
            for v in n._inputs:
                if v is not None and v.producer is not None and id(v.producer) in indegree:
                    indegree[id(n)] += 1
        import heapq
        ready = [(order[id(n)], n) for n in self.nodes if indegree[id(n)] == 0]
        heapq.heapify(ready)
        result: list[Node] = []
        while ready:
            _, n = heapq.heappop(ready)
            result.append(n)
            for out in n.outputs:
                for use in out._uses:
                    k = id(use.node)
                    if k in indegree:
                        indegree[k] -= 1
                        if indegree[k] == 0:
                            heapq.heappush(ready, (order[k], use.node))
        if len(result) != len(self.nodes):
            raise CompilerError("graph has a cycle", subject=f"graph @{self.name}")
        self.nodes = result

    def __repr__(self) -> str:
        return f"<Graph @{self.name}: {len(self.inputs)} inputs, {len(self.nodes)} nodes>"

    def __str__(self) -> str:
        from .printer import print_graph
        return print_graph(self)

    # ------------------------------------------------------------ copying
    def clone(self) -> Graph:
        """A deep copy (constant arrays are shared: they are read-only)."""
        from .clone import clone_graph
        return clone_graph(self)
