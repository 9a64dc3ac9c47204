"""A symbolic batch compiled once, at build time: the batch is a run-time argument of the native code.

``compiler/batching.py`` decides whether the samples of a batch are
independent (then the cpu target compiles one sample and loops over the
batch in native code); these tests check its verdicts on models that keep
samples apart and on models that mix them, and that the compiled module
matches the reference at several batch sizes with rows bitwise identical
whatever the batch.
"""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto as T
from onnx import helper as h

import compiler
from compiler.batching import plan_batch
from frontends.onnx import import_model

RNG = np.random.default_rng(0)


def _const(name, arr):
    arr = np.asarray(arr)
    dtype = {np.dtype(np.float32): T.FLOAT, np.dtype(np.int64): T.INT64}[arr.dtype]
    return h.make_tensor(name, dtype, arr.shape, arr.reshape(-1).tolist())


def _model(nodes, inputs, outputs, inits=(), opset=17):
    g = h.make_graph(nodes, "batching", inputs, outputs, list(inits))
    return h.make_model(g, opset_imports=[h.make_opsetid("", opset)])


def conv_flatten_model(tail=None):
    """Conv -> ReLU -> Reshape to [Shape(x)[0], -1] (as torch exports flatten) -> MatMul -> tail."""
    x = h.make_tensor_value_info("x", T.FLOAT, ["N", 3, 8, 8])
    y = h.make_tensor_value_info("y", T.FLOAT, ["N", 10])
    nodes = [h.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),
             h.make_node("Relu", ["c"], ["r"]),
             h.make_node("Shape", ["r"], ["s"]),
             h.make_node("Gather", ["s", "zero"], ["n"], axis=0),
             h.make_node("Unsqueeze", ["n", "ax"], ["nu"]),
             h.make_node("Concat", ["nu", "m1"], ["shp"], axis=0),
             h.make_node("Reshape", ["r", "shp"], ["f"]),
             h.make_node("MatMul", ["f", "fw"], ["y0" if tail else "y"])]
    if tail:
        nodes.append(tail)
    inits = [_const("w", RNG.standard_normal((4, 3, 3, 3)).astype(np.float32)),
             _const("fw", RNG.standard_normal((256, 10)).astype(np.float32) * 0.1),
             _const("zero", np.array(0, np.int64)), _const("ax", np.array([0], np.int64)),
             _const("m1", np.array([-1], np.int64))]
    return _model(nodes, [x], [y], inits)


def verdict(model):
    return plan_batch(import_model(model))


# ------------------------------------------------------------------ verdicts
def test_conv_with_shape_computed_flatten_is_batched():
    plan = verdict(conv_flatten_model())
    assert plan.ok, plan.reason
    assert plan.signature.symbol == "N" and plan.signature.inputs == (True,)
    assert plan.per_sample.inputs[0].type.shape == (1, 3, 8, 8)


@pytest.mark.parametrize("tail, culprit", [
    (h.make_node("Softmax", ["y0"], ["y"], axis=0), "Softmax"),
    (h.make_node("LogSoftmax", ["y0"], ["y"], axis=-2), "LogSoftmax"),
    (h.make_node("CumSum", ["y0", "zero"], ["y"]), "CumSum"),
    (h.make_node("LayerNormalization", ["y0", "ones"], ["y"], axis=0), "LayerNormalization"),
])
def test_ops_that_mix_samples_along_axis_0_are_refused(tail, culprit):
    model = conv_flatten_model(tail)
    model.graph.initializer.append(_const("ones", np.ones((1, 10), np.float32)))
    plan = verdict(model)
    assert not plan.ok and culprit in plan.reason


def test_reduction_over_the_batch_is_refused():
    x = h.make_tensor_value_info("x", T.FLOAT, ["N", 4])
    y = h.make_tensor_value_info("y", T.FLOAT, ["N", 4])
    nodes = [h.make_node("ReduceMean", ["x", "ax"], ["m"], keepdims=1), h.make_node("Sub", ["x", "m"], ["y"])]
    plan = verdict(_model(nodes, [x], [y], [_const("ax", np.array([0], np.int64))], opset=18))
    assert not plan.ok and "mixes the samples" in plan.reason and "ReduceMean" in plan.reason


def test_indexing_rows_of_the_batch_is_refused():
    x = h.make_tensor_value_info("x", T.FLOAT, ["N", 4])
    y = h.make_tensor_value_info("y", T.FLOAT, ["N", 4])
    # y = x[reversed batch]: a Range over the batch size indexes other samples.
    nodes = [h.make_node("Shape", ["x"], ["s"]), h.make_node("Gather", ["s", "zero"], ["n"], axis=0),
             h.make_node("Range", ["zero", "n", "one"], ["idx"]),
             h.make_node("Gather", ["x", "idx"], ["y"], axis=0)]
    inits = [_const("zero", np.array(0, np.int64)), _const("one", np.array(1, np.int64))]
    plan = verdict(_model(nodes, [x], [y], inits))
    assert not plan.ok


def test_concatenating_along_the_batch_is_refused():
    x = h.make_tensor_value_info("x", T.FLOAT, ["N", 4])
    y = h.make_tensor_value_info("y", T.FLOAT, [None, 4])
    plan = verdict(_model([h.make_node("Concat", ["x", "x"], ["y"], axis=0)], [x], [y]))
    assert not plan.ok and "Concat" in plan.reason


def test_other_symbolic_dims_stay_dynamic_and_are_named():
    x = h.make_tensor_value_info("x", T.FLOAT, ["N", "seq"])
    y = h.make_tensor_value_info("y", T.FLOAT, ["N", "seq"])
    plan = verdict(_model([h.make_node("Relu", ["x"], ["y"])], [x], [y]))
    assert not plan.ok and plan.dynamic == ["input 'x' dim 1 ('seq')"]


def test_unbatched_inputs_are_shared_by_every_sample():
    x = h.make_tensor_value_info("x", T.FLOAT, ["N", 4])
    bias = h.make_tensor_value_info("bias", T.FLOAT, [4])
    y = h.make_tensor_value_info("y", T.FLOAT, ["N", 4])
    model = _model([h.make_node("Add", ["x", "bias"], ["y"])], [x, bias], [y])
    plan = verdict(model)
    assert plan.ok and plan.signature.inputs == (True, False)
    m = compiler.compile(model, target="cpu")
    xs, b = RNG.standard_normal((5, 4)).astype(np.float32), RNG.standard_normal(4).astype(np.float32)
    np.testing.assert_array_equal(m.run({"x": xs, "bias": b})["y"], xs + b)


# ------------------------------------------------------------- compiled code
def test_compiled_once_for_every_batch_and_rows_do_not_depend_on_it():
    model = conv_flatten_model(h.make_node("Softmax", ["y0"], ["y"], axis=-1))
    m = compiler.compile(model, target="cpu")
    ref = compiler.compile(model, target="ref")
    assert m.manifest["shapes"]["batch"] == "N"
    assert tuple(m.inputs[0].shape) == ("N", 3, 8, 8) and m.outputs[0].shape[0] == "N"
    x = RNG.standard_normal((9, 3, 8, 8)).astype(np.float32)
    rows = np.concatenate([m.run({"x": x[i:i + 1]})["y"] for i in range(9)])
    for batch in (1, 2, 5, 9):
        y = m.run({"x": x[:batch]})["y"]
        np.testing.assert_allclose(y, ref.run({"x": x[:batch]})["y"], rtol=1e-5, atol=1e-6)
        np.testing.assert_array_equal(y, rows[:batch])  # bitwise: same code per sample
    assert getattr(m.executable, "compilations", 0) == 0  # nothing compiled at run time


def test_threads_split_over_the_batch_give_the_same_rows():
    model = conv_flatten_model()
    m = compiler.compile(model, target="cpu", options={"threads": 2})
    one = compiler.compile(model, target="cpu", options={"threads": 1})
    x = RNG.standard_normal((7, 3, 8, 8)).astype(np.float32)
    np.testing.assert_array_equal(m.run({"x": x})["y"], one.run({"x": x})["y"])


def test_wrong_batched_shapes_are_input_errors():
    m = compiler.compile(conv_flatten_model(), target="cpu")
    with pytest.raises(compiler.CompilerError):
        m.run({"x": np.zeros((2, 3, 8, 9), np.float32)})
    with pytest.raises(compiler.CompilerError):
        m.run({"x": np.zeros((0, 3, 8, 8), np.float32)})


def test_saved_artifact_serves_every_batch_without_recompiling(tmp_path):
    model = conv_flatten_model()
    compiler.compile(model, target="cpu").save(tmp_path / "a")
    assert not (tmp_path / "a" / "graph.ir").exists()  # native code, not a graph to specialize
    m = compiler.load(tmp_path / "a")
    ref = compiler.compile(model, target="ref")
    for batch in (1, 4):
        x = RNG.standard_normal((batch, 3, 8, 8)).astype(np.float32)
        np.testing.assert_allclose(m.run({"x": x})["y"], ref.run({"x": x})["y"], rtol=1e-5, atol=1e-5)


def test_dims_named_by_value_compile_at_build_time():
    x = h.make_tensor_value_info("x", T.FLOAT, ["N", "seq"])
    y = h.make_tensor_value_info("y", T.FLOAT, ["N", "seq"])
    model = _model([h.make_node("Relu", ["x"], ["y"])], [x], [y])
    result = compiler.build(model, "cpu", dims={"seq": 6})
    assert result.shapes is not None and result.shapes.per_sample is not None
    x = RNG.standard_normal((3, 6)).astype(np.float32)
    np.testing.assert_array_equal(result.module.run({"x": x})["y"], np.maximum(x, 0))
    with pytest.raises(compiler.CompilerError, match="--dim names no symbolic dimension"):
        compiler.build(model, "cpu", dims={"len": 6})


def test_specializations_are_kept_in_the_artifact(tmp_path):
    x = h.make_tensor_value_info("x", T.FLOAT, ["N", "seq"])
    y = h.make_tensor_value_info("y", T.FLOAT, ["N", "seq"])
    model = _model([h.make_node("Relu", ["x"], ["y"])], [x], [y])
    compiler.compile(model, target="cpu").save(tmp_path / "a")
    first = compiler.load(tmp_path / "a")
    feeds = {"x": RNG.standard_normal((2, 5)).astype(np.float32)}
    first.run(feeds)
    assert first.executable.compilations == 1
    again = compiler.load(tmp_path / "a")  # as a new process would
    np.testing.assert_array_equal(again.run(feeds)["y"], np.maximum(feeds["x"], 0))
    assert again.executable.compilations == 0 and again.executable.loaded_from_store == 1
    # A damaged specialization is refused with the file named, not run.
    spec = next((tmp_path / "a" / "specializations").iterdir())
    obj = spec / "model.o"
    obj.write_bytes(obj.read_bytes()[: obj.stat().st_size // 2])
    with pytest.raises(compiler.ArtifactError, match="model.o"):
        compiler.load(tmp_path / "a").run(feeds)


def test_batch_carried_in_another_axis_inside_the_model():
    """A fused QKV projection moves the batch to axis 1 ([3, N, ...]) and back: still per-sample."""
    x = h.make_tensor_value_info("x", T.FLOAT, ["N", 4, 6])
    y = h.make_tensor_value_info("y", T.FLOAT, ["N", 4, 2])
    nodes = [h.make_node("Reshape", ["x", "shape"], ["r"]),                 # [N, 4, 3, 2]
             h.make_node("Transpose", ["r"], ["t"], perm=[2, 0, 1, 3]),    # [3, N, 4, 2]
             h.make_node("Gather", ["t", "one"], ["q"], axis=0),           # [N, 4, 2]
             h.make_node("Softmax", ["q"], ["y"], axis=-1)]
    inits = [_const("shape", np.array([0, 4, 3, 2], np.int64)), _const("one", np.array(1, np.int64))]
    model = _model(nodes, [x], [y], inits)
    plan = verdict(model)
    assert plan.ok, plan.reason
    m, ref = compiler.compile(model, target="cpu"), compiler.compile(model, target="ref")
    xs = RNG.standard_normal((3, 4, 6)).astype(np.float32)
    np.testing.assert_allclose(m.run({"x": xs})["y"], ref.run({"x": xs})["y"], rtol=1e-5, atol=1e-6)
    # The same with a softmax over the moved batch axis mixes samples: refused, by name.
    nodes[-1] = h.make_node("Softmax", ["t"], ["s"], axis=1)
    nodes.append(h.make_node("Gather", ["s", "one"], ["y"], axis=0))
    plan = verdict(_model(nodes, [x], [y], inits))
    assert not plan.ok and "Softmax" in plan.reason


def test_batch_signature_prints_and_parses_back():
    from ir.parser import parse_graph
    from ir.printer import print_graph
    plan = verdict(conv_flatten_model())
    text = print_graph(plan.per_sample, constants="inline")
    assert 'batch{symbol="N", inputs="1", outputs="1"}' in text.splitlines()[0]
    assert parse_graph(text).batch == plan.signature
