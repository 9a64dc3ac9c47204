"""An example target that lives in the tests: a whole target is one package.

Placed in a folder on ``backends.__path__`` (as if it were ``backends/example/``),
it becomes ``--target example`` with no other edit.  It runs four ops with
NumPy and scales every output by its ``scale`` option, so a test can see the
option arrive.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from backends.base import Backend, Capabilities, Coverage, OptionSpec, Support, load_graph, save_graph
from ir.graph import Graph, Node
from ir.interpreter import Interpreter
from ir.registry import OpSchema
from ir.target import TargetInfo
from runtime.executable import Executable

OPS = ("Add", "Mul", "Relu", "MatMul")


class ExampleExecutable(Executable):
    def __init__(self, graph: Graph, scale: float) -> None:
        self.graph = graph
        self.scale = scale

    def run(self, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
        feeds = {v.name: x for v, x in zip(self.graph.inputs, inputs)}
        return [np.asarray(y * self.scale, dtype=y.dtype) for y in Interpreter(self.graph).run(feeds)]

    def save(self, directory: Path) -> list[str]:
        return save_graph(self.graph, directory)


class ExampleBackend(Backend):
    name = "example"
    description = "an example target from the tests (NumPy, four ops)"
    options = (OptionSpec("scale", float, 1.0, "multiply every output by this"),)
    capabilities = Capabilities()
    default_pipeline = "fold-constants,cse,dce"
    generic_pipeline = default_pipeline

    @property
    def target_info(self) -> TargetInfo:
        return TargetInfo(name="example", kind="example")

    def supports(self, node: Node) -> Support:
        if node.domain == "" and node.op in OPS:
            return Support.yes()
        return Support.no(f"the example target runs only {', '.join(OPS)}")

    def op_coverage(self, schema: OpSchema) -> Coverage:
        return Coverage.KERNEL if schema.domain == "" and schema.name in OPS else Coverage.NONE

    def compile(self, graph: Graph) -> ExampleExecutable:
        self.check_supported(graph)
        return ExampleExecutable(graph, self.config["scale"])

    def load(self, directory: Path) -> ExampleExecutable:
        return ExampleExecutable(load_graph(directory), self.config["scale"])


BACKEND = ExampleBackend
