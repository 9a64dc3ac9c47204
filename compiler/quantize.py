"""Post-training quantization: calibrate a float ONNX model and write a standard QDQ model.

``quantize_model(model, calib, options)`` runs the float model on the
calibration set (our reference interpreter, or the compiled cpu module for
speed), chooses a range for every activation that a Conv/MatMul/Gemm reads or
writes (MinMax, Percentile or Entropy/KL calibration), and inserts
``QuantizeLinear -> DequantizeLinear`` pairs the way onnxruntime's quantizer
does: int8 weights (symmetric, per tensor or per output channel), int32 biases
with scale ``x_scale * w_scale``, int8 (or uint8) activations.  A Relu whose
output range starts at 0 is absorbed by the zero point, as onnxruntime does.
The result runs on onnxruntime, and our ``fold-qdq`` pass turns it into integer
ops for every target.

``error_report`` compares the float and quantized models tensor by tensor
(SQNR, max error), like onnxruntime's ``qdq_loss_debug``.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Optional, TextIO, Union

import numpy as np
import onnx
from onnx import helper, numpy_helper

from ir import quant
from ir.dtypes import DType
from ir.errors import CompilerError

METHODS = ("minmax", "percentile", "entropy")
QUANTIZABLE = ("Conv", "MatMul", "Gemm")


@dataclass
class QuantizeOptions:
    """What ``quantize_model`` does; the CLI's flags map one to one."""

    method: str = "minmax"
    per_channel: bool = False
    symmetric: bool = False           # activations symmetric (zero point 0); weights always are
    activation_type: str = "int8"     # int8 | uint8
    percentile: float = 99.999
    bins: int = 0                     # histogram bins; 0: 2048 (percentile), 128 (entropy: onnxruntime's default)
    batch: int = 16
    float_outputs: bool = False       # leave graph outputs in float (the last layer stays float)
    exclude: Sequence[str] = ()       # node names kept in float (mixed precision)
    calib_target: str = "ref"         # ref | cpu: what runs the float model during calibration
    progress: bool = True
    weights: str = "int8"             # int8 | int4 (opset 21 DequantizeLinear; symmetric [-7, 7])


# ------------------------------------------------------------------ data
def load_calibration(path: str, model: onnx.ModelProto, batch: int) -> list[dict[str, np.ndarray]]:
    """An .npz of inputs: arrays named like the model's inputs, or one array for a one-input model."""
    data = np.load(path)
    inputs = [i.name for i in model.graph.input if i.name not in {t.name for t in model.graph.initializer}]
    if all(n in data for n in inputs):
        arrays = {n: data[n] for n in inputs}
    elif len(inputs) == 1:
        xs = [k for k in data.files if k.startswith("x")] or data.files
        arrays = {inputs[0]: data[xs[0]]}
    else:
        raise CompilerError("calibration data does not name the model's inputs", subject=path,
                            expected=", ".join(inputs), found=", ".join(data.files))
    n = len(next(iter(arrays.values())))
    return [{k: np.ascontiguousarray(v[s:s + batch]).astype(np.float32) for k, v in arrays.items()}
            for s in range(0, n, batch)]


def _progress(it: Sequence[Any], what: str, enabled: bool, stream: TextIO = sys.stderr) -> Iterator[Any]:
    total = len(it)
    for i, x in enumerate(it):
        if enabled:
            done = int(30 * (i + 1) / max(1, total))
            stream.write(f"\r{what}: [{'#' * done}{'.' * (30 - done)}] {i + 1}/{total}")
            stream.flush()
        yield x
    if enabled:
        stream.write("\n")


# ------------------------------------------------------------- planning
@dataclass
class _Site:
    node: onnx.NodeProto
    weight: str
    axis: int               # the weight's output-channel axis
    bias: Optional[str]
    x: str                  # activation read
    y: str                  # activation written (after an absorbed Relu)
    relu: Optional[onnx.NodeProto] = None


def _plan(model: onnx.ModelProto, opts: QuantizeOptions) -> list[_Site]:
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


# ----------------------------------------------------------- calibration
class _Runner:
    """Runs the float model with extra outputs (our reference interpreter or compiled cpu code)."""

    def __init__(self, model: onnx.ModelProto, tensors: Sequence[str], target: str) -> None:
        m = onnx.ModelProto()
        m.CopyFrom(model)
        have = {o.name for o in m.graph.output}
        for t in tensors:
            if t not in have:
                m.graph.output.append(helper.make_empty_tensor_value_info(t))
        self.names = [o.name for o in m.graph.output]
        if target == "ref":
            from frontends.onnx import import_onnx
            from ir.interpreter import run_graph
            from passes.manager import run_pipeline
            self.graph = import_onnx(m)
            run_pipeline(self.graph, "fold-constants,dce")
            self._run = lambda feeds: run_graph(self.graph, feeds)
            self.names = [v.name for v in self.graph.outputs]
        else:
            from .driver import compile as compile_model
            mod = compile_model(m, target=target)
            self._run = lambda feeds: _as_list(mod.run(feeds), self.names)

    def __call__(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return dict(zip(self.names, (np.asarray(v) for v in self._run(feeds))))


def _as_list(out: Any, names: Sequence[str]) -> list[np.ndarray]:
    return [out[n] for n in names] if isinstance(out, dict) else list(out)


def calibrate(model: onnx.ModelProto, tensors: Sequence[str], batches: Sequence[dict[str, np.ndarray]],
              opts: QuantizeOptions) -> dict[str, tuple[float, float]]:
    """A real range ``(lo, hi)`` per tensor, by ``opts.method``."""
    if opts.method not in METHODS:
        raise CompilerError("unknown calibration method", expected=" | ".join(METHODS), found=opts.method)
    run = _Runner(model, tensors, opts.calib_target)
    lo = {t: math.inf for t in tensors}
    hi = {t: -math.inf for t in tensors}
    for feeds in _progress(batches, "calibrating (min/max)", opts.progress):
        out = run(feeds)
        for t in tensors:
            a = out[t]
            lo[t] = min(lo[t], float(a.min()))
            hi[t] = max(hi[t], float(a.max()))
    if opts.method == "minmax":
        return {t: (lo[t], hi[t]) for t in tensors}
    # Histograms (a second pass: the range is known now): of x over [lo, hi] for percentile
    # (each tail loses (100 - p) / 2 percent, as onnxruntime's), of |x| over [0, max|x|] for entropy.
    bins = opts.bins or (128 if opts.method == "entropy" else 2048)
    top = {t: max(abs(lo[t]), abs(hi[t]), 1e-12) for t in tensors}
    span = {t: (lo[t], hi[t] if hi[t] > lo[t] else lo[t] + 1e-12) for t in tensors}
    hists = {t: np.zeros(bins, np.int64) for t in tensors}
    for feeds in _progress(batches, f"calibrating ({opts.method})", opts.progress):
        out = run(feeds)
        for t in tensors:
            if opts.method == "percentile":
                hists[t] += np.histogram(out[t], bins=bins, range=span[t])[0]
            else:
                hists[t] += np.histogram(np.abs(out[t]), bins=bins, range=(0.0, top[t]))[0]
    ranges = {}
    ends = {o.name for o in model.graph.output} | {i.name for i in model.graph.input}
    for t in tensors:
        if t in ends and opts.method == "entropy":
            # KL calibration clips the tails, which suits hidden activations, not the model's own
            # input (data in a known range) or outputs (logits, compared by value): min/max there.
            ranges[t] = (lo[t], hi[t])
            continue
        if opts.method == "percentile":
            a, z = span[t]
            width = (z - a) / bins
            cdf = np.cumsum(hists[t]) / max(1, hists[t].sum())
            tail = (1.0 - opts.percentile / 100.0) / 2
            ranges[t] = (a + int(np.searchsorted(cdf, tail)) * width,
                         a + (int(np.searchsorted(cdf, 1.0 - tail)) + 1) * width)
            continue
        edge = top[t] / bins
        thr = (entropy_threshold(hists[t]) + 0.5) * edge
        thr = min(thr, top[t])
        ranges[t] = (max(lo[t], -thr), min(hi[t], thr))
    return ranges


def entropy_threshold(hist: np.ndarray, levels: int = 128) -> int:
    """The bin index whose clipping threshold minimizes KL(P || Q) (TensorRT's entropy calibration).

    P is the histogram clipped at the threshold (the outliers added to its last
    bin); Q is the clipped histogram *without* the outliers, merged into
    ``levels`` bins and spread back over the nonzero bins.  Both are
    normalized and smoothed (MXNet's ``_smooth_distribution``) so empty bins
    give a finite divergence.
    """
    hist = hist.astype(np.float64)
    n = len(hist)
    if n <= levels or hist.sum() == 0:
        return n - 1
    best, best_i = math.inf, n - 1
    for i in range(levels, n + 1, max(1, (n - levels) // 256)):
        sliced = hist[:i]
        p = sliced.copy()
        p[-1] += hist[i:].sum()
        q = np.zeros(i)
        for ch in np.array_split(np.arange(i), levels):
            part = sliced[ch]
            cnt = np.count_nonzero(part)
            if cnt:
                q[ch] = np.where(part != 0, part.sum() / cnt, 0.0)
        ps, qs = _smooth(p), _smooth(q)
        if ps is None or qs is None:
            continue
        kl = float(np.sum(ps * np.log(ps / qs)))
        if kl < best:
            best, best_i = kl, i - 1
    return best_i


def _smooth(d: np.ndarray, eps: float = 1e-4) -> Optional[np.ndarray]:
    """``d`` normalized, with ``eps`` moved onto its empty bins (None when all empty)."""
    total = d.sum()
    if total <= 0:
        return None
    d = d / total
    zeros = d == 0
    nz = d.size - int(zeros.sum())
    if nz == 0:
        return None
    out = d + eps * zeros - (eps * zeros.sum() / nz) * ~zeros
    return out if np.all(out > 0) else None


# -------------------------------------------------------------- qparams
def activation_qparams(lo: float, hi: float, dtype: DType, symmetric: bool) -> tuple[np.float32, int]:
    """Scale and zero point for the range ``[lo, hi]`` (widened to include 0), onnxruntime's formulas."""
    qmin, qmax = quant.qrange(dtype)
    rmin, rmax = min(lo, 0.0), max(hi, 0.0)
    if symmetric:
        absmax = max(abs(rmin), abs(rmax))
        rmin, rmax = -absmax, absmax
    scale = np.float32((rmax - rmin) / (qmax - qmin)) if rmax > rmin else np.float32(1.0)
    if symmetric:
        zp = (qmin + qmax + 1) // 2 if dtype == DType.U8 else 0
    else:
        zp = int(np.clip(np.rint(qmin - rmin / float(scale)), qmin, qmax))
    return scale, zp


def weight_qparams(w: np.ndarray, axis: Optional[int], bits: int = 8) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Symmetric weights in [-127, 127] (int8) or [-7, 7] (int4): ``(q, scale, zero_point)``.

    Per channel along ``axis``; int4 arrays are ``ml_dtypes.int4`` (ONNX packs
    two to a byte).
    """
    if bits not in (4, 8):
        raise CompilerError("weights must be int8 or int4", found=f"{bits} bits")
    qmax = np.float32(127.0 if bits == 8 else 7.0)
    dt = DType.I8 if bits == 8 else DType.I4
    if axis is None:
        absmax = np.float32(np.max(np.abs(w))) if w.size else np.float32(0)
    else:
        absmax = np.max(np.abs(np.moveaxis(w, axis, 0)).reshape(w.shape[axis], -1), axis=1).astype(np.float32)
    scale = np.where(absmax > 0, absmax / qmax, np.float32(1.0)).astype(np.float32)
    zp = np.zeros(np.shape(scale), dt.np)
    q = quant.quantize(w, scale, zp, dt, axis=0 if axis is None else axis)
    return q, scale, zp


# ------------------------------------------------------------- rewriting
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
    model = _with_names(prepare(model))
    batches = load_calibration(calib, model, opts.batch) if isinstance(calib, str) else list(calib)
    sites = _plan(model, opts)
    if not sites:
        raise CompilerError("nothing to quantize: no Conv/MatMul/Gemm with constant float weights",
                            hint="the model may already be quantized")
    tensors = list(dict.fromkeys([s.x for s in sites] + [s.y for s in sites if s.y]))
    ranges = calibrate(model, tensors, batches, opts)
    return _rewrite(model, sites, ranges, opts)


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


def _with_names(model: onnx.ModelProto) -> onnx.ModelProto:
    m = onnx.ModelProto()
    m.CopyFrom(model)
    for i, n in enumerate(m.graph.node):
        if not n.name:
            n.name = f"{n.op_type}_{i}"
    return m


def _rewrite(model: onnx.ModelProto, sites: list[_Site], ranges: dict[str, tuple[float, float]],
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
        q, ws, wzp = weight_qparams(w, s.axis if opts.per_channel else None, 4 if opts.weights == "int4" else 8)
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


# --------------------------------------------------------------- report
def sqnr_db(ref: np.ndarray, got: np.ndarray) -> float:
    """10 log10(signal power / noise power); inf when equal."""
    ref = np.asarray(ref, np.float64)
    noise = np.sum((ref - np.asarray(got, np.float64)) ** 2)
    return math.inf if noise == 0 else float(10 * np.log10(np.sum(ref ** 2) / noise))


def error_report(float_model: onnx.ModelProto, result: QuantizeResult, batches: Sequence[dict[str, np.ndarray]],
                 progress: bool = False) -> list[dict[str, Any]]:
    """Per quantized tensor: SQNR and max error of the quantized model's value vs the float model's.

    The quantized value is the tensor's DequantizeLinear output in the QDQ
    model run on our reference (the QDQ arithmetic as written); the graph
    outputs are also compared after ``fold-qdq`` (the integer arithmetic every
    target runs).
    """
    tensors = [t for t in result.params if "scale" in result.params[t]]
    fl = _Runner(_with_names(float_model), tensors, "ref")
    twin = {t: (t if t in {o.name for o in result.model.graph.output} else f"{t}_dequantized") for t in tensors}
    qr = _Runner(result.model, list(twin.values()), "ref")
    from frontends.onnx import import_onnx
    from ir.interpreter import run_graph
    from passes.manager import run_pipeline
    folded = import_onnx(result.model)
    run_pipeline(folded, "fold-qdq,fold-constants,dce")
    out_names = [o.name for o in float_model.graph.output]
    acc: dict[str, list] = {t: [[], []] for t in tensors}
    outs: dict[str, list] = {o: [[], []] for o in out_names}
    for feeds in _progress(batches, "error report", progress):
        a, b = fl(feeds), qr(feeds)
        for t in tensors:
            acc[t][0].append(a[t])
            acc[t][1].append(b[twin[t]])
        ys = run_graph(folded, feeds)
        for o, y in zip(out_names, ys):
            outs[o][0].append(a[o])
            outs[o][1].append(y)
    rows = []
    for t in tensors:
        r, q = np.concatenate([x.ravel() for x in acc[t][0]]), np.concatenate([x.ravel() for x in acc[t][1]])
        rows.append({"tensor": t, "sqnr_db": round(sqnr_db(r, q), 2), "max_abs_err": float(np.max(np.abs(r - q))),
                     "scale": result.params[t]["scale"], "zero_point": result.params[t]["zero_point"],
                     "integer_path": False})
    for o in out_names:
        r, q = np.concatenate([x.ravel() for x in outs[o][0]]), np.concatenate([x.ravel() for x in outs[o][1]])
        rows.append({"tensor": o + " (output, integer ops)", "sqnr_db": round(sqnr_db(r, q), 2),
                     "max_abs_err": float(np.max(np.abs(r - q))), "scale": None, "zero_point": None,
                     "integer_path": True})
    return rows


def format_report(rows: Iterable[dict[str, Any]]) -> str:
    rows = list(rows)
    w = max([len("tensor")] + [len(r["tensor"]) for r in rows])
    lines = [f"{'tensor':<{w}}  {'SQNR dB':>8}  {'max err':>10}  {'scale':>10}  {'zp':>5}"]
    for r in rows:
        scale = "" if r["scale"] is None else f"{r['scale']:.4g}"
        zp = "" if r["zero_point"] is None else str(r["zero_point"])
        lines.append(f"{r['tensor']:<{w}}  {r['sqnr_db']:>8.2f}  {r['max_abs_err']:>10.4g}  {scale:>10}  {zp:>5}")
    return "\n".join(lines)


def write_json(path: str, payload: dict[str, Any]) -> None:
    with open(path, "w") as f:
        json.dump(payload, f, indent=1, default=lambda o: o.tolist() if hasattr(o, "tolist") else str(o))


def options_dict(opts: QuantizeOptions) -> dict[str, Any]:
    d = asdict(opts)
    d["exclude"] = list(opts.exclude)
    return d


# ------------------------------------------------------ mixed precision
def model_bytes(model: onnx.ModelProto) -> dict[str, int]:
    """Initializer bytes by element type (and ``total``); 4-bit types count half a byte each, as stored."""
    out: dict[str, int] = {}
    for t in model.graph.initializer:
        a = numpy_helper.to_array(t)
        bits = DType.from_numpy(a.dtype).bits if a.dtype.itemsize == 1 else 8 * a.dtype.itemsize
        out[str(a.dtype)] = out.get(str(a.dtype), 0) + -(-a.size * bits // 8)
    out["total"] = sum(out.values())
    return out


def _output_sqnr(float_outs: list[list[np.ndarray]], model: onnx.ModelProto,
                 batches: Sequence[dict[str, np.ndarray]]) -> float:
    """SQNR of the quantized model's outputs (integer ops on the reference) vs the float outputs."""
    from frontends.onnx import import_onnx
    from ir.interpreter import run_graph
    from passes.manager import run_pipeline
    g = import_onnx(model)
    run_pipeline(g, "fold-qdq,fold-constants,dce")
    got = [run_graph(g, feeds) for feeds in batches]
    ref = np.concatenate([np.concatenate([np.ravel(y) for y in ys]) for ys in float_outs])
    q = np.concatenate([np.concatenate([np.ravel(y) for y in ys]) for ys in got])
    return sqnr_db(ref, q)


def mixed_precision(model: Union[str, onnx.ModelProto], calib: Union[str, Sequence[dict[str, np.ndarray]]],
                    opts: QuantizeOptions, target_sqnr: float) -> tuple[QuantizeResult, list[dict[str, Any]]]:
    """Keep the most sensitive layers in float until the outputs' SQNR reaches ``target_sqnr`` dB.

    Sensitivity of a layer: the output SQNR gained by leaving only it in float
    (every other layer int8), measured on the calibration set with the
    integer ops.  Layers go back to float in decreasing sensitivity; each
    configuration tried is a point of the returned front (layers in float,
    SQNR, weight bytes).
    """
    if isinstance(model, str):
        model = onnx.load(model)
    model = _with_names(prepare(model))
    batches = load_calibration(calib, model, opts.batch) if isinstance(calib, str) else list(calib)
    sites = _plan(model, opts)
    tensors = list(dict.fromkeys([s.x for s in sites] + [s.y for s in sites if s.y]))
    ranges = calibrate(model, tensors, batches, opts)
    fl = _Runner(model, [], "ref")
    outs = [o.name for o in model.graph.output]
    float_outs = [[fl(feeds)[o] for o in outs] for feeds in batches]

    def config(excluded: Sequence[str]) -> tuple[QuantizeResult, float]:
        o = QuantizeOptions(**{**options_dict(opts), "exclude": list(excluded), "progress": False})
        m = _with_names(model)  # _rewrite edits the nodes it is given: plan on a fresh copy
        res = _rewrite(m, _plan(m, o), ranges, o)
        return res, _output_sqnr(float_outs, res.model, batches)

    base, base_sqnr = config([])
    front = [{"float_layers": [], "sqnr_db": round(base_sqnr, 2), "weight_bytes": model_bytes(base.model)["total"]}]
    if base_sqnr >= target_sqnr:
        return base, front
    gains = []
    for s in _progress(sites, "sensitivity", opts.progress):
        _, q = config([s.node.name])
        gains.append((q - base_sqnr, s.node.name))
    gains.sort(reverse=True)
    excluded: list[str] = []
    best = base
    for gain, name in gains:
        excluded.append(name)
        res, q = config(excluded)
        front.append({"float_layers": list(excluded), "sqnr_db": round(q, 2), "sensitivity_db": round(gain, 2),
                      "weight_bytes": model_bytes(res.model)["total"]})
        best = res
        if q >= target_sqnr or len(excluded) == len(sites):
            break
    return best, front


# ----------------------------------------------------------------- CLI
def add_quantize_arguments(p: Any, *, prefix: str = "") -> None:
    """The calibration flags shared by `quantize` and `build --quantize`."""
    p.add_argument(f"--{prefix}method", dest="quant_method", choices=METHODS, default="minmax",
                   help="calibration method (default minmax)")
    p.add_argument("--per-channel", action="store_true", help="per-output-channel weight scales")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--symmetric", dest="symmetric", action="store_true",
                   help="symmetric activations (zero point 0)")
    g.add_argument("--asymmetric", dest="symmetric", action="store_false",
                   help="asymmetric activations (default, as onnxruntime)")
    p.add_argument("--activation-type", choices=["int8", "uint8"], default="int8")
    p.add_argument("--weights", dest="weight_type", choices=["int8", "int4"], default="int8",
                   help="weight type: int8, or int4 (opset 21 DequantizeLinear, symmetric [-7, 7]; "
                        "the cpu target unpacks them into its int8 kernels)")
    p.add_argument("--float-output", action="store_true",
                   help="leave the graph outputs in float (the last layer is not requantized)")
    p.add_argument("--exclude", action="append", default=[], metavar="NODE",
                   help="keep this node in float (repeatable)")
    p.add_argument("--calib-target", choices=["ref", "cpu"], default="ref",
                   help="what runs the float model during calibration (default ref)")


def add_build_arguments(p: Any) -> None:
    p.add_argument("--quantize", choices=["int8"], help="quantize the model (post-training) before building")
    p.add_argument("--calib", metavar="FILE.npz", help="calibration inputs for --quantize")
    add_quantize_arguments(p, prefix="quant-")


def add_quantize_command(add: Any) -> None:
    p = add("quantize", cmd_quantize, "post-training int8 quantization: calibrate and write a QDQ model")
    p.add_argument("model", help="float .onnx model")
    p.add_argument("--calib", required=True, metavar="FILE.npz", help="calibration inputs")
    p.add_argument("-o", "--output", required=True, metavar="OUT.onnx")
    add_quantize_arguments(p)
    p.add_argument("--target-sqnr", type=float, metavar="DB",
                   help="mixed precision: keep the most sensitive layers in float until the outputs' SQNR "
                        "on the calibration set reaches DB")
    p.add_argument("--report", metavar="FILE.json", help="error report JSON (default OUT.report.json)")
    p.add_argument("--no-report", action="store_true", help="skip the per-tensor error report")
    p.add_argument("-q", "--quiet", action="store_true")


def _options(args: Any) -> QuantizeOptions:
    return QuantizeOptions(method=args.quant_method, per_channel=args.per_channel, symmetric=bool(args.symmetric),
                           activation_type=args.activation_type, float_outputs=args.float_output,
                           exclude=tuple(args.exclude), calib_target=args.calib_target,
                           progress=not getattr(args, "quiet", False),
                           weights=getattr(args, "weight_type", "int8"))


def quantize_for_build(args: Any) -> onnx.ModelProto:
    """`build --quantize int8 --calib FILE`: the QDQ model the build compiles."""
    if not args.calib:
        raise CompilerError("--quantize needs calibration data", hint="add --calib FILE.npz")
    import hashlib
    model = onnx.load(str(args.model))
    opts = _options(args)
    res = quantize_model(model, args.calib, opts)
    before, after = model_bytes(model), model_bytes(res.model)
    with open(args.calib, "rb") as f:
        calib_sha = hashlib.sha256(f.read()).hexdigest()
    # For the build manifest (reproducibility: options and the calibration data's hash; sizes).
    args.quantization_record = {"options": options_dict(opts), "calibration": {"file": str(args.calib),
                                "sha256": calib_sha}, "layers": len(res.quantized_nodes),
                                "weight_bytes": {"before": before, "after": after}}
    if not getattr(args, "quiet", False):
        print(f"  quantized {len(res.quantized_nodes)} layers to int8 ({args.quant_method}); "
              f"weights {before['total']} -> {after['total']} bytes", file=sys.stderr)
    return res.model


def cmd_quantize(args: Any) -> int:
    opts = _options(args)
    model = onnx.load(args.model)
    front = None
    if args.target_sqnr is not None:
        result, front = mixed_precision(model, args.calib, opts, args.target_sqnr)
    else:
        result = quantize_model(model, args.calib, opts)
    onnx.save(result.model, args.output)
    say = (lambda *a: None) if args.quiet else print
    before, after = model_bytes(model), model_bytes(result.model)
    say(f"quantized {len(result.quantized_nodes)} layers ({opts.method}, "
        f"{'per-channel' if opts.per_channel else 'per-tensor'} weights, "
        f"{'symmetric' if opts.symmetric else 'asymmetric'} {opts.activation_type} activations) -> {args.output}")
    say(f"  weights: {before['total']} -> {after['total']} bytes "
        f"({', '.join(f'{k} {v}' for k, v in after.items() if k != 'total')})")
    payload: dict[str, Any] = {"model": args.model, "output": args.output, "options": options_dict(opts),
                               "size_bytes": {"before": before, "after": after},
                               "quantized_nodes": result.quantized_nodes}
    if front is not None:
        payload["mixed_precision"] = {"target_sqnr_db": args.target_sqnr, "front": front}
        say("  mixed precision (layers kept in float -> outputs' SQNR on the calibration set):")
        for p in front:
            say(f"    {len(p['float_layers']):>3} float  {p['sqnr_db']:>7.2f} dB  {p['weight_bytes']:>10} B  "
                f"{', '.join(p['float_layers'][-1:])}")
    if not args.no_report:
        batches = load_calibration(args.calib, model, opts.batch)
        rows = error_report(model, result, batches, progress=opts.progress)
        payload["tensors"] = rows
        say(format_report(rows))
    report = args.report or (args.output + ".report.json")
    write_json(report, payload)
    say(f"  report: {report}")
    return 0
