"""Build times of the cpu target: cold (empty caches) and rebuilt, beside TVM's build.

    python benchmarks/bench_build.py                      # the nine light models + TVM on ResNet-50
    python benchmarks/bench_build.py --models resnet50 --no-tvm --markdown

Each build is ``python -m compiler build <model> --target cpu -o <tmp>`` in a
fresh process, timed end to end (Python start-up, import, passes, code
generation, LLVM, writing the artifact and its C bundle), as a user runs it.
The kernel cache lives in a temporary ``XDG_CACHE_HOME`` for the run (the C
runtime is copied there from the usual cache, so that no row pays for
compiling it): "cold" empties the kernel and build caches first, "build cache"
builds the same model again (the artifact comes from the build cache), "kernel
cache" builds it once more with ``--no-build-cache`` (every pass runs, every
kernel object comes from the kernel cache).  The columns from the artifact's ``cpu_module.json`` give
the kernel count and how many distinct functions they share, the seconds of
code generation and the LLVM seconds left after it (LLVM runs in worker
processes while the kernels are generated).  TVM's row is its own ONNX path for light ResNet-50,
``onnx.load``, ``tvm.relax.frontend.onnx.from_onnx`` then ``tvm.compile`` for llvm (this CPU) and
a ``relax.VirtualMachine``, timed the same way: end to end in a fresh process (its import
included), and, in brackets, the compile calls alone (TVM has no build cache of this kind).

Python runs as installed Python does, with bytecode caching (``PYTHONDONTWRITEBYTECODE`` is
removed from the children's environment, and one untimed run fills the caches), so neither
side pays for compiling its own sources.
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


def build_once(model: str, out: str, env: dict[str, str], *extra: str) -> dict:
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "compiler", "build", model, "--target", "cpu", "-o", out, *extra],
                          cwd=ROOT, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"build of {model} failed: {proc.stderr.strip()[-500:]}")
    with open(os.path.join(out, "cpu_module.json")) as f:
        build = json.load(f)["build"]  # (a build-cache hit copies the first build's record)
    return dict(build, seconds=seconds)


TVM_SCRIPT = r"""
import sys, time
import llvmlite.binding as llvm
import onnx
import tvm
from tvm import relax
from tvm.relax.frontend.onnx import from_onnx
proto = onnx.load(sys.argv[1])
t0 = time.perf_counter()
mod = from_onnx(proto, keep_params_in_input=False)
mod = relax.transform.DecomposeOpsForInference()(mod)
mod = relax.transform.LegalizeOps()(mod)
target = tvm.target.Target({"kind": "llvm", "mcpu": llvm.get_host_cpu_name()})
relax.VirtualMachine(tvm.compile(mod, target=target), tvm.cpu())
print(time.perf_counter() - t0)
"""


def bench_tvm(model: str, env: dict[str, str]) -> tuple[float, float]:
    """TVM's ONNX-to-VM build: (end to end in a fresh process, the compile calls alone)."""
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", TVM_SCRIPT, model], env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"TVM's build failed: {proc.stderr.strip()[-500:]}")
    return seconds, float(proc.stdout.strip().splitlines()[-1])


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
    tvm_s = tvm_compile = None
    with tempfile.TemporaryDirectory(prefix="nnc_bench_build_") as tmp:
        home = os.path.join(tmp, "cache")
        os.makedirs(os.path.join(home, "nncompiler"))
        for pattern in ("libnnc_runtime-*.so", "nnc_runtime-*.o"):
            for path in glob.glob(os.path.join(cache_dir(), pattern)):
                shutil.copy(path, os.path.join(home, "nncompiler"))
        env = dict(os.environ, XDG_CACHE_HOME=home, PYTHONPATH=ROOT)
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        warm = os.path.join(tmp, "warm")  # fills Python's bytecode caches (ours and TVM's): not timed
        build_once(os.path.join(ROOT, "examples", "models", "digits_cnn.onnx"), warm, env)
        if not args.no_tvm and "resnet50" in names:
            subprocess.run([sys.executable, "-c", "import tvm, tvm.relax.frontend.onnx"], env=env, capture_output=True)
        for name in names:
            model = os.path.join(light_dir(), f"light_{name}.onnx")
            for cache in ("kernels", "builds"):
                shutil.rmtree(os.path.join(home, "nncompiler", cache), ignore_errors=True)
            out = os.path.join(tmp, name)
            cold = build_once(model, out, env)
            cached = build_once(model, out, env)  # the build cache's copy
            kernels = build_once(model, out, env, "--no-build-cache")  # a real build, every kernel cached
            rows.append((name, cold, cached, kernels))
            print(f"{name:<14} kernels {cold['kernels']:>4} ({cold['functions']:>3} distinct)  "
                  f"cold {cold['seconds']:6.2f} s (codegen {cold['codegen_seconds']:5.2f}, llvm {cold['llvm_seconds']:5.2f}, "
                  f"{cold['workers']} proc)  build cache {cached['seconds']:5.2f} s  kernel cache "
                  f"{kernels['seconds']:5.2f} s (codegen {kernels['codegen_seconds']:4.2f}, "
                  f"{kernels['cache_hits']} hits, {kernels['cache_misses']} misses)", file=sys.stderr, flush=True)
            if name == "resnet50" and not args.no_tvm:  # right after ours, same machine state
                tvm_s, tvm_compile = bench_tvm(model, env)
                print(f"TVM build of light ResNet-50: {tvm_s:.2f} s end to end "
                      f"({tvm_compile:.2f} s in its compile calls)", file=sys.stderr)

    head = ["model", "kernels", "distinct", "cold (s)", "cold codegen (s)", "cold LLVM wait (s)",
            "rebuild, build cache (s)", "rebuild, kernel cache (s)"]
    body = [[n, str(c["kernels"]), str(c["functions"]), f"{c['seconds']:.2f}", f"{c['codegen_seconds']:.2f}",
             f"{c['llvm_seconds']:.2f}", f"{w['seconds']:.2f}", f"{k['seconds']:.2f}"]
            for n, c, w, k in rows]
    if tvm_s is not None:
        body.append(["TVM 0.27 ResNet-50 (onnx.load, from_onnx, tvm.compile)", "", "",
                     f"{tvm_s:.2f} ({tvm_compile:.2f} compiling)", "", "", "", ""])
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
