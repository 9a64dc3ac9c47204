"""The anchor of a kernel: the op whose template a fused group's code follows.

A fused group (``nnc.Fused``) is generated around its heaviest op (a conv, a
matrix product, a reduction), with the lighter ops as prologue and epilogue.
Targets key their kernel templates and schedules on the anchor.
"""

from __future__ import annotations

from .graph import Graph, Node

# Op kinds from the lightest to the heaviest (the registry's kinds).
_RANK = {"elementwise": 0, "broadcast": 1, "injective": 2, "reduction": 3, "complex": 4, "opaque": 8}


def anchor_of(node: Node) -> Node:
    """The heaviest node of a fused body (the first one on ties), or the node itself."""
    if node.domain == "nnc" and node.op == "Fused":
        body: Graph = node.attrs["body"]
        return max(body.nodes, key=lambda n: _RANK[n.schema.kind])
    return node
