"""simplify-reshapes: one canonical Reshape form, collapsed chains, no-op layout ops removed.

Rewrites, in one walk over the graph in order:

* ``Flatten``, ``Squeeze`` and ``Unsqueeze`` whose output shape is known
  become ``Reshape(x, const)``.  The target is derived from the output type:
  known sizes as integers, a symbolic dim equal to the input's dim at the same
  position as ``0`` (copy it), and at most one other dim as ``-1``.
* ``Reshape(Reshape(x, s1), s2)`` reads ``x`` directly: ``s2`` is kept when it
  holds no copy marker (``0`` with ``allowzero`` 0), otherwise a target is
  derived from the outer output type as above.  Flatten/Squeeze/Unsqueeze
  chains collapse the same way once canonicalized.
* A Reshape whose output shape equals its input's (all dims known, symbolic
  dims equal by name) is removed.
* ``Transpose(Transpose(x, p1), p2)`` becomes ``Transpose(x, q)`` with
  ``q[i] = p1[p2[i]]``, or nothing when ``q`` is the identity; an identity
  Transpose is removed.

Must not fire when: the output shape cannot be written as a constant target
(two unknown dims, a zero-sized dim); the rank is unknown (Transpose without
``perm``); removing a node would rename a graph output (``Graph.can_replace``).
Types are kept: a rewritten Reshape keeps the type of the value it replaces.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from ir.graph import Graph, Node, Value
from ir.types import TensorType

from .fold_batchnorm import replace_with
from .manager import PassContext, register_pass

LAYOUT_OPS = ("Flatten", "Squeeze", "Unsqueeze")


def reshape_target(src: Value, out: Value) -> Optional[list[int]]:
    """A constant Reshape target (allowzero 0) taking ``src`` to ``out``'s shape, or None."""
    ins, outs = src.type.shape, out.type.shape
    if outs is None or ins is None:
        return None
    if all(isinstance(d, int) for d in list(ins) + list(outs)) and \
            int(np.prod(ins, dtype=object)) != int(np.prod(outs, dtype=object)):
        return None  # the types contradict each other (a declared output type): no Reshape can do it
    target: list[int] = []
    for i, d in enumerate(outs):
        if isinstance(d, int):
            if d == 0:
                return None  # 0 would mean "copy" with allowzero 0
            target.append(d)
        elif isinstance(d, str) and i < len(ins) and ins[i] == d:
            target.append(0)
        else:
            target.append(-1)
    return target if target.count(-1) <= 1 else None


def _shape_const(node: Node) -> Optional[list[int]]:
    s = node.input(1)
    return None if s is None or s.const is None else [int(v) for v in s.const.reshape(-1)]


def _new_reshape(graph: Graph, node: Node, src: Value, target: list[int]) -> Value:
    """Insert ``Reshape(src, target)`` before ``node`` with ``node``'s output type."""
    out = node.output
    shape = graph.add_constant(np.array(target, dtype=np.int64), out.name + "_shape")
    return graph.create_node("Reshape", [src, shape], output_names=[out.name + "_reshape"],
                             output_types=[out.type], before=node).output


def _same_shape(a: Value, b: Value) -> bool:
    sa, sb = a.type.shape, b.type.shape
    return sa is not None and sb is not None and tuple(sa) == tuple(sb) \
        and all(d is not None for d in sa)


def _bypass(graph: Graph, node: Node, src: Value) -> bool:
    """Readers of ``node``'s output read ``src``; the node goes when nothing else reads it."""
    out = node.output
    if not graph.can_replace(out, src):
        return False
    graph.replace_all_uses(out, src)
    graph.remove_node(node)
    return True


def _canonicalize(graph: Graph, node: Node, ctx: PassContext) -> Optional[Node]:
    """Flatten/Squeeze/Unsqueeze -> Reshape; returns the new Reshape node."""
    src = node.inputs[0]
    target = reshape_target(src, node.output)
    if target is None:
        return None
    new = _new_reshape(graph, node, src, target)
    replace_with(graph, node.output, new)
    ctx.decide(f"canonicalize {node.op} as Reshape", node=new.name, target=target, saves_nodes=0,
               rule="static output shape: one Reshape form for later passes")
    return new.producer


def _collapse_reshape(graph: Graph, node: Node, ctx: PassContext) -> bool:
    """Reshape(Reshape(x)) -> Reshape(x); Reshape to the input's own shape -> x."""
    inner = node.inputs[0].producer
    changed = False
    if inner is not None and inner.op == "Reshape" and not inner.domain:
        outer = _shape_const(node)
        target = outer if outer is not None and (node.attr("allowzero") or 0 not in outer) \
            else reshape_target(inner.inputs[0], node.output)
        if target is not None:
            if target != outer:
                shape = graph.add_constant(np.array(target, dtype=np.int64),
                                           node.output.name + "_shape")
                graph.set_input(node, 1, shape)
            graph.set_input(node, 0, inner.inputs[0])
            if not inner.output.uses and not inner.output.is_graph_output:
                graph.remove_node(inner)
            ctx.decide("collapse Reshape chain", node=node.output.name, saves_nodes=1,
                       rule="Reshape(Reshape(x, s1), s2) = Reshape(x, s2)")
            changed = True
    src = node.inputs[0]
    if _same_shape(src, node.output) and _bypass(graph, node, src):
        ctx.decide("remove Reshape to the input's own shape", node=src.name, saves_nodes=1,
                   rule="output shape equals input shape")
        return True
    return changed


def _perm(node: Node) -> Optional[list[int]]:
    """The permutation of a Transpose (None perm means reversing a known rank)."""
    perm = node.attr("perm")
    if perm is not None:
        return [int(p) for p in perm]
    rank = node.inputs[0].type.rank
    return None if rank is None else list(range(rank))[::-1]


def _simplify_transpose(graph: Graph, node: Node, ctx: PassContext) -> bool:
    perm = _perm(node)
    if perm is None:
        return False
    inner = node.inputs[0].producer
    changed = False
    if inner is not None and inner.op == "Transpose" and not inner.domain:
        p1 = _perm(inner)
        if p1 is not None and len(p1) == len(perm):
            perm = [p1[p] for p in perm]
            node.attrs["perm"] = perm
            graph.set_input(node, 0, inner.inputs[0])
            if not inner.output.uses and not inner.output.is_graph_output:
                graph.remove_node(inner)
            ctx.decide("compose Transpose pair", node=node.output.name, perm=perm, saves_nodes=1,
                       rule="Transpose(Transpose(x, p1), p2) = Transpose(x, p1[p2])")
            changed = True
    src = node.inputs[0]
    if perm == list(range(len(perm))) and _bypass(graph, node, src):
        ctx.decide("remove identity Transpose", node=src.name, saves_nodes=1,
                   rule="perm is the identity")
        return True
    return changed


@register_pass("simplify-reshapes")
def simplify_reshapes(graph: Graph, ctx: PassContext) -> bool:
    """Canonicalize Flatten/Squeeze/Unsqueeze as Reshape; collapse reshape/transpose chains."""
    changed = 0
    for node in list(graph.nodes):
        if node.graph is not graph or node.domain or not isinstance(
                node.outputs[0].type if node.outputs else None, TensorType):
            continue
        if node.op in LAYOUT_OPS:
            new = _canonicalize(graph, node, ctx)
            if new is None:
                continue
            changed += 1
            node = new
        if node.op == "Reshape":
            changed += _collapse_reshape(graph, node, ctx)
        elif node.op == "Transpose":
            changed += _simplify_transpose(graph, node, ctx)
    if changed:
        ctx.stats["reshapes_simplified"] = ctx.stats.get("reshapes_simplified", 0) + changed
    return changed > 0
