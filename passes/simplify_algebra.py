"""simplify-algebra: remove arithmetic and layout ops that provably return their input.

Rewrites (``c`` is a constant; "neutral" means every element of ``c`` is it):

* ``x * 1``, ``1 * x``, ``x + 0``, ``0 + x``, ``x - 0``, ``x / 1``, ``Pow(x, 1)`` -> ``x``,
  when ``c`` is neutral, the op's output has ``x``'s dtype and ``x``'s shape
  (broadcasting ``c`` must not enlarge or reshape ``x``);
* ``Neg(Neg(x))`` -> ``x``; ``Relu(Relu(x))`` -> ``Relu(x)``;
* ``Cast(x)`` to ``x``'s own dtype -> ``x``;
* ``Expand(x, s)`` whose ``s`` only has 1s or ``x``'s known sizes and no extra
  leading axes, ``Tile(x, ones)``, a ``Slice`` taking whole axes with step 1,
  and a ``Pad`` with all-zero pads -> ``x``.

Never changes NaN behaviour: ``x * 0``, ``x - x``, ``x / x`` are left alone
(NaN and inf inputs give NaN there).  ``x + 0`` only differs from ``x`` for
``x = -0.0`` (it gives ``+0.0``), which compares equal.  Must not fire when
removing the node would rename a graph output (``Graph.can_replace``).
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from ir.graph import Graph, Node, Value
from ir.ops.shape_gen import slice_bounds
from ir.types import TensorType

from .manager import PassContext, register_pass

INT_MAX = 2 ** 31 - 1
# op -> {constant operand position: neutral value}
NEUTRAL = {"Mul": {0: 1, 1: 1}, "Add": {0: 0, 1: 0}, "Sub": {1: 0}, "Div": {1: 1},
           "Pow": {1: 1}}


def _ints(v: Optional[Value]) -> Optional[list[int]]:
    return None if v is None or v.const is None else [int(x) for x in v.const.reshape(-1)]


def _keeps_type(x: Value, out: Value) -> bool:
    """Whether ``out`` provably has the dtype and the (fully described) shape of ``x``."""
    xt, ot = x.type, out.type
    if not isinstance(xt, TensorType) or not isinstance(ot, TensorType) or xt.dtype != ot.dtype:
        return False
    return xt.shape is not None and ot.shape is not None and tuple(xt.shape) == tuple(ot.shape) \
        and all(d is not None for d in xt.shape)


def _neutral_operand(node: Node) -> Optional[Value]:
    """The non-constant operand of a binary op whose constant operand is neutral."""
    rules = NEUTRAL[node.op]
    for pos, neutral in rules.items():
        c, x = node.input(pos), node.input(1 - pos)
        if c is None or x is None or c.const is None or x.const is not None:
            continue
        if c.const.ndim > (x.type.rank if x.type.rank is not None else -1):
            continue  # broadcasting would add axes
        if c.const.size and np.all(c.const == neutral) and _keeps_type(x, node.output):
            return x
    return None


def _is_full_slice(node: Node) -> bool:
    x = node.inputs[0]
    starts, ends = _ints(node.input(1)), _ints(node.input(2))
    axes = _ints(node.input(3)) if node.input(3) is not None else None
    steps = _ints(node.input(4)) if node.input(4) is not None else None
    if starts is None or ends is None or x.type.shape is None:
        return False
    rank = len(x.type.shape)
    axes = list(range(len(starts))) if axes is None and node.input(3) is None else axes
    steps = [1] * len(starts) if steps is None and node.input(4) is None else steps
    if axes is None or steps is None or not len(starts) == len(ends) == len(axes) == len(steps):
        return False
    for a, s, e, st in zip(axes, starts, ends, steps):
        if not -rank <= a < rank or st != 1:
            return False
        d = x.type.shape[a]
        if isinstance(d, int):
            if slice_bounds(d, s, e, st)[:2] != (0, d):
                return False
        elif not (s == 0 and e >= INT_MAX):
            return False
    return True


def _is_noop_expand(node: Node) -> bool:
    x, target = node.inputs[0], _ints(node.input(1))
    shape = x.type.shape
    if target is None or shape is None or len(target) > len(shape):
        return False
    aligned = shape[len(shape) - len(target):]
    return all(t == 1 or (isinstance(d, int) and d == t) for d, t in zip(aligned, target))


def _layout_noop(node: Node) -> bool:
    """Expand/Tile/Slice/Pad/Cast that provably return their input unchanged."""
    x = node.inputs[0]
    if not _keeps_type(x, node.output) and node.op != "Cast":
        return False
    if node.op == "Cast":
        return isinstance(x.type, TensorType) and isinstance(node.output.type, TensorType) \
            and x.type.dtype == node.output.type.dtype
    if node.op == "Expand":
        return _is_noop_expand(node)
    if node.op == "Tile":
        reps = _ints(node.input(1))
        return reps is not None and all(r == 1 for r in reps)
    if node.op == "Slice":
        return _is_full_slice(node)
    if node.op == "Pad":
        pads = _ints(node.input(1))
        return pads is not None and all(p == 0 for p in pads)
    return False


def _replacement(node: Node) -> Optional[tuple[Value, str]]:
    """The value ``node`` can be replaced by, and the rule that says so."""
    op = node.op
    if op in NEUTRAL and len(node.inputs) == 2:
        x = _neutral_operand(node)
        return None if x is None else (x, f"{op} by a neutral constant")
    inner = node.inputs[0].producer if node.inputs and node.inputs[0] is not None else None
    if op == "Neg" and inner is not None and inner.op == "Neg" and not inner.domain:
        return inner.inputs[0], "Neg(Neg(x)) = x"
    if op == "Relu" and inner is not None and inner.op == "Relu" and not inner.domain:
        return inner.output, "Relu(Relu(x)) = Relu(x)"
    if op in ("Cast", "Expand", "Tile", "Slice", "Pad") and _layout_noop(node):
        return node.inputs[0], f"{op} that changes nothing"
    return None


@register_pass("simplify-algebra")
def simplify_algebra(graph: Graph, ctx: PassContext) -> bool:
    """Remove x*1, x+0, x-0, x/1, Pow(x,1), Neg(Neg(x)), Relu(Relu(x)) and no-op cast/layout ops."""
    removed = 0
    for node in list(graph.nodes):
        if node.graph is not graph or node.domain or len(node.outputs) != 1 or not node.inputs \
                or node.inputs[0] is None:
            continue
        found = _replacement(node)
        if found is None:
            continue
        src, rule = found
        out = node.output
        if not graph.can_replace(out, src):
            continue
        inner = node.inputs[0].producer
        graph.replace_all_uses(out, src)
        graph.remove_node(node)
        if node.op == "Neg" and inner is not None and not inner.outputs[0].uses \
                and not inner.outputs[0].is_graph_output:
            graph.remove_node(inner)  # the inner Neg of Neg(Neg(x)) is dead now
        ctx.decide(f"remove {node.op}", node=out.name, rule=rule, saves_nodes=1)
        removed += 1
    if removed:
        ctx.stats["algebra_removed"] = ctx.stats.get("algebra_removed", 0) + removed
    return removed > 0
