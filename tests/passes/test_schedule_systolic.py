"""schedule on a systolic-array target: dataflow and fold sizes from the analytical model."""

from __future__ import annotations

import textwrap

import pytest

from ir.target import TargetInfo
from ir import parse_graph
from passes.manager import PassContext, PassManager
from ir.schedule import Schedule
from backends.systolic import SystolicPassTarget
from backends.systolic.scheduling import dataflow_cost, utilization

ARRAY = TargetInfo(name="test-array", kind="systolic", array_rows=16, array_cols=16)


def test_fold_counts_and_cycles_follow_the_model():
    # Weight-stationary: K x N = 64 x 64 on 16 x 16 -> 4 x 4 folds, streaming M = 3136 rows.
    ws = dataflow_cost(3136, 64, 64, 1, "ws", ARRAY)
    assert (ws.params["fold_rows"], ws.params["fold_cols"]) == (4, 4)
    assert ws.est_cycles == 16 * (2 * 16 + 16 + 3136 - 2)
    # Output-stationary maps M x N: 196 x 4 folds, each streaming K = 64.
    os_ = dataflow_cost(3136, 64, 64, 1, "os", ARRAY)
    assert (os_.params["fold_rows"], os_.params["fold_cols"]) == (196, 4)
    assert os_.est_cycles == 196 * 4 * (2 * 16 + 16 + 64 - 2)
    assert 0 < utilization(ws, ARRAY) <= 1


def test_sram_limits_cut_the_stream():
    small = TargetInfo(name="tiny-sram", kind="systolic", array_rows=16, array_cols=16,
                       sram={"ifmap": 16 * 4 * 2 * 100})  # half of it holds 100 rows of 16 floats
    s = dataflow_cost(1000, 64, 64, 1, "ws", small)
    assert s.params["temporal_tile"] == 100
    assert s.est_cycles == 16 * (2 * 16 + 16 + 1000 - 2 + 9 * (16 + 16))


GRAPH = """
    graph @main(%a: f32[%M,64]) {
      %b: f32[64,%N] = constant elided "sha256:0000000000000000"
      %y: f32[%M,%N] = MatMul(%a, %b)
      return %y
    }"""


def _schedule(m: int, n: int, target: TargetInfo, pass_target=None) -> Schedule:
    import numpy as np
    src = textwrap.dedent(GRAPH).replace("%M", str(m)).replace("%N", str(n)).strip()
    g = parse_graph(src.replace('constant elided "sha256:0000000000000000"', "constant " + str(
        np.zeros((64, n), np.float32).reshape(-1).tolist())))
    PassManager("schedule").run(g, PassContext(target=target, backend=pass_target or SystolicPassTarget()))
    return g.value("y").producer.schedule


def test_the_cheapest_dataflow_wins_and_round_trips():
    tall = _schedule(4096, 16, ARRAY)   # many rows, few weights: keep the weights in the array
    assert tall.dataflow == "ws"
    wide = _schedule(1, 256, ARRAY)     # one row: weight-stationary would load 4 x 16 folds of weights
    assert wide.dataflow in ("os", "is")
    assert Schedule.from_text(tall.to_text()) == tall


@pytest.mark.parametrize("flow", ["os", "ws", "is"])
def test_a_target_can_fix_the_dataflow(flow):
    fixed = TargetInfo(name="fixed", kind="systolic", array_rows=16, array_cols=16, dataflow=flow)
    assert _schedule(4096, 16, fixed).dataflow == flow


def test_schedules_come_from_the_target_rules():
    from backends.base import get_backend
    cpu = TargetInfo(name="cpu", kind="cpu", isa="avx512", vector_bits=512, registers=32, fma_units=2)
    assert _schedule(64, 16, cpu, get_backend("cpu")).kind == "gemm"
    assert _schedule(64, 16, ARRAY).kind == "systolic_gemm"
