"""Calibration: run the float model over the calibration set and choose each activation's range
(MinMax, Percentile, or Entropy/KL as TensorRT and onnxruntime do)."""

from __future__ import annotations

import math
import sys
from collections.abc import Iterator, Sequence
from typing import Any, Optional, TextIO

import numpy as np
import onnx
from onnx import helper

from ir.errors import CompilerError

from .options import METHODS, QuantizeOptions


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


def progress_bar(it: Sequence[Any], what: str, enabled: bool, stream: TextIO = sys.stderr) -> Iterator[Any]:
    total = len(it)
    for i, x in enumerate(it):
        if enabled:
            done = int(30 * (i + 1) / max(1, total))
            stream.write(f"\r{what}: [{'#' * done}{'.' * (30 - done)}] {i + 1}/{total}")
            stream.flush()
        yield x
    if enabled:
        stream.write("\n")


class Runner:
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
            from ..driver import compile as compile_model
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
    run = Runner(model, tensors, opts.calib_target)
    lo = {t: math.inf for t in tensors}
    hi = {t: -math.inf for t in tensors}
    for feeds in progress_bar(batches, "calibrating (min/max)", opts.progress):
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
    for feeds in progress_bar(batches, f"calibrating ({opts.method})", opts.progress):
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
