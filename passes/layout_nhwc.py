"""layout-nhwc: channels-last layouts for systolic-array targets.

A systolic array computes a convolution as a GEMM whose reduction runs over
(KH, KW, C): with activations channels-last ([N, H, W, C]) and weights packed
HWIO ([KH, KW, C/group, Cout]) both operands stream contiguously into the
array's rows and columns.  This pass rewrites 2-D convolutions into
``nnc.ConvNHWC`` with weights packed at compile time, keeps the channels-last
layout flowing through the ops that can read it, and converts back only where
a plain reader (or a graph output) needs NCHW.

Rules:

* Conv -> ConvNHWC when the target is a systolic array and the conv is 2-D
  with static C/H/W and a constant weight (any group).
* Ops whose operand is already channels-last stay channels-last:
  elementwise / broadcasting ops whose other operands are channels-last too,
  scalars, or constants broadcasting against the 4-D tensor (re-laid out at
  compile time, e.g. a ``[C, 1, 1]`` bias becomes ``[1, 1, 1, C]``), and
  Concat on the channel axis of inputs that are all channels-last.
* Everything else reads a ``Transpose(perm=[0, 3, 1, 2])`` of the value; a
  plain value is transposed to channels-last once, however many convs read it.

Must not fire without a systolic target.  Preserves the model's outputs (the
reference interpreter runs ``nnc.ConvNHWC``) and the names of graph outputs.
Adds the conversions left to ``ctx.stats["layout_conversions"]``.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from ir.graph import Graph, Node, Value
from ir.ops._window import resolve_pads
from ir.ops.layout import NNC, pack_conv_weight_hwio
from ir.types import TensorType

from .layout_common import drop_replaced, is_per_element
from .manager import PassContext, register_pass

TO_NHWC, TO_NCHW = [0, 2, 3, 1], [0, 3, 1, 2]


class _ChannelsLast:
    """One walk over the nodes; ``twin`` maps a plain value to its channels-last twin."""

    def __init__(self, graph: Graph, ctx: PassContext) -> None:
        self.g, self.ctx = graph, ctx
        self.twin: dict[int, Value] = {}
        self.transposed_in: dict[int, Value] = {}
        self.replaced: list[Node] = []
        self.convs = 0

    def emit(self, op: str, inputs: list, attrs: dict, node: Node, domain: str = "") -> Value:
        out = self.g.create_node(op, inputs, attrs, domain=domain, name=node.name,
                                 output_names=[f"{node.outputs[0].name}_nhwc"], before=node).output
        out.type = out.type.with_layout("NHWC")
        return out

    def channels_last(self, v: Value, before: Node) -> Value:
        """``v`` channels-last: its twin, or one Transpose per plain value."""
        if id(v) in self.twin:
            return self.twin[id(v)]
        if id(v) not in self.transposed_in:
            out = self.g.create_node("Transpose", [v], {"perm": TO_NHWC}, output_names=[f"{v.name}_nhwc"],
                                     before=before).output
            out.type = out.type.with_layout("NHWC")
            self.transposed_in[id(v)] = out
            self.ctx.decide("insert Transpose to NHWC", value=v.name, reason=f"read by {before.describe()}")
        return self.transposed_in[id(v)]

    def visit(self, node: Node) -> None:
        if node.domain != "" or len(node.outputs) != 1:
            return
        if node.op == "Conv":
            out = self.conv(node)
        elif not any(v is not None and id(v) in self.twin for v in node.inputs):
            return
        elif is_per_element(node):
            out = self.elementwise(node)
        elif node.op == "Concat" and node.attr("axis") in (1, -3) and node.output.type.rank == 4 \
                and all(id(v) in self.twin for v in node.inputs):
            out = self.emit("Concat", [self.twin[id(v)] for v in node.inputs], {"axis": 3}, node)
        else:
            out = None
        if out is not None:
            self.twin[id(node.output)] = out
            self.replaced.append(node)

    def conv(self, node: Node) -> Optional[Value]:
        x, w, bias = node.inputs[0], node.input(1), node.input(2)
        t = x.type
        if not isinstance(t, TensorType) or t.rank != 4 or not all(isinstance(d, int) for d in t.shape[1:]):
            self.ctx.decide("keep Conv in NCHW", node=node.describe(), reason="not a 2-D conv with static C, H, W")
            return None
        if w is None or w.const is None:
            self.ctx.decide("keep Conv in NCHW", node=node.describe(), reason="the weight is not a constant")
            return None
        kernel = list(w.type.shape[2:])
        strides = list(node.attr("strides") or [1, 1])
        dilations = list(node.attr("dilations") or [1, 1])
        pads = resolve_pads(t.shape[2:], kernel, strides, dilations, node.attr("pads"), node.attr("auto_pad"))
        packed = self.g.add_constant(pack_conv_weight_hwio(w.const), f"{w.name}_hwio")
        packed.type = packed.type.with_layout("HWIO")
        self.convs += 1
        self.ctx.decide("convert Conv to nnc.ConvNHWC", node=node.describe(), group=node.attr("group"),
                        packed_weight_bytes=int(packed.const.nbytes),
                        input="channels-last already" if id(x) in self.twin else "Transpose")
        inputs = [self.channels_last(x, node), packed] + ([bias] if bias is not None else [])
        return self.emit("ConvNHWC", inputs, {"kernel_shape": kernel, "strides": strides, "pads": pads,
                                              "dilations": dilations, "group": node.attr("group")},
                         node, domain=NNC)

    def elementwise(self, node: Node) -> Optional[Value]:
        if node.output.type.rank != 4:
            return None
        inputs = []
        for v in node.inputs:
            if v is None:
                inputs.append(None)
            elif id(v) in self.twin or id(v) in self.transposed_in:
                inputs.append(self.twin.get(id(v)) or self.transposed_in[id(v)])
            elif v.type.is_static and v.type.numel == 1:
                inputs.append(v)
            elif v.const is not None and v.const.ndim <= 4:
                arr = v.const.reshape((1,) * (4 - v.const.ndim) + v.const.shape)
                c = self.g.add_constant(np.ascontiguousarray(np.transpose(arr, TO_NHWC)), f"{v.name}_nhwc")
                inputs.append(c)
            else:
                return None
        return self.emit(node.op, inputs, dict(node.attrs), node)

    def finish(self) -> int:
        """Drop the replaced nodes; plain readers left get one Transpose back to NCHW each."""
        def to_nchw(twin: Value, out: Value) -> Value:
            return self.g.create_node("Transpose", [twin], {"perm": TO_NCHW}, output_names=[f"{out.name}_nchw"],
                                      after=twin.producer).output
        return drop_replaced(self.g, self.ctx, self.replaced, self.twin, to_nchw, "insert Transpose to NCHW")


@register_pass("layout-nhwc")
def layout_nhwc(graph: Graph, ctx: PassContext) -> bool:
    """Channels-last (NHWC) convolutions with HWIO-packed weights for systolic arrays."""
    target = ctx.target
    if target is None or target.kind != "systolic":
        ctx.decide("skip layout-nhwc", reason="no systolic-array target")
        return False
    rw = _ChannelsLast(graph, ctx)
    for node in list(graph.nodes):
        rw.visit(node)
    if not rw.convs:
        ctx.decide("layout-nhwc changed nothing", reason="no convertible convolution")
        return False
    back = rw.finish()
    total = len(rw.transposed_in) + back
    ctx.stats["layout_conversions"] = ctx.stats.get("layout_conversions", 0) + total
    ctx.decide("channels-last layout NHWC", convs=rw.convs, to_nhwc=len(rw.transposed_in), to_nchw=back,
               conversions_left=total, conversions_if_converted_per_conv=2 * rw.convs,
               rule="a conversion only where a plain reader or a plain producer meets channels-last data")
    return True
