"""Is a model's leading dimension a batch of independent samples?  Then compile one sample.

Almost every exported model has a symbolic batch dimension.  When each
sample's outputs depend on that sample's inputs only, one native program
compiled for a single sample serves every batch size: the kernels run over
the batch at run time (``backends/cpu/lower.py``), so nothing is recompiled
when the batch changes and rows are bitwise identical whatever the batch.

``plan_batch(graph)`` decides, without running the model, by specializing the
graph at batch 1 and at batch 2 (shapes only, shape arithmetic folded) and
comparing the two node by node:

* the graphs must have the same nodes, attributes and constants, except the
  shape operands of ops that only reshape or broadcast (``Reshape``'s shape
  becomes ``[2, -1]`` instead of ``[1, -1]``) and constants that are one row
  repeated per sample (a class token expanded to the batch, then folded);
* every value computed from a batched input must have its leading dimension
  scale with the batch (1 -> 2) and the other dimensions fixed; a value that
  keeps its shape but reads batched data (a reduction over the batch) mixes
  samples;
* ops that keep the shape but mix along axis 0 (``Softmax(axis=0)``,
  ``Gather(axis=0)`` of batched data, ...) are named and refused;
* every graph output is batched.

Anything else (other symbolic dimensions without a value, inputs whose
values decide shapes, a refused op) keeps the per-call specialization of
``compiler/specialize.py``, and the reason is reported by the build.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from ir.batch import BatchSignature
from ir.graph import Graph, Node, Value
from ir.types import TensorType
from passes.manager import PassContext, PassManager

from .specialize import specialize, value_deciding_inputs

# Enough folding to turn shape computations (Shape -> Gather -> Concat -> Reshape) into constants.
CHECK_PIPELINE = "fold-constants,remove-identity,fold-shape-arithmetic,fold-constants,dce"

# (op, input index): shape operands that may differ between the batch-1 and batch-2 graphs,
# and whether the op's data input (0) must itself be batched for that to be per-sample.
_SHAPE_OPERANDS: dict[tuple[str, int], bool] = {
    ("Reshape", 1): True, ("Expand", 1): False, ("ConstantOfShape", 0): False, ("Tile", 1): True,
    ("Slice", 1): True, ("Slice", 2): True, ("Slice", 3): True, ("Slice", 4): True,
    ("Resize", 3): True, ("Upsample", 1): True,
}


@dataclass
class BatchPlan:
    """The outcome: a per-sample graph and its signature, or why there is none."""

    signature: Optional[BatchSignature] = None
    per_sample: Optional[Graph] = None
    reason: str = ""
    dynamic: list[str] = field(default_factory=list)  # "input 'x' dim 1 ('seq')"

    @property
    def ok(self) -> bool:
        return self.signature is not None


def symbolic_dims(graph: Graph) -> list[tuple[int, int, str]]:
    """(input index, dim index, symbol) of every non-numeric input dimension."""
    out = []
    for i, v in enumerate(graph.inputs):
        t = v.type
        if not isinstance(t, TensorType):
            continue
        if t.shape is None:
            out.append((i, -1, "rank"))
            continue
        for k, d in enumerate(t.shape):
            if not isinstance(d, int):
                out.append((i, k, d if isinstance(d, str) else "?"))
    return out


def _describe(graph: Graph, dims: Sequence[tuple[int, int, str]]) -> list[str]:
    return [f"input {graph.inputs[i].name!r} " + ("rank" if k < 0 else f"dim {k} ({s!r})") for i, k, s in dims]


def plan_batch(graph: Graph) -> BatchPlan:
    """Decide whether ``graph`` (imported, shapes possibly symbolic) runs as a batch of samples."""
    dims = symbolic_dims(graph)
    if not dims:
        return BatchPlan(reason="the model's shapes are static")
    if not all(isinstance(v.type, TensorType) for v in graph.inputs):
        return BatchPlan(reason="sequence or optional inputs", dynamic=_describe(graph, dims))
    leading = {s for i, k, s in dims if k == 0}
    others = [(i, k, s) for i, k, s in dims if k != 0]
    if any(k < 0 for _, k, _ in dims) or any(s == "?" for _, _, s in dims):
        return BatchPlan(reason="an input has an unknown rank or an unnamed dimension", dynamic=_describe(graph, dims))
    if len(leading) != 1:
        return BatchPlan(reason="no single symbolic leading dimension shared by the inputs",
                         dynamic=_describe(graph, dims))
    symbol = next(iter(leading))
    if others:
        return BatchPlan(reason="dimensions other than the batch are symbolic",
                         dynamic=_describe(graph, others))
    if value_deciding_inputs(graph):
        return BatchPlan(reason="some inputs' values decide shapes", dynamic=_describe(graph, dims))
    batched = [isinstance(v.type, TensorType) and v.type.shape is not None and len(v.type.shape) > 0
               and v.type.shape[0] == symbol for v in graph.inputs]
    g1, g2 = (_at_batch(graph, batched, b) for b in (1, 2))
    why = _compare(g1, g2, batched)
    if why:
        return BatchPlan(reason=why, dynamic=_describe(graph, dims))
    signature = BatchSignature(symbol, tuple(batched), tuple(True for _ in graph.outputs))
    # A fresh batch-1 copy, not the checked one: the target's pipeline must see the graph unfolded
    # (cpu's fold-qdq runs before fold-constants would dequantize the weights).
    per_sample = specialize(graph, _zeros(graph, batched, 1), [])
    per_sample.batch = signature
    return BatchPlan(signature, per_sample)


def _zeros(graph: Graph, batched: Sequence[bool], batch: int) -> list[np.ndarray]:
    arrays = []
    for v, b in zip(graph.inputs, batched):
        shape = tuple(batch if (k == 0 and b) else d for k, d in enumerate(v.type.shape))
        # Only shapes matter (no input decides a value): a zero-stride view allocates nothing.
        arrays.append(np.lib.stride_tricks.as_strided(np.zeros((), v.type.dtype.np), shape, (0,) * len(shape)))
    return arrays


def _at_batch(graph: Graph, batched: Sequence[bool], batch: int) -> Graph:
    g = specialize(graph, _zeros(graph, batched, batch), [])
    PassManager(CHECK_PIPELINE, verify_each=False).run(g, PassContext())
    return g


def _shape(v: Value) -> Optional[tuple]:
    t = v.type
    return tuple(t.shape) if isinstance(t, TensorType) and t.shape is not None else None


def _batch_axis(s1: Optional[tuple], s2: Optional[tuple]) -> Optional[int]:
    """The one axis where a value's batch-1 shape has 1 and its batch-2 shape 2, all others equal."""
    if s1 is None or s2 is None or len(s1) != len(s2):
        return None
    diff = [k for k, (a, b) in enumerate(zip(s1, s2)) if a != b]
    return diff[0] if len(diff) == 1 and s1[diff[0]] == 1 and s2[diff[0]] == 2 else None


def _compare(g1: Graph, g2: Graph, batched: Sequence[bool]) -> str:
    """Why the batch-1 and batch-2 graphs are not the same program per sample ("" when they are).

    Tracks where each value computed from batched inputs keeps its batch
    axis (an intermediate may carry it elsewhere than in front, e.g. the
    ``[3, B, heads, N, d]`` of a fused QKV projection: each sample's copy of
    an intermediate lives in its own arena, so only graph inputs and
    outputs need the batch in front).
    """
    if len(g1.nodes) != len(g2.nodes):
        return "the model's structure depends on the batch size (folding differs at batch 1 and 2)"
    axis_of: dict[int, int] = {id(v): 0 for v, b in zip(g2.inputs, batched) if b}  # value (in g2) -> batch axis
    pairs: dict[int, Value] = {id(a): b for a, b in zip(g1.inputs, g2.inputs)}
    for n1, n2 in zip(g1.nodes, g2.nodes):
        where = n2.describe()
        if (n1.op, n1.domain) != (n2.op, n2.domain) or len(n1.inputs) != len(n2.inputs) \
                or len(n1.outputs) != len(n2.outputs):
            return f"the model's structure depends on the batch size (at {where})"
        if repr(sorted((k, v) for k, v in n1.attrs.items() if not isinstance(v, Graph))) != \
                repr(sorted((k, v) for k, v in n2.attrs.items() if not isinstance(v, Graph))):
            return f"attributes depend on the batch size at {where}"
        data_batched = bool(n2.inputs) and n2.inputs[0] is not None and id(n2.inputs[0]) in axis_of
        for idx, (a, b) in enumerate(zip(n1.inputs, n2.inputs)):
            if (a is None) != (b is None):
                return f"the model's structure depends on the batch size (at {where})"
            if a is None:
                continue
            if a.const is not None and b.const is not None:
                if not (np.shape(a.const) == np.shape(b.const) and np.array_equal(a.const, b.const)) \
                        and not _row_broadcast(a.const, b.const):
                    needs_batched = _SHAPE_OPERANDS.get((n2.op, idx)) if n2.domain == "" else None
                    if needs_batched is None or (needs_batched and not data_batched):
                        return f"operand {idx} of {where} depends on the batch size"
            elif (a.const is None) != (b.const is None) or pairs.get(id(a)) is not b:
                return f"the model's structure depends on the batch size (at {where})"
        reads = any(v is not None and id(v) in axis_of for v in n2.inputs)
        mixing = _mixes_samples(n2, axis_of) if reads else ""
        if mixing:
            return mixing
        for o1, o2 in zip(n1.outputs, n2.outputs):
            pairs[id(o1)] = o2
            if not reads:
                continue
            axis = _batch_axis(_shape(o1), _shape(o2))
            if axis is None:
                return (f"{where} mixes the samples of a batch "
                        f"(its output {o2.name!r} has shape {_shape(o2)} at batch 2 and {_shape(o1)} at batch 1)")
            axis_of[id(o2)] = axis
    for o in g2.outputs:
        if axis_of.get(id(o)) != 0:
            return (f"output {o.name!r} does not depend on the batched inputs" if id(o) not in axis_of else
                    f"output {o.name!r} carries the batch in dimension {axis_of[id(o)]}, not in front")
    return ""


def _row_broadcast(one: np.ndarray, two: np.ndarray) -> bool:
    """``two`` is ``one``'s single row repeated for two samples (``cls_token.expand(B, -1, -1)`` folded)."""
    one, two = np.asarray(one), np.asarray(two)
    if one.dtype == object or _batch_axis(one.shape, two.shape) is None:
        return False
    return bool(np.array_equal(two, np.broadcast_to(one, two.shape), equal_nan=one.dtype.kind in "fc"))


def _axis(node: Node, name: str, default: int) -> Optional[int]:
    """The node's ``name`` attribute as a non-negative axis of its first input (None if unknown)."""
    rank = len(_shape(node.inputs[0]) or ()) or None
    axis = node.attrs.get(name, default)
    if not isinstance(axis, int) or rank is None:
        return None
    return axis + rank if axis < 0 else axis


def _mixes_samples(node: Node, axis_of: dict[int, int]) -> str:
    """Why ``node`` (reading batched data) combines several samples while keeping the shape."""
    if node.domain not in ("", "com.microsoft"):
        return ""
    data = node.inputs[0] if node.inputs else None
    batch = axis_of.get(id(data)) if data is not None else None  # the data input's batch axis
    rank = len(_shape(data) or ()) if data is not None else 0
    op = node.op
    why = f"{node.describe()} combines samples of the batch"
    if batch is None:
        # Only other operands are batched (e.g. Gather's indices, Expand's shape): elementwise in them.
        if op in ("Einsum", "Loop", "If", "Scan"):
            return f"{node.describe()} is not known to keep the samples of a batch apart"
        return ""
    if op in ("Softmax", "LogSoftmax", "Hardmax", "LpNormalization"):
        return why if _axis(node, "axis", -1) in (batch, None) else ""
    if op == "LayerNormalization":  # normalizes over the axes from `axis` on
        axis = _axis(node, "axis", -1)
        return why if axis is None or axis <= batch else ""
    if op == "MeanVarianceNormalization":
        axes = node.attrs.get("axes", [0, 2, 3])
        return why if batch in [a + rank if a < 0 else a for a in axes] else ""
    if op == "BatchNormalization" and (node.attrs.get("training_mode", 0) or batch == 1):
        return why
    if op in ("Gather", "GatherElements", "ScatterElements", "Scatter"):
        return why if _axis(node, "axis", 0) in (batch, None) else ""
    if op in ("GatherND", "ScatterND"):
        return why if batch >= node.attrs.get("batch_dims", 0) else ""
    if op == "CumSum":
        ax = node.inputs[1].const if len(node.inputs) > 1 and node.inputs[1] is not None else None
        return why if ax is None or int(np.asarray(ax).reshape(-1)[0]) % max(rank, 1) == batch else ""
    if op in ("Trilu", "EyeLike") and batch >= rank - 2:
        return why
    if op == "ReverseSequence":
        return why if batch in (node.attrs.get("time_axis", 0), node.attrs.get("batch_axis", 1)) else ""
    if op in ("InstanceNormalization", "GroupNormalization", "LRN", "SpaceToDepth", "DepthToSpace") and batch != 0:
        return why
    if op in ("Conv", "ConvTranspose", "MaxPool", "AveragePool", "LpPool", "GlobalAveragePool",
              "GlobalMaxPool", "GlobalLpPool", "Resize", "Upsample") and batch != 0:
        return why  # their dim 0 is the only one that keeps samples apart
    if op in ("Einsum", "Loop", "If", "Scan", "Compress", "Unique", "NonZero", "DFT", "STFT", "TopK",
              "Sort", "ArgMax", "ArgMin"):
        if op in ("TopK", "ArgMax", "ArgMin"):
            return why if _axis(node, "axis", -1 if op == "TopK" else 0) in (batch, None) else ""
        return f"{node.describe()} is not known to keep the samples of a batch apart"
    return ""
