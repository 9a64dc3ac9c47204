"""The anchor of a kernel: the op whose template a fused group's code follows.

A fused group (``nnc.Fused``) is generated around its heaviest op (a conv, a
matrix product, a reduction), with the lighter ops as prologue and epilogue.
Targets key their kernel templates and schedules on the anchor.
"""

from __future__ import annotations

from .graph import Graph, Node
from .registry import KIND_RANK


def anchor_of(node: Node) -> Node:
    """The heaviest node of a fused body (the first one on ties), or the node itself."""
    if node.domain == "nnc" and node.op == "Fused":
        body: Graph = node.attrs["body"]
        return max(body.nodes, key=lambda n: KIND_RANK[n.schema.kind])
    return node
