"""``NodeBuilder``: what an import rule sees of one ONNX node, and how it emits IR."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Optional

import numpy as np
import onnx

from ir.errors import ImportError_
from ir.graph import Graph, Value

if TYPE_CHECKING:
    from .importer import GraphImporter


class NodeBuilder:
    """One ONNX node being imported.

    ``inputs`` are the IR values of the node's inputs (None where omitted),
    ``attrs`` its decoded attributes (a mutable copy: rules pop what they
    consume), ``version`` the since-version of the op's schema in the model's
    opset, and ``num_outputs`` how many outputs the ONNX node declares.
    """

    def __init__(self, importer: GraphImporter, node: onnx.NodeProto, inputs: list[Optional[Value]],
                 attrs: dict[str, Any], version: int) -> None:
        self.importer = importer
        self.node = node
        self.inputs = inputs
        self.attrs = attrs
        self.version = version
        self.graph: Graph = importer.graph
        self.num_outputs = len(node.output)

    # --------------------------------------------------------------- reading
    @property
    def op_type(self) -> str:
        return self.node.op_type

    @property
    def domain(self) -> str:
        return self.node.domain if self.node.domain != "ai.onnx" else ""

    @property
    def name(self) -> str:
        return self.node.name

    def input(self, i: int) -> Optional[Value]:
        return self.inputs[i] if i < len(self.inputs) else None

    def const_value(self, i: int) -> Optional[np.ndarray]:
        """Input ``i``'s data when it is a constant, else None."""
        v = self.input(i)
        return None if v is None else v.const

    def output_used(self, i: int) -> bool:
        return i < len(self.node.output) and self.node.output[i] != ""

    def describe(self) -> str:
        label = f"{self.op_type}-{self.version} node"
        if self.node.name:
            label += f" {self.node.name!r}"
        elif self.node.output:
            label += f" (output {self.node.output[0]!r})"
        return label

    def fail(self, message: str, **kw: Any):
        raise ImportError_(message, subject=self.describe(), **kw)

    # -------------------------------------------------------------- emitting
    def const(self, array: Any, name: str = "", dtype=None) -> Value:
        """A new graph constant."""
        hint = name or (self.node.output[0] + "_const" if self.node.output else "const")
        return self.graph.add_constant(array, self.importer.unique_hint(hint), dtype=dtype)

    def emit(self, op: str, inputs: Sequence[Optional[Value]], attrs: Optional[dict[str, Any]] = None,
             *, num_outputs: int = 1, domain: str = "", final: bool = True) -> list[Value]:
        """Add an IR node and return its outputs.

        With ``final`` (the default) the outputs take the ONNX node's output
        names, so the last node a rule emits defines what the ONNX node
        defined.  Pass ``final=False`` for helper nodes in a longer expansion.
        """
        if final:
            names = self.importer.output_names(self.node, max(num_outputs, 0))
            node = self.graph.create_node(op, list(inputs), attrs or {}, domain=domain,
                                          output_names=names, name=self.node.name)
        else:
            hint = self.importer.unique_hint(
                (self.node.output[0] if self.node.output else op.lower()) + "_" + op.lower())
            node = self.graph.create_node(op, list(inputs), attrs or {}, domain=domain,
                                          num_outputs=num_outputs, output_names=[hint] * num_outputs
                                          if num_outputs == 1 else
                                          [f"{hint}_{i}" for i in range(num_outputs)],
                                          name=self.node.name)
        return list(node.outputs)

    def helper(self, op: str, *inputs: Optional[Value], domain: str = "", **attrs: Any) -> Value:
        """One-output helper node for multi-node expansions (not the final one)."""
        return self.emit(op, list(inputs), attrs, domain=domain, final=False)[0]

    def default(self, *, op: Optional[str] = None, inputs: Optional[Sequence[Optional[Value]]] = None,
                attrs: Optional[dict[str, Any]] = None, domain: Optional[str] = None) -> list[Value]:
        """Emit the node as-is (optionally with changed op, inputs or attributes)."""
        return self.emit(op or self.op_type, self.inputs if inputs is None else inputs,
                         self.attrs if attrs is None else attrs,
                         num_outputs=self.num_outputs,
                         domain=self.domain if domain is None else domain)

    def subgraph(self, attr_name: str) -> tuple[Graph, list[Value]]:
        """Import the graph attribute ``attr_name``.

        Returns the IR graph and the outer values it captures.  The graph's
        inputs are its declared inputs followed by one input per captured
        value, in the same order as the returned list.
        """
        proto = self.attrs.pop(attr_name)
        if not isinstance(proto, onnx.GraphProto):
            self.fail(f"attribute {attr_name!r} is not a graph")
        return self.importer.import_subgraph(proto)
