"""Latency of the cpu target beside onnxruntime, OpenVINO (when installed) and TVM, in one run.

    python benchmarks/bench_cpu.py                       # every model, 2 threads
    python benchmarks/bench_cpu.py --models resnet50,matmul1024 --threads 1
    python benchmarks/bench_cpu.py --models vit_tiny,bert_tiny --no-tvm --markdown

Models: the nine light ONNX models, the digits models, a 1024^3 MatMul and the
torch zoo (``benchmarks/models/torch_zoo.py``, bench size, exported once into
``--zoo-dir``; needs torch).  For each model: compile time and artifact load
time of our cpu target, then batch-1 latency (min, median, p90) of ours,
onnxruntime's and OpenVINO's (fp32; skipped when ``openvino`` is not
installed, it is never a dependency) with the same thread count, and the
ratio ours / the faster peer (median; below 1 is faster).  The runtimes
are timed in alternating rounds (ours, onnxruntime, OpenVINO, ours, ...)
so that a noisy neighbour hurts all of them alike; each round pauses first,
since onnxruntime's worker threads keep spinning for a while after a call.
All runtimes get the same inputs and their outputs are checked against
onnxruntime's (an assertion, not a print).  TVM (untuned, its own ONNX
path) is only there for scale.  The 1024^3 MatMul row also reports GFLOP/s
beside NumPy's (OpenBLAS).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile


def _parse() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", default="all", help="comma-separated names (see --list), or 'all'")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=30, help="timed runs per runtime (more for fast models)")
    ap.add_argument("--min-seconds", type=float, default=1.0, help="time each runtime at least this long")
    ap.add_argument("--no-tvm", action="store_true", help="skip TVM (its untuned builds are slow)")
    ap.add_argument("--tvm-repeat", type=int, default=3)
    ap.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    ap.add_argument("--rounds", type=int, default=5, help="alternating timing rounds per model")
    ap.add_argument("--no-openvino", action="store_true", help="skip OpenVINO even when installed")
    ap.add_argument("--zoo-dir", default=os.path.join(tempfile.gettempdir(), "nncompiler-bench-zoo"),
                    help="where the torch zoo models are exported (reused when present)")
    ap.add_argument("--list", action="store_true")
    return ap.parse_args()


ARGS = _parse() if __name__ == "__main__" else None
if ARGS is not None:  # OpenBLAS reads its thread count at import: set it before NumPy loads
    os.environ.setdefault("OPENBLAS_NUM_THREADS", str(ARGS.threads))
    os.environ.setdefault("OMP_NUM_THREADS", str(ARGS.threads))
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import statistics  # noqa: E402
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


ZOO = ["resnet18", "mobilenet_v2", "vit_tiny", "bert_tiny", "convnext_style", "unet_style"]
ZOO_DIMS = {"bert_tiny": {"seq": 128}}  # symbolic dims other than the batch, fixed at build time


def _zoo_module():
    import importlib.util
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "models", "torch_zoo.py")
    mod = sys.modules.get("torch_zoo")
    if mod is None:
        spec = importlib.util.spec_from_file_location("torch_zoo", path)
        mod = importlib.util.module_from_spec(spec)
        sys.modules["torch_zoo"] = mod
        spec.loader.exec_module(mod)
    return mod


def model_source(name: str, zoo_dir: str = ""):
    if name in LIGHT:
        return os.path.join(LIGHT_DIR, f"light_{name}.onnx")
    if name.startswith("digits_"):
        return os.path.join(SHARED, f"{name}.onnx")
    if name == "matmul1024":
        return matmul_model()
    if name in ZOO:
        path = os.path.join(zoo_dir, f"{name}_bench.onnx")
        if not os.path.exists(path):
            os.makedirs(zoo_dir, exist_ok=True)
            _zoo_module().export(name, path, size="bench")
        return path
    raise SystemExit(f"unknown model {name!r}; --list shows the choices")


def feeds_for(name: str, model: onnx.ModelProto) -> dict[str, np.ndarray]:
    if name in ZOO:  # the zoo's own seeded inputs (token ids and a padding mask for BERT)
        return _zoo_module().example_inputs(name, batch=1, size="bench", seed=0)
    rng = np.random.default_rng(0)
    inits = {t.name for t in model.graph.initializer}
    feeds = {}
    for vi in model.graph.input:
        if vi.name in inits:
            continue
        dims = [d.dim_value if d.HasField("dim_value") else 1 for d in vi.type.tensor_type.shape.dim]
        feeds[vi.name] = rng.standard_normal(dims).astype(np.float32)
    return feeds


def time_once(fn: Callable[[], object], repeat: int, min_seconds: float) -> list[float]:
    """Milliseconds of ``fn`` over at least ``repeat`` calls and ``min_seconds``."""
    times = []
    start = time.perf_counter()
    while len(times) < repeat or time.perf_counter() - start < min_seconds:
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return times


def stats(times: list[float]) -> dict[str, float]:
    ordered = sorted(times)
    return {"min": ordered[0], "median": statistics.median(ordered),
            "p90": ordered[min(len(ordered) - 1, int(round(0.9 * (len(ordered) - 1))))], "n": len(ordered)}


def time_interleaved(runners: dict[str, Callable[[], object]], rounds: int, repeat: int,
                     min_seconds: float, warmup: int = 3) -> dict[str, dict[str, float]]:
    """Time every runner in ``rounds`` alternating rounds; min/median/p90 over all of a runner's calls."""
    for fn in runners.values():
        for _ in range(warmup):
            fn()
    times: dict[str, list[float]] = {k: [] for k in runners}
    per_round = max(1, repeat // max(1, rounds))
    for _ in range(max(1, rounds)):
        for k, fn in runners.items():
            time.sleep(0.1)  # onnxruntime's (and our) workers stop spinning before the next runtime
            fn()
            times[k] += time_once(fn, per_round, min_seconds / max(1, rounds))
    return {k: stats(v) for k, v in times.items()}


def time_calls(fn: Callable[[], object], repeat: int, min_seconds: float, warmup: int = 3) -> float:
    """Median milliseconds of ``fn`` over at least ``repeat`` calls and ``min_seconds``."""
    for _ in range(warmup):
        fn()
    return statistics.median(time_once(fn, repeat, min_seconds))


def prepare_ours(model, feeds, threads, dims=None) -> dict:
    import compiler
    t0 = time.perf_counter()
    m = compiler.compile(model, target="cpu", options={"threads": threads}, dims=dims)
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
    outs = m.run(feeds)
    return {"run": (lambda: exe.run(arrays)), "compile_s": compile_s, "load_s": load_s,
            "outputs": [outs[n] for n in m.output_names]}


def prepare_ort(model, feeds, threads) -> dict:
    import onnxruntime as ort
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    data = model.SerializeToString() if isinstance(model, onnx.ModelProto) else model
    sess = ort.InferenceSession(data, opts, providers=["CPUExecutionProvider"])
    return {"run": (lambda: sess.run(None, feeds)), "outputs": sess.run(None, feeds),
            "version": ort.__version__}


def openvino_available() -> bool:
    import importlib.util
    return importlib.util.find_spec("openvino") is not None


def prepare_openvino(model, feeds, threads) -> dict:
    """OpenVINO's CPU plugin in fp32 (no bf16/fp16 inference precision), ``threads`` streams' threads."""
    import openvino as ov
    core = ov.Core()
    proto = model if isinstance(model, onnx.ModelProto) else onnx.load(model)
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "model.onnx")
        onnx.save(proto, path)
        ovm = core.read_model(path)
    shapes = {inp.get_any_name(): list(feeds[inp.get_any_name()].shape) for inp in ovm.inputs
              if inp.get_any_name() in feeds}
    ovm.reshape(shapes)
    compiled = core.compile_model(ovm, "CPU", {"INFERENCE_NUM_THREADS": threads, "NUM_STREAMS": 1,
                                               "INFERENCE_PRECISION_HINT": "f32",
                                               "PERFORMANCE_HINT": "LATENCY"})
    req = compiled.create_infer_request()
    names = [inp.get_any_name() for inp in compiled.inputs]
    arrays = {n: feeds[n] for n in names}
    run = (lambda: req.infer(arrays))
    res = req.infer(arrays)
    outs = [np.array(res[o]) for o in compiled.outputs]
    return {"run": run, "outputs": outs, "version": ov.__version__}


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


def check_outputs(name: str, runtime: str, got: list, ref: list) -> float:
    """Largest difference to onnxruntime's outputs, relative to their scale; asserts it is small."""
    assert len(got) == len(ref), f"{name}: {runtime} gave {len(got)} outputs, onnxruntime {len(ref)}"
    worst = 0.0
    for a, b in zip(got, ref):
        a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
        assert a.shape == b.shape, f"{name}: {runtime} output shape {a.shape}, onnxruntime {b.shape}"
        scale = max(1.0, float(np.max(np.abs(b)))) if b.size else 1.0
        worst = max(worst, float(np.max(np.abs(a - b))) / scale if a.size else 0.0)
    assert worst < 1e-3, f"{name}: {runtime}'s outputs differ from onnxruntime's by {worst:.2e} (relative)"
    return worst


def main() -> int:
    args = ARGS
    names = LIGHT + ["digits_cnn", "digits_mlp", "matmul1024"] + ZOO
    if args.list:
        print("\n".join(names))
        return 0
    chosen = names if args.models == "all" else args.models.split(",")
    os.environ["TVM_NUM_THREADS"] = str(args.threads)
    import llvmlite.binding as llvm
    use_ov = not args.no_openvino and openvino_available()
    print(f"# {llvm.get_host_cpu_name()}, {os.cpu_count()} cores; {args.threads} thread(s); batch 1; "
          f"ms; peers: onnxruntime{', OpenVINO' if use_ov else ' (OpenVINO not installed)'}", flush=True)
    rows = []
    for name in chosen:
        src = model_source(name, args.zoo_dir)
        model = onnx.load(src) if isinstance(src, str) else src
        feeds = feeds_for(name, model)
        np_ms = None
        if name == "matmul1024":  # NumPy first, before any runtime has started its threads
            np_ms = time_calls(lambda: feeds["A"] @ feeds["B"], args.repeat, args.min_seconds)
            time.sleep(0.2)
        try:
            ours = prepare_ours(src if isinstance(src, str) else model, feeds, args.threads, ZOO_DIMS.get(name))
        except Exception as exc:  # noqa: BLE001 - a model we cannot compile yet is reported, the rest still run
            print(f"{name:<15} ours: cannot compile ({type(exc).__name__}: {str(exc)[:160]})", flush=True)
            continue
        runners = {"ours": ours["run"]}
        ort_r = prepare_ort(model, feeds, args.threads)
        runners["ort"] = ort_r["run"]
        err = check_outputs(name, "ours", ours["outputs"], ort_r["outputs"])
        if use_ov:
            try:
                ov_r = prepare_openvino(model, feeds, args.threads)
                try:
                    check_outputs(name, "OpenVINO", ov_r["outputs"], ort_r["outputs"])
                    runners["ov"] = ov_r["run"]
                except AssertionError as exc:  # a peer's wrong answer is no benchmark: left out, said so
                    print(f"  (OpenVINO left out on {name}: {exc})", file=sys.stderr)
            except Exception as exc:  # noqa: BLE001 - a peer that cannot load a model is reported, not fatal
                print(f"  (OpenVINO failed on {name}: {type(exc).__name__}: {str(exc)[:100]})", file=sys.stderr)
        st = time_interleaved(runners, args.rounds, args.repeat, args.min_seconds)
        peers = {k: v["median"] for k, v in st.items() if k != "ours"}
        best = min(peers, key=peers.get)
        row = {"model": name, "ours": st["ours"], "ort": st["ort"], "ov": st.get("ov"),
               "ratio": st["ours"]["median"] / peers[best], "best_peer": best,
               "compile_s": ours["compile_s"], "load_s": ours["load_s"], "max_rel_diff": err}
        if np_ms is not None:
            flops = 2 * 1024 ** 3
            row.update({"gflops": flops / st["ours"]["median"] / 1e6, "numpy_gflops": flops / np_ms / 1e6,
                        "vs_numpy": np_ms / st["ours"]["median"]})
        if not args.no_tvm:
            time.sleep(0.2)
            try:
                row["tvm_ms"] = bench_tvm(model, feeds, args.threads, args.tvm_repeat)["ms"]
            except Exception as exc:  # noqa: BLE001 - TVM is only here for scale
                row["tvm_ms"] = float("nan")
                print(f"  (TVM failed on {name}: {type(exc).__name__}: {str(exc)[:100]})", file=sys.stderr)
        rows.append(row)
        fmt = lambda s: f"{s['min']:7.2f}/{s['median']:7.2f}/{s['p90']:7.2f}" if s else "      -"
        extra = f"  {row['gflops']:.0f} GFLOP/s = {row['vs_numpy']:.0%} of numpy" if "gflops" in row else ""
        print(f"{name:<15} ours {fmt(row['ours'])}  ort {fmt(row['ort'])}  ov {fmt(row['ov'])}  "
              f"ratio {row['ratio']:5.2f} (vs {best})  compile {row['compile_s']:5.1f}s  "
              f"diff {err:.1e}{extra}" + (f"  tvm {row['tvm_ms']:.1f}" if "tvm_ms" in row else ""), flush=True)
    if args.markdown:
        print("\n(min / median / p90 ms)\n")
        print("| model | ours | onnxruntime | OpenVINO | ours / faster peer (median) | compile (s) |")
        print("|---|---:|---:|---:|---:|---:|")
        cell = lambda s: f"{s['min']:.2f} / {s['median']:.2f} / {s['p90']:.2f}" if s else "-"
        for r in rows:
            print(f"| {r['model']} | {cell(r['ours'])} | {cell(r['ort'])} | {cell(r['ov'])} | "
                  f"{r['ratio']:.2f} | {r['compile_s']:.1f} |")
        mm = next((r for r in rows if "gflops" in r), None)
        if mm:
            print(f"\nMatMul 1024^3: {mm['gflops']:.0f} GFLOP/s, NumPy (OpenBLAS) {mm['numpy_gflops']:.0f} GFLOP/s "
                  f"({mm['vs_numpy']:.0%} of NumPy)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
