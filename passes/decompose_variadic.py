"""decompose-variadic: Sum/Max/Min/Mean become chains of binary ops.

Backends and fusion then only meet two-operand elementwise ops:

* ``Sum(a, b, c, ...)`` -> ``Add(Add(a, b), c) ...`` (two inputs: one ``Add``);
* ``Max``/``Min`` with three or more inputs -> a chain of two-input ``Max``/``Min``
  (two-input Max/Min are already binary and stay);
* ``Mean(x1..xn)`` -> the Add chain, then ``Mul`` by the constant ``1/n`` in the
  inputs' dtype (``Mean`` of one input is that input);
* any of them with one input -> the input itself, or ``Identity`` when the node's
  output is a graph output that the input cannot stand in for.

The chain adds left to right, the order the reference uses, so Sum/Max/Min
are bit-exact; Mean differs by the rounding of ``1/n``.  Broadcasting is
unchanged (each binary op broadcasts like the variadic one).  Nodes of other
domains and with no input are left alone.
"""

from __future__ import annotations

import numpy as np

from ir.graph import Graph, Node, Value

from .fold_batchnorm import replace_with
from .manager import PassContext, register_pass

BINARY = {"Sum": "Add", "Mean": "Add", "Max": "Max", "Min": "Min"}


def _chain(graph: Graph, node: Node, op: str, inputs: list[Value]) -> Value:
    """Left-to-right chain of ``op`` over ``inputs``, inserted before ``node``."""
    name = node.output.name
    acc = inputs[0]
    for i, v in enumerate(inputs[1:], 1):
        acc = graph.create_node(op, [acc, v], output_names=[f"{name}_{op.lower()}{i}"],
                                before=node).output
    return acc


def _single_input(graph: Graph, node: Node, ctx: PassContext) -> bool:
    src, out = node.inputs[0], node.output
    if graph.can_replace(out, src):
        graph.replace_all_uses(out, src)
        graph.remove_node(node)
        ctx.decide(f"remove one-input {node.op}", node=src.name, saves_nodes=1,
                   rule="a variadic op over one input is that input")
        return True
    ident = graph.create_node("Identity", [src], output_names=[out.name + "_identity"],
                              before=node)
    replace_with(graph, out, ident.output)
    ctx.decide(f"turn one-input {node.op} into Identity", node=out.name, saves_nodes=0,
               rule="one input, but the output is a graph output")
    return True


def _decompose(graph: Graph, node: Node, ctx: PassContext) -> bool:
    inputs = [v for v in node.inputs if v is not None]
    if not inputs or len(node.outputs) != 1:
        return False
    if len(inputs) == 1:
        return _single_input(graph, node, ctx)
    op = BINARY[node.op]
    if node.op in ("Max", "Min") and len(inputs) == 2:
        return False
    acc = _chain(graph, node, op, inputs)
    if node.op == "Mean":
        dtype = node.output.type.dtype
        inv = graph.add_constant(np.array(1.0 / len(inputs)), f"{node.output.name}_inv_n",
                                 dtype=dtype)
        acc = graph.create_node("Mul", [acc, inv], output_names=[node.output.name + "_mul"],
                                before=node).output
    replace_with(graph, node.output, acc)
    ctx.decide(f"decompose {node.op} into binary {op}", node=node.output.name,
               inputs=len(inputs), saves_nodes=1 - (len(inputs) - 1) - (node.op == "Mean"),
               rule="backends and fusion handle two-operand elementwise ops")
    return True


@register_pass("decompose-variadic")
def decompose_variadic(graph: Graph, ctx: PassContext) -> bool:
    """Turn Sum/Max/Min/Mean into chains of binary Add/Max/Min (Mean: then Mul by 1/n)."""
    changed = 0
    for node in list(graph.nodes):
        if node.op in BINARY and not node.domain:
            changed += _decompose(graph, node, ctx)
    if changed:
        ctx.stats["variadic_decomposed"] = ctx.stats.get("variadic_decomposed", 0) + changed
    return changed > 0
