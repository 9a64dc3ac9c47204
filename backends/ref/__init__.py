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
from ir.registry import get_schema

from passes.pipelines import PIPELINES

from ..base import Backend, CompileOptions, Executable, Support, load_graph, register_backend, save_graph


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

    def save(self, directory: Path) -> None:
        save_graph(self.graph, directory)


class RefBackend(Backend):
    name = "ref"
    description = "reference interpreter (NumPy); the golden answer, every op"
    default_pipeline = PIPELINES["ref"]
    generic_pipeline = default_pipeline

    def supports(self, node: Node) -> Support:
        schema = get_schema(node.op, node.domain)
        if schema.reference_fn is None:
            return Support.no("op has no reference implementation")
        return Support.yes()

    def compile(self, graph: Graph, options: CompileOptions) -> Executable:
        self.check_supported(graph)
        return RefExecutable(graph, check_types=bool(options.extra.get("check_types", True)))

    def load(self, directory: Path) -> Executable:
        return RefExecutable(load_graph(directory))


register_backend("ref", RefBackend)
