"""Run SCALE-Sim v3.0.0 on a matrix of small GEMMs and convolutions; write scalesim_v3_results.json.

Not part of the test run: it needs ``scalesim==3.0.0`` (and ``numpy<2``) in a separate
virtual environment, e.g.::

    python -m venv /tmp/ssvenv && /tmp/ssvenv/bin/pip install "numpy<2" scalesim==3.0.0
    /tmp/ssvenv/bin/python tests/systolic/data/make_scalesim_data.py

It uses SCALE-Sim's Python API with ``save_disk_space=True`` (no traces) and records, per
case, the configuration, the layer and the three report rows exactly as SCALE-Sim wrote them.
``tests/systolic/test_scalesim_compat.py`` compares our compatibility mode with them.
"""

from __future__ import annotations

import contextlib
import csv
import io
import itertools
import json
import os
import sys
import tempfile
from pathlib import Path

from scalesim.scale_sim import scalesim

HERE = Path(__file__).resolve().parent

# (name, kind, dims): conv dims = H, W, FH, FW, C, NF, stride; gemm dims = M, N, K.
LAYERS = [
    ("gemm_a", "gemm", (20, 12, 9)),
    ("gemm_b", "gemm", (7, 33, 17)),
    ("gemm_c", "gemm", (64, 16, 40)),
    ("conv_a", "conv", (8, 8, 3, 3, 4, 10, 1)),
    ("conv_b", "conv", (11, 9, 3, 2, 3, 6, 2)),
    ("conv_c", "conv", (6, 6, 1, 1, 20, 9, 1)),
]
ARRAYS = [(8, 8), (4, 8), (16, 4)]
DATAFLOWS = ["os", "ws", "is"]
SRAMS = [1, 64]               # KB, all three SRAMs
BANDWIDTH = [("CALC", 10), ("USER", 4)]

LAYOUT_HEAD = ("Layer name, IFMAP Height Intraline Factor, IFMAP Width Intraline Factor, Filter Height Intraline "
               "Factor, Filter Width Intraline Factor, Channel Intraline Factor, Num Filter Intraline Factor, "
               "IFMAP Height Intraline Order, IFMAP Width Intraline Order, Channel Intraline Order, IFMAP Height "
               "Interline Order, IFMAP Width Interline Order, Channel Interline Order, Num Filter Intraline Order, "
               "Channel Intraline Order, Filter Height Intraline Order, Filter Width Intraline Order, Num Filter "
               "Interline Order, Channel Interline Order, Filter Height Interline Order, Filter Width Interline "
               "Order,\n")

CFG = """[general]
run_name = case

[architecture_presets]
ArrayHeight: {rows}
ArrayWidth: {cols}
IfmapSramSzkB: {sram}
FilterSramSzkB: {sram}
OfmapSramSzkB: {sram}
IfmapOffset: 0
FilterOffset: 10000000
OfmapOffset: 20000000
Bandwidth : {bw}
Dataflow : {df}
MemoryBanks: 1
ReadRequestBuffer: 32
WriteRequestBuffer: 32

[layout]
IfmapCustomLayout: False
IfmapSRAMBankBandwidth: {bw}
IfmapSRAMBankNum: 1
IfmapSRAMBankPort: 2
FilterCustomLayout: False
FilterSRAMBankBandwidth: {bw}
FilterSRAMBankNum: 1
FilterSRAMBankPort: 2

[sparsity]
SparsitySupport : false
SparseRep : ellpack_block
OptimizedMapping : false
BlockSize : 8
RandomNumberGeneratorSeed : 40

[run_presets]
InterfaceBandwidth: {mode}
UseRamulatorTrace: False
"""


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path) as f:
        rows = list(csv.reader(f))
    head = [h.strip() for h in rows[0] if h.strip()]
    return [dict(zip(head, [c.strip() for c in r if c.strip() != ""])) for r in rows[1:] if r]


def run_case(tmp: Path, name: str, kind: str, dims: tuple, rows: int, cols: int, df: str, sram: int,
             mode: str, bw: int) -> dict:
    cfg = tmp / "case.cfg"
    cfg.write_text(CFG.format(rows=rows, cols=cols, sram=sram, bw=bw, df=df, mode=mode))
    topo = tmp / "topo.csv"
    if kind == "gemm":
        topo.write_text("Layer, M, N, K,\n{}, {}, {}, {},\n".format(name, *dims))
    else:
        topo.write_text("Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, Channels, "
                        "Num Filter, Strides,\n{}, {}, {}, {}, {}, {}, {}, {},\n".format(name, *dims))
    layout = tmp / "layout.csv"  # required by the API even when no custom layout is used
    layout.write_text(LAYOUT_HEAD + f"{name},1,1,1,1,1,1,0,1,2,4,5,3,3,2,1,0,4,5,6,7,\n")
    out = tmp / "out"
    with contextlib.redirect_stdout(io.StringIO()):
        s = scalesim(save_disk_space=True, verbose=False, config=str(cfg), topology=str(topo),
                     layout=str(layout),
                     input_type_gemm=(kind == "gemm"))
        s.run_scale(top_path=str(out))
    run_dir = out / "case"
    return {"layer": name, "kind": kind, "dims": list(dims), "rows": rows, "cols": cols, "dataflow": df,
            "sram_kb": sram, "bandwidth_mode": mode, "bandwidth": bw,
            "compute": _rows(run_dir / "COMPUTE_REPORT.csv")[0],
            "bandwidth_report": _rows(run_dir / "BANDWIDTH_REPORT.csv")[0],
            "detail": _rows(run_dir / "DETAILED_ACCESS_REPORT.csv")[0]}


def main() -> None:
    results = []
    with tempfile.TemporaryDirectory() as d:
        for (name, kind, dims), (r, c), df, sram, (mode, bw) in itertools.product(
                LAYERS, ARRAYS, DATAFLOWS, SRAMS, BANDWIDTH):
            results.append(run_case(Path(d), name, kind, dims, r, c, df, sram, mode, bw))
            print(len(results), name, r, c, df, sram, mode, results[-1]["compute"], file=sys.stderr)
    text = ('{"scalesim": "3.0.0", "cases": [\n'
            + ",\n".join(json.dumps(c, separators=(",", ":")) for c in results) + "\n]}\n")  # a case per line
    (HERE / "scalesim_v3_results.json").write_text(text)


if __name__ == "__main__":
    main()
