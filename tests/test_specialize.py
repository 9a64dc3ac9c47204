"""Run-time shape values: specialized per call signature and cached."""

import numpy as np
from onnx import TensorProto, helper

import compiler
from compiler.specialize import value_deciding_inputs
from frontends.onnx import import_model


def _model():
    # y = Tile(x, repeats) + 1, with repeats a run-time input: the output shape depends on its value.
    g = helper.make_graph(
        [helper.make_node("Neg", ["x"], ["n"]),
         helper.make_node("Max", ["n", "x"], ["m"]),
         helper.make_node("Add", ["m", "r"], ["y"])], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3]),
         helper.make_tensor_value_info("r", TensorProto.FLOAT, [3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3])])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    return m


def test_specialization_compiles_once_per_signature(tmp_path):
    m = compiler.compile(_model(), options={"specialize": True})
    exe = m.executable
    x2 = np.arange(6, dtype=np.float32).reshape(2, 3) - 2
    r = np.ones(3, np.float32)
    out = m.run({"x": x2, "r": r})["y"]
    np.testing.assert_array_equal(out, np.abs(x2) + 1)
    m.run({"x": x2 * 2, "r": r})
    assert exe.compilations == 1  # same shapes: cached
    m.run({"x": np.zeros((5, 3), np.float32), "r": r})
    assert exe.compilations == 2  # new batch size: one more specialization
    m.save(tmp_path / "a")
    m2 = compiler.load(tmp_path / "a")
    np.testing.assert_array_equal(m2.run({"x": x2, "r": r})["y"], out)


def test_no_value_inputs_without_static_operands():
    g = import_model(_model())
    assert value_deciding_inputs(g) == []
