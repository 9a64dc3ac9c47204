"""remove-identity: drop Identity nodes and Dropout in inference mode.

Dropout is the identity at inference unless ``training_mode`` is true; its
optional mask output is then all true.  A node whose output is a graph output
is kept when removing it would rename the model's output (see
``Graph.can_replace``).
"""

from __future__ import annotations

import numpy as np

from ir.graph import Graph, Node
from ir.types import TensorType

from .manager import PassContext, register_pass


def _dropout_is_identity(node: Node) -> bool:
    training = node.input(2)
    if training is None:
        return True
    return training.const is not None and not bool(np.asarray(training.const).reshape(-1)[0])


@register_pass("remove-identity")
def remove_identity(graph: Graph, ctx: PassContext) -> bool:
    """Bypass Identity nodes and inference-mode Dropout."""
    removed = 0
    for node in list(graph.nodes):
        if node.domain != "":
            continue
        if node.op == "Identity" or (node.op == "Dropout" and _dropout_is_identity(node)):
            src, out = node.inputs[0], node.outputs[0]
            if not graph.can_replace(out, src):
                continue
            if len(node.outputs) > 1:  # Dropout's mask
                mask = node.outputs[1]
                if mask.uses or mask.is_graph_output:
                    t = mask.type
                    if not (isinstance(t, TensorType) and t.is_static) or mask.is_graph_output:
                        continue
                    ones = graph.add_constant(np.ones(t.shape, dtype=bool), mask.name + "_ones")
                    graph.replace_all_uses(mask, ones)
            graph.replace_all_uses(out, src)
            graph.remove_node(node)
            removed += 1
    return removed > 0
