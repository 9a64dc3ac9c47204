"""Build, check and time every model on the tvm target in one call (CUDA when a GPU is present).

    python benchmarks/bench_tvm.py                      # every model; device=cuda on a GPU, else llvm
    python benchmarks/bench_tvm.py --device llvm --models digits_cnn,resnet50 --markdown
    python benchmarks/bench_tvm.py --list

For each model (random weights for the light ImageNet and torch-built models):
build time of ``--target tvm``, its largest error relative to our reference
interpreter on the same input, its median batch-1 latency; in the same run
TVM's own ONNX path on the same device (``relax.frontend.onnx.from_onnx``,
TVM's default pipeline, DLight's GPU rules on CUDA) and onnxruntime (its
CUDA provider on a GPU, else its CPU provider), with the ratios ours / theirs
(below 1 is faster).  ``--tune S`` adds our build tuned by MetaSchedule for S
seconds per model.  Latencies include copying inputs to the device and
outputs back, for every runtime.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import traceback
from collections.abc import Callable

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import numpy as np  # noqa: E402

DIGITS = ("digits_cnn", "digits_mlp")
LIGHT = ("squeezenet", "shufflenet", "resnet50", "inception_v1", "inception_v2", "densenet121",
         "bvlc_alexnet", "zfnet512", "vgg19")
TORCH = ("resnet18", "mobilenet_v2", "vit_tiny", "bert_tiny")  # benchmarks/models/torch_zoo.py, bench size
SHARED = os.path.join(os.path.dirname(ROOT), "shared", "data")


def source(name: str):
    """(model path or proto, feeds) for ``name``."""
    if name in DIGITS:
        x = np.load(os.path.join(SHARED, "digits_test.npz"))["x_test"][:1].astype(np.float32)
        return os.path.join(SHARED, f"{name}.onnx"), {"input": x.reshape(1, -1) if name == "digits_mlp" else x}
    if name in LIGHT:
        from tests.model_zoo import light_input, randomized_light_model
        proto = randomized_light_model(name)
        return proto, light_input(proto)
    if name in TORCH:
        from tests.torch_models import torch_model, zoo
        return str(torch_model(name, size="bench")), zoo().example_inputs(name, batch=1, size="bench")
    raise SystemExit(f"unknown model {name!r}; --list shows them")


def median_ms(fn: Callable[[], object], repeat: int, min_seconds: float, warmup: int = 2) -> float:
    for _ in range(warmup):
        fn()
    times, start = [], time.perf_counter()
    while len(times) < repeat or (time.perf_counter() - start < min_seconds and len(times) < 1000):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def ort_session(model, gpu: bool, threads: int):
    import onnx
    import onnxruntime as ort
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    if threads:
        opts.intra_op_num_threads = threads
    providers = ["CPUExecutionProvider"]
    if gpu and "CUDAExecutionProvider" in ort.get_available_providers():
        providers.insert(0, "CUDAExecutionProvider")
    data = model.SerializeToString() if isinstance(model, onnx.ModelProto) else model
    sess = ort.InferenceSession(data, opts, providers=providers)
    return sess, sess.get_providers()[0].replace("ExecutionProvider", "")


def tvm_onnx_path(model, feeds: dict, device: str, threads: int) -> tuple[Callable[[], list], float]:
    """TVM's own way in: its ONNX frontend, its default pipeline (DLight on GPUs); (run, build seconds)."""
    import onnx
    import tvm
    from tvm import relax
    from tvm.relax.frontend.onnx import from_onnx

    from backends.tvm.devices import DEVICES, target_of
    proto = model if isinstance(model, onnx.ModelProto) else onnx.load(model)
    t0 = time.perf_counter()
    mod = from_onnx(proto, shape_dict={k: v.shape for k, v in feeds.items()}, keep_params_in_input=False)
    mod = relax.transform.DecomposeOpsForInference()(mod)
    target = target_of(DEVICES[device])
    if device != "llvm":
        from tvm.s_tir import dlight as dl
        mod = relax.transform.LegalizeOps()(mod)
        with target:
            mod = dl.ApplyDefaultSchedule(dl.gpu.Matmul(), dl.gpu.GEMV(), dl.gpu.Reduction(),
                                          dl.gpu.GeneralReduction(), dl.gpu.Fallback())(mod)
    dev = tvm.device("cpu" if device == "llvm" else device, 0)
    vm = relax.VirtualMachine(tvm.compile(mod, target=target), dev)
    seconds = time.perf_counter() - t0
    names = [i.name for i in proto.graph.input if i.name in feeds]

    def run() -> list:
        out = vm["main"](*[tvm.runtime.tensor(feeds[n], dev) for n in names])
        outs = list(out) if isinstance(out, (list, tuple)) or type(out).__name__ == "Array" else [out]
        return [o.numpy() for o in outs]
    return run, seconds


def rel_err(got: list, want: list) -> float:
    return max(float(np.abs(np.asarray(g, np.float64) - w).max() / max(1e-12, float(np.abs(w).max())))
               for g, w in zip(got, want))


def bench(name: str, device: str, args: argparse.Namespace) -> dict:
    import compiler
    model, feeds = source(name)
    row: dict = {"model": name}
    t0 = time.perf_counter()
    m = compiler.compile(model, target="tvm", options={"device": device, "threads": args.threads})
    got = m.run(feeds)  # the first call compiles the static specialization, if the model needs one
    row["build_s"] = time.perf_counter() - t0
    want = compiler.compile(model, target="ref").run(feeds)
    row["rel_err"] = max(float(np.abs(got[k] - v).max() / max(1e-12, float(np.abs(v).max())))
                         for k, v in want.items())
    row["ours_ms"] = m.benchmark(feeds, warmup=2, repeat=args.repeat, min_seconds=args.min_seconds).median_ms
    if args.tune:
        import tempfile

        from compiler.driver import build
        with tempfile.TemporaryDirectory() as db:
            t0 = time.perf_counter()
            tuned = build(model, "tvm", options={"device": device, "threads": args.threads}, tune=True,
                          tune_budget=args.tune, tuning_db=db).module
            tuned.run(feeds)
            row["tune_s"] = time.perf_counter() - t0
        row["tuned_ms"] = tuned.benchmark(feeds, warmup=2, repeat=args.repeat, min_seconds=args.min_seconds).median_ms
        row["tuned_err"] = rel_err([tuned.run(feeds)[k] for k in want], list(want.values()))
    if not args.no_tvm_onnx:
        try:
            run, row["tvm_build_s"] = tvm_onnx_path(model, feeds, device, args.threads)
            row["tvm_err"] = rel_err(run(), [np.asarray(v) for v in want.values()])
            row["tvm_ms"] = median_ms(run, args.repeat, args.min_seconds)
        except Exception as exc:  # noqa: BLE001 - TVM's frontend not taking a model is a result too
            row["tvm_error"] = f"{type(exc).__name__}: {str(exc).splitlines()[-1][:80] if str(exc) else ''}"
    if not args.no_ort:
        sess, provider = ort_session(model, device == "cuda", args.threads)
        row["ort_ms"] = median_ms(lambda: sess.run(None, feeds), args.repeat, args.min_seconds)
        row["ort"] = provider
    return row


def table(rows: list[dict], markdown: bool) -> str:
    tuned = any("tuned_ms" in r for r in rows)
    head = ["model", "build (s)", "max rel. error", "ours (ms)", *(["ours tuned (ms)"] if tuned else []),
            "TVM's ONNX path (ms)", "ours / TVM", "onnxruntime (ms)", "ours / ort"]
    lines = []
    for r in rows:
        if "error" in r:
            lines.append([r["model"], "-", r["error"][:60]] + ["-"] * (len(head) - 3))
            continue
        ort = f"{r['ort_ms']:.2f} ({r['ort']})" if "ort_ms" in r else "-"
        ratio = f"{r['ours_ms'] / r['ort_ms']:.2f}" if "ort_ms" in r else "-"
        own = f"{r['tvm_ms']:.2f}" if "tvm_ms" in r else r.get("tvm_error", "-")[:40]
        own_ratio = f"{r['ours_ms'] / r['tvm_ms']:.2f}" if "tvm_ms" in r else "-"
        tuned_col = [f"{r['tuned_ms']:.2f} ({r['tune_s']:.0f} s)" if "tuned_ms" in r else "-"] if tuned else []
        lines.append([r["model"], f"{r['build_s']:.1f}", f"{r['rel_err']:.1e}", f"{r['ours_ms']:.2f}", *tuned_col,
                      own, own_ratio, ort, ratio])
    if markdown:
        out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        out += ["| " + " | ".join(map(str, ln)) + " |" for ln in lines]
        return "\n".join(out)
    widths = [max(len(str(x)) for x in col) for col in zip(head, *lines)]
    return "\n".join("  ".join(str(x).ljust(w) for x, w in zip(ln, widths)) for ln in [head, *lines])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", choices=("auto", "cuda", "llvm"), default="auto",
                    help="auto: cuda when a GPU is present, else llvm")
    ap.add_argument("--models", default="all", help="comma-separated names, or 'all' (see --list)")
    ap.add_argument("--repeat", type=int, default=10, help="timed runs per runtime (at least)")
    ap.add_argument("--min-seconds", type=float, default=0.5, help="time each runtime at least this long")
    ap.add_argument("--threads", type=int, default=0, help="host threads (device=llvm and onnxruntime's CPU)")
    ap.add_argument("--no-ort", action="store_true", help="skip onnxruntime")
    ap.add_argument("--no-tvm-onnx", action="store_true", help="skip TVM's own ONNX path")
    ap.add_argument("--tune", type=float, default=0, metavar="SECONDS",
                    help="also build ours tuned by MetaSchedule for this long per model (0: no)")
    ap.add_argument("--markdown", action="store_true")
    ap.add_argument("--list", action="store_true")
    args = ap.parse_args()
    names = list(DIGITS + LIGHT + TORCH)
    if args.list:
        print("\n".join(names))
        return 0
    if args.models != "all":
        names = [n.strip() for n in args.models.split(",") if n.strip()]
    from backends.tvm.devices import gpu_present
    device = args.device if args.device != "auto" else ("cuda" if gpu_present() else "llvm")
    print(f"device={device}" + ("" if gpu_present() else " (no GPU here)"), flush=True)
    rows = []
    for name in names:
        try:
            rows.append(bench(name, device, args))
        except Exception as exc:  # noqa: BLE001 - one model's failure must not hide the others
            traceback.print_exc()
            rows.append({"model": name, "error": f"{type(exc).__name__}: {exc}".splitlines()[0]})
        r = rows[-1]
        print(f"  {name}: " + (r["error"] if "error" in r else
                               f"built in {r['build_s']:.1f} s, error {r['rel_err']:.1e}, {r['ours_ms']:.2f} ms"
                               + (f", tuned {r['tuned_ms']:.2f} ms" if "tuned_ms" in r else "")
                               + (f" vs TVM's ONNX path {r['tvm_ms']:.2f} ms (error {r['tvm_err']:.1e})"
                                  if "tvm_ms" in r else f" (TVM's ONNX path: {r.get('tvm_error', 'skipped')})")
                               + (f" vs onnxruntime {r['ort_ms']:.2f} ms" if "ort_ms" in r else "")), flush=True)
    print()
    print(table(rows, args.markdown))
    return 1 if any("error" in r for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
