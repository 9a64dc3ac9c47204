"""Deep copies of graphs (constant arrays are shared: they are read-only).

Pass results come along: node schedules, value placements (their bases
mapped to the copies) and the graph's arena.
"""

from __future__ import annotations

from typing import Any

from dataclasses import replace

from .graph import Graph, Value


def _copy_attr(v: Any) -> Any:
    if isinstance(v, Graph):
        return clone_graph(v)
    if isinstance(v, list):
        return [_copy_attr(x) for x in v]
    if isinstance(v, tuple):
        return tuple(_copy_attr(x) for x in v)
    return v


def clone_graph(g: Graph) -> Graph:
    """A structurally identical graph with fresh Value and Node objects."""
    new = Graph(g.name)
    new.meta = dict(g.meta)
    mapping: dict[int, Value] = {}
    for v in g.inputs:
        mapping[id(v)] = new.add_input(v.name, v.type)
    for v in g.constants.values():
        c = Value(v.name, v.type, const=v.const)
        new._register(c, v.name)
        new.constants[c.name] = c
        mapping[id(v)] = c
    for n in g.nodes:
        inputs = [None if v is None else mapping[id(v)] for v in n.inputs]
        attrs = {k: _copy_attr(a) for k, a in n.attrs.items()}
        m = new.create_node(n.op, inputs, attrs, domain=n.domain, name=n.name,
                            output_names=[o.name for o in n.outputs],
                            output_types=[o.type for o in n.outputs])
        if n.schedule is not None:
            m.schedule = n.schedule.copy()
        for old, out in zip(n.outputs, m.outputs):
            mapping[id(old)] = out
    new.set_outputs(mapping[id(v)] for v in g.outputs)
    new.memory = g.memory
    new.batch = g.batch
    for v in g.values():
        p = v.placement
        if p is not None:
            base = mapping.get(id(p.base)) if p.base is not None else None
            mapping[id(v)].placement = p if p.base is None else replace(p, base=base)
    return new
