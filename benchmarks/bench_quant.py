"""int8 latency of the cpu target beside its fp32 build and onnxruntime's fp32 and int8, in one run.

    python benchmarks/bench_quant.py                      # digits CNN, light ResNet-50, MatMul 1024^3
    python benchmarks/bench_quant.py --models digits_cnn --threads 1

For each model: the float model is quantized by our ``quantize`` (MinMax,
per-channel weights, int8 activations) on a few calibration inputs; then the
median batch-1 latency of our cpu build of the float model and of the QDQ
model, and of onnxruntime on the same two files, all with the same thread
count, timed round-robin (a few calls of each per round, so a load that
drifts on a shared machine weighs on all of them alike).  The int8 outputs of our build
are compared with onnxruntime's on the same QDQ model (max difference in
output steps).  "int8 kernels A+B": A integer convs/matmuls, B integer adds.
Where the CPU has AMX-BF16, the float model is also built with
``--option precision=bf16`` (MatMul/Gemm on bfloat16 inputs; convolutions stay
float32) and timed in the same rounds.  The 1024^3 MatMul row reports
int8 ops/s beside the fp32 build's FLOP/s.
"""

from __future__ import annotations

import argparse
import os
import sys
import time


def _parse() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", default="digits_cnn,resnet50,matmul1024")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=20)
    ap.add_argument("--min-seconds", type=float, default=1.0)
    return ap.parse_args()


ARGS = _parse() if __name__ == "__main__" else None
if ARGS is not None:
    os.environ.setdefault("OPENBLAS_NUM_THREADS", str(ARGS.threads))
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402
import onnx  # noqa: E402
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
SHARED = os.path.normpath(os.path.join(HERE, "..", "..", "shared", "data"))


def _models() -> dict:
    """name -> (float model, input name, calibration batches, one test input)."""
    rng = np.random.default_rng(0)
    out = {}

    def digits():
        m = onnx.load(os.path.join(SHARED, "digits_cnn.onnx"))
        calib = np.load(os.path.join(SHARED, "digits_calib.npz"))["x_calib"].astype(np.float32)
        test = np.load(os.path.join(SHARED, "digits_test.npz"))["x_test"][:1].astype(np.float32).reshape(1, 1, 8, 8)
        return m, "input", [{"input": calib[i:i + 25]} for i in range(0, 100, 25)], test

    def resnet50():
        # The light model's weights are one repeated constant (its activations grow without
        # bound, and denormal or overflowing floats would time the float builds, not the
        # kernels): every weight is replaced by seeded random values scaled like a trained
        # network's (tests/model_zoo.py), as for the accuracy tests.
        from tests.model_zoo import randomized_light_model
        m = randomized_light_model("resnet50", logits=False)
        name = m.graph.input[0].name
        x = rng.standard_normal((1, 3, 224, 224)).astype(np.float32)
        return m, name, [{name: rng.standard_normal((1, 3, 224, 224)).astype(np.float32)} for _ in range(4)], x

    def matmul1024():
        w = (rng.standard_normal((1024, 1024)) * 0.03).astype(np.float32)
        g = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"])], "mm",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1024, 1024])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1024, 1024])],
                              [numpy_helper.from_array(w, "w")])
        m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
        x = rng.uniform(-1, 1, (1024, 1024)).astype(np.float32)
        return m, "x", [{"x": x}], x

    for name, fn in (("digits_cnn", digits), ("resnet50", resnet50), ("matmul1024", matmul1024)):
        out[name] = fn
    return out


PAUSE_S = 0.02
PER_ROUND = 10


def _median_ms(fns: dict, repeat: int, min_seconds: float) -> dict:
    """Median wall time of each callable (ms), timed round-robin: a few calls of each per round.

    Interleaving keeps the ratios fair on a shared machine whose load drifts
    during the run (every contender sees the same load on average).  Before
    its turn a contender waits a moment (the previous one's thread pool,
    onnxruntime's included, stops spinning beside it) and makes one untimed
    call (its own threads wake up), then ``PER_ROUND`` timed calls.
    """
    for fn in fns.values():
        for _ in range(3):
            fn()
    times = {k: [] for k in fns}
    start = time.perf_counter()
    while min(len(t) for t in times.values()) < repeat or time.perf_counter() - start < min_seconds * len(fns):
        for k, fn in fns.items():
            time.sleep(PAUSE_S)
            fn()
            for _ in range(PER_ROUND):
                t0 = time.perf_counter()
                fn()
                times[k].append((time.perf_counter() - t0) * 1e3)
    return {k: float(np.median(t)) for k, t in times.items()}


def _ort_session(model: onnx.ModelProto, threads: int):
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    return ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])


def main() -> int:
    from compiler.driver import build
    from compiler.quantize import QuantizeOptions, quantize_model
    args = ARGS
    table = []
    for name in args.models.split(","):
        fm, iname, calib, x = _models()[name]()
        t0 = time.perf_counter()
        q = quantize_model(fm, calib, QuantizeOptions(per_channel=True, progress=False)).model
        tq = time.perf_counter() - t0
        fp = build(fm, target="cpu", options={"threads": args.threads}).module
        bf = _bf16_build(fm, args.threads)
        t0 = time.perf_counter()
        res = build(q, target="cpu", options={"threads": args.threads})
        tb = time.perf_counter() - t0
        i8 = res.module
        ops = res.graph.op_counts()
        feeds = {iname: x}
        s_fp, s_q = _ort_session(fm, args.threads), _ort_session(q, args.threads)
        ours = i8.run(feeds)
        ours = list(ours.values())[0] if isinstance(ours, dict) else ours[0]
        theirs = s_q.run(None, feeds)[0]
        out_scale = next((numpy_helper.to_array(t) for t in q.graph.initializer
                          if t.name == q.graph.output[0].name + "_scale"), None)
        diff = float(np.max(np.abs(ours.astype(np.float64) - theirs)))
        steps = diff / float(out_scale) if out_scale is not None else None
        row = {"model": name, "quantize_s": tq, "build_int8_s": tb,
               "int8_kernels": ops.get("nnc.QConv", 0) + ops.get("nnc.QMatMul", 0),
               "int8_adds": ops.get("nnc.QAdd", 0)}
        contenders = {"ours_fp32_ms": lambda: fp.run(feeds), "ours_int8_ms": lambda: i8.run(feeds),
                      "ort_fp32_ms": lambda: s_fp.run(None, feeds), "ort_int8_ms": lambda: s_q.run(None, feeds)}
        if bf is not None:
            contenders["ours_bf16_ms"] = lambda: bf[0].run(feeds)
            row["bf16_matmuls"] = bf[1]
            bo = bf[0].run(feeds)
            bo = list(bo.values())[0] if isinstance(bo, dict) else bo[0]
            fo = s_fp.run(None, feeds)[0]
            row["bf16_rel_err"] = float(np.abs(bo - fo).max() / max(1e-30, float(np.abs(fo).max())))
        row.update(_median_ms(contenders, args.repeat, args.min_seconds))
        row["steps_vs_ort"], row["abs_diff_vs_ort"] = steps, diff
        if name == "matmul1024":
            ops_ = 2 * 1024 ** 3
            row["int8_Gops"] = ops_ / row["ours_int8_ms"] / 1e6
            row["fp32_GFLOPs"] = ops_ / row["ours_fp32_ms"] / 1e6
            if "ours_bf16_ms" in row:
                row["bf16_GFLOPs"] = ops_ / row["ours_bf16_ms"] / 1e6
        table.append(row)
        print(_fmt(row), flush=True)
    return 0


def _bf16_build(model, threads: int):
    """(module, matmuls on bfloat16) of the float model built with precision=bf16; None without AMX-BF16."""
    from backends.cpu.host import host_features
    from backends.cpu.kernels.bf16_amx import has_amx_bf16
    from compiler.driver import build
    if not has_amx_bf16(k for k, v in host_features().items() if v):
        return None
    res = build(model, target="cpu", options={"threads": threads, "precision": "bf16"})
    return res.module, res.graph.op_counts().get("nnc.BF16MatMul", 0)


def _fmt(r: dict) -> str:
    s = (f"{r['model']:<11} int8 kernels {r['int8_kernels']:>3}+{r['int8_adds']:<2} | ours fp32 {r['ours_fp32_ms']:8.3f} ms  "
         f"ours int8 {r['ours_int8_ms']:8.3f} ms | ORT fp32 {r['ort_fp32_ms']:8.3f} ms  ORT int8 "
         f"{r['ort_int8_ms']:8.3f} ms | int8/ORT-fp32 {r['ours_int8_ms'] / r['ort_fp32_ms']:.2f}  "
         f"int8/ORT-int8 {r['ours_int8_ms'] / r['ort_int8_ms']:.2f} | max diff vs ORT int8 "
         + (f"{r['steps_vs_ort']:.0f} steps" if r["steps_vs_ort"] is not None else f"{r['abs_diff_vs_ort']:.2g}"))
    if "ours_bf16_ms" in r:
        s += (f" | ours bf16 ({r['bf16_matmuls']} matmuls) {r['ours_bf16_ms']:8.3f} ms, "
              f"max rel err vs ORT fp32 {r['bf16_rel_err']:.1e}")
    if "int8_Gops" in r:
        s += f" | int8 {r['int8_Gops']:.0f} Gop/s vs fp32 {r['fp32_GFLOPs']:.0f} GFLOP/s"
        if "bf16_GFLOPs" in r:
            s += f", bf16 {r['bf16_GFLOPs']:.0f} GFLOP/s"
    return s


if __name__ == "__main__":
    sys.exit(main())
