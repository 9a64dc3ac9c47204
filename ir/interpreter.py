"""The reference interpreter: runs a graph with each op's NumPy reference.

It is the golden answer every backend and pass is tested against, so it is
deliberately simple: nodes run one at a time in graph order.  Subclass it and
override ``run_node`` to observe or change what happens per node (the bisect
tool and the profiler do).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .errors import CompilerError, ExecutionError, InputError
from .graph import Graph, Node, Value
from .registry import get_schema
from .types import TensorType


class Interpreter:
    """Runs ``graph`` on NumPy arrays.

    ``check_types`` compares every result with the value's static type (dtype
    and known dims): a mismatch is a bug in a reference or a type rule.
    ``keep_all`` keeps every intermediate value in ``self.env`` (by name)
    instead of freeing values after their last use.
    """

    def __init__(self, graph: Graph, *, check_types: bool = True, keep_all: bool = False) -> None:
        self.graph = graph
        self.check_types = check_types
        self.keep_all = keep_all
        self.env: dict[str, Any] = {}
        self._last_use = self._compute_last_uses()

    def _compute_last_uses(self) -> dict[int, list[Value]]:
        """For each node position, the values that die after it runs."""
        keep = {id(v) for v in self.graph.outputs}
        last: dict[int, int] = {}
        owner: dict[int, Value] = {}
        for i, node in enumerate(self.graph.nodes):
            for v in node.inputs:
                if v is not None and v.const is None and id(v) not in keep:
                    last[id(v)] = i
                    owner[id(v)] = v
        dies: dict[int, list[Value]] = {}
        for vid, i in last.items():
            dies.setdefault(i, []).append(owner[vid])
        return dies

    # ------------------------------------------------------------ running
    def run(self, feeds: Mapping[str, Any]) -> list[Any]:
        """Run the graph; returns the outputs in ``graph.outputs`` order."""
        env: dict[int, Any] = {}
        for v in self.graph.inputs:
            if v.name not in feeds:
                raise InputError("missing input", subject=f"input {v.name!r}",
                                 hint=f"the graph takes {[i.name for i in self.graph.inputs]}")
            env[id(v)] = feeds[v.name]
        for v in self.graph.constants.values():
            env[id(v)] = v.const
        for i, node in enumerate(self.graph.nodes):
            args = [None if v is None else env[id(v)] for v in node.inputs]
            results = self.run_node(node, args)
            for out, r in zip(node.outputs, results):
                env[id(out)] = r
                if self.keep_all:
                    self.env[out.name] = r
            if not self.keep_all:
                for v in self._last_use.get(i, ()):
                    env.pop(id(v), None)
        # Constants are read-only and shared: hand out copies.
        return [np.array(env[id(v)]) if v.const is not None else env[id(v)] for v in self.graph.outputs]

    def run_node(self, node: Node, inputs: Sequence[Any]) -> list[Any]:
        """Compute one node's outputs from its input arrays."""
        schema = get_schema(node.op, node.domain)
        if schema.reference_fn is None:
            raise ExecutionError("op has no reference implementation", subject=node.describe())
        attrs = schema.resolve_attrs(node.attrs)
        if schema.needs_num_outputs:
            attrs["num_outputs"] = len(node.outputs)
        try:
            with np.errstate(all="ignore"):
                result = schema.reference_fn(*inputs, **attrs)
        except CompilerError:
            raise
        except Exception as exc:
            shapes = ", ".join("none" if x is None else _describe(x) for x in inputs)
            raise ExecutionError(f"{type(exc).__name__}: {exc}", subject=node.describe(),
                                 found=f"inputs {shapes}") from exc
        results = list(result) if isinstance(result, (tuple, list)) and not _is_sequence_output(node) \
            else [result]
        if len(results) < len(node.outputs):
            raise ExecutionError("reference returned too few outputs", subject=node.describe(),
                                 expected=str(len(node.outputs)), found=str(len(results)))
        results = [_as_array(r, out) for r, out in zip(results, node.outputs)]
        if self.check_types:
            for r, out in zip(results, node.outputs):
                _check_result(node, out, r)
        return results


def _is_sequence_output(node: Node) -> bool:
    return len(node.outputs) == 1 and not isinstance(node.outputs[0].type, TensorType)


def _as_array(r: Any, out: Value) -> Any:
    if isinstance(out.type, TensorType) and not isinstance(r, np.ndarray):
        return np.asarray(r, dtype=out.type.dtype.np if isinstance(r, (int, float, bool)) else None)
    return r


def _describe(x: Any) -> str:
    if isinstance(x, np.ndarray):
        return f"{x.dtype}{list(x.shape)}"
    if isinstance(x, list):
        return f"sequence of {len(x)}"
    return type(x).__name__


def _check_result(node: Node, out: Value, r: Any) -> None:
    t = out.type
    if not isinstance(t, TensorType):
        return
    if not isinstance(r, np.ndarray):
        raise ExecutionError("reference returned a non-array", subject=node.describe(),
                             found=type(r).__name__)
    if r.dtype != t.dtype.np:
        raise ExecutionError(f"result %{out.name} has the wrong dtype", subject=node.describe(),
                             expected=str(t.dtype.np), found=str(r.dtype))
    if t.shape is not None:
        ok = len(t.shape) == r.ndim and all(
            not isinstance(d, int) or d == s for d, s in zip(t.shape, r.shape))
        if not ok:
            raise ExecutionError(f"result %{out.name} has the wrong shape", subject=node.describe(),
                                 expected=str(t), found=str(list(r.shape)))


def run_graph(graph: Graph, feeds: Mapping[str, Any], *, check_types: bool = True) -> list[Any]:
    """Run ``graph`` with the reference interpreter; outputs in order."""
    return Interpreter(graph, check_types=check_types).run(feeds)


def run_subgraph(graph: Graph, args: Sequence[Any]) -> list[Any]:
    """Run a subgraph (If/Loop body, fused group) with positional inputs."""
    if len(args) != len(graph.inputs):
        raise ExecutionError("subgraph called with the wrong number of inputs",
                             subject=f"graph @{graph.name}",
                             expected=str(len(graph.inputs)), found=str(len(args)))
    return run_graph(graph, {v.name: a for v, a in zip(graph.inputs, args)}, check_types=False)
