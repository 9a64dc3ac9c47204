"""Mixed precision: per-layer sensitivity, and the most sensitive layers kept in float until the
outputs' SQNR reaches a target; the front of the configurations tried."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Union

import numpy as np
import onnx

from .calibration import Runner, calibrate, load_calibration, progress_bar
from .options import QuantizeOptions, options_dict
from .report import model_bytes, sqnr_db
from .rewrite import QuantizeResult, plan, prepare, rewrite, with_names


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
    SQNR, weight bytes).  With int4 weights the fallback is int8 weights
    instead of float (the front's points then list ``int8_layers``).
    """
    if isinstance(model, str):
        model = onnx.load(model)
    model = with_names(prepare(model))
    batches = load_calibration(calib, model, opts.batch) if isinstance(calib, str) else list(calib)
    sites = plan(model, opts)
    tensors = list(dict.fromkeys([s.x for s in sites] + [s.y for s in sites if s.y]))
    ranges = calibrate(model, tensors, batches, opts)
    fl = Runner(model, [], "ref")
    outs = [o.name for o in model.graph.output]
    float_outs = [[fl(feeds)[o] for o in outs] for feeds in batches]

    to_int8 = opts.weights == "int4"
    key = "int8_layers" if to_int8 else "float_layers"

    def config(excluded: Sequence[str]) -> tuple[QuantizeResult, float]:
        kept = {"int8_weights": list(excluded)} if to_int8 else {"exclude": list(excluded)}
        o = QuantizeOptions(**{**options_dict(opts), **kept, "progress": False})
        m = with_names(model)  # _rewrite edits the nodes it is given: plan on a fresh copy
        res = rewrite(m, plan(m, o), ranges, o)
        return res, _output_sqnr(float_outs, res.model, batches)

    base, base_sqnr = config([])
    front = [{key: [], "sqnr_db": round(base_sqnr, 2), "weight_bytes": model_bytes(base.model)["total"]}]
    if base_sqnr >= target_sqnr:
        return base, front
    gains = []
    for s in progress_bar(sites, "sensitivity", opts.progress):
        _, q = config([s.node.name])
        gains.append((q - base_sqnr, s.node.name))
    gains.sort(reverse=True)
    excluded: list[str] = []
    best = base
    for gain, name in gains:
        excluded.append(name)
        res, q = config(excluded)
        front.append({key: list(excluded), "sqnr_db": round(q, 2), "sensitivity_db": round(gain, 2),
                      "weight_bytes": model_bytes(res.model)["total"]})
        best = res
        if q >= target_sqnr or len(excluded) == len(sites):
            break
    return best, front
