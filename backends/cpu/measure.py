"""Timing one kernel under a candidate schedule (what ``schedule{tune=true}`` calls).

The node is cut out into a graph of its own (its inputs become graph inputs,
constants stay constants), given the candidate schedule (``Node.schedule``),
memory-planned by the ``plan-memory`` pass like any graph the backend
compiles, compiled alone and run on random data; the median of a few runs is
the kernel's time.
"""

from __future__ import annotations

import statistics
import time

import numpy as np

from ir.graph import Graph, Node
from ir.types import TensorType
from ir.schedule import Schedule, assign_schedule
from passes.manager import PassContext, PassManager




def isolate(graph: Graph, node: Node) -> Graph:
    """A graph computing just ``node``: its activation inputs become inputs, constants are copied."""
    g = Graph(f"measure_{node.outputs[0].name}")
    mapping = {}
    for v in node.inputs:
        if v is None or id(v) in mapping:
            continue
        if v.const is not None:
            c = g.add_constant(v.const, v.name, dtype=v.type.dtype)
            c.type = v.type
            mapping[id(v)] = c
        else:
            mapping[id(v)] = g.add_input(v.name, v.type)
    copy = g.create_node(node.op, [None if v is None else mapping[id(v)] for v in node.inputs],
                         dict(node.attrs), domain=node.domain, name=node.name,
                         output_names=[o.name for o in node.outputs],
                         output_types=[o.type for o in node.outputs])
    g.set_outputs(copy.outputs)
    return g


def measure(backend, graph: Graph, node: Node, schedule: Schedule, repeat: int = 5) -> float:
    """Median seconds of ``node`` compiled alone with ``schedule``."""
    g = isolate(graph, node)
    assign_schedule(g.nodes[0], schedule)
    PassManager("plan-memory").run(g, PassContext(target=backend.target_info, backend=backend))
    exe = backend.compile(g)
    rng = np.random.default_rng(0)
    feeds = []
    for v in g.inputs:
        t: TensorType = v.type
        arr = rng.standard_normal(t.shape).astype(t.dtype.np) if t.dtype.is_float else \
            np.zeros(t.shape, t.dtype.np)
        feeds.append(arr)
    exe.run(feeds)  # warm up (page faults, thread wake-up)
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        exe.run(feeds)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)
