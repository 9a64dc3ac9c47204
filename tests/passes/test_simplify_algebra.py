"""simplify-algebra: golden tests, numeric checks and differential tests on real models."""

from __future__ import annotations

import numpy as np
import pytest

from ir import parse_graph, run_graph
from passes import run_pipeline
from tests.passes.golden import assert_pass
from tests.passes.differential import assert_same_outputs, run_differential


def test_removes_neutral_arithmetic():
    # %j is returned and %i is a graph input: removing the Mul would rename the output.
    assert_pass("""
        graph @main(%x: f32[N,3], %i: i64[2]) {
          %one: f32[] = constant [1.0]
          %ones: f32[1,3] = constant [1.0, 1.0, 1.0]
          %zero: f32[3] = constant [0.0, 0.0, 0.0]
          %ione: i64[] = constant [1]
          %a: f32[N,3] = Mul(%x, %one)
          %b: f32[N,3] = Mul(%ones, %a)
          %c: f32[N,3] = Add(%zero, %b)
          %d: f32[N,3] = Sub(%c, %zero)
          %e: f32[N,3] = Div(%d, %ones)
          %f: f32[N,3] = Pow(%e, %ione)
          %g: f32[N,3] = Add(%f, %zero)
          %j: i64[2] = Mul(%i, %ione)
          %y: f32[N,3] = Exp(%g)
          return %y, %j
        }""", "simplify-algebra,dce", """
        graph @main(%x: f32[N,3], %i: i64[2]) {
          %ione: i64[] = constant [1]
          %j: i64[2] = Mul(%i, %ione)
          %y: f32[N,3] = Exp(%x)
          return %y, %j
        }""")


def test_removes_double_negation_relu_and_same_type_cast():
    assert_pass("""
        graph @main(%x: f32[2]) {
          %a: f32[2] = Neg(%x)
          %b: f32[2] = Neg(%a)
          %c: f32[2] = Relu(%b)
          %d: f32[2] = Relu(%c)
          %e: f32[2] = Cast(%d) {to=1}
          %y: f32[2] = Exp(%e)
          return %y
        }""", "simplify-algebra", """
        graph @main(%x: f32[2]) {
          %c: f32[2] = Relu(%x)
          %y: f32[2] = Exp(%c)
          return %y
        }""")


def test_removes_noop_expand_tile_slice_pad():
    assert_pass("""
        graph @main(%x: f32[N,3,4]) {
          %es: i64[2] = constant [1, 4]
          %reps: i64[3] = constant [1, 1, 1]
          %st: i64[2] = constant [0, -3]
          %en: i64[2] = constant [9223372036854775807, 3]
          %ax: i64[2] = constant [0, 1]
          %pads: i64[6] = constant [0, 0, 0, 0, 0, 0]
          %a: f32[N,3,4] = Expand(%x, %es)
          %b: f32[N,3,4] = Tile(%a, %reps)
          %c: f32[N,3,4] = Slice(%b, %st, %en, %ax)
          %d: f32[N,3,4] = Pad(%c, %pads) {mode="reflect"}
          %y: f32[N,3,4] = Exp(%d)
          return %y
        }""", "simplify-algebra,dce", """
        graph @main(%x: f32[N,3,4]) {
          %y: f32[N,3,4] = Exp(%x)
          return %y
        }""")


def test_does_not_fire():
    # x*0 and x-x change NaN/inf behaviour; a constant that broadcasts x to a larger
    # shape; Cast to another type; Expand/Tile/Slice/Pad that do something; Neg of one Neg.
    src = """
        graph @main(%x: f32[2,3], %n: f32[N,3]) {
          %zero: f32[] = constant [0.0]
          %ones: f32[4,2,3] = constant elided "sha256:0000000000000000"
          %ones_c: f32[2,1] = constant [1.0, 1.0]
          %one_half: f32[2,3] = constant [1.0, 1.0, 1.0, 1.0, 1.0, 0.5]
          %es: i64[2] = constant [2, 3]
          %reps: i64[2] = constant [1, 2]
          %st: i64[1] = constant [1]
          %en: i64[1] = constant [3]
          %pads: i64[4] = constant [0, 1, 0, 0]
          %a: f32[2,3] = Mul(%x, %zero)
          %b: f32[2,3] = Sub(%x, %x)
          %c: f32[4,2,3] = Mul(%x, %ones)
          %c2: f32[N,3] = Mul(%n, %ones_c)
          %d: f32[2,3] = Mul(%x, %one_half)
          %e: f64[2,3] = Cast(%x) {to=11}
          %f: f32[?,3] = Expand(%n, %es)
          %g: f32[2,6] = Tile(%x, %reps)
          %h: f32[1,3] = Slice(%x, %st, %en)
          %i: f32[2,4] = Pad(%x, %pads)
          %m: f32[2,3] = Neg(%x)
          %k: f32[2,3] = Abs(%m)
          return %a, %b, %c, %c2, %d, %e, %f, %g, %h, %i, %k
        }"""
    graph = parse_graph(src.replace('elided "sha256:0000000000000000"',
                                    "[" + ", ".join(["1.0"] * 24) + "]"), allow_elided=False)
    before = str(graph)
    run_pipeline(graph, "simplify-algebra")
    assert str(graph) == before


def test_x_plus_zero_keeps_nan_and_inf():
    out = assert_same_outputs("""
        graph @main(%x: f32[4]) {
          %zero: f32[4] = constant [0.0, 0.0, 0.0, 0.0]
          %y: f32[4] = Add(%x, %zero)
          %z: f32[4] = Exp(%y)
          return %z
        }""", "simplify-algebra")
    assert "Add" not in out
    graph = parse_graph(out, allow_elided=False)
    x = np.array([np.nan, np.inf, -np.inf, 1.0], dtype=np.float32)
    got = run_graph(graph, {"x": x})[0]
    assert np.isnan(got[0]) and got[1] == np.inf and got[2] == 0.0


@pytest.mark.parametrize("name", ["shufflenet", "squeezenet", "inception_v1", "digits_cnn",
                                  "digits_mlp"])
def test_differential_small_models(name):
    run_differential(name, "fold-batchnorm,simplify-algebra,dce")


@pytest.mark.slow
@pytest.mark.parametrize("name", ["resnet50", "densenet121", "inception_v2"])
def test_differential_large_models(name):
    run_differential(name, "fold-batchnorm,simplify-algebra,dce")
