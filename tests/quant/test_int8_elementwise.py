"""fold-qdq's integer residual add (``nnc.QAdd``) and 8-bit MaxPool, against the float group.

``nnc.QAdd`` runs the ``DQ + DQ -> Add [-> Relu] -> Q`` group's float32 steps
on the 8-bit data, so it must equal the unfolded graph on ``ref`` bit for bit,
the cpu build must equal the reference, and onnxruntime (which runs the group
in float, or as QLinearAdd) must be within one output step.
"""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest

from compiler.driver import build
from frontends.onnx import import_onnx
from ir.interpreter import run_graph
from passes.manager import run_pipeline

from . import qmodels


def _run_all(model, feeds, folded_op: str):
    unfolded = run_graph(import_onnx(model), feeds)[0]
    g = import_onnx(model)
    run_pipeline(g, "fold-qdq")
    counts = g.op_counts()
    assert counts.get(folded_op, 0) == 1 and "DequantizeLinear" in counts, counts
    folded = run_graph(g, feeds)[0]
    res = build(model, target="cpu")
    got = res.module.run(feeds)
    got = list(got.values())[0] if isinstance(got, dict) else got[0]
    want = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, feeds)[0]
    return unfolded, folded, got, want, res.graph.op_counts()


ADD_CASES = [dict(), dict(relu=True), dict(act="u8"), dict(act="u8", relu=True),
             dict(b_shape=(1, 16, 1, 1)), dict(same_scales=True)]


@pytest.mark.parametrize("case", ADD_CASES, ids=[str(i) for i in range(len(ADD_CASES))])
def test_qdq_add_folds_to_integer_add(case):
    model, feeds = qmodels.qdq_add(seed=len(str(case)), **case)
    unfolded, folded, got, want, counts = _run_all(model, feeds, "nnc.QAdd")
    assert counts.get("nnc.QAdd") == 1 and "Add" not in counts
    assert np.array_equal(folded, unfolded), "nnc.QAdd must equal the float group bit for bit"
    assert np.array_equal(got, folded), "cpu vs ref"
    step = 0.043 if not case.get("same_scales") else 0.031
    assert np.abs(got - want).max() <= step * 1.001


def test_qdq_add_relu_is_a_saturation_bound():
    model, _ = qmodels.qdq_add(relu=True, act="s8")
    g = import_onnx(model)
    run_pipeline(g, "fold-qdq")
    (node,) = [n for n in g.nodes if n.op == "QAdd"]
    assert "Relu" not in g.op_counts() and node.attr("act_min") == -128  # zero point -128: Relu is free


@pytest.mark.parametrize("act", ["s8", "u8"])
def test_qdq_maxpool_runs_on_8_bit_data(act):
    model, feeds = qmodels.qdq_maxpool(act=act)
    g = import_onnx(model)
    run_pipeline(g, "fold-qdq")
    pools = [n for n in g.nodes if n.op == "MaxPool"]
    assert len(pools) == 1 and pools[0].inputs[0].type.dtype.np == (np.int8 if act == "s8" else np.uint8)
    unfolded = run_graph(import_onnx(model), feeds)[0]
    assert np.array_equal(run_graph(g, feeds)[0], unfolded)
    got = build(model, target="cpu").module.run(feeds)
    got = list(got.values())[0] if isinstance(got, dict) else got[0]
    assert np.array_equal(got, unfolded)
    want = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, feeds)[0]
    assert np.array_equal(got, want)


def test_maxpool_with_new_scale_stays_float():
    """Requantizing to other parameters is not a plain 8-bit MaxPool: left alone."""
    model, _ = qmodels.qdq_maxpool(same_params=False)
    g = import_onnx(model)
    run_pipeline(g, "fold-qdq")
    (pool,) = [n for n in g.nodes if n.op == "MaxPool"]
    assert pool.inputs[0].type.dtype.np == np.float32
