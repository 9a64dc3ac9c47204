"""simplify-reshapes: golden tests, numeric checks and differential tests on real models."""

from __future__ import annotations

import pytest

from tests.passes.golden import assert_pass
from tests.passes.differential import assert_same_outputs, run_differential


def test_canonicalizes_flatten_squeeze_unsqueeze_as_reshape():
    assert_pass("""
        graph @main(%x: f32[N,512,1,1], %k: f32[1,3,1,4], %z: f32[2,3]) {
          %a: i64[1] = constant [-1]
          %f: f32[N,512] = Flatten(%x)
          %s: f32[3,4] = Squeeze(%k)
          %u: f32[2,3,1] = Unsqueeze(%z, %a)
          return %f, %s, %u
        }""", "simplify-reshapes,dce", """
        graph @main(%x: f32[N,512,1,1], %k: f32[1,3,1,4], %z: f32[2,3]) {
          %f_shape: i64[2] = constant [0, 512]
          %s_shape: i64[2] = constant [3, 4]
          %u_shape: i64[3] = constant [2, 3, 1]
          %f: f32[N,512] = Reshape(%x, %f_shape)
          %s: f32[3,4] = Reshape(%k, %s_shape)
          %u: f32[2,3,1] = Reshape(%z, %u_shape)
          return %f, %s, %u
        }""")


def test_collapses_reshape_chains():
    # Flatten then Reshape: one Reshape of the original input.  In the second chain the
    # outer 0 copies a dim of the inner output, so the target is rebuilt from the type.
    assert_pass("""
        graph @main(%x: f32[N,2,3,4]) {
          %t1: i64[3] = constant [0, 6, 4]
          %t2: i64[2] = constant [0, -1]
          %t3: i64[3] = constant [-1, 4, 6]
          %f: f32[N,24] = Flatten(%x)
          %r1: f32[N,6,4] = Reshape(%f, %t1)
          %e: f32[N,6,4] = Exp(%r1)
          %r2: f32[N,4,6] = Reshape(%e, %t3)
          %r3: f32[N,24] = Reshape(%r2, %t2)
          return %r1, %r3
        }""", "simplify-reshapes,dce", """
        graph @main(%x: f32[N,2,3,4]) {
          %t1: i64[3] = constant [0, 6, 4]
          %r3_shape: i64[2] = constant [0, 24]
          %r1: f32[N,6,4] = Reshape(%x, %t1)
          %e: f32[N,6,4] = Exp(%r1)
          %r3: f32[N,24] = Reshape(%e, %r3_shape)
          return %r1, %r3
        }""")


def test_removes_reshape_to_own_shape_and_round_trips():
    assert_pass("""
        graph @main(%x: f32[2,3,4]) {
          %t: i64[2] = constant [6, 4]
          %back: i64[3] = constant [2, 3, 4]
          %r: f32[6,4] = Reshape(%x, %t)
          %b: f32[2,3,4] = Reshape(%r, %back)
          %y: f32[2,3,4] = Exp(%b)
          return %y
        }""", "simplify-reshapes,dce", """
        graph @main(%x: f32[2,3,4]) {
          %y: f32[2,3,4] = Exp(%x)
          return %y
        }""")


def test_composes_and_removes_transposes():
    assert_pass("""
        graph @main(%z: f32[2,3,4]) {
          %e: f32[2,3,4] = Exp(%z)
          %t1: f32[3,4,2] = Transpose(%e) {perm=[1, 2, 0]}
          %t2: f32[2,3,4] = Transpose(%t1) {perm=[2, 0, 1]}
          %t3: f32[4,3,2] = Transpose(%t2)
          %t4: f32[3,2,4] = Transpose(%t3) {perm=[1, 2, 0]}
          %t5: f32[3,2,4] = Transpose(%t4) {perm=[0, 1, 2]}
          %y: f32[3,2,4] = Relu(%t5)
          return %y
        }""", "simplify-reshapes,dce", """
        graph @main(%z: f32[2,3,4]) {
          %e: f32[2,3,4] = Exp(%z)
          %t5: f32[3,2,4] = Transpose(%e) {perm=[1, 0, 2]}
          %y: f32[3,2,4] = Relu(%t5)
          return %y
        }""")
    assert_same_outputs("""
        graph @main(%z: f32[2,3,4]) {
          %t1: f32[3,4,2] = Transpose(%z) {perm=[1, 2, 0]}
          %t3: f32[2,4,3] = Transpose(%t1)
          %t4: f32[4,3,2] = Transpose(%t3) {perm=[1, 2, 0]}
          %y: f32[4,3,2] = Exp(%t4)
          return %y
        }""", "simplify-reshapes,dce")


def test_does_not_fire():
    # Returned identity ops whose input is a graph input (removing them would rename an
    # output); a Flatten with two unknown dims; a Transpose of unknown rank; a shuffle.
    src = """
        graph @main(%x: f32[2,3], %u: f32[N,M,4], %w: f32[*], %s: f32[1,4,2,3]) {
          %t: i64[2] = constant [2, 3]
          %shuffle_a: i64[3] = constant [2, 2, 6]
          %shuffle_b: i64[4] = constant [1, 4, 2, 3]
          %r: f32[2,3] = Reshape(%x, %t)
          %i: f32[2,3] = Transpose(%x) {perm=[0, 1]}
          %f: f32[?,?] = Flatten(%u) {axis=2}
          %v: f32[*] = Transpose(%w)
          %a: f32[2,2,6] = Reshape(%s, %shuffle_a)
          %b: f32[2,2,6] = Transpose(%a) {perm=[1, 0, 2]}
          %c: f32[1,4,2,3] = Reshape(%b, %shuffle_b)
          return %r, %i, %f, %v, %c
        }"""
    assert_pass(src, "simplify-reshapes", src)


@pytest.mark.parametrize("name", ["shufflenet", "squeezenet", "inception_v1", "digits_cnn",
                                  "digits_mlp"])
def test_differential_small_models(name):
    run_differential(name, "simplify-reshapes,dce")


@pytest.mark.slow
@pytest.mark.parametrize("name", ["resnet50", "densenet121", "vgg19", "zfnet512"])
def test_differential_large_models(name):
    run_differential(name, "simplify-reshapes,dce")
