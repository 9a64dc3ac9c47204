"""The reference target: runs the IR with the NumPy interpreter.

It is the golden answer, so it supports every registered op and compiles
nothing: its artifact is the optimized IR as text plus the weights.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ir.graph import Graph, Node
from ir.interpreter import Interpreter
from ir.registry import OpSchema, get_schema
from ir.target import TargetInfo
from passes.pipelines import CLEANUP
from runtime.executable import Executable

from ..base import Backend, Capabilities, Coverage, OptionSpec, Support, load_graph, save_graph


class RefExecutable(Executable):
    def __init__(self, graph: Graph, check_types: bool = True) -> None:
        self.graph = graph
        self.check_types = check_types

    def run(self, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
        feeds = {v.name: x for v, x in zip(self.graph.inputs, inputs)}
        return Interpreter(self.graph, check_types=self.check_types).run(feeds)

    def profile(self, inputs: Sequence[np.ndarray]) -> list[tuple[str, float]]:
        timings: list[tuple[str, float]] = []

        class Timed(Interpreter):
            def run_node(self, node, args):
                t0 = time.perf_counter()
                out = super().run_node(node, args)
                timings.append((f"{node.qualified_op} %{node.outputs[0].name}", time.perf_counter() - t0))
                return out

        feeds = {v.name: x for v, x in zip(self.graph.inputs, inputs)}
        Timed(self.graph, check_types=False).run(feeds)
        return timings

    def save(self, directory: Path) -> list[str]:
        return save_graph(self.graph, directory)


class RefBackend(Backend):
    name = "ref"
    description = "reference interpreter (NumPy); the golden answer, every op"
    options = (
        OptionSpec("check_types", bool, True, "check every result against its value's static type"),
        OptionSpec("specialize", bool, False, "compile one static version per input signature, as the "
                                              "static-shape targets do (to test specialization)"),
    )
    default_pipeline = CLEANUP
    generic_pipeline = CLEANUP

    @property
    def capabilities(self) -> Capabilities:  # type: ignore[override]
        return Capabilities(profile=True, static_shapes=self.config["specialize"])

    @property
    def target_info(self) -> TargetInfo:
        return TargetInfo(name="ref", kind="ref")

    def supports(self, node: Node) -> Support:
        if get_schema(node.op, node.domain).reference_fn is None:
            return Support.no("op has no reference implementation")
        return Support.yes()

    def op_coverage(self, schema: OpSchema) -> Coverage:
        return Coverage.KERNEL if schema.reference_fn is not None else Coverage.NONE

    def compile(self, graph: Graph) -> Executable:
        self.check_supported(graph)
        return RefExecutable(graph, check_types=self.config["check_types"])

    def load(self, directory: Path) -> Executable:
        return RefExecutable(load_graph(directory), check_types=self.config["check_types"])


BACKEND = RefBackend
