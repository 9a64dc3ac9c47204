"""lower-conv-transpose: ConvTranspose as a Conv over a zero-upsampled input.

For a target without a ConvTranspose kernel (asked through ``ctx.backend``):

    ConvTranspose(x, W) = Conv(pad(upsample0(x)), W')

where ``upsample0`` inserts stride-1 zeros between input elements
(Reshape -> Pad -> Reshape -> Slice), the pads are ``d*(k-1) - pad`` on each
side (negative pads crop; ``output_padding`` extends the end), and ``W'``
is W with kernel axes flipped and in/out channels swapped within each group
(computed at compile time for a constant W, by Reshape/Transpose/Slice ops otherwise).  The Conv then takes the
target's fast convolution path.  Needs static shapes.
"""

from __future__ import annotations

import numpy as np

from ir.graph import Graph, Node, Value
from ir.types import TensorType

from .manager import PassContext, register_pass


def _transposed_weight(w: np.ndarray, group: int) -> np.ndarray:
    """[Cin, Cout/g, *k] -> [Cout, Cin/g, *k] with kernel axes flipped."""
    cin, cog = w.shape[:2]
    cig = cin // group
    k = w.shape[2:]
    w = w.reshape(group, cig, cog, *k)
    w = np.swapaxes(w, 1, 2)  # group, cog, cig, *k
    w = np.flip(w, axis=tuple(range(3, 3 + len(k))))
    return np.ascontiguousarray(w.reshape(group * cog, cig, *k))


def _pads(node: Node, in_spatial, kernel, strides, dilations, out_pad) -> list[int]:
    rank = len(in_spatial)
    pads = list(node.attr("pads") or [0] * 2 * rank)
    output_shape = node.attr("output_shape")
    auto_pad = node.attr("auto_pad") or "NOTSET"
    if output_shape or auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        target = list(output_shape) if output_shape else [i * s for i, s in zip(in_spatial, strides)]
        target = target[-rank:]
        for i in range(rank):  # as the reference (ir/ops/conv.py) places them
            natural = strides[i] * (in_spatial[i] - 1) + out_pad[i] + (kernel[i] - 1) * dilations[i] + 1
            if natural < target[i]:  # a larger output_shape extends the end, like output_padding
                out_pad[i] += target[i] - natural
                natural = target[i]
            total = max(0, natural - target[i])
            small, big = total // 2, total - total // 2
            pads[i], pads[i + rank] = (small, big) if auto_pad == "SAME_UPPER" else (big, small)
    return pads


def _lowerable(node: Node) -> bool:
    x, w = node.inputs[0], node.input(1)
    return (w is not None and isinstance(w.type, TensorType) and w.type.is_static
            and isinstance(x.type, TensorType) and x.type.is_static
            and isinstance(node.outputs[0].type, TensorType) and node.outputs[0].type.is_static
            and x.type.dtype.is_float)


def _weight_ops(graph: Graph, node: Node, group: int, const) -> Value:
    """W' computed at run time (a weight that is not constant): reshape, transpose, flip, reshape."""
    w = node.inputs[1]
    cin, cog, *k = w.type.shape
    cig = cin // group
    rank = len(k)
    v = graph.add("Reshape", w, const([group, cig, cog, *k], "w_groups"))
    v = graph.add("Transpose", v, perm=(0, 2, 1, *range(3, 3 + rank)))
    big = np.iinfo(np.int64).min
    v = graph.add("Slice", v, const([-1] * rank, "w_flip_starts"), const([big] * rank, "w_flip_ends"),
                  const(list(range(3, 3 + rank)), "w_flip_axes"), const([-1] * rank, "w_flip_steps"))
    return graph.add("Reshape", v, const([group * cog, cig, *k], "w_t"))


def lower(graph: Graph, node: Node) -> None:
    x, w, bias = node.inputs[0], node.inputs[1].const, node.input(2)
    n, c, *spatial = x.type.shape
    rank = len(spatial)
    group = node.attr("group") or 1
    kernel = list(node.attr("kernel_shape") or node.inputs[1].type.shape[2:])
    strides = list(node.attr("strides") or [1] * rank)
    dilations = list(node.attr("dilations") or [1] * rank)
    out_pad = list(node.attr("output_padding") or [0] * rank)
    pads = _pads(node, spatial, kernel, strides, dilations, out_pad)

    def const(arr, name):
        return graph.add_constant(np.asarray(arr, np.int64), graph.fresh_name(f"{node.outputs[0].name}_{name}"))

    up: Value = x
    if any(s > 1 for s in strides):
        # [N,C,H,W] -> [N,C,H,1,W,1] -> pad the unit axes to the stride -> [N,C,H*s,W*s] -> drop the tail.
        wide = [n, c] + [d for size in spatial for d in (size, 1)]
        up = graph.add("Reshape", up, const(wide, "unit_axes"))
        zeros = [0] * (2 + 2 * rank)
        ends = [0, 0] + [e for s in strides for e in (0, s - 1)]
        up = graph.add("Pad", up, const(zeros + ends, "gaps"), mode="constant")
        up = graph.add("Reshape", up, const([n, c] + [size * s for size, s in zip(spatial, strides)], "upsampled"))
        keep = [(size - 1) * s + 1 for size, s in zip(spatial, strides)]
        up = graph.add("Slice", up, const([0] * rank, "starts"), const(keep, "ends"),
                       const(list(range(2, 2 + rank)), "axes"))
    edge = [d * (k - 1) for d, k in zip(dilations, kernel)]
    conv_pads = [edge[i] - pads[i] for i in range(rank)] + \
        [edge[i] - pads[i + rank] + out_pad[i] for i in range(rank)]
    if any(p < 0 for p in conv_pads):  # negative pads crop: do it with Pad, then convolve unpadded
        up = graph.add("Pad", up, const([0, 0] + conv_pads[:rank] + [0, 0] + conv_pads[rank:], "crop"),
                       mode="constant")
        conv_pads = [0] * 2 * rank
    if w is not None:  # constant: transpose it now
        weight = graph.add_constant(_transposed_weight(w, group), graph.fresh_name(f"{node.outputs[0].name}_w_t"))
    else:
        weight = _weight_ops(graph, node, group, const)
    args = [up, weight] + ([bias] if bias is not None else [])
    conv = graph.create_node("Conv", args, {"pads": tuple(conv_pads), "dilations": tuple(dilations),
                                            "group": group, "kernel_shape": tuple(kernel)},
                             name=node.name, output_names=[node.outputs[0].name + "_conv"], before=node)
    graph.replace_all_uses(node.outputs[0], conv.output)
    graph.remove_node(node)


@register_pass("lower-conv-transpose")
def lower_conv_transpose(graph: Graph, ctx: PassContext) -> bool:
    """Rewrite ConvTranspose as Conv over a zero-upsampled input (for targets without its kernel)."""
    backend = ctx.backend
    changed = False
    for node in list(graph.nodes):
        if node.op != "ConvTranspose" or node.domain != "":
            continue
        if backend is not None and backend.supports(node).ok:
            continue
        if not _lowerable(node):
            ctx.decide("keep ConvTranspose", node=node.describe(), reason="needs static shapes and a constant weight")
            continue
        label = node.describe()
        lower(graph, node)
        ctx.decide("lower ConvTranspose to Conv", node=label, rule="zero-upsample the input, flip the kernel")
        changed = True
    if changed:
        graph.topological_sort()
    return changed
