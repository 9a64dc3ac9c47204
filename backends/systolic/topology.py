"""SCALE-Sim's topology CSVs: read them into GEMM layers, and write one from a compiled program.

Two forms, as SCALE-Sim has: convolutions (``Layer name, IFMAP Height, IFMAP
Width, Filter Height, Filter Width, Channels, Num Filter, Strides,``; no
padding, output ``ceil((H - FH + S) / S)``; a layer whose name contains
``DP`` is depthwise and, as in SCALE-Sim, becomes one layer per channel) and
GEMMs (``Layer, M, N, K,``).
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

from ir.errors import BackendError

from .config import ArrayConfig
from .program import Instruction, Layer, Program


def read_topology(path: Path) -> list[tuple[str, int, int, int, int, int]]:
    """(name, M, K, N, groups, ifmap words per group) per layer of a SCALE-Sim topology file (conv or GEMM form, by its header)."""
    p = Path(path)
    if not p.is_file():
        raise BackendError("topology file not found", subject=str(p))
    with open(p) as f:
        rows = [[c.strip() for c in r] for r in csv.reader(f) if any(c.strip() for c in r)]
    if not rows:
        raise BackendError("empty topology file", subject=str(p))
    head = [h.lower() for h in rows[0] if h]
    gemm = len(head) >= 4 and head[1] == "m" and head[2] == "n" and head[3] == "k"
    layers = []
    for line_no, r in enumerate(rows[1:], start=2):
        r = [c for c in r if c != ""]
        try:
            if gemm:
                m, n, k = (int(v) for v in r[1:4])
                layers.append((r[0], m, k, n, 1, 0))
            else:
                h, w, fh, fw, c, nf, s = (int(v) for v in r[1:8])
                oh, ow = math.ceil((h - fh + s) / s), math.ceil((w - fw + s) / s)
                if "DP" in r[0]:
                    layers.append((r[0], oh * ow, fh * fw, nf, c, h * w))   # SCALE-Sim: a layer per channel
                else:
                    layers.append((r[0], oh * ow, fh * fw * c, nf, 1, h * w * c))
        except (ValueError, IndexError):
            raise BackendError("malformed topology row", subject=f"{p}:{line_no}", found=",".join(r),
                               expected="Layer, M, N, K (GEMM form) or Layer name, IFMAP Height, IFMAP Width, "
                                        "Filter Height, Filter Width, Channels, Num Filter, Strides") from None
    return layers


def program_from_topology(layers: list[tuple[str, int, int, int, int, int]], cfg: ArrayConfig) -> Program:
    """A program of bare GEMM layers (no graph: for simulation only)."""
    from dataclasses import asdict
    out = []
    for name, m, k, n, g, raw in layers:
        flow = cfg.dataflow or "ws"
        rows = {"os": m, "ws": k, "is": k}[flow]
        cols = {"os": n, "ws": n, "is": m}[flow]
        out.append(Layer(name, -1, "gemm", "topology", [Instruction("gemm", {
            "dataflow": flow, "m": m, "k": k, "n": n, "groups": g, "rows": cfg.rows, "cols": cfg.cols,
            "row_folds": -(-rows // cfg.rows), "col_folds": -(-cols // cfg.cols),
            "stream": {"os": k, "ws": m, "is": n}[flow], "k_chunk": k if flow == "os" else cfg.rows,
            "ifmap_words": raw if raw < m * k else 0, "anchor": "topology", "out": name})]))
    return Program(config=asdict(cfg), layers=out)


def write_topology(program: Program, path: Path) -> int:
    """The program's array layers as a SCALE-Sim GEMM topology (``Layer, M, N, K,``); one row per group
    (SCALE-Sim has no groups).  Returns the number of rows."""
    lines = ["Layer, M, N, K,"]
    for layer in program.layers:
        if layer.kind != "gemm":
            continue
        f = layer.gemm().fields
        name = layer.name.replace(",", "_").replace(" ", "_")
        for gi in range(f["groups"]):
            suffix = f"_g{gi}" if f["groups"] > 1 else ""
            lines.append(f"{name}{suffix}, {f['m']}, {f['n']}, {f['k']},")
    Path(path).write_text("\n".join(lines) + "\n")
    return len(lines) - 1
