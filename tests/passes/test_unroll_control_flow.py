"""unroll-control-flow: Scan, Loop and If compiled for the cpu by unrolling them (passes/unroll_control_flow.py).

Each model is run on the cpu target and on the reference interpreter (which
runs the bodies as subgraphs); shapes, directions, axes and captures go
beyond the ONNX suite's cases.  A loop whose trip count is data-dependent is
refused with the reason.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto as T
from onnx import helper as h

import compiler
from ir.errors import UnsupportedOpError
from tests.cpu.helpers import compare_cpu

RNG = np.random.default_rng(3)


def _model(nodes, inputs, outputs, inits=()):
    g = h.make_graph(nodes, "g", inputs, outputs, initializer=list(inits))
    m = h.make_model(g, opset_imports=[h.make_opsetid("", 21)])
    m.ir_version = 10
    onnx.checker.check_model(m)
    return m


def _unrolled(model) -> list:
    mod = compiler.compile(model, target="cpu")
    return [d for d in mod.decisions if d.get("decision") == "unroll control flow"]


def _f(name, shape):
    return h.make_tensor_value_info(name, T.FLOAT, shape)


def scan_model(b: int, t: int, d: int):
    """Two states (a running weighted sum and a running max), two scan inputs (one scanned
    backwards along axis 1, one along axis 0), a captured weight, two scan outputs (one
    stacked along axis 1 in reverse)."""
    body = h.make_graph(
        [h.make_node("Mul", ["x_t", "w"], ["xw"]),
         h.make_node("Add", ["s_in", "xw"], ["s_out"]),
         h.make_node("Max", ["m_in", "y_t"], ["m_out"]),
         h.make_node("Tanh", ["s_out"], ["o1"]),
         h.make_node("Sub", ["m_out", "s_out"], ["o2"])],
        "body", [_f("s_in", [b, d]), _f("m_in", [b, d]), _f("x_t", [b, d]), _f("y_t", [b, d]), _f("w", [d])],
        [_f("s_out", [b, d]), _f("m_out", [b, d]), _f("o1", [b, d]), _f("o2", [b, d])])
    # ONNX Scan-9+ has no captures as inputs: the body reads the outer "w" by name.
    body.input.pop()
    node = h.make_node("Scan", ["s0", "m0", "x", "y"], ["s", "m", "o1s", "o2s"], body=body, num_scan_inputs=2,
                       scan_input_axes=[1, 0], scan_input_directions=[1, 0],
                       scan_output_axes=[0, 1], scan_output_directions=[0, 1])
    w = h.make_tensor("w", T.FLOAT, [d], RNG.standard_normal(d).astype(np.float32).tolist())
    model = _model([node], [_f("s0", [b, d]), _f("m0", [b, d]), _f("x", [b, t, d]), _f("y", [t, b, d])],
                   [_f("s", [b, d]), _f("m", [b, d]), _f("o1s", [t, b, d]), _f("o2s", [b, t, d])], [w])
    feeds = {"s0": RNG.standard_normal((b, d)).astype(np.float32),
             "m0": RNG.standard_normal((b, d)).astype(np.float32),
             "x": RNG.standard_normal((b, t, d)).astype(np.float32),
             "y": RNG.standard_normal((t, b, d)).astype(np.float32)}
    return model, feeds


@pytest.mark.parametrize("b,t,d", [(3, 7, 5), (1, 1, 16), (2, 12, 9)])
def test_scan_matches_reference(b, t, d):
    model, feeds = scan_model(b, t, d)
    compare_cpu(model, feeds)
    assert _unrolled(model), "the Scan was not unrolled"


def loop_model():
    """A Loop with a run-time trip count: carried (acc, k), a scan output, the iteration number used."""
    body = h.make_graph(
        [h.make_node("Identity", ["cond_in"], ["cond_out"]),
         h.make_node("Cast", ["i"], ["i_f"], to=T.FLOAT),
         h.make_node("Mul", ["x", "i_f"], ["xi"]),
         h.make_node("Add", ["acc_in", "xi"], ["acc_out"]),
         h.make_node("Mul", ["k_in", "acc_out"], ["k_out"]),
         h.make_node("Sigmoid", ["k_out"], ["row"])],
        "body", [h.make_tensor_value_info("i", T.INT64, []), h.make_tensor_value_info("cond_in", T.BOOL, []),
                 _f("acc_in", [4, 6]), _f("k_in", [4, 6])],
        [h.make_tensor_value_info("cond_out", T.BOOL, []), _f("acc_out", [4, 6]), _f("k_out", [4, 6]),
         _f("row", [4, 6])])
    node = h.make_node("Loop", ["M", "c", "acc0", "k0"], ["acc", "k", "rows"], body=body)
    model = _model([node], [h.make_tensor_value_info("M", T.INT64, []), h.make_tensor_value_info("c", T.BOOL, []),
                            _f("acc0", [4, 6]), _f("k0", [4, 6]), _f("x", [4, 6])],
                   [_f("acc", [4, 6]), _f("k", [4, 6]), _f("rows", ["T", 4, 6])])
    return model


@pytest.mark.parametrize("trip,cond", [(5, True), (1, True), (3, False)])
def test_loop_with_runtime_trip_count(trip, cond):
    model = loop_model()
    feeds = {"M": np.array(trip, np.int64), "c": np.array(cond), "acc0": RNG.standard_normal((4, 6)).astype(np.float32),
             "k0": np.full((4, 6), 0.5, np.float32), "x": RNG.standard_normal((4, 6)).astype(np.float32)}
    out = compare_cpu(model, feeds)
    assert out["rows"].shape == ((trip if cond else 0), 4, 6)


def test_loop_with_data_dependent_condition_is_refused():
    body = h.make_graph(
        [h.make_node("Add", ["acc_in", "one"], ["acc_out"]),
         h.make_node("ReduceSum", ["acc_out"], ["total"], keepdims=0),
         h.make_node("Less", ["total", "limit"], ["cond_out"])],
        "body", [h.make_tensor_value_info("i", T.INT64, []), h.make_tensor_value_info("cond_in", T.BOOL, []),
                 _f("acc_in", [3])],
        [h.make_tensor_value_info("cond_out", T.BOOL, []), _f("acc_out", [3])])
    node = h.make_node("Loop", ["M", "", "acc0"], ["acc"], body=body)
    inits = [h.make_tensor("one", T.FLOAT, [3], [1.0, 1.0, 1.0]), h.make_tensor("limit", T.FLOAT, [], [20.0]),
             h.make_tensor("M", T.INT64, [], [100])]
    model = _model([node], [_f("acc0", [3])], [_f("acc", [3])], inits)
    with pytest.raises(UnsupportedOpError, match="computes the loop condition from data"):
        compiler.compile(model, target="cpu").run({"acc0": np.zeros(3, np.float32)})


@pytest.mark.parametrize("cond", [True, False])
def test_if_with_runtime_condition_becomes_a_select(cond):
    then_g = h.make_graph([h.make_node("Relu", ["x"], ["a"]), h.make_node("Mul", ["a", "two"], ["t_out"])],
                          "then", [], [_f("t_out", [2, 3, 5])])
    else_g = h.make_graph([h.make_node("Sub", ["x", "two"], ["e_out"])], "else", [], [_f("e_out", [2, 3, 5])])
    node = h.make_node("If", ["c"], ["y"], then_branch=then_g, else_branch=else_g)
    model = _model([node, h.make_node("Exp", ["y"], ["z"])],
                   [h.make_tensor_value_info("c", T.BOOL, []), _f("x", [2, 3, 5])], [_f("z", [2, 3, 5])],
                   [h.make_tensor("two", T.FLOAT, [], [2.0])])
    feeds = {"c": np.array(cond), "x": RNG.standard_normal((2, 3, 5)).astype(np.float32)}
    compare_cpu(model, feeds)
    assert _unrolled(model), "the If was not rewritten"


def test_if_with_branches_of_different_shapes_is_refused():
    then_g = h.make_graph([h.make_node("Identity", ["x"], ["t_out"])], "then", [], [_f("t_out", [4])])
    else_g = h.make_graph([h.make_node("Concat", ["x", "x"], ["e_out"], axis=0)], "else", [], [_f("e_out", [8])])
    node = h.make_node("If", ["c"], ["y"], then_branch=then_g, else_branch=else_g)
    model = _model([node], [h.make_tensor_value_info("c", T.BOOL, []), _f("x", [4])], [_f("y", ["K"])])
    with pytest.raises(UnsupportedOpError, match="cannot become a select"):
        compiler.compile(model, target="cpu").run({"c": np.array(True), "x": np.ones(4, np.float32)})


def test_if_whose_other_branch_is_ill_typed_for_these_shapes_is_left_in_place():
    """If-conversion inlines both branches: one that cannot be typed for the actual shapes rolls back."""
    from frontends.onnx import import_onnx
    from ir.types import TensorType
    from ir.dtypes import DType
    from passes.manager import PassContext
    from passes.unroll_control_flow import unroll_control_flow
    then_g = h.make_graph([h.make_node("Relu", ["x"], ["t_out"])], "then", [], [_f("t_out", [4])])
    else_g = h.make_graph([h.make_node("Reshape", ["x", "shape"], ["e_out"])], "else", [], [_f("e_out", [4])])
    node = h.make_node("If", ["c"], ["y"], then_branch=then_g, else_branch=else_g)
    model = _model([node], [h.make_tensor_value_info("c", T.BOOL, []), _f("x", ["N"])], [_f("y", ["N"])],
                   [h.make_tensor("shape", T.INT64, [1], [4])])
    g = import_onnx(model)
    g.inputs[1].type = TensorType(DType.F32, (5,))  # as specialization would: Reshape([5] -> [4]) is ill-typed
    before, consts = len(g.nodes), len(g.constants)
    ctx = PassContext()
    assert not unroll_control_flow(g, ctx)
    assert len(g.nodes) == before and len(g.constants) == consts and g.find_nodes("If")
    (kept,) = [d for d in ctx.log if d["decision"] == "keep control flow"]
    assert "cannot reshape" in kept["reason"]
