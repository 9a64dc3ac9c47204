"""Simulation speed of the systolic target, with SCALE-Sim beside it in the same run.

    python benchmarks/bench_systolic.py [--models resnet50,digits_cnn] [--array 32x32] [--dataflow ws]
        [--scalesim-python /tmp/ssvenv/bin/python]

For each model: compile time (import + passes + lowering), simulation time of the whole program
(cycles, traffic, energy), the time to compute the outputs with the array's arithmetic, and the
simulated cycles.  Then a 512x512x512 GEMM on the array: our simulation time and, when
``--scalesim-python`` names a Python with ``scalesim==3.0.0`` installed, SCALE-Sim's own time
and cycles for the same GEMM and config (its Python API with ``save_disk_space=True``), run as a
subprocess in this run.  ``--per-layer`` prints our per-layer table too.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from backends.systolic.api import build  # noqa: E402
from backends.systolic.config import ArrayConfig  # noqa: E402
from backends.systolic.model import simulate_gemm  # noqa: E402


def light(name: str) -> str:
    import onnx
    return os.path.join(os.path.dirname(onnx.__file__), "backend", "test", "data", "light", f"light_{name}.onnx")


MODELS = {"digits_cnn": str(ROOT.parent / "shared" / "data" / "digits_cnn.onnx"),
          "digits_cnn_int8": str(ROOT.parent / "shared" / "data" / "int8" / "digits_cnn.qop_minmax.onnx"),
          "resnet50": light("resnet50"), "vgg19": light("vgg19"), "densenet121": light("densenet121"),
          "inception_v1": light("inception_v1"), "shufflenet": light("shufflenet"), "squeezenet": light("squeezenet")}

SCALESIM_SCRIPT = textwrap.dedent("""
    import contextlib, io, json, sys, time
    from pathlib import Path
    from scalesim.scale_sim import scalesim
    d, rows, cols, df, m, n, k = sys.argv[1], *map(int, sys.argv[2:4]), sys.argv[4], *map(int, sys.argv[5:8])
    d = Path(d)
    (d / "c.cfg").write_text(f'''[general]
    run_name = bench
    [architecture_presets]
    ArrayHeight: {rows}
    ArrayWidth: {cols}
    IfmapSramSzkB: 64
    FilterSramSzkB: 64
    OfmapSramSzkB: 64
    IfmapOffset: 0
    FilterOffset: 10000000
    OfmapOffset: 20000000
    Bandwidth : 10
    Dataflow : {df}
    MemoryBanks: 1
    ReadRequestBuffer: 32
    WriteRequestBuffer: 32
    [layout]
    IfmapCustomLayout: False
    IfmapSRAMBankBandwidth: 10
    IfmapSRAMBankNum: 1
    IfmapSRAMBankPort: 2
    FilterCustomLayout: False
    FilterSRAMBankBandwidth: 10
    FilterSRAMBankNum: 1
    FilterSRAMBankPort: 2
    [sparsity]
    SparsitySupport : false
    SparseRep : ellpack_block
    OptimizedMapping : false
    BlockSize : 8
    RandomNumberGeneratorSeed : 40
    [run_presets]
    InterfaceBandwidth: CALC
    UseRamulatorTrace: False
    '''.replace("\\n    ", "\\n"))
    (d / "t.csv").write_text(f"Layer, M, N, K,\\ng, {m}, {n}, {k},\\n")
    (d / "l.csv").write_text("Layer name, a,b,c,d,e,f,g,h,i,j,k,l,m,n,o,p,q,r,s,t,\\ng,1,1,1,1,1,1,0,1,2,4,5,3,3,2,1,0,4,5,6,7,\\n")
    t0 = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        s = scalesim(save_disk_space=True, verbose=False, config=str(d / "c.cfg"), topology=str(d / "t.csv"),
                     layout=str(d / "l.csv"), input_type_gemm=True)
        s.run_scale(top_path=str(d / "out"))
    dt = time.perf_counter() - t0
    line = (d / "out" / "bench" / "COMPUTE_REPORT.csv").read_text().splitlines()[1].split(",")
    print(json.dumps({"seconds": dt, "total_cycles": int(line[2]), "stall_cycles": int(line[3])}))
""")


def bench_models(names: list[str], options: dict, per_layer: bool) -> None:
    print(f"{'model':<16} {'compile s':>9} {'simulate ms':>11} {'numerics s':>10} {'cycles':>12} "
          f"{'util%':>6} {'latency ms':>10} {'energy mJ':>9}")
    for name in names:
        path = MODELS.get(name, name)
        t0 = time.perf_counter()
        exe = build(path, options)
        t1 = time.perf_counter()
        rep = exe.report()
        t2 = time.perf_counter()
        rng = np.random.default_rng(0)
        feeds = [rng.standard_normal(v.type.shape).astype(v.type.dtype.np) for v in exe.graph.inputs]
        t3 = time.perf_counter()
        exe.run(feeds)
        t4 = time.perf_counter()
        tot = rep.totals()
        print(f"{name:<16} {t1 - t0:>9.2f} {1e3 * (t2 - t1):>11.1f} {t4 - t3:>10.2f} {tot['cycles']:>12} "
              f"{100 * tot['utilization']:>6.1f} {tot['latency_us'] / 1e3:>10.3f} {tot['energy_uj'] / 1e3:>9.3f}")
        if per_layer:
            print(rep.table())


def bench_gemm(rows: int, cols: int, flow: str, size: int, scalesim_python: str) -> None:
    cfg = ArrayConfig(rows=rows, cols=cols, dataflow=flow, dram_bw=1e9)
    t0 = time.perf_counter()
    reps = 20
    for _ in range(reps):
        st = simulate_gemm(size, size, size, 1, flow, cfg)
    ours = (time.perf_counter() - t0) / reps
    print(f"\nGEMM {size}x{size}x{size} on {rows}x{cols} {flow}: ours {1e3 * ours:.3f} ms, "
          f"{st.compute_cycles - 1} cycles (SCALE-Sim's 'Total Cycles' convention)")
    if scalesim_python:
        with tempfile.TemporaryDirectory() as d:
            script = Path(d) / "run.py"
            script.write_text(SCALESIM_SCRIPT)
            out = subprocess.run([scalesim_python, str(script), d, str(rows), str(cols), flow, str(size),
                                  str(size), str(size)], capture_output=True, text=True, check=True)
            ss = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"  SCALE-Sim 3.0.0: {ss['seconds']:.2f} s, {ss['total_cycles']} cycles "
              f"({ss['stall_cycles']} stall); ours is {ss['seconds'] / ours:,.0f}x faster; "
              f"stall-free cycles {'agree' if ss['total_cycles'] - ss['stall_cycles'] == st.compute_cycles - 1 else 'DIFFER'}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", default="digits_cnn,digits_cnn_int8,resnet50")
    p.add_argument("--array", default="32x32")
    p.add_argument("--dataflow", default="ws")
    p.add_argument("--gemm", type=int, default=512)
    p.add_argument("--scalesim-python", default="", help="a Python with scalesim==3.0.0 (separate venv)")
    p.add_argument("--per-layer", action="store_true")
    a = p.parse_args()
    r, c = (int(v) for v in a.array.split("x"))
    bench_models([m for m in a.models.split(",") if m], {"rows": r, "cols": c, "dataflow": a.dataflow},
                 a.per_layer)
    bench_gemm(r, c, a.dataflow, a.gemm, a.scalesim_python)


if __name__ == "__main__":
    main()
