"""fold-shape-arithmetic: constant-propagate shape computations over symbolic dims.

Exported models compute reshape targets from ``Shape(x)`` even when most dims
are known, e.g. PyTorch's flatten ``Reshape(x, Concat(Unsqueeze(Gather(Shape(x),
0)), [-1]))``.  With a symbolic batch dim fold-constants cannot fold
``Shape(x)``; this pass tracks which dims of which tensor a shape value holds:

* ``Shape(x)``, ``Gather(Shape(x), i)`` and ``Slice(Shape(x), ...)`` (constant
  indices, also nested) whose selected dims are all known integers become
  constants;
* in ``Reshape(data, Concat(...))`` with ``allowzero`` 0, an element at output
  position ``p`` that holds ``data``'s own dim ``p`` (``Gather(Shape(data), p)``,
  or a dim of another tensor with the same symbolic name) becomes the constant
  0, Reshape's "copy this dim" marker.  Pieces that become fully known are
  replaced by constants, and the target by one constant when all pieces are.

The flatten above becomes ``Reshape(x, [0, -1])`` with a static-rank type
``f32[N, 512]``; fold-constants and dce finish the job (Unsqueeze of a
constant, dead Shape nodes).  Must not fire when: the dims are unknown or
symbolic with another name; ``allowzero`` is 1 (0 is then a real size); a
known dim is 0 (it cannot be written with ``allowzero`` 0); the value is a
graph output.  Output types are refined afterwards so static shapes flow on.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from ir.graph import Graph, Node, Value
from ir.infer import refine_types
from ir.ops.shape_gen import slice_bounds
from ir.types import Dim

from .manager import PassContext, register_pass

# A shape value's provenance: (tensor y, positions into y's shape, is_scalar).
Source = tuple[Value, list[int], bool]


def _ints(v: Optional[Value]) -> Optional[np.ndarray]:
    return None if v is None or v.const is None else v.const.astype(np.int64)


class ShapeTracker:
    """Finds, with memoization, which dims of which tensor a shape value holds."""

    def __init__(self) -> None:
        self.memo: dict[Value, Optional[Source]] = {}  # keyed by object: ids get reused

    def source(self, v: Optional[Value]) -> Optional[Source]:
        if v is None or v.producer is None:
            return None
        if v not in self.memo:
            self.memo[v] = self._compute(v.producer)
        return self.memo[v]

    def _compute(self, node: Node) -> Optional[Source]:
        if node.domain:
            return None
        if node.op == "Shape":
            rank = node.inputs[0].type.rank
            if rank is None:
                return None
            end = node.attr("end")
            return node.inputs[0], list(range(rank))[node.attr("start") or 0:end], False
        if node.op == "Gather":
            base, idx = self.source(node.inputs[0]), _ints(node.input(1))
            if base is None or base[2] or idx is None or idx.ndim > 1 \
                    or node.attr("axis") not in (0, -1):
                return None
            n = len(base[1])
            if any(not -n <= i < n for i in idx.reshape(-1)):
                return None
            return base[0], [base[1][int(i)] for i in idx.reshape(-1)], idx.ndim == 0
        if node.op == "Slice":
            return self._slice(node)
        if node.op == "Unsqueeze":
            base, axes = self.source(node.inputs[0]), _ints(node.input(1))
            if base is None or not base[2] or axes is None \
                    or axes.reshape(-1).tolist() not in ([0], [-1]):
                return None
            return base[0], base[1], False
        return None

    def _slice(self, node: Node) -> Optional[Source]:
        """A one-axis Slice of a shape vector with constant bounds."""
        base = self.source(node.inputs[0])
        args = [_ints(node.input(i)) for i in (1, 2)]
        args += [_ints(node.input(i)) if node.input(i) is not None else np.array([d])
                 for i, d in ((3, 0), (4, 1))]
        if base is None or base[2] or any(a is None or a.size != 1 for a in args):
            return None
        start, end, axis, step = (int(a.reshape(-1)[0]) for a in args)
        if axis not in (0, -1) or step == 0:
            return None
        first, stop, _ = slice_bounds(len(base[1]), start, end, step)
        return base[0], base[1][first:None if stop < 0 else stop:step], False


def _dims(src: Source) -> list[Dim]:
    shape = src[0].type.shape
    return [shape[j] for j in src[1]]


def _fold_known(graph: Graph, node: Node, tracker: ShapeTracker, ctx: PassContext) -> bool:
    """A Shape/Gather/Slice of dims that are all known integers becomes a constant."""
    out = node.outputs[0]
    src = tracker.source(out)
    if src is None or out.is_graph_output or not all(isinstance(d, int) for d in _dims(src)):
        return False
    values = np.array(_dims(src), dtype=np.int64)
    if src[2]:
        values = values.reshape(())
    name = out.name
    graph.rename(out, name + "_folded")
    const = graph.add_constant(values, name, dtype=out.type.dtype)
    graph.replace_all_uses(out, const)
    graph.remove_node(node)
    ctx.decide(f"fold {node.op} of known dims", node=name, value=values.tolist(), saves_nodes=1,
               rule="the selected dims of the shape are known integers")
    return True


def _piece_values(piece: Value, offset: int, data: Value, tracker: ShapeTracker
                  ) -> Optional[list[int]]:
    """The piece's elements as Reshape target values (0 = copy data's dim), or None."""
    if piece.const is not None:
        return [int(x) for x in piece.const.reshape(-1)]
    node = piece.producer
    if node is not None and node.op == "Unsqueeze" and node.inputs[0].const is not None \
            and node.inputs[0].const.size == 1:
        return [int(node.inputs[0].const.reshape(-1)[0])]
    src = tracker.source(piece)
    if src is None or src[2]:
        return None
    y, rank = src[0], data.type.rank
    values = []
    for k, (j, d) in enumerate(zip(src[1], _dims(src))):
        p = offset + k
        same = rank is not None and p < rank and (
            (y is data and j == p) or (isinstance(d, str) and data.type.shape[p] == d))
        if isinstance(d, int) and d != 0:
            values.append(d)  # a known size reads better than a copy marker
        elif same:
            values.append(0)
        else:
            return None
    return values


def _simplify_target(graph: Graph, node: Node, tracker: ShapeTracker, ctx: PassContext) -> bool:
    """Rewrite the Concat target of a Reshape with copy markers and known dims."""
    data, target = node.inputs[0], node.inputs[1]
    cat = target.producer
    if node.attr("allowzero") or cat is None or cat.op != "Concat" or cat.domain \
            or cat.attr("axis") not in (0, -1):
        return False
    pieces: list[tuple[Value, Optional[list[int]]]] = []  # each piece and its known values
    offset, changed = 0, False
    for piece in cat.inputs:
        shape = piece.type.shape
        if shape is None or len(shape) != 1 or not isinstance(shape[0], int):
            return False
        values = _piece_values(piece, offset, data, tracker)
        changed |= values is not None and piece.const is None
        pieces.append((piece, values))
        offset += shape[0]
    if not changed:
        return False
    if all(values is not None for _, values in pieces):
        whole = np.array([x for _, values in pieces for x in values], dtype=np.int64)
        new_target = graph.add_constant(whole, target.name + "_const")
    else:
        inputs = [p if values is None or p.const is not None else graph.add_constant(
            np.array(values, dtype=np.int64), p.name + "_dims") for p, values in pieces]
        new_target = graph.create_node("Concat", inputs, {"axis": 0},
                                       output_names=[target.name + "_dims"], before=node).output
    graph.set_input(node, 1, new_target)
    _drop_dead(graph, target)
    ctx.decide("make Reshape target static", node=node.output.name,
               target=new_target.const.tolist() if new_target.const is not None else "Concat",
               rule="dims copied from the input become 0, known dims become constants",
               saves_nodes=0)
    return True


def _drop_dead(graph: Graph, v: Value) -> None:
    """Remove the now unread shape computation that produced ``v``."""
    stack = [v]
    while stack:
        v = stack.pop()
        node = v.producer
        if node is None or node.graph is not graph or node.op not in (
                "Concat", "Unsqueeze", "Gather", "Slice", "Shape"):
            continue
        if any(o.uses or o.is_graph_output for o in node.outputs):
            continue
        inputs = [i for i in node.inputs if i is not None]
        graph.remove_node(node)
        stack.extend(inputs)


@register_pass("fold-shape-arithmetic")
def fold_shape_arithmetic(graph: Graph, ctx: PassContext) -> bool:
    """Fold shape computations over symbolic dims; Reshape targets get copy markers."""
    tracker = ShapeTracker()
    folded = rewritten = 0
    for node in list(graph.nodes):
        if node.graph is not graph or node.domain:
            continue
        if node.op in ("Shape", "Gather", "Slice"):
            folded += _fold_known(graph, node, tracker, ctx)
        elif node.op == "Reshape":
            rewritten += _simplify_target(graph, node, tracker, ctx)
    if folded or rewritten:
        refine_types(graph)
        ctx.stats["shape_values_folded"] = ctx.stats.get("shape_values_folded", 0) + folded
        ctx.stats["reshape_targets_rewritten"] = \
            ctx.stats.get("reshape_targets_rewritten", 0) + rewritten
    return bool(folded or rewritten)
