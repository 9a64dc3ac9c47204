"""The error report (float vs quantized activations: SQNR, max error, like onnxruntime's
``qdq_loss_debug``) and the size report (weight bytes by type)."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import onnx
from onnx import numpy_helper

from ir.dtypes import DType

from .calibration import Runner, progress_bar
from .rewrite import QuantizeResult, with_names


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
    fl = Runner(with_names(float_model), tensors, "ref")
    twin = {t: (t if t in {o.name for o in result.model.graph.output} else f"{t}_dequantized") for t in tensors}
    qr = Runner(result.model, list(twin.values()), "ref")
    from frontends.onnx import import_onnx
    from ir.interpreter import run_graph
    from passes.manager import run_pipeline
    folded = import_onnx(result.model)
    run_pipeline(folded, "fold-qdq,fold-constants,dce")
    out_names = [o.name for o in float_model.graph.output]
    acc: dict[str, list] = {t: [[], []] for t in tensors}
    outs: dict[str, list] = {o: [[], []] for o in out_names}
    for feeds in progress_bar(batches, "error report", progress):
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


def model_bytes(model: onnx.ModelProto) -> dict[str, int]:
    """Initializer bytes by element type (and ``total``); 4-bit types count half a byte each, as stored."""
    out: dict[str, int] = {}
    for t in model.graph.initializer:
        a = numpy_helper.to_array(t)
        bits = DType.from_numpy(a.dtype).bits if a.dtype.itemsize == 1 else 8 * a.dtype.itemsize
        out[str(a.dtype)] = out.get(str(a.dtype), 0) + -(-a.size * bits // 8)
    out["total"] = sum(out.values())
    return out
