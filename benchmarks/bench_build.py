"""Build times of the cpu target: cold (empty kernel cache) and cached rebuild, beside TVM's build.

    python benchmarks/bench_build.py                      # the nine light models + TVM on ResNet-50
    python benchmarks/bench_build.py --models resnet50 --no-tvm --markdown

Each build is ``python -m compiler build <model> --target cpu -o <tmp>`` in a
fresh process, timed end to end (Python start-up, import, passes, code
generation, LLVM, writing the artifact and its C bundle), as a user runs it.
The kernel cache lives in a temporary ``XDG_CACHE_HOME`` for the run (the C
runtime is copied there from the usual cache, so that no row pays for
compiling it): "cold" empties the kernel cache first, "cached" builds the
same model again.  The columns from the artifact's ``cpu_module.json`` give
the kernel count and how many distinct functions they share, the seconds of
code generation and the LLVM seconds left after it (LLVM runs in worker
processes while the kernels are generated).  TVM's row is its own ONNX path for light ResNet-50,
``tvm.relax.frontend.onnx.from_onnx`` then ``tvm.compile`` for llvm (this CPU),
timed in this process (TVM has no build cache of this kind).
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LIGHT = ["resnet50", "squeezenet", "shufflenet", "inception_v1", "inception_v2", "densenet121",
         "bvlc_alexnet", "zfnet512", "vgg19"]


def light_dir() -> str:
    import onnx
    return os.path.join(os.path.dirname(onnx.__file__), "backend", "test", "data", "light")


def build_once(model: str, out: str, env: dict[str, str]) -> dict:
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "compiler", "build", model, "--target", "cpu", "-o", out],
                          cwd=ROOT, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"build of {model} failed: {proc.stderr.strip()[-500:]}")
    with open(os.path.join(out, "cpu_module.json")) as f:
        build = json.load(f)["build"]
    return dict(build, seconds=seconds)


def bench_tvm(model: str) -> float:
    import llvmlite.binding as llvm
    import onnx
    import tvm
    from tvm import relax
    from tvm.relax.frontend.onnx import from_onnx
    proto = onnx.load(model)
    t0 = time.perf_counter()
    mod = from_onnx(proto, keep_params_in_input=False)
    mod = relax.transform.DecomposeOpsForInference()(mod)
    mod = relax.transform.LegalizeOps()(mod)
    target = tvm.target.Target({"kind": "llvm", "mcpu": llvm.get_host_cpu_name()})
    relax.VirtualMachine(tvm.compile(mod, target=target), tvm.cpu())
    return time.perf_counter() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", default="all", help=f"comma-separated, of: {','.join(LIGHT)}")
    ap.add_argument("--no-tvm", action="store_true", help="skip TVM's build of light ResNet-50")
    ap.add_argument("--markdown", action="store_true")
    args = ap.parse_args()
    names = LIGHT if args.models == "all" else args.models.split(",")
    unknown = [n for n in names if n not in LIGHT]
    if unknown:
        ap.error(f"unknown model {unknown[0]!r}; choose from {','.join(LIGHT)}")

    sys.path.insert(0, ROOT)
    from runtime.native import cache_dir
    rows = []
    with tempfile.TemporaryDirectory(prefix="nnc_bench_build_") as tmp:
        home = os.path.join(tmp, "cache")
        os.makedirs(os.path.join(home, "nncompiler"))
        for pattern in ("libnnc_runtime-*.so", "nnc_runtime-*.o"):
            for path in glob.glob(os.path.join(cache_dir(), pattern)):
                shutil.copy(path, os.path.join(home, "nncompiler"))
        env = dict(os.environ, XDG_CACHE_HOME=home, PYTHONPATH=ROOT)
        for name in names:
            model = os.path.join(light_dir(), f"light_{name}.onnx")
            shutil.rmtree(os.path.join(home, "nncompiler", "kernels"), ignore_errors=True)
            out = os.path.join(tmp, name)
            cold = build_once(model, out, env)
            cached = build_once(model, out, env)
            rows.append((name, cold, cached))
            print(f"{name:<14} kernels {cold['kernels']:>4} ({cold['functions']:>3} distinct)  "
                  f"cold {cold['seconds']:6.2f} s (codegen {cold['codegen_seconds']:5.2f}, llvm {cold['llvm_seconds']:5.2f}, "
                  f"{cold['workers']} proc)  cached {cached['seconds']:5.2f} s (codegen {cached['codegen_seconds']:4.2f}, "
                  f"llvm {cached['llvm_seconds']:4.2f}, {cached['cache_hits']} hits, {cached['cache_misses']} misses)",
                  file=sys.stderr, flush=True)
    tvm_s = None
    if not args.no_tvm and "resnet50" in names:
        tvm_s = bench_tvm(os.path.join(light_dir(), "light_resnet50.onnx"))
        print(f"TVM build of light ResNet-50: {tvm_s:.2f} s", file=sys.stderr)

    head = ["model", "kernels", "distinct", "cold (s)", "cold codegen (s)", "cold LLVM wait (s)", "cached (s)",
            "cached codegen+LLVM (s)"]
    body = [[n, str(c["kernels"]), str(c["functions"]), f"{c['seconds']:.2f}", f"{c['codegen_seconds']:.2f}",
             f"{c['llvm_seconds']:.2f}", f"{w['seconds']:.2f}", f"{w['codegen_seconds'] + w['llvm_seconds']:.2f}"]
            for n, c, w in rows]
    if tvm_s is not None:
        body.append(["TVM 0.27 ResNet-50 (from_onnx + tvm.compile)", "", "", f"{tvm_s:.2f}", "", "", "", ""])
    if args.markdown:
        print("| " + " | ".join(head) + " |")
        print("|" + "|".join(["---"] + ["---:"] * (len(head) - 1)) + "|")
        for r in body:
            print("| " + " | ".join(r) + " |")
    else:
        widths = [max(len(h), *(len(r[i]) for r in body)) for i, h in enumerate(head)]
        print("  ".join(h.ljust(w) if i == 0 else h.rjust(w) for i, (h, w) in enumerate(zip(head, widths))))
        for r in body:
            print("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
