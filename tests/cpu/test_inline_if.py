"""cpu target: an If whose condition folds to a constant (a shape test) compiles as its taken branch
(unroll-control-flow)."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto as T
from onnx import helper as oh

import compiler


def _branch(name: str, op: str) -> onnx.GraphProto:
    return oh.make_graph([oh.make_node(op, ["x", "one"], ["out"])], name, [],
                         [oh.make_tensor_value_info("out", T.FLOAT, None)],
                         [onnx.numpy_helper.from_array(np.float32(1.0), "one")])


@pytest.mark.parametrize("rows,expect", [(2, "Add"), (3, "Sub")])
def test_shape_decided_if_is_inlined(rows, expect):
    nodes = [oh.make_node("Shape", ["x"], ["s"]),
             oh.make_node("Gather", ["s", "zero"], ["n"], axis=0),
             oh.make_node("Equal", ["n", "two"], ["c"]),
             oh.make_node("If", ["c"], ["y"], then_branch=_branch("then", "Add"), else_branch=_branch("else", "Sub")),
             oh.make_node("Relu", ["y"], ["z"])]
    graph = oh.make_graph(nodes, "g", [oh.make_tensor_value_info("x", T.FLOAT, [rows, 37])],
                          [oh.make_tensor_value_info("z", T.FLOAT, None)],
                          [onnx.numpy_helper.from_array(np.int64(0), "zero"),
                           onnx.numpy_helper.from_array(np.int64(2), "two")])
    model = oh.make_model(graph, opset_imports=[oh.make_opsetid("", 18)])
    x = np.random.default_rng(0).standard_normal((rows, 37)).astype(np.float32)
    want = compiler.compile(model, target="ref").run({"x": x})["z"]
    module = compiler.compile(model, target="cpu")
    np.testing.assert_allclose(module.run({"x": x})["z"], want, rtol=1e-6)
    labels = module.executable.description["kernels"]
    assert any(expect in label for label in labels), labels
