"""Writing the QDQ model: which nodes to quantize (the plan), BatchNormalization folded first, and the
QuantizeLinear/DequantizeLinear pairs, int8/int4 weights and int32 biases inserted as onnxruntime's
quantizer does."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Optional, Union

import numpy as np
import onnx
from onnx import helper, numpy_helper

from ir import quant
from ir.dtypes import DType
from ir.errors import CompilerError

from .calibration import calibrate, load_calibration
from .options import QUANTIZABLE, QuantizeOptions
from .qparams import activation_qparams, weight_qparams


@dataclass
class _Site:
    node: onnx.NodeProto
    weight: str
    axis: int               # the weight's output-channel axis
    bias: Optional[str]
    x: str                  # activation read
    y: str                  # activation written (after an absorbed Relu)
    relu: Optional[onnx.NodeProto] = None


def plan(model: onnx.ModelProto, opts: QuantizeOptions) -> list[_Site]:
    inits = {t.name: t for t in model.graph.initializer}
    readers: dict[str, list[onnx.NodeProto]] = {}
    for n in model.graph.node:
        for i in n.input:
            readers.setdefault(i, []).append(n)
    outputs = {o.name for o in model.graph.output}
    sites = []
    for n in model.graph.node:
        if n.op_type not in QUANTIZABLE or n.domain not in ("", "ai.onnx") or n.name in opts.exclude:
            continue
        if len(n.input) < 2 or n.input[1] not in inits:
            continue
        attrs = {a.name: helper.get_attribute_value(a) for a in n.attribute}
        w = numpy_helper.to_array(inits[n.input[1]])
        if w.dtype != np.float32:
            continue
        if n.op_type == "Conv":
            if w.ndim != 4:
                continue
            axis = 0
        elif n.op_type == "Gemm":
            if attrs.get("transA", 0) or attrs.get("alpha", 1.0) != 1.0 or attrs.get("beta", 1.0) != 1.0:
                continue
            axis = 0 if attrs.get("transB", 0) else 1
        else:
            if w.ndim != 2:
                continue
            axis = 1
        bias = n.input[2] if len(n.input) > 2 and n.input[2] else None
        if bias is not None and bias not in inits:
            continue
        y = n.output[0]
        relu = None
        rs = readers.get(y, [])
        if len(rs) == 1 and rs[0].op_type == "Relu" and y not in outputs:
            relu = rs[0]
        site = _Site(n, n.input[1], axis, bias, n.input[0], relu.output[0] if relu else y, relu)
        if opts.float_outputs and site.y in outputs:
            site.y = ""
        sites.append(site)
    return sites


@dataclass
class QuantizeResult:
    model: onnx.ModelProto
    ranges: dict[str, tuple[float, float]]
    params: dict[str, dict[str, Any]] = field(default_factory=dict)
    quantized_nodes: list[str] = field(default_factory=list)


def quantize_model(model: Union[str, onnx.ModelProto], calib: Union[str, Sequence[dict[str, np.ndarray]]],
                   opts: Optional[QuantizeOptions] = None) -> QuantizeResult:
    """Calibrate ``model`` on ``calib`` and return the QDQ model (and the chosen parameters)."""
    opts = opts or QuantizeOptions()
    if isinstance(model, str):
        model = onnx.load(model)
    model = with_names(prepare(model))
    batches = load_calibration(calib, model, opts.batch) if isinstance(calib, str) else list(calib)
    sites = plan(model, opts)
    if not sites:
        raise CompilerError("nothing to quantize: no Conv/MatMul/Gemm with constant float weights",
                            hint="the model may already be quantized")
    tensors = list(dict.fromkeys([s.x for s in sites] + [s.y for s in sites if s.y]))
    ranges = calibrate(model, tensors, batches, opts)
    return rewrite(model, sites, ranges, opts)


_CONST_OPS = {"Constant", "ConstantOfShape", "Identity", "Cast", "Reshape", "Unsqueeze", "Squeeze", "Transpose",
              "Shape", "Concat", "Gather", "Mul", "Add", "Sub", "Div"}


def prepare(model: onnx.ModelProto) -> onnx.ModelProto:
    """A float model ready to quantize: constant subgraphs evaluated, BatchNormalization folded into Conv.

    Quantizing a Conv followed by BatchNormalization would quantize the
    unnormalized output; like onnxruntime's ``quant_pre_process`` the
    normalization goes into the weights and bias first.  Models whose
    weights come from ``ConstantOfShape`` (onnx's light test models) get them
    as initializers, the form the quantizer looks for.
    """
    from onnx.reference import ReferenceEvaluator
    m = onnx.ModelProto()
    m.CopyFrom(model)
    m.ir_version = max(m.ir_version, 7)  # initializers need not be graph inputs
    g = m.graph
    consts = {t.name: numpy_helper.to_array(t) for t in g.initializer}
    graph_inputs = {i.name for i in g.input} - set(consts)
    kept = []
    for n in g.node:
        if n.op_type in _CONST_OPS and not n.domain and all(i in consts for i in n.input if i) \
                and not any(i in graph_inputs for i in n.input):
            sub = helper.make_model(helper.make_graph(
                [n], "c", [helper.make_tensor_value_info(i, helper.np_dtype_to_tensor_dtype(consts[i].dtype),
                                                         consts[i].shape) for i in n.input if i],
                [helper.make_empty_tensor_value_info(o) for o in n.output]), opset_imports=m.opset_import)
            outs = ReferenceEvaluator(sub).run(None, {i: consts[i] for i in n.input if i})
            for name, v in zip(n.output, outs):
                consts[name] = np.asarray(v)
            continue
        kept.append(n)
    readers: dict[str, int] = {}
    for n in kept:
        for i in n.input:
            readers[i] = readers.get(i, 0) + 1
    outputs = {o.name for o in g.output}
    producer = {o: n for n in kept for o in n.output}
    final = []
    dropped = set()
    for n in kept:
        if n.op_type == "BatchNormalization" and len(n.output) == 1:
            conv = producer.get(n.input[0])
            if conv is not None and conv.op_type == "Conv" and readers.get(n.input[0]) == 1 \
                    and n.input[0] not in outputs and conv.input[1] in consts \
                    and all(i in consts for i in n.input[1:5]):
                eps = next((helper.get_attribute_value(a) for a in n.attribute if a.name == "epsilon"), 1e-5)
                s_, b_, mean, var = (consts[i].astype(np.float64) for i in n.input[1:5])
                f = s_ / np.sqrt(var + eps)
                w = consts[conv.input[1]].astype(np.float64)
                bias = consts[conv.input[2]].astype(np.float64) if len(conv.input) > 2 and conv.input[2] \
                    else np.zeros(w.shape[0])
                wname, bname = conv.input[1] + "_bnfolded", conv.name + "_bias_bnfolded"
                consts[wname] = (w * f.reshape(-1, 1, 1, 1)).astype(np.float32)
                consts[bname] = ((bias - mean) * f + b_).astype(np.float32)
                conv.input[1] = wname
                if len(conv.input) > 2:
                    conv.input[2] = bname
                else:
                    conv.input.append(bname)
                conv.output[0] = n.output[0]
                dropped.add(id(n))
    final = [n for n in kept if id(n) not in dropped]
    used = {i for n in final for i in n.input} | outputs
    del g.node[:]
    g.node.extend(final)
    del g.initializer[:]
    g.initializer.extend(numpy_helper.from_array(np.asarray(v), k) for k, v in consts.items() if k in used)
    keep_inputs = [i for i in g.input if i.name in used and i.name not in consts or i.name in graph_inputs]
    del g.input[:]
    g.input.extend(keep_inputs)
    return m


def with_names(model: onnx.ModelProto) -> onnx.ModelProto:
    m = onnx.ModelProto()
    m.CopyFrom(model)
    for i, n in enumerate(m.graph.node):
        if not n.name:
            n.name = f"{n.op_type}_{i}"
    return m


def rewrite(model: onnx.ModelProto, sites: list[_Site], ranges: dict[str, tuple[float, float]],
             opts: QuantizeOptions) -> QuantizeResult:
    g = model.graph
    act_dt = DType.U8 if opts.activation_type == "uint8" else DType.I8
    inits = {t.name: t for t in g.initializer}
    outputs = {o.name for o in g.output}
    new_nodes: dict[str, list[onnx.NodeProto]] = {}   # inserted after the producer of a tensor
    new_inits: list[onnx.TensorProto] = []
    rename: dict[str, str] = {}                        # tensor -> its dequantized twin (readers switch)
    params: dict[str, dict[str, Any]] = {}
    removed: set[str] = set()

    def qdq(t: str, like: Optional[str] = None) -> None:
        """Quantize-dequantize tensor ``t`` (with ``like``'s parameters when given)."""
        if t in params:
            return
        if like is None:
            scale, zp = activation_qparams(*ranges[t], act_dt, opts.symmetric)
            params[t] = {"scale": float(scale), "zero_point": int(zp), "range": list(ranges[t])}
            s_name, z_name = f"{t}_scale", f"{t}_zero_point"
            new_inits.extend([numpy_helper.from_array(np.asarray(scale, np.float32), s_name),
                              numpy_helper.from_array(np.asarray(zp, act_dt.np), z_name)])
        else:
            params[t] = dict(params[like])
            s_name, z_name = f"{like}_scale", f"{like}_zero_point"
        src, out = t, f"{t}_dequantized"
        if t in outputs:  # keep the graph output's name: the DQ writes it
            src, out = f"{t}_float", t
        new_nodes.setdefault(t, []).extend([
            helper.make_node("QuantizeLinear", [src, s_name, z_name], [f"{t}_quantized"], name=f"{t}_QuantizeLinear"),
            helper.make_node("DequantizeLinear", [f"{t}_quantized", s_name, z_name], [out],
                             name=f"{t}_DequantizeLinear")])
        if t in outputs:
            rename[f"__producer__{t}"] = src
        else:
            rename[t] = out

    for s in sites:
        qdq(s.x)
        if s.y:
            qdq(s.y)
            # Relu absorbed when the output's zero point is the type's lowest value (real 0 = qmin).
            if s.relu is not None and params[s.y]["zero_point"] == quant.qrange(act_dt)[0]:
                removed.add(s.relu.name)
        w = numpy_helper.to_array(inits[s.weight])
        bits = 4 if opts.weights == "int4" and s.node.name not in opts.int8_weights else 8
        q, ws, wzp = weight_qparams(w, s.axis if opts.per_channel else None, bits)
        base = s.weight
        new_inits.extend([numpy_helper.from_array(q, f"{base}_quantized"),
                          numpy_helper.from_array(ws, f"{base}_scale"),
                          numpy_helper.from_array(wzp, f"{base}_zero_point")])
        attrs = {"axis": s.axis} if opts.per_channel else {}
        new_nodes.setdefault("__weights__", []).append(helper.make_node(
            "DequantizeLinear", [f"{base}_quantized", f"{base}_scale", f"{base}_zero_point"],
            [f"{base}_dequantized"], name=f"{base}_DequantizeLinear", **attrs))
        s.node.input[1] = f"{base}_dequantized"
        if s.bias is not None:
            b = numpy_helper.to_array(inits[s.bias]).astype(np.float32)
            bs = (np.float32(params[s.x]["scale"]) * ws).astype(np.float32)
            bq = np.clip(np.rint(b / bs), -2**31, 2**31 - 1).astype(np.int32)
            new_inits.extend([numpy_helper.from_array(bq, f"{s.bias}_quantized"),
                              numpy_helper.from_array(np.asarray(bs, np.float32), f"{s.bias}_quantized_scale"),
                              numpy_helper.from_array(np.zeros(np.shape(bs), np.int32),
                                                      f"{s.bias}_quantized_zero_point")])
            battrs = {"axis": 0} if np.ndim(bs) else {}
            new_nodes["__weights__"].append(helper.make_node(
                "DequantizeLinear", [f"{s.bias}_quantized", f"{s.bias}_quantized_scale",
                                     f"{s.bias}_quantized_zero_point"], [f"{s.bias}_dequantized"],
                name=f"{s.bias}_DequantizeLinear", **battrs))
            s.node.input[2] = f"{s.bias}_dequantized"
        params[s.node.name] = {"weight_scale": np.asarray(ws).tolist()}

    # A MaxPool of a quantized tensor gets its input's parameters (as onnxruntime's quantizer does):
    # onnxruntime and the cpu target then run it on the 8-bit data.
    site_nodes = {s.node.name for s in sites}
    for n in g.node:
        if (n.op_type == "MaxPool" and len(n.output) == 1 and n.input[0] in params
                and n.output[0] not in outputs and n.name not in site_nodes):
            qdq(n.output[0], like=n.input[0])
    absorbed = {s.node.name: s.y for s in sites if s.relu is not None and s.relu.name in removed}
    ordered = list(new_nodes.get("__weights__", []))
    for t in g.input:
        ordered += new_nodes.get(t.name, [])
    for n in g.node:
        if n.name in removed:
            continue
        n2 = onnx.NodeProto()
        n2.CopyFrom(n)
        for i, name in enumerate(n2.input):
            if name in rename:
                n2.input[i] = rename[name]
        if n.name in absorbed:
            n2.output[0] = absorbed[n.name]  # the absorbed Relu's output now comes from the conv
        quantized_here = list(n2.output)
        for i, name in enumerate(n2.output):
            if f"__producer__{name}" in rename:
                n2.output[i] = rename[f"__producer__{name}"]
        ordered.append(n2)
        for name in quantized_here:
            ordered += new_nodes.get(name, [])
    used = {i for n in ordered for i in n.input}
    kept = [t for t in g.initializer if t.name in used]
    del g.node[:]
    g.node.extend(ordered)
    del g.initializer[:]
    g.initializer.extend(kept + [t for t in new_inits if t.name in used])
    need = 21 if opts.weights == "int4" else 13   # int4 DequantizeLinear is opset 21
    if not any(o.domain in ("", "ai.onnx") and o.version >= need for o in model.opset_import):
        for o in model.opset_import:
            if o.domain in ("", "ai.onnx"):
                o.version = need
        if need >= 21:
            model.ir_version = max(model.ir_version, 10)
    onnx.checker.check_model(model)
    return QuantizeResult(model, ranges, params, [s.node.name for s in sites])
