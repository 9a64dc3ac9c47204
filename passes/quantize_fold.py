"""fold-qdq: quantized conv/matmul patterns -> ``nnc.QConv`` / ``nnc.QMatMul`` (and adds, max pools).

Rewrites (weights must be constants; activations' scales and zero points
per tensor):

* ``DequantizeLinear(x) -> Conv|MatMul|Gemm(., DequantizeLinear(W) [, DequantizeLinear(int32 bias)])
  [-> Relu | Clip(const, const)] -> QuantizeLinear`` (the QDQ form onnxruntime's
  quantizer writes, and ours), W int8/uint8 or int4/uint4 (unpacked to 8 bits);
* ``QLinearConv``, ``QLinearMatMul``, ``com.microsoft.QGemm`` with a quantized output;
* ``ConvInteger``, ``MatMulInteger`` (int32 output, no requantization; their
  input zero point may be a run-time value, as dynamic quantization makes it).

* ``DQ + DQ -> Add`` (or a two-input ``Sum``) ``[-> Relu|Clip] -> Q`` into
  ``nnc.QAdd``: the float group's own float32 steps on the 8-bit data (not
  QLinearAdd's arithmetic: onnxruntime's cpu provider (1.32) runs this group
  in float, and its outputs equal the unoptimized QDQ graph's), so it changes
  no value, only the memory traffic;
* ``DQ -> MaxPool -> Q`` with the same scale and zero point into a MaxPool on
  the 8-bit data (exact: the maximum commutes with a monotonic map).

Integer arithmetic is what onnxruntime runs for these patterns (it fuses the
same QDQ groups into QLinearConv/QLinearMatMul), so the rewritten graph matches
it on ``ref`` bit for bit where the float32 requantization multiplier is formed
in the same order (``ir.quant.output_multiplier``).  Relu/Clip become saturation
bounds (``ir.quant.activation_bounds``).

Must not fire when an intermediate value has another reader or is a graph
output, when weights are not constant, when scales are per-row or blocked, or
when a Gemm has transA/alpha/beta other than the defaults.  Run it before
``fold-constants``, which would fold the weights' DequantizeLinear into floats.
"""

from __future__ import annotations

from typing import Any, Optional

import numpy as np

from ir import quant
from ir.dtypes import DType
from ir.graph import Graph, Node, Value
from ir.ops.qlinear_nnc import NNC, weight_colsum
from ir.ops.quantization import _conv_geometry

from .manager import PassContext, register_pass

Q8 = (np.uint8, np.int8)


# 4-bit weights are unpacked at build time into the 8-bit kernels (same values, twice the bytes).
WEIGHT_TYPES = (DType.I8, DType.U8, DType.I4, DType.U4)


def _widen_4bit(a: np.ndarray) -> np.ndarray:
    """int4/uint4 arrays as int8/uint8 (the values the integer kernels multiply)."""
    dt = DType.from_numpy(a.dtype)
    if dt == DType.I4:
        return a.astype(np.int8)
    if dt == DType.U4:
        return a.astype(np.uint8)
    return a


# ------------------------------------------------------------------ matching
def _const(v: Optional[Value]) -> Optional[np.ndarray]:
    return None if v is None else v.const


def _sole_reader(v: Value) -> Optional[Node]:
    users = v.users
    if len(users) != 1 or v.is_graph_output:
        return None
    return users[0]


def _dq(v: Optional[Value], *, const_data: bool) -> Optional[dict[str, Any]]:
    """The parts of ``DequantizeLinear`` producing ``v``: data, scale, zero point, axis."""
    if v is None or v.producer is None:
        return None
    n = v.producer
    if n.op != "DequantizeLinear" or n.domain or n.attr("block_size"):
        return None
    data, scale, zp = n.input(0), _const(n.input(1)), n.input(2)
    if scale is None or (zp is not None and zp.const is None):
        return None
    if const_data and data.const is None:
        return None
    zpc = np.zeros((), data.type.dtype.np) if zp is None else zp.const
    return {"node": n, "data": data, "scale": scale.astype(np.float32), "zp": zpc,
            "axis": n.attr("axis")}


def _per_tensor(*arrays: np.ndarray) -> bool:
    return all(quant.is_per_tensor(np.asarray(a)) for a in arrays)


def _vector(p: np.ndarray, n: int, dtype) -> np.ndarray:
    """A per-tensor or per-channel parameter as a length-``n`` vector."""
    p = np.asarray(p).reshape(-1)
    return np.broadcast_to(p, (n,)).astype(dtype) if p.size == 1 else p.astype(dtype)


def _output_chain(y: Value) -> Optional[tuple[list[Node], Optional[dict], tuple[Optional[float], Optional[float]]]]:
    """``y -> [Relu|Clip] -> QuantizeLinear``: (nodes to remove, Q's parts, real activation bounds)."""
    nodes, lo, hi = [], None, None
    r = _sole_reader(y)
    if r is not None and not r.domain and r.op in ("Relu", "Clip"):
        if r.op == "Relu":
            lo = 0.0
        else:
            mn, mx = r.input(1), r.input(2)
            if (mn is not None and mn.const is None) or (mx is not None and mx.const is None):
                return None
            lo = None if mn is None else float(mn.const)
            hi = None if mx is None else float(mx.const)
        nodes.append(r)
        r = _sole_reader(r.output)
    if r is None or r.domain or r.op != "QuantizeLinear" or r.attr("block_size"):
        return None
    scale, zp = _const(r.input(1)), r.input(2)
    if scale is None or (zp is not None and zp.const is None) or r.attr("output_dtype") not in (0, None):
        return None
    zpc = np.zeros((), np.uint8) if zp is None else zp.const
    if zpc.dtype not in Q8 or not _per_tensor(scale, zpc) or scale.dtype != np.float32:
        return None
    nodes.append(r)
    return nodes, {"scale": scale.astype(np.float32), "zp": zpc}, (lo, hi)


# ------------------------------------------------------------------ building
def _bounds(zp: Optional[np.ndarray], scale: Optional[np.ndarray], lo, hi) -> dict[str, int]:
    if zp is None or (lo is None and hi is None):
        return {}
    dt = DType.from_numpy(zp.dtype)
    a, b = quant.activation_bounds(dt, int(zp.reshape(-1)[0]), float(scale.reshape(-1)[0]), lo, hi)
    return {"act_min": a, "act_max": b}


def _emit(graph: Graph, anchor: Node, op: str, x: Value, x_zp: Value, w_packed: np.ndarray,
          w_zp: np.ndarray, colsum: np.ndarray, bias: np.ndarray, mult: np.ndarray,
          y_zp: Optional[np.ndarray], attrs: dict, replaced: Value, remove: list[Node]) -> Node:
    base = replaced.name
    c = graph.add_constant
    ins = [x, c(w_packed, base + "_qw"), c(bias.astype(np.int32), base + "_qbias"),
           c(mult.astype(np.float32), base + "_qmult"), x_zp, c(w_zp.astype(np.int32), base + "_qwzp"),
           c(colsum, base + "_qcolsum")]
    if y_zp is not None:
        ins.append(c(np.asarray(y_zp).reshape(()), base + "_qyzp"))
    node = graph.create_node(op, ins, attrs, domain=NNC, output_names=[base + "_q"], before=anchor)
    graph.replace_all_uses(replaced, node.output)
    for n in reversed(remove):
        if n.graph is graph and not any(o.uses or o.is_graph_output for o in n.outputs):
            graph.remove_node(n)
    return node


def _conv_parts(x: Value, w: np.ndarray, attrs: dict) -> Optional[dict]:
    """nnc.QConv attributes with explicit pads; None when not a static 2-D convolution."""
    if w.ndim != 4 or x.type.shape is None or len(x.type.shape) != 4:
        return None
    kernel = tuple(attrs.get("kernel_shape") or w.shape[2:])
    strides, dil, begin, end = _conv_geometry(tuple(x.type.shape[2:]), kernel, attrs)
    if any(p is None for p in begin + end):
        return None
    return {"kernel_shape": list(kernel), "strides": list(strides), "pads": list(begin) + list(end),
            "dilations": list(dil), "group": attrs.get("group") or 1, "channels_out": int(w.shape[0])}


def _zp_value(graph: Graph, zp: Optional[Value], zpc: np.ndarray, name: str) -> Value:
    return zp if zp is not None else graph.add_constant(np.asarray(zpc).reshape(()), name)


def _fold_conv_like(graph: Graph, anchor: Node, x: Value, x_zp: Value, w: np.ndarray, w_zp: np.ndarray,
                    bias: Optional[np.ndarray], mult: Optional[np.ndarray], y_zp: Optional[np.ndarray],
                    bounds: dict, replaced: Value, remove: list[Node]) -> Optional[Node]:
    parts = _conv_parts(x, w, anchor.attrs)
    if parts is None:
        return None
    m = w.shape[0]
    ws, wzp = quant.to_signed_weights(w, _vector(w_zp, m, np.int32))
    packed = quant.pack_conv_weights(ws)
    bias_v = np.zeros(m, np.int32) if bias is None else _vector(bias, m, np.int32)
    mult_v = np.ones(m, np.float32) if mult is None else _vector(mult, m, np.float32)
    return _emit(graph, anchor, "QConv", x, x_zp, packed, wzp, weight_colsum(ws.reshape(m, -1)), bias_v,
                 mult_v, y_zp, {**parts, **bounds}, replaced, remove)


def _fold_matmul_like(graph: Graph, anchor: Node, x: Value, x_zp: Value, b_kn: np.ndarray, w_zp: np.ndarray,
                      bias: Optional[np.ndarray], mult: Optional[np.ndarray], y_zp: Optional[np.ndarray],
                      bounds: dict, replaced: Value, remove: list[Node]) -> Optional[Node]:
    if b_kn.ndim != 2 or x.type.rank is None or x.type.rank < 2:
        return None
    n = b_kn.shape[1]
    ws, wzp = quant.to_signed_weights(b_kn, _vector(w_zp, n, np.int32))
    bias_v = np.zeros(n, np.int32) if bias is None else _vector(bias, n, np.int32)
    mult_v = np.ones(n, np.float32) if mult is None else _vector(mult, n, np.float32)
    return _emit(graph, anchor, "QMatMul", x, x_zp, quant.pack_matmul_weights(ws), wzp,
                 weight_colsum(ws.T), bias_v, mult_v, y_zp, {"n": int(n), **bounds}, replaced, remove)


# ------------------------------------------------------------------ patterns
def _fold_qdq(graph: Graph, node: Node) -> Optional[Node]:
    """DQ -> Conv/MatMul/Gemm -> [Relu|Clip] -> Q."""
    if node.domain or node.op not in ("Conv", "MatMul", "Gemm"):
        return None
    xd = _dq(node.input(0), const_data=False)
    wd = _dq(node.input(1), const_data=True)
    if xd is None or wd is None or not _per_tensor(xd["scale"], xd["zp"]):
        return None
    if xd["data"].type.dtype.np not in Q8 or wd["data"].type.dtype not in WEIGHT_TYPES:
        return None
    chain = _output_chain(node.output)
    if chain is None:
        return None
    tail, qy, (lo, hi) = chain
    w, wd["zp"] = _widen_4bit(wd["data"].const), _widen_4bit(np.asarray(wd["zp"]))
    bias = None
    b_in = node.input(2)
    if b_in is not None:
        bd = _dq(b_in, const_data=True)
        if bd is None or bd["data"].type.dtype != DType.I32 or np.any(bd["zp"] != 0):
            return None
        bias = bd["data"].const
    if node.op == "Gemm":
        if node.attr("transA") or float(node.attr("alpha")) != 1.0 or \
                (b_in is not None and float(node.attr("beta")) != 1.0):
            return None
        trans = bool(node.attr("transB"))
        if w.ndim != 2 or (not _per_tensor(wd["scale"]) and wd["axis"] % 2 != (0 if trans else 1)):
            return None
        w = w.T if trans else w
    elif node.op == "MatMul":
        if w.ndim != 2 or (not _per_tensor(wd["scale"]) and wd["axis"] % 2 != 1):
            return None
    elif not _per_tensor(wd["scale"]) and wd["axis"] != 0:
        return None
    mult = quant.output_multiplier(xd["scale"].reshape(()), wd["scale"].reshape(-1), qy["scale"].reshape(()))
    bounds = _bounds(qy["zp"], qy["scale"], lo, hi)
    remove = [node] + tail
    for d in (node.input(0).producer, node.input(1).producer, None if b_in is None else b_in.producer):
        if d is not None:
            remove.append(d)
    x_zp = graph.add_constant(np.asarray(xd["zp"]).reshape(()), node.output.name + "_qxzp")
    fold = _fold_conv_like if node.op == "Conv" else _fold_matmul_like
    return fold(graph, node, xd["data"], x_zp, w, wd["zp"], bias, mult, qy["zp"], bounds,
                tail[-1].output, remove)


def _fold_add(graph: Graph, node: Node) -> Optional[Node]:
    """DQ + DQ -> Add (or a Sum of two) [-> Relu|Clip] -> Q  ->  nnc.QAdd (the float32 steps, on 8-bit data)."""
    parts = [_dq(node.input(i), const_data=False) for i in (0, 1)]
    if any(p is None or p["data"].type.dtype.np not in Q8 or not _per_tensor(p["scale"], p["zp"])
           for p in parts):
        return None
    chain = _output_chain(node.output)
    if chain is None:
        return None
    tail, qy, (lo, hi) = chain
    base = node.output.name
    c = graph.add_constant
    ins = []
    for i, p in enumerate(parts):
        ins += [p["data"], c(p["scale"].reshape(()), f"{base}_s{i}"), c(np.asarray(p["zp"]).reshape(()), f"{base}_zp{i}")]
    ins += [c(qy["scale"].reshape(()), base + "_ys"), c(np.asarray(qy["zp"]).reshape(()), base + "_yzp")]
    new = graph.create_node("QAdd", ins, _bounds(qy["zp"], qy["scale"], lo, hi), domain=NNC,
                            output_names=[base + "_q"], before=node)
    graph.replace_all_uses(tail[-1].output, new.output)
    for n in reversed([node.input(0).producer, node.input(1).producer, node] + tail):
        if n.graph is graph and not any(o.uses or o.is_graph_output for o in n.outputs):
            graph.remove_node(n)
    return new


def _fold_maxpool(graph: Graph, node: Node) -> Optional[Node]:
    """DQ -> MaxPool -> Q with the same scale and zero point  ->  MaxPool on the 8-bit data.

    Dequantizing is monotonic, so the maximum commutes with it, and quantizing
    a dequantized value with its own parameters gives it back: exact.
    """
    if len([o for o in node.outputs if o.uses or o.is_graph_output]) != 1 or node.output is not node.outputs[0]:
        return None
    p = _dq(node.input(0), const_data=False)
    if p is None or p["data"].type.dtype.np not in Q8 or not _per_tensor(p["scale"], p["zp"]):
        return None
    q = _sole_reader(node.output)
    if q is None or q.op != "QuantizeLinear" or q.domain:
        return None
    chain = _output_chain(node.output)
    if chain is None or len(chain[0]) != 1:
        return None
    qy = chain[1]
    if (np.asarray(qy["zp"]).dtype != p["data"].type.dtype.np or float(qy["scale"].reshape(-1)[0]) != float(p["scale"].reshape(-1)[0])
            or int(np.asarray(qy["zp"]).reshape(-1)[0]) != int(np.asarray(p["zp"]).reshape(-1)[0])):
        return None
    new = graph.create_node("MaxPool", [p["data"]], dict(node.attrs), output_names=[node.output.name + "_q"],
                            before=node)
    graph.replace_all_uses(q.output, new.output)
    for n in (q, node, node.input(0).producer):
        if n.graph is graph and not any(o.uses or o.is_graph_output for o in n.outputs):
            graph.remove_node(n)
    return new


def _fold_qoperator(graph: Graph, node: Node) -> Optional[Node]:
    """QLinearConv, QLinearMatMul, QGemm (quantized output), ConvInteger, MatMulInteger."""
    op = node.qualified_op
    c = lambda i: _const(node.input(i))  # noqa: E731
    if op == "QLinearConv":
        xs, xzp, w, ws, wzp, ys, yzp = c(1), node.input(2), c(3), c(4), c(5), c(6), c(7)
        if any(v is None for v in (xs, xzp, w, ws, wzp, ys, yzp)) or xzp.const is None:
            return None
        bias = c(8) if node.input(8) is not None else None
        if node.input(8) is not None and bias is None:
            return None
        mult = quant.output_multiplier(xs.reshape(()), ws.reshape(-1), ys.reshape(()))
        return _fold_conv_like(graph, node, node.input(0), xzp, w, wzp, bias, mult, yzp, {}, node.output, [node])
    if op == "ConvInteger":
        w = c(1)
        if w is None:
            return None
        xzp = _zp_value(graph, node.input(2), np.zeros((), node.input(0).type.dtype.np), node.output.name + "_qxzp")
        wzp = c(3) if node.input(3) is not None else np.zeros((), w.dtype)
        if wzp is None:
            return None
        return _fold_conv_like(graph, node, node.input(0), xzp, w, wzp, None, None, None, {}, node.output, [node])
    if op == "QLinearMatMul":
        a_s, a_zp, b, bs, bzp, ys, yzp = c(1), node.input(2), c(3), c(4), c(5), c(6), c(7)
        if any(v is None for v in (a_s, a_zp, b, bs, bzp, ys, yzp)) or a_zp.const is None \
                or not _per_tensor(a_s, a_zp.const):
            return None
        from ir.ops.quantization import scale_product
        mult = scale_product(a_s.reshape(()), bs.reshape(-1), ys.reshape(()))
        return _fold_matmul_like(graph, node, node.input(0), a_zp, b, bzp, None, mult, yzp, {}, node.output, [node])
    if op == "MatMulInteger":
        b = c(1)
        if b is None:
            return None
        a_zp_in = node.input(2)
        if a_zp_in is not None and a_zp_in.type.shape not in ((), (1,)):
            return None
        xzp = _zp_value(graph, a_zp_in, np.zeros((), node.input(0).type.dtype.np), node.output.name + "_qxzp")
        bzp = c(3) if node.input(3) is not None else np.zeros((), b.dtype)
        if bzp is None:
            return None
        return _fold_matmul_like(graph, node, node.input(0), xzp, b, bzp, None, None, None, {}, node.output, [node])
    if op == "com.microsoft.QGemm":
        a_s, a_zp, b, bs, bzp, ys, yzp = c(1), node.input(2), c(3), c(4), c(5), c(7), c(8)
        if any(v is None for v in (a_s, a_zp, b, bs, bzp, ys, yzp)) or a_zp.const is None \
                or node.attr("transA") or (node.input(6) is not None and c(6) is None):
            return None
        b = b.T if node.attr("transB") else b
        # onnxruntime's order: alpha * a_scale * b_scale[n] / y_scale, in float32.
        f = np.float32
        mult = (f(node.attr("alpha")) * f(a_s.reshape(-1)[0]) * bs.astype(f).reshape(-1)) / f(ys.reshape(-1)[0])
        return _fold_matmul_like(graph, node, node.input(0), a_zp, b, bzp, c(6), mult.astype(f), yzp, {},
                                 node.output, [node])
    return None


@register_pass("fold-qdq", "quantized conv/matmul/add/maxpool patterns (QDQ, QOperator, integer ops) -> integer ops")
def fold_qdq(graph: Graph, ctx: PassContext) -> bool:
    """Fold every quantized conv/matmul pattern into the compiler's integer ops."""
    folded = 0
    for node in list(graph.nodes):
        if node.graph is not graph:
            continue
        qualified = node.qualified_op
        if qualified in ("Conv", "MatMul", "Gemm"):
            new = _fold_qdq(graph, node)
        elif qualified == "Add" or (qualified == "Sum" and len(node.inputs) == 2):
            new = _fold_add(graph, node)
        elif qualified == "MaxPool":
            new = _fold_maxpool(graph, node)
        else:
            new = _fold_qoperator(graph, node)
        if new is None:
            continue
        folded += 1
        rule = {"nnc.QAdd": "the float group's steps on 8-bit data, one pass",
                "MaxPool": "max commutes with dequantization: the same values on 8-bit data"}.get(
            new.qualified_op, "integer accumulation, int32 bias, one requantization (ir.quant)")
        ctx.decide(f"fold {qualified} into {new.qualified_op}", node=new.output.name, rule=rule)
    if folded:
        _drop_dead(graph)
        ctx.stats["qdq_folded"] = ctx.stats.get("qdq_folded", 0) + folded
    return folded > 0


def _drop_dead(graph: Graph) -> None:
    """Weights' DequantizeLinear nodes and constants nobody reads any more."""
    changed = True
    while changed:
        changed = False
        for n in list(graph.nodes):
            if n.op == "DequantizeLinear" and not any(o.uses or o.is_graph_output for o in n.outputs):
                graph.remove_node(n)
                changed = True
    for name, v in list(graph.constants.items()):
        if not v.uses and not v.is_graph_output:
            graph.remove_constant(v)
