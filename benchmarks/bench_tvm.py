"""Build, check and time every model on the tvm target in one call (CUDA when a GPU is present).

    python benchmarks/bench_tvm.py                      # every model; device=cuda on a GPU, else llvm
    python benchmarks/bench_tvm.py --device llvm --models digits_cnn,resnet50 --markdown
    python benchmarks/bench_tvm.py --list

For each model (random weights for the light ImageNet and torch-built models):
build time of ``--target tvm``, its largest error relative to our reference
interpreter on the same input, its median batch-1 latency, and
onnxruntime's in the same run (its CUDA provider on a GPU, else its CPU
provider), with the ratio ours / onnxruntime (below 1 is faster).  Latencies
include copying inputs to the device and outputs back, for both.
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
    if not args.no_ort:
        sess, provider = ort_session(model, device == "cuda", args.threads)
        row["ort_ms"] = median_ms(lambda: sess.run(None, feeds), args.repeat, args.min_seconds)
        row["ort"] = provider
    return row


def table(rows: list[dict], markdown: bool) -> str:
    head = ["model", "build (s)", "max rel. error", "ours (ms)", "onnxruntime (ms)", "ratio"]
    lines = []
    for r in rows:
        if "error" in r:
            lines.append([r["model"], "-", r["error"][:60], "-", "-", "-"])
            continue
        ort = f"{r['ort_ms']:.2f} ({r['ort']})" if "ort_ms" in r else "-"
        ratio = f"{r['ours_ms'] / r['ort_ms']:.2f}" if "ort_ms" in r else "-"
        lines.append([r["model"], f"{r['build_s']:.1f}", f"{r['rel_err']:.1e}", f"{r['ours_ms']:.2f}", ort, ratio])
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
                               + (f" vs onnxruntime {r['ort_ms']:.2f} ms" if "ort_ms" in r else "")), flush=True)
    print()
    print(table(rows, args.markdown))
    return 1 if any("error" in r for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
