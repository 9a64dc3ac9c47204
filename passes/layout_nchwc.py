"""layout-nchwc: blocked channel layouts (NCHW[x]c) for the CPU target.

Rewrites 2-D convolutions into ``nnc.ConvNCHWc`` on channel-blocked data
(``[N, C/b, H, W, b]``, see ``ir.ops.layout``), with weights packed at
compile time, and keeps the blocked layout flowing through the ops that can
read it, so only the conversions the graph needs remain.

Rules (``b`` = the ``block`` option, 0 meaning the target's f32 vector lanes):

* Conv -> ConvNCHWc when: f32, 2-D, static C/H/W (the batch may be
  symbolic), constant weight, group 1 or depthwise (group == Cin == Cout).
  A Cout that is not a multiple of b (MobileNetV2's 24, ConvNeXt's 40) is
  padded to whole blocks with zero filters and biases (the bias must be a
  constant): the padding channels compute zeros, plain readers get the real
  channels back (FromBlocked), Concat takes no padded input, and elementwise
  ops on padded data are limited to ``_PADDING_SAFE``, which keep the padding
  finite for the next conv's zero weights.  The input is read blocked by b
  when Cin is a multiple of b (or the conv is depthwise); a small Cin (< b,
  e.g. 3 for RGB) is read as blocks of one channel (NCHW1c: a Reshape of the
  same bytes, no conversion); otherwise the input is zero padded to a
  multiple of b.  A depthwise conv on plain input whose output reaches no
  blockable conv stays NCHW (ShuffleNet's: two conversions would cost more
  than the cheap conv gains).  Other convs stay NCHW (the decision says why).
* Ops whose input is already blocked stay blocked:
  - elementwise / broadcasting ops whose other operands are blocked alike
    (same block and channels), scalars, or constants that broadcast against
    the 4-D tensor (``[C,1,1]``, ``[1,C,1,1]``, ``[H,W]``...): these are
    re-laid out at compile time (``[1, C/b, 1, 1, b]``).  A ``[C]`` constant
    broadcasts along W in ONNX, not along C, and is handled as such;
  - inference BatchNormalization (constant params) becomes Mul + Add with
    blocked per-channel constants (scale = gamma / sqrt(var + eps), shift =
    beta - mean * scale, computed as the reference does);
  - MaxPool / AveragePool pool the 5-D tensor with a window of 1 on the
    block axis (kernel [kh, kw, 1], pads 0 there): exact;
  - GlobalAveragePool / GlobalMaxPool -> ReduceMean / ReduceMax over [2, 3];
  - Concat on the channel axis of inputs that are all blocked;
  - DepthToSpace in DCR mode (lower-conv-transpose's phase form) when its
    output channels fill whole blocks: channel ``(i*s + j)*C + c`` is block
    ``(i*s + j)*C/b + c/b``, so the interleave moves whole b-vectors
    (Reshape -> Transpose -> Reshape of the 5-D tensor), if a blocked reader
    takes it (a convertible Conv, or a Concat whose other inputs are blocked:
    the U-Net's skip); for a plain reader it stays one plain kernel.
* Everything else (Reshape, Gemm, Softmax, LRN, graph outputs...) reads one
  ``nnc.FromBlocked`` per value; each plain value is blocked once.

Must not fire without a CPU target (``ctx.target`` None or not a CPU).
Preserves the model's outputs (the reference interpreter runs the nnc ops)
and the names of graph outputs.  Records each conversion left and the total
in ``ctx.stats["layout_conversions"]``.
"""

from __future__ import annotations

from collections import Counter
from typing import Optional

import numpy as np

from ir.dtypes import DType
from ir.graph import Graph, Node, Value
from ir.ops._window import resolve_pads
from ir.ops.layout import (NNC, blocked_layout, blocked_weight_layout, block_broadcast_constant,
                           pack_conv_weight)
from ir.types import TensorType

from .layout_common import drop_replaced, is_per_element
from .manager import PassContext, register_pass

_POOLS = {"MaxPool", "AveragePool"}
# Ops that may run on channel-padded blocked data: from zero padding (and zero-padded constants)
# they make finite values, which the next conv multiplies by its zero weights.
_PADDING_SAFE = {"Add", "Sub", "Mul", "Max", "Min", "Relu", "Clip", "LeakyRelu", "PRelu", "Sigmoid",
                 "HardSigmoid", "HardSwish", "Tanh", "Neg", "Abs", "Identity", "Erf", "Elu", "Selu",
                 "Celu", "Softplus", "Softsign", "Mish", "Gelu", "ThresholdedRelu", "Shrink"}
_GLOBAL_POOLS = {"GlobalAveragePool": "ReduceMean", "GlobalMaxPool": "ReduceMax"}


def _plain_4d(v: Optional[Value]) -> Optional[TensorType]:
    """``v``'s type when it is a plain rank-4 tensor with static C, H and W."""
    t = None if v is None else v.type
    if not isinstance(t, TensorType) or t.layout is not None or t.rank != 4:
        return None
    if not all(isinstance(d, int) for d in t.shape[1:]):
        return None
    return t


class _Rewriter:
    """One walk over the nodes; ``blocked`` maps a plain value to its blocked twin."""

    def __init__(self, graph: Graph, ctx: PassContext, block: int) -> None:
        self.g, self.ctx, self.b = graph, ctx, block
        self.blocked: dict[int, Value] = {}          # id(plain value) -> blocked twin
        self.replaced: list[Node] = []               # plain nodes with a blocked twin
        self.to_blocked: dict[tuple[int, int], Value] = {}
        self.views: dict[tuple[int, str], Value] = {}  # plain values read as NCHW1c
        self.consts: dict[tuple, Value] = {}
        self.kept: Counter = Counter()
        self.convs = 0

    # ------------------------------------------------------------ helpers
    def layout(self) -> str:
        return blocked_layout(2, self.b)

    def emit(self, op: str, inputs: list, attrs: dict, node: Node, *, domain: str = "",
             hint: str = "") -> Value:
        """A blocked twin of ``node``'s output, placed before ``node``."""
        name = hint or f"{node.outputs[0].name}_{self.b}c"
        out = self.g.create_node(op, inputs, attrs, domain=domain, name=node.name,
                                 output_names=[name], before=node).output
        out.type = out.type.with_layout(self.layout())
        return out

    def block_value(self, v: Value, block: int, before: Node) -> Value:
        """``nnc.ToBlocked(v)``, one per value and block."""
        key = (id(v), block)
        if key not in self.to_blocked:
            out = self.g.create_node("ToBlocked", [v], {"block": block}, domain=NNC,
                                     output_names=[f"{v.name}_{block}c"], before=before).output
            self.to_blocked[key] = out
            self.ctx.decide("insert nnc.ToBlocked", value=v.name, block=block,
                            reason=f"read by nnc.ConvNCHWc ({before.describe()})")
        return self.to_blocked[key]

    def plain_as_blocks_of_one(self, v: Value, before: Node) -> Value:
        """``v`` (NCHW) read as NCHW1c: the same bytes, so a Reshape (a view) instead of a conversion.

        For a conv with few input channels (RGB): blocking them (NCHW3c) is a
        strided interleave that cost more than the first convolution's input
        deserves (0.36 ms for a 224x224 image, scalar code), while the direct
        convolution reads one channel per block just as well.
        """
        key = (id(v), "1c")
        if key not in self.views:
            _, c, h, w = v.type.shape
            shape = self.constant(np.array([0, c, h, w, 1], dtype=np.int64), ("shape1c", c, h, w),
                                  f"shape_{c}x{h}x{w}x1")
            self.views[key] = self.g.create_node("Reshape", [v, shape], {}, output_names=[f"{v.name}_1c"],
                                                 before=before).output
            self.ctx.decide("read NCHW as NCHW1c", value=v.name,
                            reason=f"{c} input channels (fewer than the block {self.b}) of "
                                   f"{before.describe()}: a view, no conversion")
        return self.views[key]

    def constant(self, arr: np.ndarray, key: tuple, name: str) -> Value:
        if key not in self.consts:
            c = self.g.add_constant(arr, name)
            if arr.ndim == 5:
                c.type = c.type.with_layout(self.layout())
            self.consts[key] = c
        return self.consts[key]

    def twin(self, v: Value, channels: int) -> Optional[Value]:
        """The blocked form of operand ``v`` of a blocked op, or None if it has none.

        Blocked values need the same channel count; scalars pass through;
        constants broadcasting against the 4-D tensor are re-laid out.
        """
        if id(v) in self.blocked or (id(v), self.b) in self.to_blocked:
            bv = self.blocked.get(id(v)) or self.to_blocked[(id(v), self.b)]
            return bv if v.type.shape[1] == channels else None
        t = v.type
        if not isinstance(t, TensorType) or not t.is_static or t.rank > 4:
            return None
        if t.numel == 1:
            return v
        if v.const is None:
            return None
        arr = self.block_constant(v.const, channels)
        if arr is None or arr.shape[1] * arr.shape[-1] not in (1, self.padded(channels)):
            return None
        return self.constant(arr, (id(v), "bcast"), f"{v.name}_{self.b}c")

    def padded(self, channels: int) -> int:
        """The channel count of a blocked tensor: ``channels`` rounded up to whole blocks."""
        return -(-channels // self.b) * self.b

    def block_constant(self, c: np.ndarray, channels: int) -> Optional[np.ndarray]:
        """``block_broadcast_constant`` for a tensor of ``channels`` channels, its padding zero."""
        if channels % self.b:
            shape = (1,) * (4 - c.ndim) + tuple(c.shape)
            if shape[1] == channels:
                c = np.pad(c.reshape(shape), [(0, 0), (0, self.padded(channels) - channels), (0, 0), (0, 0)])
        return block_broadcast_constant(c, self.b)

    def is_padded(self, v: Value) -> bool:
        """Is ``v``'s blocked twin wider than ``v`` (channels padded to whole blocks)?"""
        bv = self.blocked.get(id(v))
        return bv is not None and bv.type.shape[1] * bv.type.shape[-1] != v.type.shape[1]

    # ----------------------------------------------------------- the rules
    def visit(self, node: Node) -> None:
        if node.domain != "" or len(node.outputs) != 1:
            return
        if node.op == "Conv":
            out = self.conv(node)
        elif not any(id(v) in self.blocked for v in node.inputs if v is not None):
            return
        elif node.op == "BatchNormalization":
            out = self.batchnorm(node)
        elif is_per_element(node):
            out = self.elementwise(node)
        elif node.op in _POOLS:
            out = self.pool(node)
        elif node.op in _GLOBAL_POOLS:
            out = self.global_pool(node)
        elif node.op == "Concat":
            out = self.concat(node)
        elif node.op == "DepthToSpace":
            out = self.depth_to_space(node)
        else:
            out = None
        if out is not None:
            self.blocked[id(node.output)] = out
            self.replaced.append(node)
            if node.op != "Conv":
                self.kept[node.op] += 1

    def conv(self, node: Node) -> Optional[Value]:
        x, w, bias = node.inputs[0], node.input(1), node.input(2)
        reason = self.conv_blocker(node)
        if reason:
            self.ctx.decide("keep Conv in NCHW", node=node.name or node.output.name, reason=reason)
            return None
        cin, cout, group = x.type.shape[1], w.type.shape[0], node.attr("group")
        depthwise = group > 1
        if depthwise and id(x) not in self.blocked and not self.feeds_blockable_conv(node.output):
            self.ctx.decide("keep Conv in NCHW", node=node.name or node.output.name,
                            reason="depthwise conv between plain-layout ops: converting its input and "
                                   "output would move more bytes than blocking it saves",
                            rule="isolated depthwise")
            return None
        if id(x) in self.blocked or depthwise or cin % self.b == 0:
            ib = self.b
        else:
            ib = 1 if cin < self.b else self.b
        if id(x) in self.blocked:
            xb = self.blocked[id(x)]
        elif ib == 1:
            xb = self.plain_as_blocks_of_one(x, node)
        else:
            xb = self.block_value(x, ib, node)
        cout_p = self.padded(cout)
        weight = w.const
        if cout_p != cout:  # zero filters (and biases) for the padding channels: they compute zeros
            weight = np.pad(weight, [(0, cout_p - cout), (0, 0), (0, 0), (0, 0)])
            if bias is not None:
                bias = self.constant(np.pad(bias.const, (0, cout_p - cout)), (id(bias), "padded"),
                                     f"{bias.name}_padded")
            if depthwise:
                cin = group = cout_p
        kernel = list(w.type.shape[2:])
        strides = list(node.attr("strides") or [1, 1])
        dilations = list(node.attr("dilations") or [1, 1])
        pads = resolve_pads(x.type.shape[2:], kernel, strides, dilations, node.attr("pads"),
                            node.attr("auto_pad"))
        key = (id(w), group, ib)
        if key not in self.consts:
            packed = self.g.add_constant(pack_conv_weight(weight, group, ib, self.b),
                                         f"{w.name}_packed")
            packed.type = packed.type.with_layout(blocked_weight_layout(
                1 if depthwise else ib, self.b))
            self.consts[key] = packed
        attrs = {"channels_in": cin, "channels_out": cout_p, "kernel_shape": kernel,
                 "strides": strides, "pads": pads, "dilations": dilations, "group": group,
                 "ic_block": ib, "oc_block": self.b}
        self.convs += 1
        self.ctx.decide("convert Conv to nnc.ConvNCHWc", node=node.name or node.output.name,
                        rule="depthwise" if depthwise else "group 1", ic_block=ib,
                        oc_block=self.b, packed_weight_bytes=int(self.consts[key].const.nbytes),
                        input="blocked already" if id(x) in self.blocked else "ToBlocked",
                        **({"padded_channels": f"{cout} -> {cout_p}"} if cout_p != cout else {}))
        inputs = [xb, self.consts[key]] + ([bias] if bias is not None else [])
        return self.emit("ConvNCHWc", inputs, attrs, node, domain=NNC)

    def feeds_blockable_conv(self, v: Value, depth: int = 8) -> bool:
        """Does ``v`` reach a Conv that can read blocked data, through ops that stay blocked?"""
        for use in v.uses:
            reader = use.node
            if reader.domain != "" or len(reader.outputs) != 1:
                continue
            if reader.op == "Conv" and use.index == 0 and not self.conv_blocker(reader):
                return True
            passes_through = reader.op in _POOLS or reader.op == "BatchNormalization" or is_per_element(reader)
            if passes_through and depth > 0 and self.feeds_blockable_conv(reader.output, depth - 1):
                return True
        return False

    def has_blocked_reader(self, v: Value) -> bool:
        """Is ``v`` read by a Conv that can go blocked or a Concat whose other inputs already are?"""
        for use in v.uses:
            reader = use.node
            if reader.domain != "":
                continue
            if reader.op == "Conv" and use.index == 0 and not self.conv_blocker(reader):
                return True
            if reader.op == "Concat" and all(u is v or (id(u) in self.blocked and not self.is_padded(u))
                                             for u in reader.inputs):
                return True
        return False

    def conv_blocker(self, node: Node) -> str:
        """Why ``node`` (a Conv) cannot become ConvNCHWc; empty when it can."""
        x, w = node.inputs[0], node.input(1)
        t = _plain_4d(x)
        if t is None or t.dtype != DType.F32:
            return "not a 2-D f32 convolution with static channels and spatial dims"
        if w is None or w.const is None:
            return "the weight is not a constant"
        cin, cout, group = t.shape[1], w.type.shape[0], node.attr("group")
        if group != 1 and not group == cin == cout:
            return f"grouped convolution (group {group}, {cin} -> {cout} channels) " \
                   "is neither group 1 nor depthwise"
        bias = node.input(2)
        if cout % self.b and bias is not None and bias.const is None:
            return f"output channels {cout} are not a multiple of the block {self.b} and the bias " \
                   "is not a constant (the padding channels need a zero bias)"
        return ""

    def elementwise(self, node: Node) -> Optional[Value]:
        t = node.output.type
        if not isinstance(t, TensorType) or t.rank != 4:
            return None
        channels = next(v.type.shape[1] for v in node.inputs if id(v) in self.blocked)
        if t.shape[1] != channels:
            return None
        if node.op not in _PADDING_SAFE and any(v is not None and self.is_padded(v) for v in node.inputs):
            return None  # it could turn the zero padding into inf/NaN, which the next conv would spread
        inputs = []
        for v in node.inputs:
            bv = None if v is None else self.twin(v, channels)
            if v is not None and bv is None:
                return None
            inputs.append(bv)
        return self.emit(node.op, inputs, dict(node.attrs), node)

    def batchnorm(self, node: Node) -> Optional[Value]:
        params = node.inputs[1:5]
        if node.attr("training_mode") or len(params) != 4 or \
                any(p is None or p.const is None for p in params):
            return None
        x = node.inputs[0]
        if x.dtype != DType.F32 or x.type.rank != 4:
            return None
        scale, beta, mean, var = (p.const.astype(np.float32) for p in params)
        a = scale / np.sqrt(var + np.float32(node.attr("epsilon")))
        shift = beta - mean * a
        blocked = [self.block_constant(c.reshape(-1, 1, 1), x.type.shape[1]) for c in (a, shift)]
        if any(c is None for c in blocked):
            return None
        base = node.output.name
        ca = self.constant(blocked[0], (id(node), "scale"), f"{base}_scale_{self.b}c")
        cs = self.constant(blocked[1], (id(node), "shift"), f"{base}_shift_{self.b}c")
        mul = self.emit("Mul", [self.blocked[id(x)], ca], {}, node, hint=f"{base}_mul_{self.b}c")
        return self.emit("Add", [mul, cs], {}, node)

    def pool(self, node: Node) -> Optional[Value]:
        kernel = list(node.attr("kernel_shape"))
        if len(kernel) != 2:
            return None
        attrs = dict(node.attrs)
        attrs["kernel_shape"] = kernel + [1]
        attrs["strides"] = list(node.attr("strides") or [1, 1]) + [1]
        attrs["dilations"] = list(node.attr("dilations") or [1, 1]) + [1]
        pads = list(node.attr("pads") or [0, 0, 0, 0])
        if node.attr("auto_pad") in (None, "NOTSET"):
            attrs["pads"] = pads[:2] + [0] + pads[2:] + [0]
        else:
            attrs.pop("pads", None)  # SAME_* / VALID pad nothing on a window of 1
        return self.emit(node.op, [self.blocked[id(node.inputs[0])]], attrs, node)

    def global_pool(self, node: Node) -> Optional[Value]:
        if node.inputs[0].type.rank != 4:
            return None
        axes = self.constant(np.array([2, 3], dtype=np.int64), ("axes23",), "axes_hw")
        return self.emit(_GLOBAL_POOLS[node.op], [self.blocked[id(node.inputs[0])], axes],
                         {"keepdims": 1}, node)

    def concat(self, node: Node) -> Optional[Value]:
        t = node.output.type
        if not isinstance(t, TensorType) or t.rank != 4 or node.attr("axis") not in (1, -3):
            return None
        if not all(id(v) in self.blocked and not self.is_padded(v) for v in node.inputs):
            return None  # (padding channels would land between the inputs' channels)
        return self.emit("Concat", [self.blocked[id(v)] for v in node.inputs], {"axis": 1}, node)

    def depth_to_space(self, node: Node) -> Optional[Value]:
        x, t = node.inputs[0], node.output.type
        if (node.attr("mode") or "DCR") != "DCR" or not isinstance(t, TensorType) or t.rank != 4 \
                or t.shape[1] % self.b or self.is_padded(x):
            return None
        if not self.has_blocked_reader(node.output):
            return None  # a plain reader: the plain DepthToSpace converts once (measured 2x faster)
        s = node.attr("blocksize")
        n, cb, h, w, b = self.blocked[id(x)].type.shape
        co = cb // (s * s)
        name = node.output.name

        def shape(dims: list, tag: str) -> Value:
            return self.constant(np.array(dims, dtype=np.int64), (id(node), tag), f"{name}_{tag}")
        phases = self.g.create_node("Reshape", [self.blocked[id(x)], shape([-1, s, s, co, h, w, b], "phases")],
                                    {}, name=node.name, output_names=[f"{name}_phases_{self.b}c"],
                                    before=node).output
        moved = self.g.create_node("Transpose", [phases], {"perm": [0, 3, 4, 1, 5, 2, 6]}, name=node.name,
                                   output_names=[f"{name}_interleaved_{self.b}c"], before=node).output
        return self.emit("Reshape", [moved, shape([-1, co, h * s, w * s, b], "blocked")], {}, node)

    # --------------------------------------------------------- conversions
    def finish(self) -> int:
        """Drop the replaced plain nodes; plain readers left get one FromBlocked each."""
        def from_blocked(bv: Value, out: Value) -> Value:
            return self.g.create_node("FromBlocked", [bv], {"channels": out.type.shape[1]}, domain=NNC,
                                      output_names=[f"{out.name}_nchw"], after=bv.producer).output
        return drop_replaced(self.g, self.ctx, self.replaced, self.blocked, from_blocked,
                             "insert nnc.FromBlocked")


@register_pass("layout-nchwc")
def layout_nchwc(graph: Graph, ctx: PassContext, *, block: int = 0) -> bool:
    """Blocked NCHW[x]c layout for 2-D convolutions and the ops around them (CPU)."""
    target = ctx.target
    if target is None or target.kind != "cpu":
        ctx.decide("skip layout-nchwc", reason="no CPU target" if target is None
                   else f"target kind {target.kind!r} is not a CPU")
        return False
    b = block or target.vector_lanes_f32
    if b < 2:
        ctx.decide("skip layout-nchwc", reason=f"block {b}: nothing to vectorize")
        return False
    rw = _Rewriter(graph, ctx, b)
    for node in list(graph.nodes):
        rw.visit(node)
    if not rw.convs:
        ctx.decide("layout-nchwc changed nothing", reason="no convertible convolution", block=b)
        return False
    from_blocked = rw.finish()
    to_blocked = len(rw.to_blocked)
    total = to_blocked + from_blocked
    ctx.stats["layout_conversions"] = ctx.stats.get("layout_conversions", 0) + total
    ctx.decide("blocked layout NCHW%dc" % b, convs=rw.convs, kept_blocked=dict(rw.kept),
               to_blocked=to_blocked, from_blocked=from_blocked, conversions_left=total,
               conversions_if_converted_per_conv=2 * rw.convs,
               rule="a conversion only where a plain reader or a plain producer meets blocked data")
    return True
