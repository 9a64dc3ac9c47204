"""Convolution speed on the cpu target against onnxruntime (a script, not a test).

    python benchmarks/bench_conv.py [--threads 2] [--repeat 30] [--layers name,...]

Each layer is a one-Conv ONNX model (with bias, then Relu; ``t...`` layers a
ConvTranspose, counted by their useful MACs), compiled alone
for the cpu target and run by onnxruntime in the same process with the same
thread count.  Printed per layer:

* ``cpu conv``: the convolution kernel alone (the profiled kernel time of
  the fused Conv+Relu group; the layout conversions of the lone layer's
  NCHW input and output are left out, as inside a network);
* ``cpu model``: the whole compiled model (with those conversions);
* ``ort conv`` / ``ort model``: onnxruntime's Conv node (from its
  profiler: its NCHWc Conv with the fused Relu, without its reorders) and
  its whole session run;

as milliseconds and GFLOP/s (2 * MACs), and the ratios conv/conv and
model/model (below 1: faster than onnxruntime).  Times are the best of
``--repeat`` runs (the machine may be shared: the best run is the one the
others disturbed least).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import compiler  # noqa: E402

# name: (cin, cout, size, kernel, stride, pad, group)
LAYERS = {
    "conv1_7x7s2": (3, 64, 224, 7, 2, 3, 1),
    "3x3_64_56": (64, 64, 56, 3, 1, 1, 1),
    "1x1_64_256_56": (64, 256, 56, 1, 1, 0, 1),
    "1x1_256_64_56": (256, 64, 56, 1, 1, 0, 1),
    "3x3_128_28": (128, 128, 28, 3, 1, 1, 1),
    "3x3_256_14": (256, 256, 14, 3, 1, 1, 1),
    "1x1_1024_256_14": (1024, 256, 14, 1, 1, 0, 1),
    "1x1s2_512_1024_28": (512, 1024, 28, 1, 2, 0, 1),
    "3x3_512_7": (512, 512, 7, 3, 1, 1, 1),
    "3x3s2_512_14": (512, 512, 14, 3, 2, 1, 1),
    "1x1_2048_512_7": (2048, 512, 7, 1, 1, 0, 1),
    "1x1_512_2048_7": (512, 2048, 7, 1, 1, 0, 1),
    "dw3x3_256_28": (256, 256, 28, 3, 1, 1, 256),
    "3x3_128_32_56": (128, 32, 56, 3, 1, 1, 1),    # DenseNet-121's growth layers
    "3x3_128_32_28": (128, 32, 28, 3, 1, 1, 1),
    "dw7x7_96_14": (96, 96, 14, 7, 1, 3, 96),      # ConvNeXt's depthwise stage-3 conv
    "dw7x7_80_28": (80, 80, 28, 7, 1, 3, 80),
    "dw3x3_144_56": (144, 144, 56, 3, 1, 1, 144),  # MobileNetV2's
    "3x3_64_32_256": (64, 32, 256, 3, 1, 1, 1),    # the U-Net's last decoder level (after the skip Concat)
    "3x3_32_32_256": (32, 32, 256, 3, 1, 1, 1),
    "sq_conv1_3x3s2": (3, 64, 224, 3, 2, 0, 1),     # SqueezeNet 1.1's stem, a fire module, the classifier
    "1x1_16_64_55": (16, 64, 55, 1, 1, 0, 1),
    "3x3_16_64_55": (16, 64, 55, 3, 1, 1, 1),
    "1x1_128_16_55": (128, 16, 55, 1, 1, 0, 1),
    "1x1_512_1000_13": (512, 1000, 13, 1, 1, 0, 1),
    "t2x2s2_128_64_128": (128, 64, 128, 2, 2, 0, 1),   # the U-Net's up-convolutions (ConvTranspose)
    "t2x2s2_1024_512_16": (1024, 512, 16, 2, 2, 0, 1),
}
TRANSPOSED = {name for name in LAYERS if name.startswith("t")}
DEFAULT = ["conv1_7x7s2", "3x3_64_56", "1x1_64_256_56", "3x3_256_14", "1x1_1024_256_14", "3x3_512_7"]


def conv_model(cin: int, cout: int, size: int, k: int, stride: int, pad: int, group: int,
               transposed: bool = False) -> onnx.ModelProto:
    rng = np.random.default_rng(0)
    shape = (cin, cout // group, k, k) if transposed else (cout, cin // group, k, k)
    w = (rng.standard_normal(shape) * 0.05).astype(np.float32)
    b = rng.standard_normal(cout).astype(np.float32)
    out = (size - 1) * stride - 2 * pad + k if transposed else (size + 2 * pad - k) // stride + 1
    op = "ConvTranspose" if transposed else "Conv"
    nodes = [helper.make_node(op, ["x", "w", "b"], ["c"], kernel_shape=[k, k], pads=[pad] * 4,
                              strides=[stride] * 2, group=group),
             helper.make_node("Relu", ["c"], ["y"])]
    graph = helper.make_graph(nodes, "conv", [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                                            [1, cin, size, size])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, cout, out, out])],
                              [numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def macs_of(cin: int, cout: int, size: int, k: int, stride: int, pad: int, group: int,
            transposed: bool = False) -> int:
    if transposed:  # each input pixel meets each tap once (before the pads crop)
        return cout * size * size * (cin // group) * k * k
    out = (size + 2 * pad - k) // stride + 1
    return cout * out * out * (cin // group) * k * k


class OrtConv:
    """onnxruntime on one model: a plain session, and a profiled one for the Conv node's own time."""

    def __init__(self, model: onnx.ModelProto, threads: int, tmp: str) -> None:
        import onnxruntime as ort

        def options(profile: bool):
            opts = ort.SessionOptions()
            opts.intra_op_num_threads = threads
            opts.inter_op_num_threads = 1
            if profile:
                opts.enable_profiling = True
                opts.profile_file_prefix = os.path.join(tmp, "ort")
            return opts
        data = model.SerializeToString()
        self.sess = ort.InferenceSession(data, options(False), providers=["CPUExecutionProvider"])
        self.prof = ort.InferenceSession(data, options(True), providers=["CPUExecutionProvider"])

    def conv_times(self) -> list[float]:
        """Per profiled run, the summed time of its Conv kernels (seconds)."""
        events = json.loads(Path(self.prof.end_profiling()).read_text())
        runs: list[float] = [0.0]
        for e in sorted(events, key=lambda e: e.get("ts", 0) + e.get("dur", 0)):
            if e.get("cat") == "Session" and e.get("name") == "model_run":
                runs.append(0.0)
            elif e.get("cat") == "Node" and e.get("name", "").endswith("_kernel_time") \
                    and "Conv" in e.get("args", {}).get("op_name", ""):
                runs[-1] += e["dur"] * 1e-6
        return [r for r in runs if r > 0]


def bench_layer(model: onnx.ModelProto, x: np.ndarray, threads: int, repeat: int,
                passes: str | None) -> dict[str, float]:
    """Best times of the four measurements, taken round by round (interleaved, so a busy
    spell of the machine hits all of them alike)."""
    kw = {"passes": passes} if passes else {}
    exe = compiler.compile(model, target="cpu", options={"threads": threads}, **kw).executable
    best = {"cpu_conv": float("inf"), "cpu_model": float("inf"), "ort_model": float("inf")}
    with tempfile.TemporaryDirectory() as tmp:
        ort_conv = OrtConv(model, threads, tmp)
        for rnd in range(3 + repeat):
            t0 = time.perf_counter()
            exe.run([x])
            t1 = time.perf_counter()
            ort_conv.sess.run(None, {"x": x})
            t2 = time.perf_counter()
            conv = sum(s for label, s in exe.profile([x]) if "Conv" in label)
            ort_conv.prof.run(None, {"x": x})
            if rnd >= 3:  # warm-up done
                for key, t in (("cpu_model", t1 - t0), ("ort_model", t2 - t1), ("cpu_conv", conv)):
                    best[key] = min(best[key], t)
        best["ort_conv"] = min(ort_conv.conv_times()[3:], default=float("nan"))
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=30)
    ap.add_argument("--layers", default=",".join(DEFAULT), help="comma-separated, or 'all': " + ", ".join(LAYERS))
    ap.add_argument("--passes", default=None, help="cpu pipeline override")
    args = ap.parse_args()
    names = list(LAYERS) if args.layers == "all" else args.layers.split(",")
    print(f"{'layer':20s} {'GMAC':>6s} | {'cpu conv':>15s} {'cpu model':>15s} | {'ort conv':>15s} "
          f"{'ort model':>15s} | conv/ort model/ort")
    total = {"cpu": 0.0, "ort": 0.0}
    for name in names:
        spec = LAYERS[name]
        model = conv_model(*spec, transposed=name in TRANSPOSED)
        x = np.random.default_rng(1).standard_normal((1, spec[0], spec[2], spec[2])).astype(np.float32)
        flops = 2 * macs_of(*spec, transposed=name in TRANSPOSED)
        best = bench_layer(model, x, args.threads, args.repeat, args.passes)
        cpu_conv, cpu_model, ort_conv, ort_model = (best[k] for k in ("cpu_conv", "cpu_model", "ort_conv",
                                                                      "ort_model"))
        total["cpu"] += cpu_conv
        total["ort"] += ort_conv

        def cell(s: float) -> str:
            return f"{s * 1e3:6.3f}ms {flops / s * 1e-9:5.0f}G"
        print(f"{name:20s} {flops / 2e9:6.3f} | {cell(cpu_conv)} {cell(cpu_model)} | {cell(ort_conv)} "
              f"{cell(ort_model)} | {cpu_conv / ort_conv:5.2f} {cpu_model / ort_model:5.2f}", flush=True)
    print(f"sum of conv kernels: cpu {total['cpu'] * 1e3:.3f} ms, onnxruntime {total['ort'] * 1e3:.3f} ms, "
          f"ratio {total['cpu'] / total['ort']:.2f}")


if __name__ == "__main__":
    main()
