"""Graph -> program: which unit runs each kernel, the GEMM view and tiling of array ops, DRAM addresses.

The target owns these rules:

* a kernel whose anchor the array computes (``numerics.is_array_op``: Conv,
  ConvNHWC, Gemm, MatMul and their quantized forms) becomes a ``gemm`` layer:
  DMA loads of its filter, input and any epilogue operand, one ``gemm`` loop
  instruction, one ``vec`` instruction per epilogue op of its fused group
  (bias, activation, residual add, requantization: applied as outputs drain),
  a DMA store and a sync;
* views alias their input (``view``);
* elementwise, broadcast, reduction (pooling, softmax), index-map and
  quantize/dequantize ops run on the vector unit (``vec``), with loads/stores;
* anything else (shape computations, control flow, sequences, dynamic shapes)
  goes to the host CPU with the reason stated in the program and the report.

The dataflow is the ``schedule`` pass's choice when it made one (it reads the
same configuration through ``TargetInfo``), else the configured one, else the
one with the fewest cycles in the model.
"""

from __future__ import annotations

import math
from dataclasses import asdict
from typing import Optional

from ir.anchor import anchor_of
from ir.graph import Graph, Node, Value
from ir.memory import ALIGNMENT
from ir.registry import BROADCAST, ELEMENTWISE, INJECTIVE, REDUCTION
from ir.types import TensorType

from .config import ArrayConfig
from .model import simulate_gemm
from .numerics import is_array_op, is_gemm_like
from .program import DRAM_ACTIVATIONS, DRAM_INPUTS, DRAM_WEIGHTS, Instruction, Layer, Program

_VECTOR_KINDS = (ELEMENTWISE, BROADCAST, REDUCTION, INJECTIVE)
_VECTOR_OPAQUE = {"QuantizeLinear": 2.0, "DequantizeLinear": 2.0, "DynamicQuantizeLinear": 4.0,
                  "Softmax": 5.0, "LogSoftmax": 5.0}
# Array ops whose output passes through the requantizer (bias add, scale, round, clamp).
_REQUANTIZING = ("QLinearConv", "QLinearMatMul", "QGemm")
_ALIGN = ALIGNMENT  # DRAM tensors aligned like the arena


def _static(v: Optional[Value]) -> Optional[tuple[int, ...]]:
    t = None if v is None else v.type
    if not isinstance(t, TensorType) or t.shape is None or not all(isinstance(d, int) for d in t.shape):
        return None
    return tuple(t.shape)


def _words(v: Optional[Value]) -> int:
    """Elements of a static tensor (1 for a scalar), 0 when unknown."""
    shape = _static(v)
    return math.prod(shape) if shape is not None else 0


def gemm_view(node: Node) -> Optional[tuple[int, int, int, int]]:
    """(M, K, N, groups) of an array op with static shapes, else None."""
    op = node.op
    out = _static(node.outputs[0])
    if out is None:
        return None
    if op in ("Conv", "QLinearConv", "ConvInteger"):
        w = _static(node.input(3 if op == "QLinearConv" else 1))
        if w is None:
            return None
        g = node.attr("group") or 1
        return out[0] * math.prod(out[2:]), math.prod(w[1:]), w[0] // g, g
    if op == "ConvNHWC":
        w = _static(node.input(1))
        if w is None:
            return None
        g = node.attr("group") or 1
        return math.prod(out[:-1]), w[0] * w[1] * w[2], w[3] // g, g
    if node.domain == "nnc" and op == "QConv":       # fold-qdq's integer conv: NCHW, weights packed [M, Kp]
        x = _static(node.inputs[0])
        if x is None:
            return None
        g = node.attr("group") or 1
        return out[0] * math.prod(out[2:]), x[1] // g * math.prod(node.attr("kernel_shape")), \
            node.attr("channels_out") // g, g
    if node.domain == "nnc" and op == "QMatMul":     # A[..., M, K] @ B[K, n], B packed
        a = _static(node.inputs[0])
        return None if a is None else (math.prod(out[:-1]), a[-1], node.attr("n"), 1)
    if op in ("Gemm", "QGemm"):
        a = _static(node.input(0))
        if a is None:
            return None
        return out[0], (a[0] if node.attr("transA") else a[1]), out[1], 1
    if op in ("MatMul", "QLinearMatMul", "MatMulInteger"):
        a = _static(node.input(0))
        b = _static(node.input(3 if op == "QLinearMatMul" else 1))
        if a is None or b is None:
            return None
        k = a[-1]
        if len(b) <= 2:
            return (math.prod(out[:-1]) if len(a) > 1 else 1), k, (b[-1] if len(b) == 2 else 1), 1
        return out[-2] if len(a) > 1 else 1, k, out[-1], math.prod(out[:-2])
    return None


def _weight_index(node: Node) -> int:
    return 3 if node.op in ("QLinearConv", "QLinearMatMul", "QGemm") else 1


def host_reason(node: Node) -> Optional[str]:
    """Why ``node`` cannot run on the array or the vector unit (None when it can)."""
    for v in list(node.inputs) + list(node.outputs):
        if v is not None and not isinstance(v.type, TensorType):
            return f"{v.type} values are not tensors in the accelerator's memory"
    for v in node.outputs:
        if _static(v) is None:
            return "output shape known only at run time"
        if v.type.dtype.np.kind not in "iuf b":
            return f"{v.type.dtype.short} data has no datapath on the accelerator"
    body = node.attrs.get("body") if node.domain == "nnc" and node.op == "Fused" else None
    ops = list(body.nodes) if body is not None else [node]
    for n in ops:
        if is_array_op(n) or n.schema.view or n.op in _VECTOR_OPAQUE or n.schema.kind in _VECTOR_KINDS:
            continue
        if is_gemm_like(n):
            dt = n.inputs[0].type.dtype.short if n.inputs and isinstance(n.inputs[0].type, TensorType) else "?"
            return f"{n.qualified_op} on {dt} data: the array multiplies int8 (quantized ops) or fp32"
        if n.domain == "" and n.op in ("Shape", "Size", "ConstantOfShape", "NonZero", "Range"):
            return f"{n.op} computes shapes or indices, a host job"
        return f"{n.qualified_op} is neither a GEMM nor a vector-unit op"
    return None


def _ops_per_element(node: Node) -> float:
    """Vector-unit lane operations per output element (reductions: per input element)."""
    if node.op in _VECTOR_OPAQUE:
        return _VECTOR_OPAQUE[node.op]
    if node.schema.kind == REDUCTION:
        ins = _static(node.inputs[0]) if node.inputs else None
        outs = _static(node.outputs[0])
        if ins and outs:
            return max(1.0, math.prod(ins) / max(1, math.prod(outs)))
    return 1.0


class _Dram:
    """A bump allocator of DRAM byte addresses per region."""

    def __init__(self, word_bytes: int) -> None:
        self.word_bytes = word_bytes
        self.next = {"input": DRAM_INPUTS, "act": DRAM_ACTIVATIONS, "weight": DRAM_WEIGHTS}
        self.map: dict[str, list[int]] = {}

    def addr(self, v: Value, region: str) -> int:
        if v.name not in self.map:
            words = _words(v)
            a = self.next[region]
            self.next[region] = a + -(-words * self.word_bytes // _ALIGN) * _ALIGN
            self.map[v.name] = [a, words]
        return self.map[v.name][0]


def choose_word(graph: Graph) -> str:
    """int8 when every array op's operands are integers, else fp32 (the ``word`` option's auto)."""
    for node in graph.nodes:
        a = anchor_of(node)
        if is_array_op(a) and a.inputs and isinstance(a.inputs[0].type, TensorType) \
                and a.inputs[0].type.dtype.np.kind == "f":
            return "fp32"
    return "int8"


def lower(graph: Graph, cfg: ArrayConfig) -> Program:
    """The program for ``graph`` (after the systolic pipeline) on the array ``cfg``."""
    dram = _Dram(cfg.word_bytes)
    graph_inputs = {v.name for v in graph.inputs}

    def region(v: Value) -> str:
        return "weight" if v.const is not None else ("input" if v.name in graph_inputs else "act")

    def load(v: Value, sram: str, words: int, pattern: str, blocks: tuple[int, int] = (1, 0)) -> Instruction:
        # A resident operand sits at the buffer's start; a streamed one alternates between its halves.
        return Instruction("dma.load", {"tensor": v.name, "dram": dram.addr(v, region(v)), "sram": sram,
                                        "sram_addr": 0, "words": int(words), "pattern": pattern,
                                        "blocks": blocks[0], "block_words": blocks[1] or int(words),
                                        "double_buffered": pattern != "resident"})

    def store(v: Value, words: int, sram: str = "ofmap", blocks: tuple[int, int] = (1, 0)) -> Instruction:
        return Instruction("dma.store", {"tensor": v.name, "dram": dram.addr(v, "act"), "sram": sram,
                                         "sram_addr": 0, "words": int(words), "pattern": "drain",
                                         "blocks": blocks[0], "block_words": blocks[1] or int(words),
                                         "double_buffered": True})

    layers: list[Layer] = []
    for index, node in enumerate(graph.nodes):
        name = node.name or node.outputs[0].name
        anchor = anchor_of(node)
        label = node.attrs.get("pattern", node.qualified_op) if node.op == "Fused" else node.qualified_op
        dims = gemm_view(anchor) if is_array_op(anchor) else None
        why = host_reason(node)
        if why is None and is_array_op(anchor) and dims is None:
            why = "no static GEMM view of this op"
        if dims is not None and why is None:
            layers.append(_gemm_layer(name, index, label, node, anchor, dims, cfg, load, store))
        elif node.schema.view:
            layers.append(Layer(name, index, "view", label, [Instruction(
                "view", {"what": node.qualified_op, "tensor": node.outputs[0].name,
                         "of": node.inputs[0].name if node.inputs else ""})]))
        elif why is not None:
            layers.append(Layer(name, index, "host", label, [Instruction(
                "host", {"what": node.qualified_op, "reason": why})]))
        else:
            layers.append(_vector_layer(name, index, label, node, load, store))
    return Program(config={**asdict(cfg), "mode": cfg.mode}, layers=layers, dram=dram.map)


def _gemm_layer(name: str, index: int, label: str, node: Node, anchor: Node, dims: tuple[int, int, int, int],
                cfg: ArrayConfig, load, store) -> Layer:
    m, k, n, g = dims
    sched = node.schedule
    flow = (sched.dataflow if sched is not None and sched.dataflow else cfg.dataflow) or min(
        ("os", "ws", "is"), key=lambda f: simulate_gemm(m, k, n, g, f, cfg, cfg.mode).total_cycles)
    x_shape = _static(anchor.inputs[0]) or ()
    raw = math.prod(x_shape) // g if x_shape else 0
    ifmap_words = raw if raw < m * k else 0      # a conv's input, expanded into patches on chip
    stats = simulate_gemm(m, k, n, g, flow, cfg, cfg.mode, ifmap_words)
    rows = {"os": m, "ws": k, "is": k}[flow]
    cols = {"os": n, "ws": n, "is": m}[flow]
    stream = {"os": k, "ws": m, "is": n}[flow]
    resident = lambda total, which: "resident" if total <= cfg.sram_words(which) // 2 else "per-fold"  # noqa: E731
    ins: list[Instruction] = []
    # Anchor operands: node inputs as seen from outside the fused group.
    outer = {v.name: v for v in node.inputs if v is not None}
    x = anchor.inputs[0]
    w = anchor.input(_weight_index(anchor))
    if w is not None:
        ins.append(load(_outer(w, node, outer), "filter", stats.dram["filter_reads"],
                        resident(k * n * g, "filter"), _per_layer(stats, "filter", g)))
    ins.append(load(_outer(x, node, outer), "ifmap", stats.dram["ifmap_reads"],
                    resident((ifmap_words or m * k) * g, "ifmap"), _per_layer(stats, "ifmap", g)))
    if stats.dram["ofmap_reads"]:
        ins.append(load(node.outputs[0], "ofmap", stats.dram["ofmap_reads"], "partial-sums",
                        _per_layer(stats, "partials", g)))
    # Epilogue operands from outside (a residual Add's other input): read by the vector unit.
    anchor_ins = {v.name for v in anchor.inputs if v is not None}
    for v in node.inputs:
        if v is not None and v.const is None and v.name not in anchor_ins and x.name != v.name:
            ins.append(load(v, "vector", _words(v), "stream"))
    ins.append(Instruction("gemm", {
        "dataflow": flow, "m": m, "k": k, "n": n, "groups": g, "rows": cfg.rows, "cols": cfg.cols,
        "row_folds": -(-rows // cfg.rows), "col_folds": -(-cols // cfg.cols), "stream": stream,
        "k_chunk": k if flow == "os" else cfg.rows, "ifmap_words": ifmap_words, "anchor": anchor.qualified_op,
        "out": node.outputs[0].name, "ifmap_sram": "ifmap", "filter_sram": "filter", "ofmap_sram": "ofmap"}))
    if anchor.domain == "nnc" and anchor.op in ("QConv", "QMatMul"):
        # int32 bias, then (with an output zero point) scale, round, add the zero point, clamp.
        requant = anchor.input(7) is not None
        ins.append(Instruction("vec", {"what": "bias + requantize (epilogue)" if requant else "bias (epilogue)",
                                       "elements": _words(anchor.outputs[0]),
                                       "ops_per_element": 4.0 if requant else 1.0, "epilogue": True}))
    elif anchor.op in _REQUANTIZING and anchor.outputs[0].type.dtype.np.kind in "iu" \
            and not (anchor.op == "QGemm" and anchor.input(8) is None):
        ins.append(Instruction("vec", {"what": "requantize (epilogue)", "elements": _words(anchor.outputs[0]),
                                       "ops_per_element": 3.0, "epilogue": True}))
    if node.domain == "nnc" and node.op == "Fused":
        for n_ in node.attrs["body"].nodes:
            if n_ is anchor or n_.schema.view:
                continue
            ins.append(Instruction("vec", {"what": n_.qualified_op + " (epilogue)",
                                           "elements": _words(n_.outputs[0]),
                                           "ops_per_element": _ops_per_element(n_), "epilogue": True}))
    ins.append(store(node.outputs[0], stats.dram["ofmap_writes"], "ofmap", _per_layer(stats, "ofmap", g)))
    ins.append(Instruction("sync"))
    return Layer(name, index, "gemm", label, ins)


def _per_layer(stats, operand: str, groups: int) -> tuple[int, int]:
    """(DMA transfers for the whole layer, largest transfer in words) of one operand."""
    count, largest = stats.transfers.get(operand, (1, 0))
    return count * groups, largest


def _outer(v: Value, node: Node, outer: dict[str, Value]) -> Value:
    """A fused body's value as the group's own input (or constant) when it is one."""
    return outer.get(v.name, v)


def _vector_layer(name: str, index: int, label: str, node: Node, load, store) -> Layer:
    ins = [load(v, "vector", _words(v), "stream") for v in node.inputs
           if v is not None and _static(v) is not None]
    body = node.attrs["body"].nodes if node.domain == "nnc" and node.op == "Fused" else [node]
    for n in body:
        if n.schema.view:
            continue
        ins.append(Instruction("vec", {"what": n.qualified_op, "elements": _words(n.outputs[0]),
                                       "ops_per_element": _ops_per_element(n), "epilogue": False}))
    for v in node.outputs:
        ins.append(store(v, _words(v), "vector"))
    ins.append(Instruction("sync"))
    return Layer(name, index, "vector", label, ins)
