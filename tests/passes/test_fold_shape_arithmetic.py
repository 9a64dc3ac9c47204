"""fold-shape-arithmetic: golden tests and differential tests on real and built models."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from ir import run_graph
from passes import run_pipeline
from tests.passes.golden import assert_pass, run_on_text
from tests.passes.differential import assert_close, run_differential

FLATTEN = """
        graph @main(%x: f32[N,512,1,1]) {
          %i: i64[] = constant [0]
          %a: i64[1] = constant [0]
          %m: i64[1] = constant [-1]
          %s: i64[4] = Shape(%x)
          %g: i64[] = Gather(%s, %i) {axis=0}
          %u: i64[1] = Unsqueeze(%g, %a)
          %c: i64[2] = Concat(%u, %m) {axis=0}
          %r: f32[?,?] = Reshape(%x, %c)
          %y: f32[?,?] = Relu(%r)
          return %y
        }"""


def test_pytorch_flatten_becomes_static_reshape():
    assert_pass(FLATTEN, "fold-shape-arithmetic,fold-constants,dce", """
        graph @main(%x: f32[N,512,1,1]) {
          %c_const: i64[2] = constant [0, -1]
          %r: f32[N,512] = Reshape(%x, %c_const)
          %y: f32[N,512] = Relu(%r)
          return %y
        }""")


def test_known_dims_of_symbolic_shapes_fold():
    assert_pass("""
        graph @main(%x: f32[N,3,4]) {
          %one: i64[] = constant [1]
          %idx: i64[2] = constant [-1, 1]
          %b: i64[1] = constant [1]
          %e: i64[1] = constant [3]
          %s: i64[3] = Shape(%x)
          %g: i64[] = Gather(%s, %one) {axis=0}
          %h: i64[2] = Gather(%s, %idx) {axis=0}
          %t: i64[2] = Slice(%s, %b, %e)
          %tail: i64[2] = Shape(%x) {start=1}
          %p: i64[] = Mul(%g, %g)
          %q: i64[6] = Concat(%h, %t, %tail) {axis=0}
          return %p, %q
        }""", "fold-shape-arithmetic,fold-constants,dce", """
        graph @main(%x: f32[N,3,4]) {
          %p: i64[] = constant [9]
          %q: i64[6] = constant [4, 3, 3, 4, 3, 4]
          return %p, %q
        }""")


def test_copy_markers_for_slices_and_same_named_dims():
    # Shape(x)[0:2] at positions 0-1 copies N and M; Gather(Shape(y), 0) is N again.
    assert_pass("""
        graph @main(%x: f32[N,M,3,4], %y: f32[N,7]) {
          %z: i64[1] = constant [0]
          %two: i64[1] = constant [2]
          %i: i64[] = constant [0]
          %m: i64[1] = constant [-1]
          %sx: i64[4] = Shape(%x)
          %lead: i64[2] = Slice(%sx, %z, %two)
          %c1: i64[3] = Concat(%lead, %m) {axis=0}
          %r1: f32[?,?,?] = Reshape(%x, %c1)
          %sy: i64[2] = Shape(%y)
          %n: i64[] = Gather(%sy, %i) {axis=0}
          %u: i64[1] = Unsqueeze(%n, %z)
          %c2: i64[2] = Concat(%u, %m) {axis=0}
          %r2: f32[?,?] = Reshape(%x, %c2)
          return %r1, %r2
        }""", "fold-shape-arithmetic,dce", """
        graph @main(%x: f32[N,M,3,4], %y: f32[N,7]) {
          %c1_const: i64[3] = constant [0, 0, -1]
          %c2_const: i64[2] = constant [0, -1]
          %r1: f32[N,M,12] = Reshape(%x, %c1_const)
          %r2: f32[N,?] = Reshape(%x, %c2_const)
          return %r1, %r2
        }""")


def test_does_not_fire():
    # allowzero=1 (0 is a real size); dim 1 (M) placed at position 0; an unknown dim;
    # a graph output that would become a constant; a dynamic piece.
    src = """
        graph @main(%x: f32[N,M,?], %k: i64[1]) {
          %zero: i64[] = constant [0]
          %one: i64[] = constant [1]
          %a: i64[1] = constant [0]
          %m: i64[1] = constant [-1]
          %s: i64[3] = Shape(%x)
          %g0: i64[] = Gather(%s, %zero) {axis=0}
          %u0: i64[1] = Unsqueeze(%g0, %a)
          %c0: i64[2] = Concat(%u0, %m) {axis=0}
          %r0: f32[?,?] = Reshape(%x, %c0) {allowzero=1}
          %g1: i64[] = Gather(%s, %one) {axis=0}
          %u1: i64[1] = Unsqueeze(%g1, %a)
          %c1: i64[2] = Concat(%u1, %m) {axis=0}
          %r1: f32[?,?] = Reshape(%x, %c1)
          %c2: i64[2] = Concat(%k, %m) {axis=0}
          %r2: f32[?,?] = Reshape(%x, %c2)
          %t: i64[] = Gather(%s, %one) {axis=0}
          return %r0, %r1, %r2, %t
        }"""
    assert_pass(src, "fold-shape-arithmetic", src)


def _torch_style_model():
    """A PyTorch-exported-looking model: Conv, GlobalAveragePool, dynamic flatten, Gemm."""
    rng = np.random.default_rng(0)
    w = numpy_helper.from_array(rng.standard_normal((8, 3, 3, 3)).astype(np.float32), "w")
    fc = numpy_helper.from_array(rng.standard_normal((10, 8)).astype(np.float32), "fc")
    zero = numpy_helper.from_array(np.array(0, dtype=np.int64), "zero")
    axes = numpy_helper.from_array(np.array([0], dtype=np.int64), "axes")
    minus = numpy_helper.from_array(np.array([-1], dtype=np.int64), "minus")
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c"], ["r"]),
        helper.make_node("GlobalAveragePool", ["r"], ["p"]),
        helper.make_node("Shape", ["p"], ["s"]),
        helper.make_node("Gather", ["s", "zero"], ["n"], axis=0),
        helper.make_node("Unsqueeze", ["n", "axes"], ["nu"]),
        helper.make_node("Concat", ["nu", "minus"], ["shape"], axis=0),
        helper.make_node("Reshape", ["p", "shape"], ["flat"]),
        helper.make_node("Gemm", ["flat", "fc"], ["y"], transB=1),
    ]
    graph = helper.make_graph(
        nodes, "torch_flatten",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 6, 6])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 10])],
        initializer=[w, fc, zero, axes, minus])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


def test_differential_torch_style_flatten_model():
    from frontends.onnx import import_onnx
    graph = import_onnx(_torch_style_model())
    ref = graph.clone()
    run_pipeline(graph, "fold-constants,fold-shape-arithmetic,fold-constants,dce")
    ops = graph.op_counts()
    assert "Shape" not in ops and "Concat" not in ops
    flat = graph.find_nodes("Reshape")[0].output
    assert str(flat.type) == "f32[N,8]"
    assert str(graph.outputs[0].type) == "f32[N,10]"
    for batch in (1, 3):
        x = np.random.default_rng(batch).standard_normal((batch, 3, 6, 6)).astype(np.float32)
        assert_close(run_graph(ref, {"x": x}), run_graph(graph, {"x": x}))


def test_idempotent_on_flatten():
    once = run_on_text(FLATTEN, "fold-shape-arithmetic")
    assert once == run_on_text(once, "fold-shape-arithmetic")


@pytest.mark.parametrize("name", ["shufflenet", "squeezenet", "inception_v1", "digits_cnn"])
def test_differential_small_models(name):
    run_differential(name, "fold-shape-arithmetic,dce")


@pytest.mark.slow
@pytest.mark.parametrize("name", ["resnet50", "densenet121", "inception_v2"])
def test_differential_large_models(name):
    run_differential(name, "fold-shape-arithmetic,dce")
