"""lower-conv-transpose: ConvTranspose as convolutions the target runs fast.

For a target without a ConvTranspose kernel (asked through ``ctx.backend``),
two rewrites.  The phase (sub-pixel) form, when it applies: 2-D, one group,
no dilation or output_padding, equal strides ``s`` in both axes and kernel
sizes that are multiples of ``s`` (the U-Net's 2x2 stride-2 up-convolution):

    ConvTranspose(x, W) = Slice(DepthToSpace_DCR(Conv(x, W_phases), s))

Output pixel ``o = s*q + p`` only ever meets kernel taps ``p, p+s, p+2s...``,
so each of the ``s*s`` phases is an ordinary stride-1 convolution with a
``k/s`` kernel (pads ``k/s - 1``) over the *input*; the phases are stacked as
output channels of one Conv (one GEMM, no multiplications by inserted zeros)
and DepthToSpace interleaves them (DCR order: phase-major channels, so a
channel-blocked layout moves whole vectors).  ConvTranspose's pads crop the
result (the Slice).  Every output is the same sum of the same products as the
reference's, only the zero terms are gone.

Otherwise, the general form (zero insertion):

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


def _phase_weight(w: np.ndarray, s: int) -> np.ndarray:
    """[Cin, Cout, kh, kw] -> [s*s*Cout, Cin, kh/s, kw/s]: phase (pi, pj) of channel c at (pi*s + pj)*Cout + c.

    Tap ``p + s*t`` of a kernel axis belongs to phase ``p``; a phase kernel is
    applied as a correlation, so its taps run backwards (``t`` flipped).
    """
    cin, cout, kh, kw = w.shape
    mh, mw = kh // s, kw // s
    w = w.reshape(cin, cout, mh, s, mw, s)[:, :, ::-1, :, ::-1, :]  # ci, c, th, pi, tw, pj
    w = w.transpose(3, 5, 1, 0, 2, 4)  # pi, pj, c, ci, th, tw
    return np.ascontiguousarray(w.reshape(s * s * cout, cin, mh, mw))


def _phase_plan(node: Node) -> tuple[int, list[int]] | None:
    """(stride, ConvTranspose pads) when the phase form applies, else None."""
    x, bias = node.inputs[0], node.input(2)
    if len(x.type.shape) != 4 or node.inputs[1].const is None or (node.attr("group") or 1) != 1:
        return None
    if bias is not None and bias.const is None:
        return None
    kernel = list(node.attr("kernel_shape") or node.inputs[1].type.shape[2:])
    strides = list(node.attr("strides") or [1, 1])
    dilations = list(node.attr("dilations") or [1, 1])
    out_pad = list(node.attr("output_padding") or [0, 0])
    pads = _pads(node, x.type.shape[2:], kernel, strides, dilations, out_pad)
    s = strides[0]
    if (s < 2 or strides[1] != s or dilations != [1, 1] or any(out_pad)
            or any(k % s for k in kernel) or any(p < 0 for p in pads)):
        return None
    return s, pads


def lower_phases(graph: Graph, node: Node, s: int, pads: list[int]) -> None:
    """The phase form (see the module docstring): one Conv for all s*s phases, then DepthToSpace."""
    x, w, bias = node.inputs[0], node.inputs[1].const, node.input(2)
    n, _, h, wd = x.type.shape
    cout = w.shape[1]
    mh, mw = w.shape[2] // s, w.shape[3] // s
    name = node.outputs[0].name
    weight = graph.add_constant(_phase_weight(w, s), graph.fresh_name(f"{name}_w_phases"))
    args = [x, weight]
    if bias is not None:
        args.append(graph.add_constant(np.ascontiguousarray(np.tile(bias.const, s * s)),
                                       graph.fresh_name(f"{name}_b_phases")))
    conv = graph.create_node("Conv", args, {"pads": (mh - 1, mw - 1, mh - 1, mw - 1), "dilations": (1, 1),
                                            "group": 1, "kernel_shape": (mh, mw)},
                             name=node.name, output_names=[name + "_phases"], before=node)
    out = graph.add("DepthToSpace", conv.output, blocksize=s, mode="DCR")
    if any(pads):
        full = [s * (h + mh - 1), s * (wd + mw - 1)]
        out = graph.add("Slice", out, graph.add_constant(np.asarray(pads[:2], np.int64), graph.fresh_name(f"{name}_starts")),
                        graph.add_constant(np.asarray([full[0] - pads[2], full[1] - pads[3]], np.int64),
                                           graph.fresh_name(f"{name}_ends")),
                        graph.add_constant(np.asarray([2, 3], np.int64), graph.fresh_name(f"{name}_axes")))
    graph.replace_all_uses(node.outputs[0], out)
    graph.remove_node(node)


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
    """Rewrite ConvTranspose as Conv (phase form or zero upsampling) for targets without its kernel."""
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
        plan = _phase_plan(node)
        if plan is not None:
            lower_phases(graph, node, *plan)
            ctx.decide("lower ConvTranspose to Conv", node=label,
                       rule=f"{plan[0]}x{plan[0]} phase convolutions in one Conv, then DepthToSpace")
        else:
            lower(graph, node)
            ctx.decide("lower ConvTranspose to Conv", node=label, rule="zero-upsample the input, flip the kernel")
        changed = True
    if changed:
        graph.topological_sort()
    return changed
