"""``nnc.Fused``: a group of nodes that a backend compiles as one kernel.

The fusion pass replaces a group of nodes by one ``nnc.Fused`` node whose
``body`` attribute is a closed subgraph holding the group: the node's inputs
are the body's inputs, the body's outputs the node's outputs.  Every backend
sees the same groups, and the reference interpreter simply runs the body, so
fused graphs stay checkable against unfused ones.

Attributes: ``body`` (the subgraph) and ``pattern`` (a readable summary such
as ``"Conv+Add+Relu"``, the anchor op first).  The tiling decision is not an
attribute: like every kernel node's, it is ``Node.schedule`` (set by the
scheduling pass).  ``nnc`` is the domain of the compiler's own ops.
"""

from __future__ import annotations

from typing import Any

from ..graph import Graph
from ..interpreter import run_subgraph
from ..registry import OPAQUE, Attr, InferContext, define
from ..types import Type

NNC = "nnc"

fused = define(
    "Fused", domain=NNC, inputs=["inputs...?"], outputs=["outputs..."], kind=OPAQUE,
    attrs={"body": Attr.graph(required=True), "pattern": Attr.string("")},
    doc="A fused group: runs its body subgraph as one kernel.")


@fused.infer
def _(ctx: InferContext) -> list[Type]:
    body: Graph = ctx.attr("body")
    if len(body.inputs) != ctx.num_inputs:
        ctx.fail("the body takes a different number of inputs", expected=str(len(body.inputs)),
                 found=str(ctx.num_inputs))
    for i, (v, t) in enumerate(zip(body.inputs, ctx.inputs)):
        if v.type != t and not _same_shape_family(v.type, t):
            ctx.fail(f"input {i} does not match the body's input", expected=str(v.type), found=str(t))
    return [v.type for v in body.outputs]


def _same_shape_family(a: Any, b: Any) -> bool:
    """Symbolic and concrete descriptions of one tensor (the body may be more precise)."""
    from ..verifier import compatible
    return compatible(a, b) or compatible(b, a)


@fused.reference
def _(*inputs: Any, body: Graph, pattern: str) -> list[Any]:
    return run_subgraph(body, list(inputs))
