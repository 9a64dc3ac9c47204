"""The systolic-array target's schedule rules: dataflow and fold sizes from an analytical model.

Convolutions and matrix products become one GEMM, ``[M, K] x [K, N]`` (per
group): M output pixels (or rows), K the reduction (KH * KW * C/group), N the
output channels (or columns).  On an ``R x C`` array each dataflow keeps one
operand stationary and maps two of the three dims onto the array, streaming
the third through it (SCALE-Sim's analytical model):

========  ===================  ============  ===============
dataflow  stationary           array dims     streamed (T)
========  ===================  ============  ===============
``os``    outputs              M x N         K
``ws``    weights              K x N         M
``is``    inputs               K x M         N
========  ===================  ============  ===============

The mapped dims are cut into ``fold_rows x fold_cols`` folds; a fold costs
``2R + C + T - 2`` cycles (fill, stream, drain).  The streamed operand of one
fold must fit half of its SRAM (double buffering): a longer stream is cut into
``temporal_tile``-long pieces, each adding a pipeline refill of ``R + C``.
The dataflow with the fewest cycles wins unless the target fixes one.
"""

from __future__ import annotations

import math
from typing import Any, Optional

from ir.anchor import anchor_of
from ir.graph import Node
from ir.schedule import Schedule
from ir.target import TargetInfo

DATAFLOWS = ("os", "ws", "is")
# Which SRAM holds the streamed operand of each dataflow.
_STREAMED_SRAM = {"os": "ifmap", "ws": "ifmap", "is": "filter"}


def gemm_dims(anchor: Node) -> Optional[tuple[int, int, int, int]]:
    """(M, K, N, groups) of a Conv/ConvNHWC/Gemm/MatMul/nnc.QConv/nnc.QMatMul with static shapes, else None."""
    if anchor.domain == "nnc" and anchor.op in ("QConv", "QMatMul"):
        from .lowering import gemm_view   # the packed weights' shape is not the GEMM's: read the attributes
        return gemm_view(anchor)
    shapes = [getattr(v.type, "shape", None) if v is not None else None
              for v in (anchor.inputs[0] if anchor.inputs else None, anchor.input(1), anchor.outputs[0])]
    if any(s is None or not all(isinstance(d, int) for d in s) for s in shapes):
        return None
    a, w, out = shapes
    group = anchor.attr("group") if anchor.op in ("Conv", "ConvNHWC") else 1
    if anchor.op == "ConvNHWC" and len(w) == 4 and len(out) == 4:
        kh, kw, cin_g, cout = w
        return out[0] * out[1] * out[2], kh * kw * cin_g, cout // group, group
    if anchor.op == "Conv" and anchor.domain == "" and len(out) >= 3:
        return out[0] * math.prod(out[2:]), math.prod(w[1:]), w[0] // group, group
    if anchor.op == "Gemm" and len(a) == 2 and len(out) == 2:
        return out[0], a[0] if anchor.attr("transA") else a[1], out[1], 1
    if anchor.op == "MatMul" and len(a) >= 1 and len(out) >= 1:
        return math.prod(out[:-1]), a[-1], out[-1], 1
    return None


def dataflow_cost(m: int, k: int, n: int, groups: int, dataflow: str, target: TargetInfo,
                  elem_bytes: int = 4) -> Schedule:
    """The model's schedule (and cycle estimate) of one GEMM under ``dataflow``."""
    rows, cols = target.array_rows, target.array_cols
    spatial, streamed = {"os": ((m, n), k), "ws": ((k, n), m), "is": ((k, m), n)}[dataflow]
    fold_rows, fold_cols = -(-spatial[0] // rows), -(-spatial[1] // cols)
    sram = target.sram.get(_STREAMED_SRAM[dataflow], 0)
    width = rows if dataflow != "is" else cols
    fits = max(1, sram // 2 // (width * elem_bytes)) if sram else streamed
    tile = min(streamed, fits)
    pieces = -(-streamed // tile)
    per_fold = 2 * rows + cols + streamed - 2 + (pieces - 1) * (rows + cols)
    cycles = groups * fold_rows * fold_cols * per_fold
    return Schedule("systolic_gemm", {"m": m, "k": k, "n": n, "groups": groups, "fold_rows": fold_rows,
                                      "fold_cols": fold_cols, "temporal_tile": tile},
                    est_cycles=cycles, dataflow=dataflow)


def systolic_schedule(anchor: Node, target: TargetInfo) -> Optional[Schedule]:
    """The best dataflow for ``anchor`` (the target's, if it fixes one); None for non-GEMM ops."""
    dims = gemm_dims(anchor)
    if dims is None or target.array_rows < 1 or target.array_cols < 1:
        return None
    flows = [target.dataflow] if target.dataflow in DATAFLOWS else list(DATAFLOWS)
    return min((dataflow_cost(*dims, flow, target) for flow in flows), key=lambda s: s.est_cycles)


def utilization(s: Schedule, target: TargetInfo) -> float:
    """Fraction of the array's MAC slots doing useful work under ``s``."""
    macs = s.params["m"] * s.params["k"] * s.params["n"] * s.params["groups"]
    return macs / max(1, s.est_cycles * target.array_rows * target.array_cols)


def signature(node: Node) -> str:
    """What a systolic schedule depends on: the GEMM view of the anchor."""
    dims = gemm_dims(anchor_of(node))
    return f"systolic_gemm|{anchor_of(node).qualified_op}|{dims}"


class SystolicScheduler:
    """The systolic target's answer to the ``schedule`` pass (``passes.target_hooks.Scheduler``)."""

    def schedule(self, node: Node, target: TargetInfo) -> Optional[Schedule]:
        return systolic_schedule(anchor_of(node), target)

    def candidates(self, node: Node, target: TargetInfo, limit: int) -> list[Schedule]:
        dims = gemm_dims(anchor_of(node))
        if dims is None:
            return []
        flows = [target.dataflow] if target.dataflow in DATAFLOWS else list(DATAFLOWS)
        return sorted((dataflow_cost(*dims, flow, target) for flow in flows), key=lambda s: s.est_cycles)[:limit]

    def signature(self, node: Node) -> str:
        return signature(node)

    def details(self, schedule: Schedule, target: TargetInfo) -> dict[str, Any]:
        return {"dataflow": schedule.dataflow, "utilization": round(utilization(schedule, target), 3),
                "rule": "target's dataflow" if target.dataflow else "fewest cycles of os/ws/is (analytical model)"}
