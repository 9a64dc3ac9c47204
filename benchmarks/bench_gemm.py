"""Benchmark the cpu target's gemm kernels against NumPy (OpenBLAS) and onnxruntime.

    python benchmarks/bench_gemm.py [--threads 1 2] [--rounds 8] [--quick]

For each thread count a worker process is started with OPENBLAS_NUM_THREADS
set (NumPy reads it at import; threadpoolctl is used instead when
installed), and in it NumPy, our compiled module (``threads=`` option) and
onnxruntime (``intra_op_num_threads``) are timed in alternating bursts, the
best time of each kept, so that a busy (shared) machine slows all three
alike; a pause before each burst lets the previous library's spinning
worker threads go idle.

Cases: the acceptance case, a 1024 x 1024 x 1024 MatMul with both operands
as inputs (GFLOP/s and the ratio to NumPy), and VGG-19's fc6 layer, batch 1
(1 x 25088 @ 25088 x 4096 with constant weights, as Gemm transB=1 + bias +
Relu like the exported model and as a plain MatMul with K x N weights),
reported in ms and GB/s of weights streamed.  Not collected by pytest.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SETTLE_S = 0.3  # OpenBLAS workers spin ~0.1 s after a call
FALLBACK_PIPELINE = ("fold-constants,remove-identity,cse,dce,layout-nchwc,fold-constants,dce,fuse,dce,"
                     "schedule,plan-memory")


# ------------------------------------------------------------------- models
def matmul_model(m: int, k: int, n: int):
    from onnx import TensorProto, helper
    vis = [helper.make_tensor_value_info("a", TensorProto.FLOAT, [m, k]),
           helper.make_tensor_value_info("b", TensorProto.FLOAT, [k, n])]
    out = [helper.make_tensor_value_info("y", TensorProto.FLOAT, [m, n])]
    graph = helper.make_graph([helper.make_node("MatMul", ["a", "b"], ["y"])], "mm", vis, out)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def fc_model(w, bias, trans_b: bool):
    """x @ W (+ bias, Relu when trans_b: the exported fully connected layer)."""
    from onnx import TensorProto, helper, numpy_helper
    k = w.shape[1] if trans_b else w.shape[0]
    n = w.shape[0] if trans_b else w.shape[1]
    vis = [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, k])]
    out = [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, n])]
    inits = [numpy_helper.from_array(w, "w")]
    if trans_b:
        inits.append(numpy_helper.from_array(bias, "bias"))
        nodes = [helper.make_node("Gemm", ["x", "w", "bias"], ["h"], transB=1), helper.make_node("Relu", ["h"], ["y"])]
    else:
        nodes = [helper.make_node("MatMul", ["x", "w"], ["y"])]
    graph = helper.make_graph(nodes, "fc", vis, out, inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


# ------------------------------------------------------------------- worker
def _compile(model, threads: int):
    import compiler
    from ir.errors import CompilerError
    from passes.manager import parse_pipeline
    from backends.cpu import PIPELINE as CPU_PIPELINE
    try:
        parse_pipeline(CPU_PIPELINE)
        passes = None
    except CompilerError:
        passes = FALLBACK_PIPELINE
    return compiler.compile(model, target="cpu", passes=passes, options={"threads": threads}).executable


def _ort(model, threads: int):
    import onnxruntime as ort
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    return ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])


def _best(fns: dict, rounds: int, per_round: int) -> dict[str, float]:
    """Best time of each function over ``rounds`` bursts of ``per_round`` calls.

    Each burst starts after a pause: OpenBLAS, onnxruntime and our pool spin
    their idle workers for a while after a call, which would steal the cores
    from the next library timed.
    """
    best = {name: float("inf") for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            time.sleep(SETTLE_S)
            fn()
            for _ in range(per_round):
                t0 = time.perf_counter()
                fn()
                best[name] = min(best[name], time.perf_counter() - t0)
    return best


def worker(threads: int, rounds: int, quick: bool) -> dict:
    try:
        from threadpoolctl import threadpool_limits
        threadpool_limits(threads)
    except ImportError:
        pass  # OPENBLAS_NUM_THREADS was set by the parent
    import numpy as np
    rng = np.random.default_rng(0)
    report: dict = {"threads": threads}

    # 1024^3 MatMul, both operands inputs.
    m = k = n = 1024
    a, b = rng.standard_normal((m, k), dtype=np.float32), rng.standard_normal((k, n), dtype=np.float32)
    model = matmul_model(m, k, n)
    ours, sess = _compile(model, threads), _ort(model, threads)
    err = float(np.abs(ours.run([a, b])[0] - a.astype(np.float64) @ b).max())
    times = _best({"numpy": lambda: a @ b, "ours": lambda: ours.run([a, b]),
                   "onnxruntime": lambda: sess.run(None, {"a": a, "b": b})}, rounds, 5)
    flops = 2.0 * m * n * k
    report["matmul_1024"] = {name: {"ms": t * 1e3, "gflops": flops / t / 1e9} for name, t in times.items()}
    report["matmul_1024"]["ratio_vs_numpy"] = times["numpy"] / times["ours"]
    report["matmul_1024"]["max_abs_error"] = err
    report["matmul_1024"]["tasks"] = ours.description["tasks"]
    if quick:
        return report

    # VGG-19 fc6, batch 1: weights streamed once.
    k, n = 25088, 4096
    w = rng.standard_normal((n, k), dtype=np.float32) * 0.01
    bias = rng.standard_normal(n, dtype=np.float32)
    x = rng.standard_normal((1, k), dtype=np.float32)
    wt = np.ascontiguousarray(w.T)
    fc_t, fc_n = fc_model(w, bias, True), fc_model(wt, bias, False)
    ours_t, ours_n = _compile(fc_t, threads), _compile(fc_n, threads)
    sess_t = _ort(fc_t, threads)
    want = np.maximum(x.astype(np.float64) @ wt + bias, 0)
    err = float(np.abs(ours_t.run([x])[0] - want).max())
    times = _best({"numpy": lambda: np.maximum(x @ wt + bias, 0),
                   "ours Gemm transB=1+Relu": lambda: ours_t.run([x]),
                   "ours MatMul KxN": lambda: ours_n.run([x]),
                   "onnxruntime": lambda: sess_t.run(None, {"x": x})}, max(3, rounds // 3), 2)
    report["vgg19_fc6"] = {name: {"ms": t * 1e3, "weights_gb_per_s": w.nbytes / t / 1e9}
                           for name, t in times.items()}
    report["vgg19_fc6"]["max_abs_error"] = err
    return report


# ------------------------------------------------------------------- driver
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("--quick", action="store_true", help="only the 1024^3 MatMul")
    ap.add_argument("--worker", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, args.rounds, args.quick)))
        return
    for threads in args.threads:
        env = dict(os.environ, OPENBLAS_NUM_THREADS=str(threads), OMP_NUM_THREADS=str(threads),
                   PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
        cmd = [sys.executable, __file__, "--worker", str(threads), "--rounds", str(args.rounds)]
        out = subprocess.run(cmd + (["--quick"] if args.quick else []), env=env, cwd=ROOT, check=True,
                             capture_output=True, text=True).stdout
        show(json.loads(out.strip().splitlines()[-1]))


def show(r: dict) -> None:
    print(f"== {r['threads']} thread(s)")
    mm = r["matmul_1024"]
    print(f"  MatMul 1024x1024x1024 (tasks {mm['tasks']}, max abs error {mm['max_abs_error']:.2e})")
    for name in ("numpy", "ours", "onnxruntime"):
        print(f"    {name:12s} {mm[name]['ms']:8.2f} ms  {mm[name]['gflops']:7.1f} GFLOP/s")
    print(f"    ours / numpy = {mm['ratio_vs_numpy']:.2f}")
    fc = r.get("vgg19_fc6")
    if fc:
        print(f"  VGG-19 fc6: 1x25088 @ 25088x4096 (max abs error {fc['max_abs_error']:.2e})")
        for name, v in fc.items():
            if isinstance(v, dict):
                print(f"    {name:26s} {v['ms']:8.2f} ms  {v['weights_gb_per_s']:6.1f} GB/s")


if __name__ == "__main__":
    main()
