"""Type inference: run each op's registered rule to set its output types."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Optional

from .errors import CompilerError, TypeInferenceError
from .registry import InferContext, get_schema

if TYPE_CHECKING:
    from .graph import Graph, Node


# The largest tensor (input, constant or intermediate) a model may have: 1 TiB.  Larger static
# sizes come from broken or hostile models, and would overflow size arithmetic downstream.
MAX_TENSOR_BYTES = 2 ** 40


def check_tensor_sizes(graph: Graph, error: type[CompilerError] = TypeInferenceError) -> None:
    """Raise ``error`` naming the first value (here or in a subgraph) above ``MAX_TENSOR_BYTES``."""
    from .types import TensorType

    def values(g: Graph):
        yield from g.inputs
        for n in g.nodes:
            yield from n.outputs
            for sub in n.subgraphs():
                yield from values(sub)

    for v in values(graph):
        t = v.type
        if isinstance(t, TensorType) and t.is_static:
            if any(d < 0 for d in t.shape):
                raise error("value has a negative dimension", subject=f"value {v.name!r}", found=str(t))
            # Dims of size 0 do not count: [0, 2^62] holds nothing, but its strides overflow all the same.
            span = math.prod(d for d in t.shape if d > 0) * t.dtype.itemsize
            if span > MAX_TENSOR_BYTES:
                raise error("value is larger than the supported limit", subject=f"value {v.name!r}",
                            expected=f"at most 2^40 bytes ({MAX_TENSOR_BYTES}), counting dims other than 0",
                            found=f"{t} = {span} bytes")


def infer_node(node: Node) -> None:
    """Set ``node.outputs[*].type`` from the op's type rule."""
    schema = get_schema(node.op, node.domain)
    if schema.infer_fn is None:
        raise TypeInferenceError("op has no type rule", subject=node.describe())
    ctx = InferContext(node, schema)
    try:
        types = schema.infer_fn(ctx)
    except CompilerError:
        raise
    except Exception as exc:  # a rule crashed on input it should have rejected
        raise TypeInferenceError(
            f"type rule failed: {type(exc).__name__}: {exc}", subject=node.describe(),
            found="input types " + ", ".join(str(t) for t in ctx.inputs)) from exc
    if len(types) < len(node.outputs):
        raise TypeInferenceError(
            "type rule returned too few output types", subject=node.describe(),
            expected=str(len(node.outputs)), found=str(len(types)))
    for out, t in zip(node.outputs, types):
        out.type = t


def infer_graph(graph: Graph) -> None:
    """Re-run inference over every node, in order (after a pass changed inputs)."""
    for node in graph.nodes:
        infer_node(node)


def refine_types(graph: Graph, rejected: Optional[list] = None) -> int:
    """Re-run every type rule in order, keeping known dims; returns how many types changed.

    Used after rewrites that made inputs more precise (a folded shape input,
    say), so the improvement flows downstream.  A rule that rejects its node
    leaves the types as they were; ``rejected`` collects ``(node, error)``.
    """
    from .types import TensorType, merge_shapes
    changed = 0
    for node in graph.nodes:
        schema = get_schema(node.op, node.domain)
        if schema.infer_fn is None:
            continue
        try:
            types = schema.infer_fn(InferContext(node, schema))
        except CompilerError as exc:
            if rejected is not None:
                rejected.append((node, exc))
            continue
        for out, t in zip(node.outputs, types):
            old = out.type
            if isinstance(t, TensorType) and isinstance(old, TensorType) and t.dtype == old.dtype:
                new = old.with_shape(merge_shapes(t.shape, old.shape))
            else:
                new = t if old is None else old
            if new != old:
                out.type = new
                changed += 1
    return changed
