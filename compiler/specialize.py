"""Run-time specialization for targets that need static shapes and static shape values.

ONNX lets a model compute shapes, axes, pads, sizes, k and split sizes at run
time.  Constant ones are folded at compile time.  The rest are handled here:
on each call we look at the input shapes and at the values of the inputs that
decide such shape-like operands, and compile (once, then from a cache) a
version of the graph where those are constants and every shape is static.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from backends.base import Backend, save_graph
from ir.errors import InputError
from ir.graph import Graph, Value
from ir.infer import check_tensor_sizes
from ir.memory import clear_plan
from ir.schedule import clear_schedules
from ir.registry import get_schema
from ir.types import TensorType
from passes.manager import PassContext, PassManager
from runtime.executable import Executable

# Ops whose outputs depend on their input's shape only, not on its values.
_SHAPE_ONLY = {("", "Shape"), ("", "Size")}


def value_deciding_inputs(graph: Graph) -> list[int]:
    """Positions of graph inputs whose *values* flow into a static operand of some op."""
    index = {id(v): i for i, v in enumerate(graph.inputs)}
    found: set[int] = set()
    seen: set[int] = set()
    stack: list[Value] = []
    for node in graph.nodes:
        schema = get_schema(node.op, node.domain)
        for i in schema.static_input_indices():
            v = node.input(i)
            if v is not None and v.const is None:
                stack.append(v)
    while stack:
        v = stack.pop()
        if id(v) in seen:
            continue
        seen.add(id(v))
        if id(v) in index:
            found.add(index[id(v)])
            continue
        p = v.producer
        if p is None or (p.domain, p.op) in _SHAPE_ONLY:
            continue
        stack.extend(x for x in p.inputs if x is not None and x.const is None)
    return sorted(found)


def needs_specialization(graph: Graph) -> bool:
    dynamic = any(not (isinstance(v.type, TensorType) and v.type.is_static)
                  for v in list(graph.inputs) + [o for n in graph.nodes for o in n.outputs])
    return dynamic or bool(value_deciding_inputs(graph))


def specialize(graph: Graph, inputs: Sequence[np.ndarray], value_inputs: Sequence[int]) -> Graph:
    """A copy of ``graph`` with static input shapes and the given inputs turned into constants.

    The inputs stay in the signature (callers keep passing them); their uses
    read the constant instead.  Fold and re-infer afterwards to propagate.
    Schedules and the memory plan of ``graph`` are dropped: they describe its
    generic shapes (the specialized pipeline computes new ones).
    """
    g = graph.clone()
    clear_schedules(g)
    clear_plan(g)
    for v, x in zip(g.inputs, inputs):
        if isinstance(v.type, TensorType) and not isinstance(x, list) and x is not None:
            v.type = v.type.with_shape(tuple(np.shape(x)))
    for i in value_inputs:
        v = g.inputs[i]
        c = g.add_constant(np.asarray(inputs[i]), v.name + "_value", dtype=v.type.dtype)
        for use in list(v.uses):
            g.set_input(use.node, use.index, c)
    from ir.infer import refine_types
    # Input shapes changed: recompute every type from the rules, then keep what they say.
    for node in g.nodes:
        for out in node.outputs:
            if isinstance(out.type, TensorType):
                out.type = out.type.with_shape(None if out.type.shape is None else
                                               tuple(None if isinstance(d, str) else d for d in out.type.shape))
    refine_types(g)
    # These inputs' shapes or values may blow an intermediate up: refuse before anything allocates.
    check_tensor_sizes(g, InputError)
    return g


def _shape_key(x) -> tuple:
    """A run's input described for the cache: its shape (a sequence: its elements' shapes)."""
    if x is None:
        return ("none",)
    if isinstance(x, list):
        return ("seq",) + tuple(tuple(np.shape(e)) for e in x)
    return tuple(np.shape(x))


class SpecializingExecutable(Executable):
    """Compiles one executable per distinct (input shapes, deciding values), with an LRU cache.

    Safe to call from several threads: the cache (and compiling into it) is
    guarded by a lock, so each signature compiles once and concurrent calls
    never see the cache mid-update; the runs themselves happen outside it.
    """

    def __init__(self, graph: Graph, compile_static: Callable[[Graph], Executable],
                 save_generic: Callable[[Graph, Path], list[str]], threads_capable: bool,
                 capacity: int = 16) -> None:
        self.graph = graph
        self.threads_capable = threads_capable
        self.threads: Optional[int] = None  # set_threads before a specialization exists
        self.compile_static = compile_static
        self.save_generic = save_generic
        self.value_inputs = value_deciding_inputs(graph)
        self.capacity = capacity
        self.cache: OrderedDict[tuple, Executable] = OrderedDict()
        self.compilations = 0
        self._lock = threading.Lock()

    def key(self, inputs: Sequence[np.ndarray]) -> tuple:
        shapes = tuple(_shape_key(x) for x in inputs)
        values = tuple(np.asarray(inputs[i]).tobytes() for i in self.value_inputs)
        return shapes, values

    def executable_for(self, inputs: Sequence[np.ndarray]) -> Executable:
        k = self.key(inputs)
        with self._lock:
            exe = self.cache.get(k)
            if exe is None:
                exe = self.compile_static(specialize(self.graph, inputs, self.value_inputs))
                if self.threads is not None:
                    exe.set_threads(self.threads)
                self.compilations += 1
                self.cache[k] = exe
                if len(self.cache) > self.capacity:
                    self.cache.popitem(last=False)
            else:
                self.cache.move_to_end(k)
            return exe

    def run(self, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
        return self.executable_for(inputs).run(inputs)

    def profile(self, inputs: Sequence[np.ndarray]) -> list[tuple[str, float]]:
        return self.executable_for(inputs).profile(inputs)

    def set_threads(self, threads: int) -> None:
        """Every specialization, compiled or to come, runs with ``threads``."""
        if not self.threads_capable:
            super().set_threads(threads)  # the target's own refusal
        with self._lock:
            self.threads = threads
            for exe in self.cache.values():
                exe.set_threads(threads)

    def save(self, directory: Path) -> list[str]:
        return self.save_generic(self.graph, directory)


def make_specializing(backend: Backend, graph: Graph, pipeline: str) -> SpecializingExecutable:
    """Wrap ``graph`` so each new call signature runs ``pipeline`` on a static copy and compiles it."""

    def compile_static(g: Graph) -> Executable:
        PassManager(pipeline or []).run(g, PassContext(target=backend.target_info, backend=backend))
        return backend.compile(g)

    return SpecializingExecutable(graph, compile_static, save_graph, backend.capabilities.threads)
