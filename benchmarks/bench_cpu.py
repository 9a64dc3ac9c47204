"""Latency of the cpu target beside onnxruntime (and TVM's own ONNX path, untuned), in one run.

    python benchmarks/bench_cpu.py                       # every model, 2 threads
    python benchmarks/bench_cpu.py --models resnet50,matmul1024 --threads 1
    python benchmarks/bench_cpu.py --no-tvm --markdown

For each model: compile time and artifact load time of our cpu target, then
median batch-1 latency of ours, onnxruntime's and TVM's with the same thread
count, and the ratio ours / onnxruntime (below 1 is faster).  Runtimes are
timed one after another with a pause between them, since onnxruntime's
worker threads keep spinning for a while after a call.  The 1024^3 MatMul
row also reports GFLOP/s beside NumPy's (OpenBLAS).
"""

from __future__ import annotations

import argparse
import os
import sys


def _parse() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", default="all", help="comma-separated names (see --list), or 'all'")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=30, help="timed runs per runtime (more for fast models)")
    ap.add_argument("--min-seconds", type=float, default=1.0, help="time each runtime at least this long")
    ap.add_argument("--no-tvm", action="store_true", help="skip TVM (its untuned builds are slow)")
    ap.add_argument("--tvm-repeat", type=int, default=3)
    ap.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    ap.add_argument("--list", action="store_true")
    return ap.parse_args()


ARGS = _parse() if __name__ == "__main__" else None
if ARGS is not None:  # OpenBLAS reads its thread count at import: set it before NumPy loads
    os.environ.setdefault("OPENBLAS_NUM_THREADS", str(ARGS.threads))
    os.environ.setdefault("OMP_NUM_THREADS", str(ARGS.threads))
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402

import numpy as np  # noqa: E402
import onnx  # noqa: E402
from onnx import TensorProto, helper  # noqa: E402

LIGHT_DIR = os.path.join(os.path.dirname(onnx.__file__), "backend", "test", "data", "light")
SHARED = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                      "shared", "data")
LIGHT = ["resnet50", "squeezenet", "shufflenet", "inception_v1", "inception_v2", "densenet121",
         "bvlc_alexnet", "zfnet512", "vgg19"]


def matmul_model(n: int = 1024) -> onnx.ModelProto:
    vi = lambda name: helper.make_tensor_value_info(name, TensorProto.FLOAT, [n, n])
    g = helper.make_graph([helper.make_node("MatMul", ["A", "B"], ["C"])], "matmul", [vi("A"), vi("B")], [vi("C")])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    return m


def model_source(name: str):
    if name in LIGHT:
        return os.path.join(LIGHT_DIR, f"light_{name}.onnx")
    if name.startswith("digits_"):
        return os.path.join(SHARED, f"{name}.onnx")
    if name == "matmul1024":
        return matmul_model()
    raise SystemExit(f"unknown model {name!r}; --list shows the choices")


def feeds_for(model: onnx.ModelProto) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    inits = {t.name for t in model.graph.initializer}
    feeds = {}
    for vi in model.graph.input:
        if vi.name in inits:
            continue
        dims = [d.dim_value if d.HasField("dim_value") else 1 for d in vi.type.tensor_type.shape.dim]
        feeds[vi.name] = rng.standard_normal(dims).astype(np.float32)
    return feeds


def time_calls(fn: Callable[[], object], repeat: int, min_seconds: float, warmup: int = 3) -> float:
    """Median milliseconds of ``fn`` over at least ``repeat`` calls and ``min_seconds``."""
    for _ in range(warmup):
        fn()
    times = []
    start = time.perf_counter()
    while len(times) < repeat or time.perf_counter() - start < min_seconds:
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def bench_ours(model, feeds, threads, repeat, min_seconds) -> dict:
    import compiler
    t0 = time.perf_counter()
    m = compiler.compile(model, target="cpu", options={"threads": threads})
    m.run(feeds)  # the first call may specialize symbolic dims
    compile_s = time.perf_counter() - t0
    with tempfile.TemporaryDirectory() as d:
        m.save(d)
        t0 = time.perf_counter()
        loaded = compiler.load(d)
        load_s = time.perf_counter() - t0
        del loaded
    exe = m.executable
    arrays = [np.ascontiguousarray(feeds[n]) for n in m.input_names]
    run = (lambda: exe.run(arrays))
    ms = time_calls(run, repeat, min_seconds)
    return {"ms": ms, "compile_s": compile_s, "load_s": load_s, "outputs": m.run(feeds)}


def bench_ort(model, feeds, threads, repeat, min_seconds) -> dict:
    import onnxruntime as ort
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    data = model.SerializeToString() if isinstance(model, onnx.ModelProto) else model
    sess = ort.InferenceSession(data, opts, providers=["CPUExecutionProvider"])
    ms = time_calls(lambda: sess.run(None, feeds), repeat, min_seconds)
    return {"ms": ms, "outputs": sess.run(None, feeds)}


def bench_tvm(model, feeds, threads, repeat) -> dict:
    import llvmlite.binding as llvm
    import tvm
    from tvm import relax
    from tvm.relax.frontend.onnx import from_onnx
    proto = model if isinstance(model, onnx.ModelProto) else onnx.load(model)
    t0 = time.perf_counter()
    mod = from_onnx(proto, keep_params_in_input=False)
    mod = relax.transform.DecomposeOpsForInference()(mod)
    mod = relax.transform.LegalizeOps()(mod)
    target = tvm.target.Target({"kind": "llvm", "mcpu": llvm.get_host_cpu_name(), "num-cores": threads})
    vm = relax.VirtualMachine(tvm.compile(mod, target=target), tvm.cpu())
    compile_s = time.perf_counter() - t0
    tensor = tvm.runtime.tensor if hasattr(tvm.runtime, "tensor") else tvm.nd.array
    args = [tensor(feeds[i.name]) for i in proto.graph.input if i.name in feeds]
    ms = time_calls(lambda: vm["main"](*args), repeat, 0.0, warmup=1)
    return {"ms": ms, "compile_s": compile_s}


def main() -> int:
    args = ARGS
    names = LIGHT + ["digits_cnn", "digits_mlp", "matmul1024"]
    if args.list:
        print("\n".join(names))
        return 0
    chosen = names if args.models == "all" else args.models.split(",")
    os.environ["TVM_NUM_THREADS"] = str(args.threads)
    import llvmlite.binding as llvm
    print(f"# {llvm.get_host_cpu_name()}, {os.cpu_count()} cores; {args.threads} thread(s); batch 1; "
          f"median latency in ms", flush=True)
    rows = []
    for name in chosen:
        src = model_source(name)
        model = onnx.load(src) if isinstance(src, str) else src
        feeds = feeds_for(model)
        if name == "matmul1024":  # NumPy first, before any runtime has started its threads
            np_ms = time_calls(lambda: feeds["A"] @ feeds["B"], args.repeat, args.min_seconds)
            time.sleep(0.2)
        ours = bench_ours(model, feeds, args.threads, args.repeat, args.min_seconds)
        time.sleep(0.2)
        ort_r = bench_ort(model, feeds, args.threads, args.repeat, args.min_seconds)
        err = max(float(np.max(np.abs(a - b))) for a, b in zip(ours["outputs"].values(), ort_r["outputs"]))
        row = {"model": name, "ours_ms": ours["ms"], "ort_ms": ort_r["ms"], "ratio": ours["ms"] / ort_r["ms"],
               "compile_s": ours["compile_s"], "load_s": ours["load_s"], "max_abs_diff": err}
        if name == "matmul1024":
            flops = 2 * 1024 ** 3
            row.update({"gflops": flops / ours["ms"] / 1e6, "numpy_gflops": flops / np_ms / 1e6,
                        "vs_numpy": np_ms / ours["ms"]})
        if not args.no_tvm:
            time.sleep(0.2)
            try:
                tvm_r = bench_tvm(model, feeds, args.threads, args.tvm_repeat)
                row["tvm_ms"] = tvm_r["ms"]
            except Exception as exc:  # noqa: BLE001 - TVM is only here for scale
                row["tvm_ms"] = float("nan")
                print(f"  (TVM failed on {name}: {type(exc).__name__}: {str(exc)[:100]})", file=sys.stderr)
        rows.append(row)
        extra = f"  {row['gflops']:.0f} GFLOP/s = {row['vs_numpy']:.0%} of numpy" if "gflops" in row else ""
        print(f"{name:<14} ours {row['ours_ms']:9.2f}  ort {row['ort_ms']:9.2f}  ratio {row['ratio']:5.2f}"
              f"  tvm {row.get('tvm_ms', float('nan')):9.1f}  compile {row['compile_s']:5.1f}s"
              f"  load {row['load_s']:.2f}s  diff {err:.1e}{extra}", flush=True)
    if args.markdown:
        print("\n| model | ours (ms) | onnxruntime (ms) | ratio | TVM untuned (ms) | compile (s) | load (s) |")
        print("|---|---:|---:|---:|---:|---:|---:|")
        for r in rows:
            tvm_ms = r.get("tvm_ms", float("nan"))
            print(f"| {r['model']} | {r['ours_ms']:.2f} | {r['ort_ms']:.2f} | {r['ratio']:.2f} | "
                  f"{'-' if tvm_ms != tvm_ms else f'{tvm_ms:.1f}'} | {r['compile_s']:.1f} | {r['load_s']:.2f} |")
        mm = next((r for r in rows if "gflops" in r), None)
        if mm:
            print(f"\nMatMul 1024^3: {mm['gflops']:.0f} GFLOP/s, NumPy (OpenBLAS) {mm['numpy_gflops']:.0f} GFLOP/s "
                  f"({mm['vs_numpy']:.0%} of NumPy)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
